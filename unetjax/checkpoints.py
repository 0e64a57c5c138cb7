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

Inference reads only the model's variables (params and batch_stats) of a
checkpoint (`restore_variables`), without building an optimizer to restore
into.

A checkpoint can still be damaged later (a disk error, a deleted or cut
file). `meta` holds a CRC-32 of the state's bytes and one of its variables';
a checkpoint that does not load, does not match it or holds non-finite
values is reported, moved to `workdir/damaged/` (never deleted) and the next
older one is used instead.
"""

import os
import sys
import zlib
from typing import Any, Callable

import jax
import numpy as np
import orbax.checkpoint as ocp

DAMAGED_DIR = 'damaged'
# The fields of a train state that inference needs.
VARIABLE_FIELDS = ('params', 'batch_stats')


def _abstract(state: Any) -> Any:
  """Shapes, dtypes and shardings to restore into, without the values."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)


def checksum(state: Any) -> int:
  """CRC-32 of the bytes of every array of `state`, in tree order."""
  crc = 0
  for leaf in jax.tree.leaves(state):
    crc = zlib.crc32(np.ascontiguousarray(leaf).reshape(-1).view(np.uint8), crc)
  return crc


def variables_of(state: Any) -> dict[str, Any]:
  """What inference needs of a train state: {'params', 'batch_stats'}."""
  return {name: getattr(state, name) for name in VARIABLE_FIELDS}


def _checksums(state: Any) -> dict[str, int]:
  return {'state_crc32': checksum(state),
          'variables_crc32': checksum(variables_of(state))}


def damage(state: Any, meta: dict[str, Any],
           crc_key: str = 'state_crc32') -> str | None:
  """What is wrong with a restored checkpoint (or, with crc_key
  'variables_crc32', its variables), or None."""
  if crc_key in meta and checksum(state) != meta[crc_key]:
    return 'its arrays do not match the checksum saved with them'
  for leaf in jax.tree.leaves(state):
    leaf = np.asarray(leaf)
    if np.issubdtype(leaf.dtype, np.inexact) and not np.isfinite(leaf).all():
      return 'it holds non-finite values'
  return None


def _path(keys: tuple) -> str:
  """'params/Conv_0/kernel' for a tree path, as written or as saved."""
  return '/'.join(str(getattr(k, 'key', getattr(k, 'idx', getattr(k, 'name', k))))
                  for k in keys)


def misfit(workdir: str, template: Any) -> str | None:
  """How the arrays of `workdir`'s latest checkpoint differ from those of
  `template` (shapes and dtypes), or None if they match or there is none."""
  ckpts = Checkpoints(workdir, read_only=True)
  try:
    step = ckpts.latest_step()
    if step is None:
      return None
    saved = ocp.StandardCheckpointer().metadata(os.path.join(
        ckpts._workdir, 'checkpoints', str(step), 'state')).item_metadata
  except Exception:  # noqa: BLE001 - damaged: restoring reports and skips it
    return None
  finally:
    ckpts.close()
  shapes = lambda tree: {
      _path(keys): (tuple(leaf.shape), np.dtype(leaf.dtype).name)
      for keys, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}
  saved, wanted = shapes(saved), shapes(template)
  for name in sorted(set(saved) | set(wanted)):
    if saved.get(name) != wanted.get(name):
      describe = lambda v: f'{v[0]} {v[1]}' if v else 'absent'
      return (f'step {step}: {name} is {describe(saved.get(name))} there, '
              f'{describe(wanted.get(name))} in the new config')
  return None


def _stderr(message: str) -> None:
  if jax.process_index() == 0:
    print(message, file=sys.stderr, flush=True)


