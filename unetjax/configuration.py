"""Checks a run config before anything is built, so a mistake is one clear
message instead of a traceback minutes into training.

Model fields beyond `name` and `n_classes` depend on the architecture and are
checked by `unetjax.models.get_model`. Choices come from their registries
(models, losses, optimizers, schedules, strategies, dtypes, border modes,
metrics): a new entry there is accepted here.
"""

import difflib
from typing import Any, Callable, Sequence

import ml_collections

from unetjax import augment
from unetjax import losses
from unetjax import metrics
from unetjax import models
from unetjax import parallel
from unetjax import state
from unetjax.data import builders
from unetjax.data import patches
from unetjax.errors import ConfigError, DataError

Check = Callable[[Any], str | None]  # returns what is wrong, or None


def positive(value: Any) -> str | None:
  return None if value > 0 else 'must be > 0'


def non_negative(value: Any) -> str | None:
  return None if value >= 0 else 'must be >= 0'


def unit_interval(value: Any) -> str | None:
  return None if 0 <= value <= 1 else 'must be between 0 and 1'


def open_unit_interval(value: Any) -> str | None:
  return None if 0 < value < 1 else 'must be strictly between 0 and 1'


def half_open_unit_interval(value: Any) -> str | None:
  return None if 0 <= value < 1 else 'must be >= 0 and < 1'


def patch_size(value: Any) -> str | None:
  sides = list(value) if isinstance(value, (tuple, list)) else [value, value]
  if len(sides) != 2 or not all(isinstance(s, int) and not isinstance(s, bool)
                                for s in sides):
    return 'must be 0, a side, or (height, width) in pixels'
  if sides != [0, 0] and min(sides) < 1:
    return 'must be 0 (whole images) or have both sides > 0'
  return None


def one_of(*choices: str) -> Check:
  return lambda value: (None if value in choices else
                        f'must be one of: {", ".join(map(repr, choices))}')


def at_most(limit: float) -> Check:
  return lambda value: (None if 0 <= value <= limit
                        else f'must be between 0 and {limit}')


def ordered_pair(minimum: float, strict: bool = False) -> Check:
  """A (low, high) range with minimum <= low <= high (minimum < low if
  `strict`)."""
  def check(value: Any) -> str | None:
    if len(value) != 2 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
      return 'must be a pair of numbers (low, high)'
    low, high = value
    if low > high:
      return 'must have low <= high'
    if low < minimum or (strict and low == minimum):
      return f'must have low {">" if strict else ">="} {minimum}'
    return None
  return check


def weights(value: Any) -> str | None:
  return (None if all(isinstance(w, (int, float)) and w >= 0 for w in value)
          else 'must hold numbers >= 0')

# Fields that name an entry of a registry, and the registry's names: the one
# list of their choices, for the checks below and the --help text.
CHOICES: dict[str, tuple[str, ...]] = {
    'dataset.name': builders.DATASETS,  # or any registered TFDS dataset
    'model.name': tuple(models.MODELS) + tuple(models.CLASSIFIERS),
    # Segmentation models' (models.get_model checks them).
    'model.activation': models.layers.ACTIVATIONS,
    'model.kernel_init': models.layers.KERNEL_INITS,
    'loss.name': tuple(losses.LOSSES),
    'optimizer.name': tuple(state.OPTIMIZERS),
    'optimizer.schedule': tuple(state.SCHEDULES),
    'parallel': tuple(parallel.STRATEGIES),
    'dtype': tuple(models.DTYPES),
    'param_dtype': tuple(models.DTYPES),
    'augment.border_mode': tuple(augment.BORDER_MODES),
    'best_metric': tuple(metrics.METRICS),
}


def choices_help() -> str:
  """The registries' choices, one field per line, for --help."""
  return '\n'.join(f'config.{field}: {", ".join(names)}'
                    for field, names in CHOICES.items())


