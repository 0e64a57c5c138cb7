"""The workdir of a run: its config, saved so the run can be reproduced and
resumed from the workdir alone, and the lock that gives it one writer."""

import contextlib
import json
import os
from typing import Any, Iterator

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from unetjax import config_schema
from unetjax import locks
from unetjax.errors import WorkdirError, WorkdirInUseError, storage_message

CONFIG_FILE = 'config.json'
LOCK_FILE = 'run.lock'
# config.json's record of the prepared dataset the run used (TFDS
# name/config/version; an image_folder's config name hashes its files).
DATASET_BUILD = 'dataset_build'
# Fields that change how a run is executed but not its numbers, and the
# fields added after runs were saved without them, with the value that
# reproduces those runs: a saved config that lacks one equals a current
# config that holds this value.
RESULT_NEUTRAL_FIELDS = config_schema.result_neutral_fields()
ADDED_FIELDS = config_schema.added_fields()


def config_to_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
  return json.loads(config.to_json_best_effort())


def flat(tree: dict[str, Any], prefix: str = '') -> dict[str, Any]:
  """A config as a dict (`ConfigDict.to_dict`, config.json) -> dotted path
  of each field -> its value."""
  fields = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      fields.update(flat(value, f'{prefix}{key}.'))
    else:
      fields[f'{prefix}{key}'] = value
  return fields


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
  """'field: saved -> current' for each field that affects results."""
  saved, current = flat(saved), flat(current)
  if DATASET_BUILD not in saved:  # a run recorded before builds were
    current.pop(DATASET_BUILD, None)
  for key, value in ADDED_FIELDS.items():
    if key not in saved and current.get(key) == value:
      current.pop(key)
  return [f'{key}: {saved.get(key, "<absent>")!r} -> {current.get(key, "<absent>")!r}'
          for key in sorted(set(saved) | set(current))
          if key not in RESULT_NEUTRAL_FIELDS and saved.get(key) != current.get(key)]


def read_config(workdir: str) -> dict[str, Any] | None:
  """The saved config.json as a dict, None if there is none; WorkdirError if
  it cannot be read (cut short, not JSON)."""
  path = os.path.join(workdir, CONFIG_FILE)
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    return None
  except OSError as e:
    raise WorkdirError(storage_message(e, path)) from None
  except ValueError as e:
    raise WorkdirError(
        f'{path} is damaged ({e}), so the run\'s config is unknown. Restore it '
        'from a copy, or move it away: the next run then records its own '
        'config, and resumes from the checkpoints if its arrays fit them.'
    ) from None


def record_config(workdir: str, config: ml_collections.ConfigDict,
                  allow_change: bool = False, dataset_build: str = '') -> None:
  """Saves the config as workdir/config.json, or checks it against the saved one.
  `dataset_build` (the prepared dataset's name) is saved with it, so a run
  on changed files is a different run.

  A workdir holds one run: resuming it with a config that would change the
  results raises WorkdirError, unless `allow_change`, in which case the old
  config is kept as config.previous-<n>.json next to the new one.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  current = config_to_dict(config)
  if dataset_build:
    current[DATASET_BUILD] = dataset_build
  saved = read_config(workdir)
  if saved is not None:
    differences = config_differences(saved, current)
    if not differences:
      return
    if not allow_change:
      raise WorkdirError(
          f'{workdir} holds a run with a different config, so it cannot be '
          'resumed with this one:\n  ' + '\n  '.join(differences) +
          '\nUse a new --workdir, or pass --allow_config_change to continue '
          'this run with the new config (the old one is kept beside it).')
    if jax.process_index() == 0:
      n = 1
      while os.path.exists(os.path.join(workdir, f'config.previous-{n}.json')):
        n += 1
      os.rename(path, os.path.join(workdir, f'config.previous-{n}.json'))
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(path + '.tmp', 'w') as f:
      json.dump(current, f, indent=2)
    os.replace(path + '.tmp', path)


def _lock(workdir: str) -> locks.FileLock:
  """The workdir's lock, taken; WorkdirError if it is not a writable folder
  or another process holds it."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise WorkdirError(f'--workdir={workdir} is a file, not a folder: pass the '
                       'path of a folder (a new one starts a new run).')
  lock = locks.FileLock(os.path.join(workdir, LOCK_FILE))
  try:
    os.makedirs(workdir, exist_ok=True)
    acquired = lock.acquire(blocking=False)
  except OSError as e:
    raise WorkdirError(storage_message(e, workdir) +
                       ' (--workdir)') from None
  if not acquired:
    raise WorkdirInUseError(
        f'--workdir={workdir} is in use by {lock.holder()}, which is training '
        'in it; wait for it to finish (or stop it), or pass another --workdir.')
  return lock


@contextlib.contextmanager
def hold(workdir: str) -> Iterator[None]:
  """Holds the workdir's lock while a run writes to it: process 0 takes it,
  and every process raises WorkdirError if process 0 cannot."""
  lock, error = None, None
  if jax.process_index() == 0:
    try:
      lock = _lock(workdir)
    except WorkdirError as e:
      error = e
  if jax.process_count() > 1:
    ok = multihost_utils.process_allgather(np.int32(error is None))
    if not np.all(ok) and error is None:
      error = WorkdirInUseError(f'Process 0 could not take --workdir={workdir}; '
                                'its message says why.')
  if error is not None:
    raise error
  try:
    yield
  finally:
    if lock is not None:
      lock.release()