class Checkpoints:
  """The workdir's latest and best checkpoints."""

  def __init__(self, workdir: str, max_to_keep: int = 2,
               best_mode: str = 'max', read_only: bool = False):
    """`read_only` (for inference) creates, cleans up and deletes nothing, so
    a run training in the same workdir is left alone."""
    # cleanup_tmp_directories removes the partial save of a killed run.
    writable = not read_only
    self._workdir = os.path.abspath(workdir)
    self._writable = writable
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
    self._variable_readers: dict[str, ocp.CheckpointManager] = {}

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
    meta = {**meta, **_checksums(state)}
    self._latest.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))

  def save_best(self, step: int, state: Any, score: float,
                meta: dict[str, Any]) -> None:
    if step in self._best.all_steps():  # already saved before an interruption
      return
    self._latest.wait_until_finished()
    meta = {**meta, **_checksums(state)}
    self._best.save(step, metrics={'score': score}, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))

  def _restore(self, manager: ocp.CheckpointManager, step: int,
               state_template: Any, variables_only: bool = False
               ) -> tuple[Any, dict[str, Any]]:
    if variables_only:
      state_args = ocp.args.PyTreeRestore(
          item=state_template, partial_restore=True,
          restore_args=ocp.checkpoint_utils.construct_restore_args(state_template))
    else:
      state_args = ocp.args.StandardRestore(_abstract(state_template))
    restored = manager.restore(step, args=ocp.args.Composite(
        state=state_args, meta=ocp.args.JsonRestore()))
    return restored['state'], dict(restored['meta'])

  def _variable_reader(self, kind: str) -> ocp.CheckpointManager:
    """A manager of workdir/`kind` that reads part of a state: orbax restores
    a subtree only through its PyTree handler, and a manager keeps the
    handler it first used."""
    if kind not in self._variable_readers:
      self._variable_readers[kind] = ocp.CheckpointManager(
          os.path.join(self._workdir, kind),
          options=ocp.CheckpointManagerOptions(
              create=False, cleanup_tmp_directories=False),
          item_handlers={'state': ocp.PyTreeCheckpointHandler(),
                         'meta': ocp.JsonCheckpointHandler()})
    return self._variable_readers[kind]

  def _restore_intact(self, manager: ocp.CheckpointManager, kind: str,
                      state_template: Any,
                      report: Callable[[str], None] = _stderr,
                      attempts: int = 20, variables_only: bool = False
                      ) -> tuple[Any, dict[str, Any], int] | None:
    """(state, meta, step) of the newest checkpoint of `manager` that loads
    and is intact, or None if there is none. Damaged ones are reported (and
    set aside unless read-only); a step that vanished while being read
    (another process rotating its checkpoints) is skipped silently."""
    folder = os.path.join(self._workdir, kind)
    skipped = set()
    for _ in range(attempts):
      manager.reload()
      steps = sorted(set(manager.all_steps()) - skipped, reverse=True)
      if not steps:
        return None
      step = steps[0]
      try:
        state, meta = self._restore(manager, step, state_template,
                                    variables_only)
        problem = damage(state, meta, 'variables_crc32' if variables_only
                         else 'state_crc32')
      except Exception as e:  # noqa: BLE001 - any failure to read it
        manager.reload()
        if step not in manager.all_steps():
          continue  # rotated away meanwhile: the listing is read again
        first_line = (str(e).strip().splitlines() or [''])[0]
        first_line = first_line.split('. See ')[0][:200]  # TensorStore's detail
        problem = f'does not load ({type(e).__name__}: {first_line})'
      if problem is None:
        return state, meta, step
      skipped.add(step)
      path = os.path.join(folder, str(step))
      if self._writable and jax.process_index() == 0:
        aside = self._set_aside(path, f'{kind}-{step}')
        report(f'Checkpoint step {step} ({path}) is damaged: {problem}. Moved '
               f'it to {aside}; using the next older checkpoint.')
      else:
        report(f'Checkpoint step {step} ({path}) is damaged: {problem}; '
               'using the next older checkpoint.')
    return None

  def _set_aside(self, path: str, name: str) -> str:
    folder = os.path.join(self._workdir, DAMAGED_DIR)
    os.makedirs(folder, exist_ok=True)
    aside, n = os.path.join(folder, name), 1
    while os.path.exists(aside):
      n += 1
      aside = os.path.join(folder, f'{name}-{n}')
    os.rename(path, aside)
    return aside

  def restore_latest(self, state_template: Any
                     ) -> tuple[Any, dict[str, Any], int] | None:
    """(state, meta, step) of the newest intact latest checkpoint, or None."""
    return self._restore_intact(self._latest, 'checkpoints', state_template)

  def restore_best(self, state_template: Any
                   ) -> tuple[Any, dict[str, Any], int] | None:
    """(state, meta, step) of the intact best checkpoint, or None."""
    return self._restore_intact(self._best, 'best', state_template)

  def restore_variables(self, variables_template: dict[str, Any]
                        ) -> tuple[dict[str, Any], str, int] | None:
    """(variables, 'best' or 'latest', step) of the intact best checkpoint,
    else the newest intact latest one, or None: only the model's params and
    batch_stats are read, into `variables_template` (`state.variables_template`)."""
    for kind, name in (('best', 'best'), ('checkpoints', 'latest')):
      if not os.path.isdir(os.path.join(self._workdir, kind)):
        continue
      restored = self._restore_intact(self._variable_reader(kind), kind,
                                      variables_template, variables_only=True)
      if restored is not None:
        variables, _, step = restored
        return variables, name, step
    return None

  def on_disk(self) -> str:
    """What a process ending now leaves: the newest complete checkpoint and
    any save still being written (abandoned; removed when the run resumes)."""
    complete, partial = [], []
    for kind in ('checkpoints', 'best'):
      folder = os.path.join(self._workdir, kind)
      for name in os.listdir(folder) if os.path.isdir(folder) else ():
        step = name.split('.')[0]
        if name.isdigit():
          if kind == 'checkpoints':  # the one a run resumes from
            complete.append(int(step))
        elif step.isdigit() and 'tmp' in name:
          partial.append(f'{kind}/{step}')
    saved = (f'the newest complete checkpoint is step {max(complete)}'
             if complete else 'no checkpoint was saved yet')
    abandoned = (f'; the save of {", ".join(sorted(partial))} was abandoned'
                 if partial else '')
    return f'{saved} (in {self._workdir}){abandoned}.'

  def wait(self) -> None:
    """Blocks until asynchronous saves are on disk."""
    self._latest.wait_until_finished()
    self._best.wait_until_finished()

  def close(self, raise_errors: bool = True) -> None:
    """Waits for the saves and closes; with `raise_errors` False (when another
    error is on its way) a failed save is not raised again."""
    for manager in (self._latest, self._best, *self._variable_readers.values()):
      try:
        manager.close()
      except Exception:  # noqa: BLE001
        if raise_errors:
          raise
