"""Orbax checkpoints in the workdir: the latest (to resume) and the best.

States are saved as numpy arrays (one copy, see `Strategy.host_state`):
saving replicated device arrays makes orbax copy them replica by replica,
compiling a slicing program per array shape (minutes for a U-Net on 8 CPU
devices), and host arrays make checkpoints independent of the device layout.

`workdir/checkpoints/<step>` holds the last few training states for resuming;
`workdir/best/<step>` holds the single state with the best validation score.
Each checkpoint is a composite of the TrainState pytree and a small JSON
`meta` record (wall time so far, best score so far), so resuming restores
both. Orbax writes to a temporary directory and renames it when complete, so
a run killed during a save resumes from the previous complete checkpoint.
"""

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


def _abstract(state: Any) -> Any:
  """Shapes, dtypes and shardings to restore into, without the values."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)


class Checkpoints:
  """The workdir's latest and best checkpoints."""

  def __init__(self, workdir: str, max_to_keep: int = 2,
               best_mode: str = 'max', read_only: bool = False):
    """`read_only` (for inference) creates, cleans up and deletes nothing, so
    a run training in the same workdir is left alone."""
    # cleanup_tmp_directories removes the partial save of a killed run.
    writable = not read_only
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep if writable else None, create=writable,
        cleanup_tmp_directories=writable)
    self._latest = ocp.CheckpointManager(
        os.path.join(os.path.abspath(workdir), 'checkpoints'), options=options)
    best_options = ocp.CheckpointManagerOptions(
        max_to_keep=1 if writable else None, create=writable,
        cleanup_tmp_directories=writable, best_mode=best_mode,
        best_fn=lambda metrics: metrics['score'])
    self._best = ocp.CheckpointManager(
        os.path.join(os.path.abspath(workdir), 'best'), options=best_options)

  def latest_step(self) -> int | None:
    return self._latest.latest_step()

  def best_step(self) -> int | None:
    return self._best.best_step()

  def save_latest(self, step: int, state: Any, meta: dict[str, Any]) -> None:
    if step in self._latest.all_steps():
      return
    # Orbax names its multi-process barriers by step: two managers saving
    # the same step at once would collide, so one waits for the other.
    self._best.wait_until_finished()
    self._latest.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))

  def save_best(self, step: int, state: Any, score: float,
                meta: dict[str, Any]) -> None:
    if step in self._best.all_steps():  # already saved before an interruption
      return
    self._latest.wait_until_finished()
    self._best.save(step, metrics={'score': score}, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))

  def _restore(self, manager: ocp.CheckpointManager, step: int,
               state_template: Any) -> tuple[Any, dict[str, Any]]:
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(_abstract(state_template)),
        meta=ocp.args.JsonRestore()))
    return restored['state'], dict(restored['meta'])

  def restore_latest(self, state_template: Any) -> tuple[Any, dict[str, Any]]:
    return self._restore(self._latest, self.latest_step(), state_template)

  def restore_best(self, state_template: Any) -> tuple[Any, dict[str, Any]]:
    return self._restore(self._best, self.best_step(), state_template)

  def wait(self) -> None:
    """Blocks until asynchronous saves are on disk."""
    self._latest.wait_until_finished()
    self._best.wait_until_finished()

  def close(self, raise_errors: bool = True) -> None:
    """Waits for the saves and closes; with `raise_errors` False (when another
    error is on its way) a failed save is not raised again."""
    for manager in (self._latest, self._best):
      try:
        manager.close()
      except Exception:  # noqa: BLE001
        if raise_errors:
          raise
