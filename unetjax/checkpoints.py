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
values is reported in one line, moved to `workdir/damaged/` (never deleted)
and another is used instead: for resuming the next older one, for the best
the intact one with the best recorded validation score (`restore_best`).
Every restore goes through `_restore_intact`, which also keeps the debris of
orbax's failed asynchronous reads from printing tracebacks
(`quiet_async_errors`).
"""

import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import math
import os
import sys
import zlib
from typing import Any, Callable, Iterator, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp

DAMAGED_DIR = 'damaged'
# The fields of a train state that inference needs.
VARIABLE_FIELDS = ('params', 'batch_stats')
# The field holding the params' moving average, which inference uses in
# their place where a state keeps one (config.optimizer.ema_decay).
AVERAGE_FIELD = 'ema_params'


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
  """What inference needs of a train state: {'params', 'batch_stats'}, the
  params being their moving average where the state keeps one."""
  found = {name: getattr(state, name) for name in VARIABLE_FIELDS}
  average = getattr(state, AVERAGE_FIELD, None)
  return found if average is None else {**found, 'params': average}


def _renamed(tree: dict[str, Any], old: str, new: str) -> dict[str, Any]:
  return {(new if key == old else key): value for key, value in tree.items()}


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


# What asyncio says about the tasks and coroutines that a failed read left
# unfinished (orbax closes its event loop without cancelling them).
_ASYNC_DEBRIS = ('exception was never retrieved', 'destroyed but it is pending')


def _is_async_debris(unraisable) -> bool:
  """An unfinished asyncio coroutine or future being collected, or "Event
  loop is closed" from a read that finished after orbax closed its loop."""
  closed_loop = (isinstance(unraisable.exc_value, RuntimeError)
                 and 'Event loop is closed' in str(unraisable.exc_value))
  return (closed_loop or asyncio.iscoroutine(unraisable.object)
          or isinstance(unraisable.object, asyncio.Future))


def _drop_async_debris() -> None:
  """Puts a filter in front of sys.unraisablehook that drops orbax's async
  debris and passes everything else on. It stays: a read thread of a failed
  restore can report its closed loop after the restore has returned."""
  previous = sys.unraisablehook
  if getattr(previous, 'drops_async_debris', False):
    return

  def hook(unraisable) -> None:
    if not _is_async_debris(unraisable):
      previous(unraisable)
  hook.drops_async_debris = True
  sys.unraisablehook = hook


@contextlib.contextmanager
def quiet_async_errors() -> Iterator[None]:
  """Keeps what orbax's asynchronous reads leave when one fails from printing
  tracebacks: asyncio's "Task exception was never retrieved", "Exception
  ignored in <coroutine ...>" as the unfinished ones are collected (here, by
  gc before leaving) and "Event loop is closed" from a read that finishes
  after its loop is gone (`_drop_async_debris`). The failure itself still
  raises, to be reported once."""
  def keep(record: logging.LogRecord) -> bool:
    return not any(text in record.getMessage() for text in _ASYNC_DEBRIS)
  logger = logging.getLogger('asyncio')
  logger.addFilter(keep)
  _drop_async_debris()
  try:
    yield
  finally:
    gc.collect()
    logger.removeFilter(keep)


def _saved_steps(folder: str) -> list[int]:
  """The steps of the complete checkpoints in `folder`, newest first."""
  names = os.listdir(folder) if os.path.isdir(folder) else ()
  return sorted((int(name) for name in names if name.isdigit()), reverse=True)


def _recorded_meta(step_dir: str) -> dict[str, Any]:
  """The `meta` record saved in checkpoint folder `step_dir` (orbax's JSON
  file, read without the state), or {} if it does not read."""
  try:
    with open(os.path.join(step_dir, 'meta', 'metadata')) as f:
      meta = json.load(f)
  except (OSError, ValueError):
    return {}
  return meta if isinstance(meta, dict) else {}