# dotted field -> (accepted types, value check)
FIELDS: dict[str, tuple[tuple[type, ...], Check | None]] = {
    'seed': ((int,), non_negative),
    'dataset.name': ((str,), None),
    'dataset.data_dir': ((str,), None),
    'dataset.manual_dir': ((str,), None),
    'dataset.patch_size': ((int, tuple, list), patch_size),
    'dataset.foreground_oversampling': ((int, float), unit_interval),
    'dataset.pad_patches': ((bool,), None),
    'dataset.eval_overlap': ((int, float), half_open_unit_interval),
    'dataset.target': ((str,), one_of('mask', 'three_class')),
    'dataset.reader_threads': ((int,), positive),
    'dataset.prefetch_batches': ((int,), positive),
    'model.name': ((str,), None),  # models.get_model names the choices
    'model.n_classes': ((int,), positive),
    'dtype': ((str,), one_of(*CHOICES['dtype'])),
    'param_dtype': ((str,), one_of(*CHOICES['param_dtype'])),
    'loss.name': ((str,), None),  # losses.get_loss names the choices
    'loss.ce_weight': ((int, float), unit_interval),
    'loss.smooth': ((int, float), non_negative),
    'loss.label_smoothing': ((int, float), half_open_unit_interval),
    'loss.pixel_weights': ((str,), one_of(*losses.PIXEL_WEIGHTS)),
    'loss.focal_gamma': ((int, float), non_negative),
    'loss.tversky_alpha': ((int, float), non_negative),
    'loss.tversky_beta': ((int, float), non_negative),
    'loss.focal_tversky_gamma': ((int, float), positive),
    'loss.class_weights': ((tuple, list), weights),
    'loss.ignore_background': ((bool,), None),
    'loss.batch_dice': ((bool,), None),
    'loss.deep_supervision_weights': ((tuple, list), weights),
    'optimizer.name': ((str,), one_of(*CHOICES['optimizer.name'])),
    'optimizer.learning_rate': ((int, float), positive),
    'optimizer.schedule': ((str,), one_of(*CHOICES['optimizer.schedule'])),
    'optimizer.warmup_steps': ((int,), non_negative),
    'optimizer.weight_decay': ((int, float), non_negative),
    'optimizer.grad_clip_norm': ((int, float), non_negative),
    'parallel': ((str,), one_of(*CHOICES['parallel'])),
    'on_nonfinite_loss': ((str,), one_of('stop', 'skip')),
    'max_skipped_fraction': ((int, float), unit_interval),
    'sync_batch_norm': ((bool,), None),
    'batch_size': ((int,), positive),
    'eval_batch_size': ((int,), positive),
    'num_train_steps': ((int,), positive),
    'log_every_steps': ((int,), positive),
    'eval_every_steps': ((int,), positive),
    'checkpoint_every_steps': ((int,), positive),
    'max_checkpoints_to_keep': ((int,), positive),
    'best_metric': ((str,), one_of(*CHOICES['best_metric'])),
    'best_metric_mode': ((str,), one_of('max', 'min')),
    'metrics.threshold': ((int, float), open_unit_interval),
    'metrics.boundary_tolerance': ((int, float), non_negative),
    'metrics.surface_metrics': ((bool,), None),
    'progress_bar': ((bool,), None),
    'augment.flip_horizontal_prob': ((int, float), unit_interval),
    'augment.flip_vertical_prob': ((int, float), unit_interval),
    'augment.rot90_prob': ((int, float), unit_interval),
    'augment.rotate_prob': ((int, float), unit_interval),
    'augment.rotate_degrees': ((int, float), at_most(180)),
    'augment.scale_prob': ((int, float), unit_interval),
    'augment.scale_range': ((tuple, list), ordered_pair(0, strict=True)),
    'augment.translate_prob': ((int, float), unit_interval),
    'augment.translate_fraction': ((int, float), unit_interval),
    'augment.elastic_prob': ((int, float), unit_interval),
    'augment.elastic_alpha': ((int, float), non_negative),
    'augment.elastic_sigma': ((int, float), positive),
    'augment.border_mode': ((str,), one_of(*CHOICES['augment.border_mode'])),
    'augment.brightness_prob': ((int, float), unit_interval),
    'augment.brightness': ((int, float), unit_interval),
    'augment.contrast_prob': ((int, float), unit_interval),
    'augment.contrast_range': ((tuple, list), ordered_pair(0)),
    'augment.gamma_prob': ((int, float), unit_interval),
    'augment.gamma_range': ((tuple, list), ordered_pair(0, strict=True)),
    'augment.blur_prob': ((int, float), unit_interval),
    'augment.blur_sigma_range': ((tuple, list), ordered_pair(0)),
    'augment.noise_prob': ((int, float), unit_interval),
    'augment.noise_std': ((int, float), non_negative),
}
# config.dataset.folder holds the options of image_folder or image_class_folder,
# checked by its builder.
SECTIONS = ('dataset', 'dataset.folder', 'model', 'loss', 'optimizer', 'metrics',
            'augment')
# Sections whose fields are all listed above (config.model is per-architecture).
CLOSED_SECTIONS = ('', 'dataset', 'loss', 'optimizer', 'metrics', 'augment')


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
  for path, (types, check) in FIELDS.items():
    if path not in flat:
      problems.append(f'config.{path} is missing (configs/default.py lists '
                      'every field with its meaning)')
      continue
    value = flat[path]
    if not _type_ok(value, types):
      names = ' or '.join(t.__name__ for t in types)
      problems.append(f'config.{path}={value!r} should be {names}, '
                      f'not {type(value).__name__}')
      continue
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
        f'are labelled {"per pixel" if dataset_task == "segmentation" else "per image"}). '
        f'Choose a {dataset_task} model ({fit}) or a {task} dataset '
        '(README: Datasets).')
  problems = []
  if task == 'classification' and config.loss.name not in losses.IMAGE_LOSSES:
    problems.append(f'config.loss.name={config.loss.name!r} is a segmentation '
                    'loss; image classifiers take: '
                    f'{", ".join(losses.IMAGE_LOSSES)}')
  if task not in metrics.METRICS[config.best_metric].tasks:
    names = [n for n, m in metrics.METRICS.items() if task in m.tasks]
    problems.append(f'config.best_metric={config.best_metric!r} is not a {task} '
                    f'metric; choose one of: {", ".join(names)}')
  if (task == 'classification'
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
                       task: str = 'segmentation') -> None:
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
  sigmoid = n_classes == 2 and task == 'segmentation'
  if model_classes not in (n_classes, 1 if sigmoid else n_classes):
    hint = '1 (sigmoid) or 2 (softmax)' if sigmoid else str(n_classes)
    raise DataError(
        f'config.model.n_classes={model_classes} does not match '
        f'dataset {dataset_name}, which has {n_classes} classes '
        f'({", ".join(class_names)}); set config.model.n_classes={hint}.')
