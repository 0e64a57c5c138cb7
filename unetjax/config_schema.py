"""Every config field in one place: its default, the types and values it
accepts and a one-line help.

configs/default.py is `default_config()`; `configuration.validate` checks a
config against `FIELDS`; `--help` lists the fields with a fixed set of names
(`choices_help`); a workdir saved before a field existed is compared as if it
held `absent_means` (`added_fields`); docs/configs.md's field table is
`markdown_table()` (a test keeps it equal). Choices are read from the
registries (models, losses, optimizers, schedules, strategies, dtypes, border
modes, metrics, datasets), so a new entry there is accepted here.

A hand-written table rather than ml_collections' type locking alone (it
checks types on assignment but has no ranges, choices or help) or
dataclasses (they would replace `--config=configs/X.py` and
`--config.a.b=v`, which stay as they are).
"""

import dataclasses
from typing import Any, Callable

import ml_collections

from unetjax import augment
from unetjax import losses
from unetjax import metrics
from unetjax import models
from unetjax import optimizers
from unetjax import parallel
from unetjax.data import builders

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


_ALWAYS = object()  # a field every saved config holds


@dataclasses.dataclass(frozen=True)
class Field:
  """One config field.

  default: its value in configs/default.py.
  help: what it means, one line.
  types: the types it accepts (default: from the default's type, ints
    accepted where a float is).
  check: what else its value must satisfy (None: its type is enough).
  choices: the registry names it takes; checked here unless `checked_by`
    names where they are checked (then only listed in --help).
  checked_by: where a field's values are checked instead of here.
  registry: where a growing list of choices is kept, named in the docs
    table in place of the names (so a new entry leaves the table as it is).
  absent_means: for a field added after runs were saved without it, the
    value that reproduces those runs.
  affects_results: False for fields that change how a run executes, not
    its numbers (a resumed run may change them).
  optional: a field that some models lack (config.model's fields beyond
    name and n_classes depend on the architecture): checked where present.
  any_type: a FieldReference of any type (an int or a tuple, in files and
    on the command line), where ml_collections would lock the default's.
  """
  default: Any
  help: str
  types: tuple[type, ...] = ()
  check: Check | None = None
  choices: tuple[str, ...] = ()
  checked_by: str = ''
  registry: str = ''
  absent_means: Any = _ALWAYS
  affects_results: bool = True
  optional: bool = False
  any_type: bool = False

  @property
  def accepted_types(self) -> tuple[type, ...]:
    if self.types:
      return self.types
    if isinstance(self.default, bool):
      return (bool,)
    if isinstance(self.default, float):
      return (int, float)
    if isinstance(self.default, (tuple, list)):
      return (tuple, list)
    return (type(self.default),)

  @property
  def value_check(self) -> Check | None:
    if self.choices and not self.checked_by:
      return one_of(*self.choices)
    return self.check


F = Field
_MODELS = tuple(models.MODELS) + tuple(models.CLASSIFIERS)

