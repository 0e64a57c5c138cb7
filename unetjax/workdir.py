"""The run's config, saved in the workdir so the run can be reproduced and
resumed from the workdir alone."""

import json
import os
from typing import Any

import jax
import ml_collections

from unetjax.errors import WorkdirError

CONFIG_FILE = 'config.json'
# config.json's record of the prepared dataset the run used (TFDS
# name/config/version; an image_folder's config name hashes its files).
DATASET_BUILD = 'dataset_build'
# Fields that change how a run is executed but not its numbers.
RESULT_NEUTRAL_FIELDS = ('progress_bar', 'dataset.data_dir',
                         'dataset.manual_dir', 'dataset.reader_threads',
                         'dataset.prefetch_batches')


def config_to_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
  return json.loads(config.to_json_best_effort())


def _flat(tree: dict[str, Any], prefix: str = '') -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flat(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
  """'field: saved -> current' for each field that affects results."""
  saved, current = _flat(saved), _flat(current)
  if DATASET_BUILD not in saved:  # a run recorded before builds were
    current.pop(DATASET_BUILD, None)
  return [f'{key}: {saved.get(key, "<absent>")!r} -> {current.get(key, "<absent>")!r}'
          for key in sorted(set(saved) | set(current))
          if key not in RESULT_NEUTRAL_FIELDS and saved.get(key) != current.get(key)]


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
  if os.path.exists(path):
    with open(path) as f:
      saved = json.load(f)
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
