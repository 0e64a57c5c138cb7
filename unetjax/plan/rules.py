"""The data-driven choices of a plan: pure functions from a fingerprint (and
the machine) to config values, each with a one-line reason naming the
figure behind it. The reference is nnU-Net's planner (Isensee et al. 2021,
"nnU-Net", Nature Methods 18; its ExperimentPlanner and default trainer);
where our own measurements disagree with it, the rule follows ours and says
where they are (docs/experiments.md).
"""

import dataclasses
import math
from typing import Any

from unetjax import augment

# Largest patch side trained per device kind: nnU-Net grows the 2D patch to
# the median image shape while GPU memory allows; on a CPU a 256x256 patch at
# batch 8 is already ~1 s per step for the narrowest U-Net (kvasir_native).
PATCH_CAP = {'cpu': 256, 'gpu': 512, 'tpu': 512}
# Batch per step before the dataset cap: our CPU recipes' 8; nnU-Net's 2D
# plans reach 12-50 on a GPU. Halving it for twice the steps did not pay in
# 10 CPU minutes: Kvasir-SEG's plan at batch 4 and 900 steps scored 0.583
# and 0.577 against batch 8's 0.604 and 0.652 in 451 (seeds 0, 1; a step
# of 4 took 0.68 s, of 8 1.0 s), and DRIVE's at batch 2 matched batch 4
# (0.8130, 0.8077 against 0.8121, 0.8104; docs/experiments.md).
BASE_BATCH = {'cpu': 8, 'gpu': 32, 'tpu': 32}
MAX_DATASET_COVERED = 0.05  # nnU-Net: one batch holds at most 5% of the training pixels
MIN_BOTTLENECK = 8  # poolings stop where an edge reaches 8 px (nnU-Net: 4)
MAX_DEPTH = 4  # the depth every measured recipe of ours uses
THIN_WIDTH = 3.0  # px: a structure thinner than this after resizing is lost
RARE_CLASS = 0.01  # a class under 1% of the pixels gets a loss weight
EVERYWHERE = 0.2  # every class above 20% of the pixels: no oversampling
# nnU-Net's rotations, scaling and intensity changes pay off, if at all, only
# over long training. Mirror flips alone scored at or above the full set in
# every seed pair we measured, at lower cost per step: DRIVE at 60 epochs
# (counted in pixels: `inputs_per_epoch`; three seeds, +0.003 on average)
# and ISBI 2012 at 52 (two seeds, +0.009 and +0.002); on
# Kvasir-SEG the ResUNet++ paper's set lowered test Dice after ~10 epochs
# (0.635 vs 0.676) while flips raised it over 32 (0.789 vs 0.727)
# (docs/experiments.md: the long study, the DRIVE augmentation sweep).
# The set stays for budgets past every one we measured; nnU-Net trains its
# 1000 epochs with it.
FULL_AUGMENTATION_EPOCHS = 100
# Adam's rate, constant (not decayed: Kvasir-SEG's factor table, 1e-3
# constant +0.026 over 3e-3 with poly decay; DRIVE, decay to 0 -0.008) and
# scored on the weights' average. 2e-3 over MONAI's 1e-3 at 10 CPU minutes
# (546-831 steps), two seeds per dataset: DRIVE +0.008, Kvasir-SEG +0.020,
# ISBI 2012 -0.0015. On the tens of images of DRIVE (16) and ISBI 2012 (20),
# 4e-3 over 2e-3 with the same plans (570 and 594 steps), four seeds each:
# +0.0018 and +0.0016, 7 of 8 pairs ahead, [+0.0003, +0.0030] over both
# (p = 0.02); 6e-3 on DRIVE, two seeds: no further gain. On Kvasir-SEG's
# 798 the other way: 2e-3 over 4e-3 in all six seed pairs, +0.013 to +0.060
# in 451 steps (four seeds), +0.009 and +0.034 in 1463 (two); 1e-3 there
# -0.032 (one seed). Random subsets of Kvasir-SEG trained by one recipe
# (the 200-image subset's plan, 373 steps): 2e-3 over 4e-3 in four seed
# pairs of four at 200 training images (+0.003 to +0.048) and two of two at
# 60 (+0.025, +0.031), level at 20 (-0.005 pooled, +0.001 per image, one
# seed). On one kind of image the size parts the two rates, between 20 and
# 60 images (docs/experiments.md, the rate by dataset size).
MANY_IMAGES = 40


@dataclasses.dataclass(frozen=True)
class Decision:
  field: str  # dotted path under config, e.g. 'model.norm'
  value: Any
  reason: str


