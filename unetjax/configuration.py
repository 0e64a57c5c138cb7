"""Checks a run config before anything is built, so a mistake is one clear
message instead of a traceback minutes into training.

The fields, their types and allowed values are `unetjax.config_schema`'s.
Model fields beyond `name` and `n_classes` depend on the architecture and are
checked by `unetjax.models.get_model`; the checks here that need the dataset
(task, classes, instances) run once it is known.
"""

import difflib
from typing import Any, Sequence

import ml_collections

from unetjax import losses
from unetjax import metrics
from unetjax import models
from unetjax import tasks
from unetjax.config_schema import CLOSED_SECTIONS, FIELDS, SECTIONS
from unetjax.data import patches
from unetjax.errors import ConfigError, DataError


def flatten(config: ml_collections.ConfigDict, prefix: str = '') -> dict[str, Any]:
  """Every dotted path of `config`, sections and fields alike -> its value."""
  flat = {}
  for key, value in config.items():
    path = f'{prefix}{key}'
    flat[path] = value
    if isinstance(value, ml_collections.ConfigDict):
      flat.update(flatten(value, path + '.'))
  return flat


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
  if isinstance(value, bool):
    return bool in types
  return isinstance(value, types)


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError listing every problem found in `config`."""
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(
        f'The config is a {type(config).__name__}, not an '
        'ml_collections.ConfigDict: get_config() must return one, as '
        'configs/default.py does (experiment configs start from it).')
  flat = flatten(config)
  problems = []
  for path, field in FIELDS.items():
    if path not in flat:
      if not field.optional:
        problems.append(f'config.{path} is missing (docs/configs.md lists '
                        'every field with its meaning)')
      continue
    value, types = flat[path], field.accepted_types
    if not _type_ok(value, types):
      names = ' or '.join(t.__name__ for t in types)
      problems.append(f'config.{path}={value!r} should be {names}, '
                      f'not {type(value).__name__}')
      continue
    check = field.value_check
    message = check(value) if check else None
    if message:
      problems.append(f'config.{path}={value!r} {message}')
  known = set(FIELDS) | set(SECTIONS)
  for path in flat:
    if path.rpartition('.')[0] in CLOSED_SECTIONS and path not in known:
      close = difflib.get_close_matches(path, known, n=1)
      hint = f'; did you mean config.{close[0]}?' if close else ''
      problems.append(f'config.{path} is not a known field{hint}')
  best = metrics.METRICS.get(flat.get('best_metric'))
  if best and best.lower_is_better and flat.get('best_metric_mode') == 'max':
    problems.append(f'config.best_metric={flat["best_metric"]!r} is lower-is-'
                    "better: set config.best_metric_mode='min'")
  if problems:
    raise ConfigError('Invalid config:\n  ' + '\n  '.join(problems))


def check_task_fits(config: ml_collections.ConfigDict, dataset_name: str,
                    dataset_task: str) -> None:
  """DataError if the model and the dataset are for different tasks
  (segmentation, classification); ConfigError listing the fields of
  `config` that the model's task cannot take (loss, best metric, patches)."""
  task = models.task(config.model.name)
  if dataset_task != task:
    fit = ', '.join(models.TASKS[dataset_task])
    raise DataError(
        f'config.model.name={config.model.name!r} is a {task} model but '
        f'dataset {dataset_name!r} is a {dataset_task} dataset (its examples '
        f'are labelled {"per pixel" if dataset_task == tasks.SEGMENTATION else "per image"}). '
        f'Choose a {dataset_task} model ({fit}) or a {task} dataset '
        '(README: Datasets).')
  problems = []
  if task == tasks.CLASSIFICATION and config.loss.name not in losses.IMAGE_LOSSES:
    problems.append(f'config.loss.name={config.loss.name!r} is a segmentation '
                    'loss; image classifiers take: '
                    f'{", ".join(losses.IMAGE_LOSSES)}')
  if task not in metrics.METRICS[config.best_metric].tasks:
    names = [n for n, m in metrics.METRICS.items() if task in m.tasks]
    problems.append(f'config.best_metric={config.best_metric!r} is not a {task} '
                    f'metric; choose one of: {", ".join(names)}')
  if (task == tasks.CLASSIFICATION
      and patches.patch_shape(config.dataset.patch_size) is not None):
    problems.append(f'config.dataset.patch_size={config.dataset.patch_size!r} '
                    'is for segmentation; classifiers see whole images: set 0')
  if problems:
    raise ConfigError('Invalid config:\n  ' + '\n  '.join(problems))


def check_instances_fit(config: ml_collections.ConfigDict, dataset_name: str,
                        has_instances: bool) -> None:
  """ConfigError unless config.loss.pixel_weights='border' (with a
  pixel-wise loss) and an object metric as config.best_metric come with a
  dataset with instances, which holds the objects and their border weight
  maps."""
  if config.loss.pixel_weights == 'border':
    if not has_instances:
      raise ConfigError(
          "config.loss.pixel_weights='border' needs a dataset with instances, "
          f"whose examples hold the border weight map; {dataset_name!r} has "
          "none (e.g. synthetic_cells/instances has).")
    if config.loss.name not in losses.IMAGE_LOSSES:
      raise ConfigError(
          "config.loss.pixel_weights='border' weights each pixel's loss, as "
          'the U-Net paper weights its cross-entropy; config.loss.name='
          f'{config.loss.name!r} is not pixel-wise: choose one of '
          f'{", ".join(losses.IMAGE_LOSSES)}.')
  if metrics.METRICS[config.best_metric].objects and not has_instances:
    raise ConfigError(
        f'config.best_metric={config.best_metric!r} is an object metric, '
        f'reported for datasets with instances only; {dataset_name!r} has none '
        '(e.g. synthetic_cells/instances has). Choose a pixel metric such as '
        "'dice'.")


def check_dataset_fits(model_classes: int, class_weights: Sequence[float],
                       dataset_name: str, class_names: Sequence[str],
                       task: str = tasks.SEGMENTATION) -> None:
  """DataError unless config.model.n_classes (`model_classes`) and
  config.loss.class_weights fit the dataset's classes. A binary
  segmentation model may have one output (sigmoid); a classifier has one
  logit per class."""
  n_classes = len(class_names)
  if class_weights and len(class_weights) != n_classes:
    raise DataError(
        f'config.loss.class_weights has {len(class_weights)} entries but '
        f'dataset {dataset_name} has {n_classes} classes '
        f'({", ".join(class_names)}); give one weight per class or ().')
  sigmoid = n_classes == 2 and task == tasks.SEGMENTATION
  if model_classes not in (n_classes, 1 if sigmoid else n_classes):
    hint = '1 (sigmoid) or 2 (softmax)' if sigmoid else str(n_classes)
    raise DataError(
        f'config.model.n_classes={model_classes} does not match '
        f'dataset {dataset_name}, which has {n_classes} classes '
        f'({", ".join(class_names)}); set config.model.n_classes={hint}.')