# dotted path -> Field, in the order of configs/default.py.
FIELDS: dict[str, Field] = {
    'seed': F(0, 'initialisation, dropout and data order all derive from it',
              check=non_negative),

    'dataset.name': F(
        'synthetic_cells/binary', 'TFDS name/config: one of ours or any '
        'registered TFDS dataset', choices=builders.DATASETS,
        registry='`unetjax.data.builders.DATASETS`',
        checked_by='the dataset loader (any registered TFDS dataset)'),
    'dataset.data_dir': F(
        '', "TFDS data dir; '' = $TFDS_DATA_DIR or ~/tensorflow_datasets",
        affects_results=False),
    'dataset.manual_dir': F(
        '', 'files of a dataset you downloaded yourself (isbi2012_em, drive, '
        "kvasir_seg, ...; the folder of image_folder); '' = "
        '<data_dir>/downloads/manual/<name>', affects_results=False),
    'dataset.patch_size': F(
        0, 'train on random patches at native resolution (nnU-Net): 0 = whole '
        'stored images, or a side or (height, width) in pixels, each divisible '
        'by 2**model.depth; evaluation then predicts whole images by a '
        'Gaussian-blended sliding window', types=(int, tuple, list),
        check=patch_size, any_type=True),
    'dataset.foreground_oversampling': F(
        1 / 3, 'share of patches centred on foreground', check=unit_interval),
    'dataset.pad_patches': F(
        True, 'zero-pad images smaller than the patch (unscored)'),
    'dataset.eval_overlap': F(
        0.5, 'overlap of neighbouring evaluation windows',
        check=half_open_unit_interval),
    'dataset.target': F(
        'mask', "what a segmentation model learns: the dataset's classes, "
        "or with instances 'three_class', background / interior / border "
        '(set model.n_classes = 3; objects by a watershed of the predicted '
        'interiors)', choices=('mask', 'three_class'),
        absent_means='mask'),
    'dataset.reader_threads': F(
        2, 'grain threads reading and batching examples', check=positive,
        affects_results=False),
    'dataset.prefetch_batches': F(
        4, 'batches grain reads ahead', check=positive, affects_results=False),
    'dataset.memory_cache_mib': F(
        1024, 'the decoded training split is kept in memory when it fits in '
        'this many MiB, so later epochs skip decoding (0: decode every read)',
        check=non_negative, affects_results=False),

    'model.name': F('unet', 'the architecture (configs/<name>.py sets its '
                    'published settings)', choices=_MODELS,
                    registry='`unetjax.models.MODELS` or `CLASSIFIERS`',
                    checked_by='models.get_model (it names the task too)'),
    'model.n_classes': F(1, '1 = binary (sigmoid); K = K-class softmax',
                         check=positive),
    'model.base_filters': F(16, 'channels of the first level, doubled per level',
                            optional=True, checked_by='models.get_model'),
    'model.level_filters': F(
        (), 'or the channels of every level, shallow to deep (depth + 1 '
        'numbers), e.g. (8, 8, 16, 32, 64), MONAI BasicUNet\'s', optional=True,
        checked_by='models.get_model', absent_means=()),
    'model.depth': F(4, 'poolings; image sides must be divisible by 2**depth',
                     optional=True, checked_by='models.get_model'),
    'model.dropout_rates': F(
        (0.1, 0.1, 0.2, 0.2, 0.3), 'dropout per level, shallow to deep, last = '
        'bottleneck (one number = all)', types=(int, float, tuple, list),
        optional=True, checked_by='models.get_model'),
    'model.norm': F(
        'batch', "normalisation after every convolution; 'group' suits "
        "batches of a few images, 'instance' is per channel and image",
        choices=models.layers.NORMS, optional=True,
        checked_by='models.get_model'),
    'model.upsample': F(
        'transpose', "the decoder's upsampling; 'transpose' is a 2x2 "
        'up-convolution',
        choices=models.layers.UPSAMPLE_MODES, optional=True,
        checked_by='models.get_model'),
    'model.activation': F(
        'relu', "in place of every ReLU; 'leaky_relu' has slope 0.01 (MONAI "
        "DynUNet's)", choices=models.layers.ACTIVATIONS, optional=True,
        checked_by='models.get_model', absent_means='relu'),
    'model.kernel_init': F(
        'lecun_normal', "convolution kernels' initialisation; 'lecun_normal' "
        "is flax's, 'kaiming_normal' MONAI DynUNet's (torch's "
        'kaiming_normal_, a=0.01)', choices=models.layers.KERNEL_INITS,
        optional=True, checked_by='models.get_model',
        absent_means='lecun_normal'),

    'augment.flip_horizontal_prob': F(0.0, 'mirror left-right', check=unit_interval),
    'augment.flip_vertical_prob': F(0.0, 'mirror top-bottom', check=unit_interval),
    'augment.rot90_prob': F(0.0, 'turn by 90, 180 or 270 degrees (equally likely; '
                            '180 only if not square)', check=unit_interval),
    'augment.rotate_prob': F(0.0, 'rotate by an angle uniform in +-rotate_degrees',
                             check=unit_interval),
    'augment.rotate_degrees': F(0.0, 'max |angle|, degrees', check=at_most(180)),
    'augment.scale_prob': F(0.0, 'zoom by a factor uniform in scale_range',
                            check=unit_interval),
    'augment.scale_range': F((1.0, 1.0), '(min, max) zoom; > 1 enlarges the content',
                             check=ordered_pair(0, strict=True)),
    'augment.translate_prob': F(0.0, 'shift the content', check=unit_interval),
    'augment.translate_fraction': F(0.0, 'max |shift| per axis, fraction of '
                                    'the side', check=unit_interval),
    'augment.elastic_prob': F(0.0, 'smooth random warp (Simard et al. 2003)',
                              check=unit_interval),
    'augment.elastic_alpha': F(0.0, 'std of each displacement component, pixels',
                               check=non_negative),
    'augment.elastic_sigma': F(8.0, 'smoothness: Gaussian std of the field, pixels',
                               check=positive),
    'augment.border_mode': F(
        'reflect', "where geometric ops read outside the image; 'reflect' "
        "mirrors about the edge pixels, 'nearest' repeats the edge, "
        "'constant' reads image 0, labels 0", choices=augment.BORDER_MODES),
    'augment.brightness_prob': F(0.0, 'add a shift uniform in +-brightness',
                                 check=unit_interval),
    'augment.brightness': F(0.0, 'max |shift| of the [0, 1] intensities',
                            check=unit_interval),
    'augment.contrast_prob': F(0.0, 'scale the deviation from the mean',
                               check=unit_interval),
    'augment.contrast_range': F((1.0, 1.0), '(min, max) factor',
                                check=ordered_pair(0)),
    'augment.gamma_prob': F(0.0, 'image ** gamma', check=unit_interval),
    'augment.gamma_range': F((1.0, 1.0), '(min, max) gamma',
                             check=ordered_pair(0, strict=True)),
    'augment.blur_prob': F(0.0, 'Gaussian blur', check=unit_interval),
    'augment.blur_sigma_range': F((0.0, 0.0), '(min, max) std, pixels',
                                  check=ordered_pair(0)),
    'augment.noise_prob': F(0.0, 'additive Gaussian noise', check=unit_interval),
    'augment.noise_std': F(0.0, 'max noise std (drawn uniform in [0, noise_std])',
                           check=non_negative),

    'dtype': F('float32', 'compute dtype',
               choices=tuple(models.DTYPES)),
    'param_dtype': F('float32', 'parameter and optimizer-state dtype',
                     choices=tuple(models.DTYPES)),

    'loss.name': F('cross_entropy_dice', 'the loss (unetjax/losses.py has the '
                   'formulas)', choices=tuple(losses.LOSSES),
                   registry='`unetjax.losses.LOSSES`',
                   checked_by='losses.get_loss'),
    'loss.ce_weight': F(0.5, 'cross_entropy_dice = w * CE + (1 - w) * Dice',
                        check=unit_interval),
    'loss.smooth': F(1.0, 'added to numerator and denominator of overlap losses',
                     check=non_negative),
    'loss.label_smoothing': F(0.0, 'cross_entropy: target (1 - a) y + a / K',
                              check=half_open_unit_interval, absent_means=0.0),
    'loss.pixel_weights': F(
        'none', "'border': weight each pixel's loss by the dataset's border "
        "weight map (the U-Net paper's; datasets with instances, pixel-wise "
        'losses)', choices=tuple(losses.PIXEL_WEIGHTS), absent_means='none'),
    'loss.focal_gamma': F(2.0, 'focal: CE scaled by (1 - p_t)**gamma',
                          check=non_negative),
    'loss.tversky_alpha': F(0.3, 'tversky, focal_tversky: weight of false '
                            'positives', check=non_negative),
    'loss.tversky_beta': F(0.7, 'tversky, focal_tversky: weight of false '
                           'negatives', check=non_negative),
    'loss.focal_tversky_gamma': F(0.75, 'focal_tversky: (1 - TI)**gamma',
                                  check=positive),
    'loss.class_weights': F((), 'one weight per label class, background first '
                            '(binary: 2); () = equal', check=weights),
    'loss.ignore_background': F(False, 'overlap losses skip class 0 (multi-class)'),
    'loss.batch_dice': F(False, 'overlap sums over the batch, not per image'),
    'loss.deep_supervision_weights': F(
        (), 'deeply supervised models (UNet++): one weight per head; () = equal',
        check=weights),

    'optimizer.name': F('adam', 'the optax optimizer (sgd: Nesterov momentum 0.9)',
                        choices=tuple(optimizers.OPTIMIZERS),
                        registry='`unetjax.optimizers.OPTIMIZERS`'),
    'optimizer.learning_rate': F(3e-3, 'peak learning rate', check=positive),
    'optimizer.schedule': F(
        'warmup_cosine', 'learning-rate schedule (poly: nnU-Net\'s '
        'lr * (1 - t)**0.9)', choices=tuple(optimizers.SCHEDULES),
        registry='`unetjax.optimizers.SCHEDULES`'),
    'optimizer.warmup_steps': F(50, 'linear warm-up from 0 (warmup_cosine, poly)',
                                check=non_negative),
    'optimizer.weight_decay': F(0.0, 'decoupled weight decay (adamw only)',
                                check=non_negative),
    'optimizer.grad_clip_norm': F(0.0, 'clip gradients to this global norm; 0 = off',
                                  check=non_negative),
    'optimizer.ema_decay': F(
        0.0, 'validation, test and prediction use the exponential moving '
        'average of the weights with this decay per step (0: the last '
        'weights)', check=half_open_unit_interval, absent_means=0.0),

    'parallel': F('jit', "data parallelism: 'jit' shards over a mesh",
                  choices=tuple(parallel.STRATEGIES)),
    'sync_batch_norm': F(True, 'pmap: batch-norm statistics over all devices, '
                         "not each device's share (jit always uses the global "
                         'batch)'),
    'on_nonfinite_loss': F('stop', 'a NaN or infinite loss stops the run or '
                           'skips the update',
                           choices=('stop', 'skip')),
    'max_skipped_fraction': F(0.05, "'skip': the run stops once more than this "
                              'share of its steps were skipped',
                              check=unit_interval),
    'batch_size': F(16, 'global batch, split over all devices', check=positive),
    'eval_batch_size': F(64, 'global batch for evaluation', check=positive),
    'eval_mirror': F(
        False, "validation and test logits averaged over the image's four "
        'flips, each flipped back (test-time mirroring, as nnU-Net; for '
        'models trained with both flips): 4x the forward passes',
        absent_means=False),
    'num_train_steps': F(500, 'training steps', check=positive),
    'log_every_steps': F(50, 'train loss / throughput to logs', check=positive),
    'eval_every_steps': F(100, 'validation metrics, best-model tracking',
                          check=positive),
    'checkpoint_every_steps': F(100, 'latest checkpoint for resuming',
                                check=positive),
    'max_checkpoints_to_keep': F(2, 'latest checkpoints kept in the workdir',
                                 check=positive),

    'metrics.threshold': F(0.5, 'sigmoid probability above which a pixel is '
                           'foreground', check=open_unit_interval),
    'metrics.boundary_tolerance': F(2.0, 'pixels of slack for boundary F1',
                                    check=non_negative),
    'metrics.surface_metrics': F(True, 'boundary F1, HD95, ASSD (distance maps)'),

    'best_metric': F('dice', 'validation metric that picks the best checkpoint',
                     choices=tuple(metrics.METRICS), registry='`unetjax.metrics.METRICS`'),
    'best_metric_mode': F('max', "'min' for loss, hd95 and assd",
                          choices=('max', 'min')),
    'progress_bar': F(True, 'tqdm bar on the terminal', affects_results=False),
}

