"""A peer to compare unetjax against: MONAI's BasicUNet or DynUNet (nnU-Net's
network), trained with PyTorch on the CPU on a unetjax dataset and scored by
unetjax's own metrics.

python -m benchmarks.peer_monai --config=configs/kvasir_native.py \
  --config.dataset.manual_dir=../shared/data/kvasir_seg \
  --network=basic_unet --width=8 --steps=800 --batch_size=8 \
  --out=runs/peer/basic_unet.json
python -m benchmarks.peer_monai --config=configs/drive_native.py \
  --config.dataset.manual_dir=../shared/data/drive \
  --network=dyn_unet --width=8 --steps=800 --out=runs/peer/drive_dyn_unet.json

Like with like: the dataset section of the unetjax config (any
--config.x.y=... override as with unetjax.main) picks the same prepared TFDS
data and splits; inputs are the pixels / 255 as in `unetjax.state`; the
config's mirror flips (`augment.flip_*_prob`) are the only augmentation (the
run lists the config's other augment ops under 'augment_skipped'). With
config.dataset.patch_size the peer trains on unetjax's own random patches
(`unetjax.data.patches.sample_patch`: foreground oversampling, zero padding
outside the roi) and predicts whole images with MONAI's Gaussian sliding
window of the patch; otherwise it trains and predicts whole stored images.

The training is MONAI's plain setup: DiceCELoss (sigmoid for two classes,
one output, as unetjax's binary models; softmax over K outputs otherwise) and
Adam at a constant --lr. Every --eval_every steps (and at the last) the
validation split is scored; the state with the best validation Dice is kept,
as unetjax keeps its best checkpoint, and scores both splits at the end.
Scores are `unetjax.metrics.batch_statistics` -> `merge` -> `summarize` of
the logits inside each image's roi, so pooled `dice` and `dice_per_image`
mean exactly what they mean in unetjax.main's summary.

Writes one JSON object to --out (and prints it, and a one-line summary).
Needs the 'peers' extra: pip install -e '.[peers]'.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import os
import sys
import time
from typing import Any, Callable, Iterable, Iterator

import jax
import ml_collections
import numpy as np
from absl import app, flags

from benchmarks import common
from unetjax import augment, command_line, extras, metrics, sliding_window
from unetjax.data import patches, pipeline
from unetjax.errors import ConfigError, UserInputError

NETWORKS = ('basic_unet', 'dyn_unet')
FEATURE = 'benchmarks/peer_monai.py'
# What the peer reads of an example: a uint8 HWC image, class ids and, where
# the dataset has one, the region of interest (DRIVE's field of view).
KEYS = ('image', 'mask', 'roi')
# DynUNet stops pooling before its deepest feature map is smaller than this.
MIN_SIDE = 4
FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Options:
  """What the command line sets beyond the unetjax config."""
  network: str = 'basic_unet'
  width: int | None = None  # None: config.model.base_filters
  steps: int = 800
  batch_size: int | None = None  # None: config.batch_size
  lr: float = 1e-3
  seed: int = 0
  eval_every: int = 200
  threads: int = 1
  surface_metrics: bool = False  # boundary F1, HD95, ASSD (slow on the CPU)
  mirror: bool = False  # scored on the mean of the four flips' logits
  budget_s: float | None = None  # stop steps early to end within this wall time
  out: str | None = None


def require_peers():
  """torch, once torch and monai are both importable; else one line naming
  the extra to install (MissingExtraError)."""
  torch = extras.require('torch', 'peers', FEATURE)
  extras.require('monai', 'peers', FEATURE)
  return torch


# ---------------------------------------------------------------- data


def load_examples(dataset_config: ml_collections.ConfigDict,
                  split: str) -> list[dict[str, np.ndarray]]:
  """Every example of `split`, in order, in memory (only KEYS)."""
  return [{k: np.asarray(ex[k]) for k in KEYS if k in ex}
          for ex in pipeline.examples(dataset_config, split)]


def eval_items(config: ml_collections.ConfigDict, split: str,
               sampling: patches.PatchSampling | None,
               split_size: int) -> list[dict[str, np.ndarray]]:
  """`split` as the items unetjax scores it in: with patches, one whole image
  at a time (a batch of one); else full batches of the stored images with
  'valid' False on the padding (pipeline.eval_batches)."""
  if sampling is not None:
    return [{k: v[None] for k, v in ex.items()}
            for ex in load_examples(config.dataset, split)]
  batch_size = max(1, min(config.eval_batch_size, split_size))
  return [{k: np.asarray(b[k]) for k in KEYS + ('valid',) if k in b}
          for b in pipeline.eval_batches(config.dataset, split, batch_size)]


def flip(example: dict[str, np.ndarray], rng: np.random.Generator,
         probs: tuple[float, float]) -> dict[str, np.ndarray]:
  """`example` mirrored left-right and top-bottom, each with its probability
  (both coins always drawn, so the stream of draws does not depend on them)."""
  horizontal, vertical = rng.random(2) < np.asarray(probs)
  axes = (() if not vertical else (0,)) + (() if not horizontal else (1,))
  if not axes:
    return example
  return {k: np.flip(v, axes) for k, v in example.items()}


def train_batches(examples: list[dict[str, np.ndarray]], batch_size: int,
                  rng: np.random.Generator,
                  sampling: patches.PatchSampling | None,
                  flip_probs: tuple[float, float]
                  ) -> Iterator[dict[str, np.ndarray]]:
  """Endless batches: the training examples in a new random order each
  epoch (as unetjax's shuffled, repeated stream), each cut to a random patch
  when `sampling` is set, then flipped."""
  order = iter(())
  while True:
    batch = []
    for _ in range(batch_size):
      index = next(order, None)
      if index is None:
        order = iter(rng.permutation(len(examples)))
        index = next(order)
      example = examples[index]
      if sampling is not None:
        example = patches.sample_patch(example, rng, sampling)
      batch.append(flip(example, rng, flip_probs))
    yield {k: np.stack([ex[k] for ex in batch]) for k in batch[0]}


def to_input(images: np.ndarray):
  """uint8 NHWC -> float32 NCHW in [0, 1], as `unetjax.state.preprocess`."""
  import torch
  nchw = np.ascontiguousarray(np.moveaxis(images, -1, 1))
  return torch.from_numpy(nchw).float() / 255.0


# ---------------------------------------------------------------- network


def network_depth(depth: int, input_side: int) -> int:
  """`depth` poolings, fewer if the deepest map would be under MIN_SIDE px."""
  fits = int(math.floor(math.log2(max(input_side, 1) / MIN_SIDE)))
  return max(1, min(depth, fits))


def build_network(name: str, in_channels: int, out_channels: int, width: int,
                  depth: int):
  """MONAI's network `name` at base width `width`; `depth` poolings for
  DynUNet (BasicUNet always pools 4 times)."""
  from monai.networks import nets
  if name == 'basic_unet':
    # Its defaults otherwise: instance norm, LeakyReLU(0.1), deconv upsampling.
    return nets.BasicUNet(spatial_dims=2, in_channels=in_channels,
                          out_channels=out_channels,
                          features=(width, width, 2 * width, 4 * width,
                                    8 * width, width))
  if name == 'dyn_unet':
    # Instance norm with a learned scale and shift (DynUNet's default, and
    # nnU-Net's), LeakyReLU(0.01), transposed-convolution upsampling.
    return nets.DynUNet(spatial_dims=2, in_channels=in_channels,
                        out_channels=out_channels, kernel_size=[3] * (depth + 1),
                        strides=[1] + [2] * depth,
                        upsample_kernel_size=[2] * depth,
                        filters=[width * 2**i for i in range(depth + 1)],
                        norm_name=('INSTANCE', {'affine': True}), res_block=False,
                        deep_supervision=False)
  raise ConfigError(f'--network={name!r}: choose one of {", ".join(NETWORKS)}.')


def parameter_count(model) -> int:
  return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- loss


class RoiDiceCELoss:
  """MONAI's DiceCELoss (Dice + cross-entropy, weights 1 and 1) over the
  pixels of the roi. A batch whose roi is every pixel gets DiceCELoss itself;
  otherwise the pixels outside are left out, not multiplied into the logits
  (a zero logit is still a prediction of 0.5): the Dice term is MONAI's
  MaskedDiceLoss (probabilities and one-hot targets times the roi) and the
  cross-entropy is its mean over the roi pixels, which with a full roi are
  DiceCELoss's two terms exactly."""

  def __init__(self, n_outputs: int):
    from monai import losses
    self.binary = n_outputs == 1
    self.n_outputs = n_outputs
    self.plain = losses.DiceCELoss(sigmoid=self.binary, softmax=not self.binary,
                                   to_onehot_y=not self.binary)
    self.masked_dice = losses.MaskedDiceLoss(sigmoid=self.binary,
                                             softmax=not self.binary)

  def __call__(self, logits, target, roi=None):
    """`logits` (B, K, H, W); `target` (B, 1, H, W): float 0/1 (binary) or
    class ids; `roi` (B, 1, H, W) or None (every pixel)."""
    if roi is None or bool(roi.all()):
      return self.plain(logits, target)
    return self.masked(logits, target, roi)

  def masked(self, logits, target, roi):
    import torch
    from monai.networks import utils
    from torch.nn import functional as F
    roi = roi.to(logits.dtype)
    pixels = roi.sum().clamp(min=1)
    if self.binary:
      onehot = target.to(logits.dtype)
      ce = F.binary_cross_entropy_with_logits(logits, onehot, reduction='none')
    else:
      # One-hot before masking: masked class ids would read as background.
      onehot = utils.one_hot(target.long(), self.n_outputs)
      ce = F.cross_entropy(logits, target[:, 0].long(), reduction='none')[:, None]
    dice = self.masked_dice(logits, onehot, mask=roi)
    return dice + torch.sum(ce * roi) / pixels


def batch_tensors(batch: dict[str, np.ndarray], binary: bool):
  """Inputs, targets (B, 1, H, W) and roi (B, 1, H, W; None: no roi) of a
  training batch, as torch tensors."""
  import torch
  mask = torch.from_numpy(np.ascontiguousarray(batch['mask']))[:, None]
  target = mask.float() if binary else mask.long()
  roi = batch.get('roi')
  if roi is not None:
    roi = torch.from_numpy(np.ascontiguousarray(roi > 0))[:, None]
  return to_input(batch['image']), target, roi


# ---------------------------------------------------------------- scoring


@functools.partial(jax.jit, static_argnames=('threshold', 'boundary_tolerance',
                                             'surface_metrics'))
def _statistics(logits, labels, valid, roi, **options) -> metrics.Stats:
  """unetjax's batch sums, compiled per batch shape."""
  return metrics.batch_statistics(logits, labels, valid, mask=roi, **options)


def split_statistics(predict: Callable, items: Iterable[dict[str, np.ndarray]],
                     metric_options: dict[str, Any], mirror: bool = False
                     ) -> dict[str, np.ndarray]:
  """Sums of `metrics.batch_statistics` over `items` (batches of uint8 NHWC
  'image', 'mask', and optionally 'roi' and 'valid'), scoring the logits of
  `predict` (float NCHW in [0, 1] -> logits NCHW) as unetjax scores its own:
  NHWC float32, sigmoid > threshold for one output, argmax otherwise, only
  the roi pixels of the valid images; with `mirror` averaged over the
  images' flips as unetjax's `eval_mirror` (`sliding_window.mirrored`)."""
  import torch

  def logits_of(images: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
      logits = predict(to_input(images))
    return np.moveaxis(logits.float().numpy(), 1, -1)

  total = None
  for item in items:
    logits = (sliding_window.mirrored(logits_of, item['image'], first_axis=1)
              if mirror else logits_of(item['image']))
    labels = item['mask'].astype(np.int32)
    valid = item.get('valid', np.ones(len(labels), bool)).astype(bool)
    roi = item['roi'] > 0 if 'roi' in item else np.ones(labels.shape, bool)
    total = metrics.merge(total, _statistics(logits, labels, valid, roi,
                                             **metric_options))
  return total


def make_predict(model, sampling: patches.PatchSampling | None,
                 config: ml_collections.ConfigDict) -> Callable:
  """Whole-image logits: the model itself on whole stored images; with
  patches, MONAI's Gaussian-blended sliding window of the patch size."""
  if sampling is None:
    return model
  from monai.inferers import sliding_window_inference
  return functools.partial(
      sliding_window_inference, roi_size=sampling.size,
      sw_batch_size=config.eval_batch_size, predictor=model,
      overlap=config.dataset.eval_overlap, mode='gaussian')


def evaluate(model, predict: Callable, items, metric_options,
             class_names, mirror: bool = False) -> dict[str, float]:
  """`metrics.summarize` of the model (in eval mode) on one split's items."""
  model.eval()
  try:
    total = split_statistics(predict, items, metric_options, mirror)
  finally:
    model.train()
  return metrics.summarize(total, class_names)


# ---------------------------------------------------------------- run


def _better(score: float, best: float | None) -> bool:
  """As unetjax's checkpoint choice: finite, and above the best so far."""
  return math.isfinite(score) and (best is None or score > best)


def out_of_time(elapsed: float, last_validation_s: float,
                budget_s: float | None, test_per_validation: float = 1.0
                ) -> bool:
  """Whether one more step would leave too little of `budget_s` for a
  validation and the test scoring, which takes `test_per_validation` times
  a validation (the test split's images over the validation split's)."""
  reserve = last_validation_s * (1.0 + test_per_validation)
  return budget_s is not None and elapsed + reserve >= budget_s


def train(model, loss_fn: RoiDiceCELoss, batches: Iterator, steps: int, lr: float,
          eval_every: int, validate: Callable[[], dict[str, float]],
          budget_s: float | None = None, started: float = 0.0,
          test_per_validation: float = 1.0) -> dict[str, Any]:
  """Adam at constant `lr` for `steps` steps, validating every `eval_every`
  and at the last. Leaves `model` in its best state (by validation Dice; the
  last if none was finite) and returns that state's step and validation
  metrics (evaluation is deterministic: scoring it again gives the same),
  the validation curve and the training seconds (evaluation left out).
  With `budget_s` (seconds since `started`) the steps end early where
  `out_of_time` says so; 'steps' is the number trained."""
  import torch
  optimizer = torch.optim.Adam(model.parameters(), lr=lr)
  best_dice = best_state = best_step = best_validation = None
  curve, train_s, validation_s = [], 0.0, 0.0
  for step in range(1, steps + 1):
    start = time.perf_counter()
    images, target, roi = batch_tensors(next(batches), loss_fn.binary)
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(images), target, roi)
    loss.backward()
    optimizer.step()
    loss = loss.item()
    train_s += time.perf_counter() - start
    if not math.isfinite(loss):
      raise UserInputError(f'The training loss became {loss} at step {step}; '
                           f'lower --lr (now {lr}).')
    last = step == steps or out_of_time(time.perf_counter() - started,
                                        validation_s, budget_s,
                                        test_per_validation)
    if step % eval_every == 0 or last:
      validation_start = time.perf_counter()
      validation = validate()
      validation_s = time.perf_counter() - validation_start
      dice = validation['dice']
      curve.append((step, dice))
      print(f'step {step}: loss {loss:.4f}, validation Dice {dice:.4f}',
            flush=True)
      if _better(dice, best_dice):
        best_dice, best_step, best_validation = dice, step, validation
        best_state = copy.deepcopy(model.state_dict())
    if last:
      break
  steps = step
  if best_state is None:  # no finite validation Dice: the last state
    best_step, best_validation = steps, validation
  else:
    model.load_state_dict(best_state)
  return {'best_step': best_step, 'validation': best_validation,
          'curve': curve, 'train_s': train_s, 'steps': steps}


def check_options(options: Options) -> None:
  """ConfigError for options the command line's flags would have refused."""
  if options.network not in NETWORKS:
    raise ConfigError(f'--network={options.network!r}: choose one of '
                      f'{", ".join(NETWORKS)}.')
  for name in ('width', 'batch_size', 'steps', 'eval_every', 'threads'):
    value = getattr(options, name)
    if value is not None and value < 1:
      raise ConfigError(f'--{name}={value} must be at least 1.')


def check_dataset(config: ml_collections.ConfigDict,
                  info: pipeline.DatasetInfo) -> None:
  if info.task != 'segmentation':
    raise ConfigError(f'{info.name} is a {info.task} dataset; the MONAI peer '
                      'trains segmentation networks only.')
  pipeline.check_patches_fit(config.dataset, info)


def run(config: ml_collections.ConfigDict, options: Options) -> dict[str, Any]:
  """Trains and scores the peer; returns the JSON record (and writes it to
  options.out)."""
  torch = require_peers()
  import monai
  check_options(options)
  started = time.perf_counter()
  width = options.width or config.model.base_filters
  batch_size = options.batch_size or config.batch_size
  torch.set_num_threads(options.threads)
  torch.manual_seed(options.seed)
  # Cheap on the CPU, where few kernels have a non-deterministic variant.
  torch.use_deterministic_algorithms(True, warn_only=True)

  info = pipeline.prepare(config.dataset)
  check_dataset(config, info)
  sampling = pipeline.patch_sampling(config.dataset)
  input_shape = pipeline.model_input_shape(config.dataset, info)
  n_outputs = 1 if len(info.class_names) == 2 else len(info.class_names)
  depth = (4 if options.network == 'basic_unet' else
           network_depth(config.model.depth, min(input_shape[:2])))
  model = build_network(options.network, input_shape[2], n_outputs, width,
                        depth).train()

  flip_probs = (config.augment.flip_horizontal_prob,
                config.augment.flip_vertical_prob)
  batches = train_batches(load_examples(config.dataset, 'train'), batch_size,
                          np.random.default_rng(options.seed), sampling,
                          flip_probs)
  predict = make_predict(model, sampling, config)
  metric_options = {'threshold': float(config.metrics.threshold),
                    'boundary_tolerance': float(config.metrics.boundary_tolerance),
                    'surface_metrics': options.surface_metrics}
  items = {split: eval_items(config, split, sampling, info.split_sizes[split])
           for split in ('validation', 'test')}
  score = lambda split: evaluate(model, predict, items[split], metric_options,
                                 info.class_names, options.mirror)

  test_per_validation = (info.split_sizes['test']
                         / max(1, info.split_sizes['validation']))
  result = train(model, RoiDiceCELoss(n_outputs), batches, options.steps,
                 options.lr, options.eval_every, lambda: score('validation'),
                 options.budget_s, started, test_per_validation)
  steps = result['steps']
  validation, test = result['validation'], score('test')
  record = {
      'benchmark': 'peer_monai', 'framework': 'torch', 'network': options.network,
      'width': width, 'depth': depth, 'steps': steps,
      'budget_s': options.budget_s,
      'batch_size': batch_size, 'lr': options.lr, 'optimizer': 'adam',
      'schedule': 'constant', 'loss': 'DiceCELoss', 'seed': options.seed,
      'threads': options.threads, 'dataset': info.name, 'build': info.build,
      'input_shape': list(input_shape),
      'patch_size': list(sampling.size) if sampling else None,
      'flip_probs': list(flip_probs), 'mirror': options.mirror,
      'augment_skipped': [op for op in augment.enabled_ops(config.augment)
                          if not op.startswith('flip_')],
      'params': parameter_count(model), 'best_step': result['best_step'],
      'validation_curve': [list(point) for point in result['curve']],
      'validation': validation, 'test': test,
      'wall_s': round(time.perf_counter() - started, 2),
      'train_s': round(result['train_s'], 2),
      'step_s': round(result['train_s'] / steps, 4),
      'images_per_s': round(steps * batch_size / result['train_s'], 2),
      **common.machine('cpu', {'torch': torch.__version__,
                               'monai': monai.__version__}),
  }
  if options.out:
    os.makedirs(os.path.dirname(os.path.abspath(options.out)), exist_ok=True)
    with open(options.out, 'w') as f:
      json.dump(record, f, indent=1)
      f.write('\n')
  return record


def summary_line(record: dict[str, Any]) -> str:
  v, t = record['validation'], record['test']
  return (f"{record['network']} width {record['width']} on {record['dataset']}, "
          f"{record['steps']} steps of {record['batch_size']}: test Dice "
          f"{t['dice']:.4f} (per image {t['dice_per_image']:.4f}), validation "
          f"{v['dice']:.4f} at step {record['best_step']}; "
          f"{record['step_s']:.3f} s/step, {record['images_per_s']:.1f} images/s "
          f"on {record['threads']} thread(s)")


def define_flags() -> None:
  """The command line's flags (defined by __main__ only, so that importing
  this module, e.g. in tests, adds no global flags)."""
  from ml_collections import config_flags
  config_flags.DEFINE_config_file(
      'config', None, 'unetjax config whose dataset (and flips, patches, '
      'metrics) the peer uses, e.g. configs/kvasir_native.py.', lock_config=True)
  flags.DEFINE_enum('network', 'basic_unet', NETWORKS, 'MONAI network.')
  flags.DEFINE_integer('width', None, 'Channels of the first level; default '
                       'config.model.base_filters.', lower_bound=1)
  flags.DEFINE_integer('steps', Options.steps, 'Training steps.', lower_bound=1)
  flags.DEFINE_integer('batch_size', None, 'Default config.batch_size.',
                       lower_bound=1)
  flags.DEFINE_float('lr', Options.lr, "Adam's constant learning rate.")
  flags.DEFINE_integer('seed', Options.seed, 'Weights, batches, patches, flips.')
  flags.DEFINE_integer('eval_every', Options.eval_every, 'Validate every this '
                       'many steps (and at the last).', lower_bound=1)
  flags.DEFINE_integer('threads', Options.threads, 'torch CPU threads.',
                       lower_bound=1)
  flags.DEFINE_float('budget_s', None, 'Wall-time budget in seconds: training '
                     'ends early (at most --steps) so that validation and test '
                     'scoring finish within it, for comparisons at equal time.',
                     lower_bound=1)
  flags.DEFINE_bool('surface_metrics', Options.surface_metrics,
                    'Also boundary F1, HD95 and ASSD.')
  flags.DEFINE_bool('mirror', Options.mirror, 'Validate and test on the mean '
                    "of the logits of each image's four flips, as unetjax's "
                    'eval_mirror.')
  flags.DEFINE_string('out', None, 'Write the JSON record to this file.')
  flags.mark_flags_as_required(['config'])


def main(argv):
  command_line.start(argv)
  options = Options(**{field.name: FLAGS[field.name].value
                       for field in dataclasses.fields(Options)})
  try:
    record = run(FLAGS.config, options)
  except UserInputError as e:
    sys.exit(f'error: {e}')
  print(json.dumps(record))
  print(summary_line(record))


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=command_line.parse_flags)