def _array_shapes(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
  return {_path(keys): (tuple(leaf.shape), np.dtype(leaf.dtype).name)
          for keys, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def misfit(workdir: str, template: Any) -> str | None:
  """How the arrays of a checkpoint of `workdir` (the latest ones and the best)
  differ from those of `template` (shapes and dtypes), or None if every one
  matches or there is none."""
  wanted = _array_shapes(template)
  with ocp.StandardCheckpointer() as reader:
    for kind in ('checkpoints', 'best'):
      for step in _saved_steps(os.path.join(workdir, kind)):
        path = os.path.join(os.path.abspath(workdir), kind, str(step), 'state')
        try:
          with quiet_async_errors():
            saved = _array_shapes(reader.metadata(path).item_metadata)
        except Exception:  # noqa: BLE001 - damaged: restoring reports, skips it
          continue
        for name in sorted(set(saved) | set(wanted)):
          if saved.get(name) != wanted.get(name):
            describe = lambda v: f'{v[0]} {v[1]}' if v else 'absent'
            return (f'{kind}/{step}: {name} is {describe(saved.get(name))} '
                    f'there, {describe(wanted.get(name))} in the new config')
  return None


def _stderr(message: str) -> None:
  if jax.process_index() == 0:
    print(message, file=sys.stderr, flush=True)


def rank_key(step: int, score: float | None, mode: str) -> tuple:
  """Sort key of a checkpoint by its validation `score` and the best `mode`
  ('max' or 'min'): better scores first, the earliest step of ties first (as
  training keeps the best), then the unscored ones (None or not finite),
  newest first."""
  if score is None or not math.isfinite(score):
    return (1, 0.0, -step)
  return (0, -score if mode == 'max' else score, step)


def best_step(scores: Mapping[int, float], mode: str) -> int | None:
  """The step with the best finite score in `scores` (step -> score) by
  `mode`, as `rank_key` orders them; None if there is none."""
  key = lambda step: rank_key(step, scores[step], mode)
  return min((step for step in scores if key(step)[0] == 0), key=key,
             default=None)


@dataclasses.dataclass(frozen=True)
class Best:
  """The checkpoint a run's final scores come from (`Checkpoints.restore_best`)."""
  state: Any
  meta: dict[str, Any]
  step: int
  source: str  # where it was read: 'best/<step>' or 'checkpoints/<step>'
  # The step that scored best (`step` unless the best was lost); None if no
  # validation score was finite (then `step` is the newest intact one).
  best_step: int | None

  @property
  def lost(self) -> bool:
    return self.best_step is not None and self.step != self.best_step

  def consequence(self, scores: Mapping[int, float], metric: str) -> str:
    """What a damaged or missing best/ means for the scores, in a sentence."""
    scored = lambda step: (f'validation {metric} {scores[step]:.4g}'
                           if step in scores else 'no recorded validation score')
    if not self.lost:
      return (f'Using its copy {self.source} (step {self.step}, '
              f'{scored(self.step)}), the same state.')
    which = ('the best intact one kept' if self.step in scores else
             'the newest intact one; its score is unknown')
    return (f'The best checkpoint (step {self.best_step}, '
            f'{scored(self.best_step)}) is lost; using {self.source} (step '
            f'{self.step}, {scored(self.step)}), {which}.')


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
    self._best_mode = best_mode
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

  def best_to_beat(self, meta: dict[str, Any], scores: Mapping[int, float]
                   ) -> dict[str, Any]:
    """`meta` (of the checkpoint a run resumes from) with the best score that
    the next evaluation must beat: its own, unless best/ is empty although a
    best was saved (set aside as damaged, or removed); then that of the
    best-scored checkpoint still kept in checkpoints/ by `scores` (the eval
    records), or none, so that a better evaluation refills best/."""
    if meta.get('best_step') is None or self._best.all_steps():
      return meta
    kept = {step: scores[step] for step in self._latest.all_steps()
            if step in scores}
    step = best_step(kept, self._best_mode)
    return {**meta, 'best_step': step,
            'best_score': None if step is None else kept[step]}

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

  def _read(self, manager: ocp.CheckpointManager, step: int,
            state_template: Any, variables_only: bool
            ) -> tuple[Any, dict[str, Any], str | None] | None:
    """(state, meta, what is wrong or None) of checkpoint `step`, or None if
    it vanished while being read (another process rotating its checkpoints)."""
    try:
      state, meta = self._restore(manager, step, state_template, variables_only)
      return state, meta, damage(state, meta, 'variables_crc32' if variables_only
                                 else 'state_crc32')
    except Exception as e:  # noqa: BLE001 - any failure to read it
      manager.reload()
      if step not in manager.all_steps():
        return None
      first_line = (str(e).strip().splitlines() or [''])[0]
      first_line = first_line.split('. See ')[0][:200]  # TensorStore's detail
      return None, {}, f'does not load ({type(e).__name__}: {first_line})'

  def _restore_intact(self, manager: ocp.CheckpointManager, kind: str,
                      state_template: Any,
                      report: Callable[[str], None] = _stderr,
                      attempts: int = 20, variables_only: bool = False,
                      rank: Callable[[int], Any] = lambda step: -step,
                      instead: str = '; using the next older checkpoint.',
                      at_most: int | None = None
                      ) -> tuple[Any, dict[str, Any], int] | None:
    """(state, meta, step) of the first checkpoint of `manager`, in the order
    of `rank` (newest first), that loads and is intact, or None if there is
    none (steps above `at_most` are passed over). Each damaged one is
    reported in one line ending with `instead` (and set aside unless
    read-only); a step that vanished while being read is skipped silently.
    Every restore of a checkpoint goes through here."""
    folder = os.path.join(self._workdir, kind)
    skipped = set()
    for _ in range(attempts):
      manager.reload()
      steps = sorted({s for s in manager.all_steps()
                      if at_most is None or s <= at_most} - skipped, key=rank)
      if not steps:
        return None
      step = steps[0]
      with quiet_async_errors():
        read = self._read(manager, step, state_template, variables_only)
      if read is None:
        continue  # rotated away meanwhile: the listing is read again
      state, meta, problem = read
      if problem is None:
        return state, meta, step
      skipped.add(step)
      path = os.path.join(folder, str(step))
      if self._writable and jax.process_index() == 0:
        aside = self._set_aside(path, f'{kind}-{step}')
        report(f'Checkpoint step {step} ({path}) is damaged: {problem}. Moved '
               f'it to {aside}{instead}')
      else:
        report(f'Checkpoint step {step} ({path}) is damaged: {problem}{instead}')
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

  def restore_latest(self, state_template: Any, at_most: int | None = None
                     ) -> tuple[Any, dict[str, Any], int] | None:
    """(state, meta, step) of the newest intact latest checkpoint (of a step
    <= `at_most` if given), or None."""
    return self._restore_intact(self._latest, 'checkpoints', state_template,
                                at_most=at_most)

  def _manager(self, kind: str, variables_only: bool
               ) -> ocp.CheckpointManager | None:
    """The manager reading workdir/`kind`; None if there is no such folder."""
    if not variables_only:
      return {'best': self._best, 'checkpoints': self._latest}[kind]
    if not os.path.isdir(os.path.join(self._workdir, kind)):
      return None
    return self._variable_reader(kind)

  def _promised(self, listed: list[int], scores: Mapping[int, float]
                ) -> tuple[int | None, dict[int, float]]:
    """The step best/ holds or held (from its listing, the recorded scores or
    the newest latest checkpoint's meta), and `scores` with that step's score
    from the meta when the eval records lack it (cut, or no metrics.jsonl)."""
    scores = {step: score for step, score in scores.items()
              if math.isfinite(score)}
    meta = {}
    for step in _saved_steps(os.path.join(self._workdir, 'checkpoints')):
      meta = _recorded_meta(os.path.join(self._workdir, 'checkpoints', str(step)))
      if meta.get('best_step') is not None:
        break
    promised = (listed[0] if listed else best_step(scores, self._best_mode)
                if scores else meta.get('best_step'))
    recorded = meta.get('best_score')
    if (promised is not None and promised not in scores
        and meta.get('best_step') == promised
        and isinstance(recorded, (int, float)) and math.isfinite(recorded)):
      scores[promised] = float(recorded)
    return promised, scores

  def restore_best(self, state_template: Any, scores: Mapping[int, float],
                   metric: str = 'score', variables_only: bool = False,
                   report: Callable[[str], None] = _stderr) -> 'Best | None':
    """The best checkpoint, or None if no checkpoint is intact.

    best/<step> if it is intact. If it is damaged or gone, the best step's
    own copy in checkpoints/ if one is intact, else the intact one with the
    best recorded validation `metric` in `scores` (step -> score, the run's
    `eval` records) by the best mode, and one line says which and that the
    best was lost. Without a recorded score, the newest intact one. With
    `variables_only`, only the model's variables are read. What is reported
    comes in the order it was found, once the choice is made."""
    best_manager = self._manager('best', variables_only)
    listed = _saved_steps(os.path.join(self._workdir, 'best'))
    damaged: list[str] = []
    restored = best_manager and self._restore_intact(
        best_manager, 'best', state_template, damaged.append,
        variables_only=variables_only, instead='.')
    if restored:
      return Best(*restored, source=f'best/{restored[2]}', best_step=restored[2])
    promised, scores = self._promised(listed, scores)
    latest_manager = self._manager('checkpoints', variables_only)
    also_damaged: list[str] = []
    restored = latest_manager and self._restore_intact(
        latest_manager, 'checkpoints', state_template, also_damaged.append,
        variables_only=variables_only,
        rank=lambda step: (step != promised,
                           rank_key(step, scores.get(step), self._best_mode)),
        instead='; using the next best intact checkpoint.')
    if not restored:
      for line in damaged + also_damaged:
        report(line)
      return None
    best = Best(*restored, source=f'checkpoints/{restored[2]}',
                best_step=promised)
    if promised is None:
      consequence = ([f'No validation score is recorded; using the newest '
                      f'intact checkpoint, {best.source}; its score is '
                      'unknown.'] if damaged or also_damaged else [])
    else:
      consequence = ([] if damaged or best.lost else
                     [f'The best checkpoint best/{promised} is missing.'])
      consequence.append(best.consequence(scores, metric))
    # The best/ line first; the consequence ends it unless other lines follow.
    lines = [' '.join(damaged + ([] if also_damaged else consequence))]
    lines += also_damaged + ([' '.join(consequence)] if also_damaged else [])
    for line in lines:
      if line:
        report(line)
    return best

  def restore_variables(self, variables_template: dict[str, Any],
                        scores: Mapping[int, float] | None = None,
                        metric: str = 'score', averaged: bool = False
                        ) -> tuple[dict[str, Any], str, int] | None:
    """(variables, name, step) of the best checkpoint as `restore_best`
    chooses it, named 'best', 'next best' (the best was lost) or 'latest'
    (no validation score was finite), or None: only the model's params and batch_stats are read, into
    `variables_template` (`state.variables_template`); `averaged`: the params
    are the run's moving average of them (AVERAGE_FIELD)."""
    if averaged:
      variables_template = _renamed(variables_template, 'params', AVERAGE_FIELD)
    best = self.restore_best(variables_template, scores or {}, metric,
                             variables_only=True)
    if best is None:
      return None
    name = ('latest' if best.best_step is None else
            'best' if best.best_step == best.step else 'next best')
    found = best.state
    return (_renamed(found, AVERAGE_FIELD, 'params') if averaged else found,
            name, best.step)

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