# config.dataset.folder holds the options of image_folder or
# image_class_folder, checked by its builder; config.model's fields beyond
# name and n_classes depend on the architecture.
SECTIONS = ('dataset', 'dataset.folder', 'model', 'loss', 'optimizer',
            'metrics', 'augment')
# Sections whose fields are all listed above.
CLOSED_SECTIONS = ('', 'dataset', 'loss', 'optimizer', 'metrics', 'augment')


def default_config() -> ml_collections.ConfigDict:
  """configs/default.py: every field at its default."""
  config = ml_collections.ConfigDict()
  for path, field in FIELDS.items():
    *sections, leaf = path.split('.')
    node = config
    for section in sections:
      if section not in node:
        node[section] = ml_collections.ConfigDict()
      node = node[section]
    node[leaf] = (ml_collections.FieldReference(field.default, field_type=object)
                  if field.any_type else field.default)
  return config


def added_fields() -> dict[str, Any]:
  """Fields added after runs were saved without them -> the value (as saved
  in config.json) that reproduces those runs."""
  return {path: list(f.absent_means) if isinstance(f.absent_means, tuple)
          else f.absent_means
          for path, f in FIELDS.items() if f.absent_means is not _ALWAYS}


def result_neutral_fields() -> tuple[str, ...]:
  return tuple(path for path, f in FIELDS.items() if not f.affects_results)


def choices_help() -> str:
  """The fields with a fixed set of names and their names, one field per
  line, for --help."""
  return '\n'.join(f'config.{path}: {", ".join(f.choices)}'
                   for path, f in FIELDS.items() if f.choices)


def markdown_table() -> str:
  """docs/configs.md's table of every field (tests/test_registries.py keeps
  the two equal)."""
  rows = ['| field | default | meaning |', '|---|---|---|']
  for path, field in FIELDS.items():
    meaning = field.help
    if field.registry:
      meaning += f'; a name in {field.registry}'
    elif field.choices:
      meaning += f' ({", ".join(field.choices)})'
    if field.optional:
      meaning += '; per architecture'
    default = repr(round(field.default, 6) if isinstance(field.default, float)
                   else field.default)
    rows.append(f'| `{path}` | `{default}` | {meaning.replace("|", "&#124;")} |')
  return '\n'.join(rows)