def _round_down(n: float, multiple: int) -> int:
  return max(multiple, int(n) // multiple * multiple)


def median_shape(fp: dict[str, Any]) -> tuple[int, int]:
  return int(fp['height']['median']), int(fp['width']['median'])


def thinnest_structure(fp: dict[str, Any]) -> tuple[float, int]:
  """(width in px, class) of the thinnest class structure."""
  widths = [(w, c) for c, w in enumerate(fp.get('structure_width', []))
            if w == w]  # NaN: the class never occurs
  return min(widths) if widths else (math.inf, 0)


def folder_size(fp: dict[str, Any], kind: str) -> Decision:
  """image_folder's stored side: whole images where they all share one
  square size within the patch cap; otherwise resized to the cap only where
  the thinnest structure stays THIN_WIDTH px wide, else their own size
  (trained on patches)."""
  h, w = median_shape(fp)
  side, cap = max(h, w), PATCH_CAP[kind]
  width, c = thinnest_structure(fp)
  if _same_size(fp) and h == w and side <= cap:
    return Decision('dataset.folder.image_size', side,
                    f'every image is {h}x{w}: stored as is, whole images')
  if side <= cap:
    return Decision('dataset.folder.image_size', 0,
                    f'median side {side} px fits the {cap} px patch: own size')
  if width * cap / side < THIN_WIDTH:
    return Decision('dataset.folder.image_size', 0,
                    f'class {c} structures are {width:.1f} px wide; resizing '
                    f'{side} -> {cap} px would make them {width * cap / side:.1f}'
                    ' px: own size, patches')
  return Decision('dataset.folder.image_size', cap,
                  f'median side {side} px; its thinnest structures ({width:.1f} '
                  f'px) stay {width * cap / side:.1f} px wide at {cap} px')


def intensity_window(raw: dict[str, Any] | None) -> Decision | None:
  """A folder of 16-bit or float images: its own 0.5-99.5 percentile window
  to 0..255 (nnU-Net clips CT to these percentiles of the training
  foreground; Isensee et al. 2021) instead of the dtype's full range, which
  leaves a 12-bit image 16 of the 256 levels and refuses floats outside
  [0, 1]. None for 8-bit folders, and for a mix of 8-bit and deeper files,
  whose 8-bit images the window would rescale too."""
  if raw is None:
    return None
  if raw['files'] < raw['of_files']:
    return Decision('dataset.folder.intensity_window', (),
                    f"{raw['files']} of {raw['of_files']} training images hold "
                    'more than 8 bits: no window, as the 8-bit ones would be '
                    'rescaled too')
  low, high = raw['p0.5'], raw['p99.5']
  if high <= low:
    low, high = raw['min'], max(raw['max'], raw['min'] + 1)
  return Decision('dataset.folder.intensity_window', (low, high),
                  f"{'/'.join(raw['modes'])} images, values {raw['min']:g}..{raw['max']:g}: "
                  'their 0.5-99.5 percentiles to 0..255 (nnU-Net)')


def _same_size(fp: dict[str, Any]) -> bool:
  return (fp['height']['min'] == fp['height']['max'] and
          fp['width']['min'] == fp['width']['max'])


def depth(patch: tuple[int, int]) -> Decision:
  """Poolings until the smaller edge reaches MIN_BOTTLENECK (nnU-Net pools
  to 4 px), at most MAX_DEPTH."""
  d = max(1, min(MAX_DEPTH, int(math.log2(min(patch) / MIN_BOTTLENECK))))
  return Decision('model.depth', d,
                  f'{min(patch)} px edge / 2**{d} = {min(patch) // 2**d} px at '
                  f'the bottleneck (nnU-Net pools to 4-8 px; at most {MAX_DEPTH})')


def patch(fp: dict[str, Any], kind: str) -> Decision:
  """Whole images when they all share one size within the cap; else
  patches of the median shape, scaled to the cap's pixel count (nnU-Net
  keeps the median's aspect ratio), divisible by 2**MAX_DEPTH."""
  h, w = median_shape(fp)
  cap = PATCH_CAP[kind]
  stored_whole = None not in fp.get('stored_shape', [h, w, 1])
  if (stored_whole and _same_size(fp) and max(h, w) <= cap
      and h % 2**MAX_DEPTH == 0 and w % 2**MAX_DEPTH == 0):
    return Decision('dataset.patch_size', 0,
                    f'every image is {h}x{w}: whole images')
  scale = min(1.0, math.sqrt(cap * cap / (h * w)))
  ph = _round_down(h * scale, 2**MAX_DEPTH)
  pw = _round_down(w * scale, 2**MAX_DEPTH)
  value = ph if ph == pw else (ph, pw)
  why = (f'median image {h}x{w}' + (f' over the {cap}x{cap} px cap of a {kind}'
                                    if scale < 1 else ', stored at own sizes'))
  return Decision('dataset.patch_size', value,
                  f'{why}: patches of {ph}x{pw}, whole images scored by a '
                  'sliding window')


def inputs_per_epoch(fp: dict[str, Any], patch_value: Any) -> float:
  """The training inputs that show the model each training pixel once: the
  images, or for patch training their pixels over a patch's. The rules that
  read epochs (width, the slim network, augmentation) then mean as many
  passes over the data for patches as for whole images: a 256x240 patch of
  a 584x565 DRIVE image is a fifth of it, not an image."""
  if patch_value == 0:
    return float(fp['n_images'])
  h, w = median_shape(fp)
  ph, pw = patch_shape(patch_value, fp)
  return fp['n_images'] * max(1.0, h * w / (ph * pw))


def patch_shape(value: Any, fp: dict[str, Any]) -> tuple[int, int]:
  if value == 0:
    return median_shape(fp)
  return (value, value) if isinstance(value, int) else tuple(value)


def batch_size(fp: dict[str, Any], shape: tuple[int, int], kind: str,
               n_devices: int) -> Decision:
  """BASE_BATCH, capped so that one batch holds at most 5% of the training
  pixels (nnU-Net), at least 2, a multiple of the devices."""
  h, w = median_shape(fp)
  train_pixels = fp['n_images'] * h * w
  cap = int(MAX_DATASET_COVERED * train_pixels / (shape[0] * shape[1]))
  b = max(2, min(BASE_BATCH[kind], cap))
  b = max(n_devices, b // n_devices * n_devices)
  reason = (f'{kind} batch {BASE_BATCH[kind]}' if b == BASE_BATCH[kind] else
            f'{fp["n_images"]} training images of {h}x{w}: 5% of their pixels '
            f'hold {cap} {shape[0]}x{shape[1]} inputs (nnU-Net\'s cap)')
  return Decision('batch_size', b, reason)


def normalisation() -> Decision:
  return Decision('model.norm', 'instance',
                  'instance norm: group norm gained 0.034 Dice per image over '
                  'batch norm on Kvasir-SEG (docs/experiments.md, the peer '
                  'factor table); MONAI\'s and nnU-Net\'s default')


def oversampling(fp: dict[str, Any], patches: bool) -> Decision:
  fractions = fp['class_fractions']
  if not patches:
    return Decision('dataset.foreground_oversampling', 0.0, 'whole images')
  if min(fractions) >= EVERYWHERE:
    return Decision('dataset.foreground_oversampling', 0.0,
                    f'every class covers >= {min(fractions):.0%} of the pixels: '
                    'every patch holds some')
  return Decision('dataset.foreground_oversampling', 1 / 3,
                  f'foreground is {1 - fractions[0]:.1%} of the pixels: a '
                  'third of the patches centred on it (nnU-Net)')


def class_weights(fp: dict[str, Any]) -> Decision:
  """Weights proportional to 1/sqrt(pixel fraction), mean 1, when a class
  is under RARE_CLASS of the pixels (full inverse frequency over-predicts
  the rare class); () otherwise, as nnU-Net (which relies on Dice + CE)."""
  fractions = fp['class_fractions']
  rare = min(fractions)
  if rare >= RARE_CLASS or rare <= 0:
    return Decision('loss.class_weights', (),
                    f'rarest class {rare:.1%} of the pixels: Dice + CE as is')
  raw = [1 / math.sqrt(f) if f > 0 else 0.0 for f in fractions]
  mean = sum(raw) / len(raw)
  weights = tuple(round(r / mean, 3) for r in raw)
  return Decision('loss.class_weights', weights,
                  f'class {fractions.index(rare)} is {rare:.2%} of the pixels: '
                  'cross-entropy weights ~ 1/sqrt(fraction)')


def augmentation(epochs: float) -> list[Decision]:
  """Flips always (nnU-Net mirrors every axis), and scores mirrored to
  match; nnU-Net's rotations, scaling and intensity changes only from
  FULL_AUGMENTATION_EPOCHS. Every other op is off, whatever the source
  config had: the plan decides the whole set."""
  flips = [Decision('augment.flip_horizontal_prob', 0.5, 'mirror: nnU-Net, and +0.06 '
                    'Dice on Kvasir-SEG over 32 epochs'),
           Decision('augment.flip_vertical_prob', 0.5, 'mirror (nnU-Net)'),
           # The same checkpoints (the 4e-3 plans, seeds 0-3) scored plain
           # and mirrored: DRIVE +0.0025 to +0.0036, ISBI 2012 -0.0001 to
           # +0.0040, Kvasir-SEG +0.001 to +0.024. The probe times its cost.
           Decision('eval_mirror', True, 'scored on the mean of each '
                    'image\'s four flips (nnU-Net\'s test-time mirroring): '
                    '+0.003 test Dice on DRIVE, +0.002 on ISBI 2012, +0.011 '
                    'on Kvasir-SEG, same checkpoints (docs/experiments.md, '
                    'test-time mirroring)')]
  if epochs < FULL_AUGMENTATION_EPOCHS:
    chosen = flips
  else:
    why = f'{epochs:.0f} epochs >= {FULL_AUGMENTATION_EPOCHS}: nnU-Net\'s set'
    chosen = flips + [
        Decision('augment.rot90_prob', 0.75, why),
        Decision('augment.rotate_prob', 0.3, why),
        Decision('augment.rotate_degrees', 15.0, why),
        Decision('augment.scale_prob', 0.2, why),
        Decision('augment.scale_range', (0.85, 1.25), why + ' (0.7-1.4 in 3D)'),
        Decision('augment.brightness_prob', 0.3, why),
        Decision('augment.brightness', 0.1, why),
        Decision('augment.contrast_prob', 0.3, why),
        Decision('augment.contrast_range', (0.75, 1.25), why),
        Decision('augment.gamma_prob', 0.3, why),
        Decision('augment.gamma_range', (0.7, 1.5), why),
    ]
  set_ = {d.field for d in chosen}
  off = (f'{epochs:.0f} epochs < {FULL_AUGMENTATION_EPOCHS}: flips only'
         if epochs < FULL_AUGMENTATION_EPOCHS else 'not in nnU-Net\'s set')
  return chosen + [Decision(f'augment.{op}_prob', 0.0, off)
                   for op in augment.OPS if f'augment.{op}_prob' not in set_]


def learning_rate(fp: dict[str, Any]) -> Decision:
  """Adam's constant rate, scored on the weights' average: 4e-3 under
  MANY_IMAGES training images, 2e-3 from there on (see its comment)."""
  n = fp['n_images']
  if n < MANY_IMAGES:
    return Decision('optimizer.learning_rate', 4e-3,
                    f'{n} training images: 4e-3 over 2e-3 +0.0018 Dice on '
                    'DRIVE (16), +0.0016 on ISBI 2012 (20), four seeds each '
                    '(docs/experiments.md, the weights\' average); level on 20 '
                    'of Kvasir-SEG\'s, one seed')
  return Decision('optimizer.learning_rate', 2e-3,
                  f'{n} training images: 2e-3 over 4e-3 on Kvasir-SEG in 12 '
                  'seed pairs of 12 at 60, 200 and 798 training images, +0.003 '
                  'to +0.060 Dice (docs/experiments.md, the rate by dataset size)')


def training_choices(fp: dict[str, Any]) -> list[Decision]:
  """The loss and optimiser: all but the rate independent of the data (the
  evidence is in their reasons)."""
  return [
      Decision('model.dropout_rates', (0.0,), 'no dropout (nnU-Net; '
               'kvasir_native trains better without it at width 8)'),
      Decision('loss.name', 'cross_entropy_dice', 'Dice + cross-entropy '
               '(nnU-Net, MONAI DiceCE)'),
      Decision('optimizer.name', 'adam', 'Adam (MONAI\'s peer setting)'),
      learning_rate(fp),
      Decision('optimizer.schedule', 'constant', 'constant: poly decay to 0 '
               'lost 0.008 Dice on DRIVE (docs/experiments.md)'),
      Decision('optimizer.warmup_steps', 0, 'no warm-up with a constant rate'),
      # The same 590 training steps (DRIVE, width 8, seeds 0 and 1) scored on
      # their moving average: test Dice 0.8104 and 0.8079 against the last
      # weights' best checkpoint, 0.8067 and 0.8047.
      Decision('optimizer.ema_decay', 0.99, 'scored on the weights\' moving '
               'average (~100 steps): +0.004 and +0.003 test Dice on DRIVE, '
               'same training (docs/experiments.md, the weights\' average)'),
      Decision('dataset.eval_overlap', 0.5, 'half-window overlap (nnU-Net)'),
      Decision('best_metric', 'dice', 'best checkpoint by validation Dice'),
  ]
