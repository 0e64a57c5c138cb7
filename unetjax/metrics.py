"""Segmentation metrics from one accumulator of counts and per-image sums.

`batch_statistics` runs inside the jitted eval step and returns a pytree of
sums for a batch. Sums from batches, devices (`jax.lax.psum`) and hosts add
up; `merge` adds them on the host in 64 bits so large datasets cannot
overflow, and `summarize` turns the total into named metrics. Every metric is
defined once, in `summarize`, on top of those sums.

Two families, both labelled in the names:
- dataset-level ("micro"): from the true/false positive and false negative
  pixel counts of each class over the whole split: `dice` (F1), `iou`,
  `precision`, `recall` (means over the foreground classes 1..C-1),
  `miou` (mean IoU over all classes, background included, as in semantic
  segmentation benchmarks), `pixel_accuracy`, `mean_pixel_accuracy` (mean
  per-class recall over all classes; Long et al. 2015);
- per image ("macro"): the score of each image, averaged over images, then
  over foreground classes: `dice_per_image`, `iou_per_image`,
  `boundary_f1` (Csurka et al. 2013), `hd95` and `assd` (pixels).

Boundaries and distances (the convention of medpy and MONAI): the boundary
of a mask is its pixels with a 4-neighbour outside the mask, the image
border counting as outside; distances are Euclidean, in pixels, from each
boundary pixel of one mask to the nearest boundary pixel of the other.
- `boundary_f1`: precision = share of predicted boundary pixels within
  `boundary_tolerance` pixels of the true boundary, recall the converse,
  BF = 2PR / (P + R).
- `hd95`: the larger of the two directed 95th percentiles of those distances
  (robust Hausdorff distance, as MONAI and DeepMind's surface-distance take
  it; medpy's `hd95` takes the percentile of both sets pooled instead).
- `assd`: the mean over the distances of both boundaries pooled (average
  symmetric surface distance, Heimann et al. 2009; medpy's `assd`).

Empty classes: a class absent from both label and prediction has no score
(NaN): dataset-level it is left out of the class means; per image the image
is left out of that class's mean. A class present in only one of them scores
Dice/IoU/BF 0, and HD95/ASSD the image diagonal, the largest possible
distance, so that missing an object is penalised rather than ignored.
"""

import dataclasses
from typing import Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from unetjax.tasks import CLASSIFICATION, SEGMENTATION

Stats = dict[str, jax.Array]
_SURFACE_SCORES = ('boundary_f1', 'hd95', 'assd')



@dataclasses.dataclass(frozen=True)
class Metric:
  heading: str  # in tables
  lower_is_better: bool = False
  main: bool = True  # shown in run summaries and sweep tables
  tasks: tuple[str, ...] = (SEGMENTATION,)  # the runs that report it
  objects: bool = False  # reported for datasets with instances only


# Every metric a run reports (`summarize`'s, unetjax.classification_metrics'
# `summarize`'s and the evaluation loss), in the one order that summaries,
# tables and CSV files use. Config checks (config.best_metric) read the
# names from here.
METRICS: dict[str, Metric] = {
    'dice': Metric('Dice'),
    'iou': Metric('IoU'),
    'dice_per_image': Metric('Dice per image'),
    'iou_per_image': Metric('IoU per image', main=False),
    'precision': Metric('Precision'),
    'recall': Metric('Recall'),
    'pixel_accuracy': Metric('Pixel acc.'),
    'mean_pixel_accuracy': Metric('Mean pixel acc.'),
    'miou': Metric('mIoU'),
    'boundary_f1': Metric('Boundary F1'),
    'hd95': Metric('HD95 (px)', lower_is_better=True),
    'assd': Metric('ASSD (px)', lower_is_better=True),
    # Objects (datasets with instances; unetjax.instances)
    'object_f1': Metric('Object F1', objects=True),
    'pq': Metric('PQ', objects=True),
    'aji': Metric('AJI', objects=True),
    'object_precision': Metric('Object precision', main=False, objects=True),
    'object_recall': Metric('Object recall', main=False, objects=True),
    'sq': Metric('SQ', main=False, objects=True),
    'rq': Metric('RQ', main=False, objects=True),
    'adapted_rand_error': Metric('Rand error', lower_is_better=True, objects=True),
    'variation_of_information': Metric('VI', lower_is_better=True, objects=True),
    'accuracy': Metric('Accuracy', tasks=(CLASSIFICATION,)),
    'balanced_accuracy': Metric('Balanced acc.', tasks=(CLASSIFICATION,)),
    'macro_f1': Metric('Macro-F1', tasks=(CLASSIFICATION,)),
    'macro_precision': Metric('Macro precision', tasks=(CLASSIFICATION,)),
    'macro_recall': Metric('Macro recall', tasks=(CLASSIFICATION,)),
    'kappa': Metric("Cohen's kappa", tasks=(CLASSIFICATION,)),
    'auroc': Metric('AUROC', tasks=(CLASSIFICATION,)),
    'auroc_error': Metric('AUROC error bound', lower_is_better=True, main=False,
                          tasks=(CLASSIFICATION,)),
    # Per class only ('f1/<class>' of a classifier): no run reports a plain
    # 'f1', so no task lists it and config.best_metric refuses it.
    'f1': Metric('F1', main=False, tasks=()),
    'loss': Metric('Loss', lower_is_better=True,
                   tasks=(SEGMENTATION, CLASSIFICATION)),
}

# What each validation prints, by task.
HEADLINE = {SEGMENTATION: ('loss', 'dice', 'iou'),
            CLASSIFICATION: ('loss', 'accuracy', 'macro_f1')}


def main_metrics(present: Iterable[str]) -> list[str]:
  """The main metrics among the names `present`, in METRICS order."""
  present = set(present)
  return [name for name, metric in METRICS.items()
          if metric.main and name in present]


def predict_classes(logits: jax.Array, threshold: float = 0.5) -> jax.Array:
  """Class ids (N, H, W): sigmoid(logit) > threshold if C == 1, else argmax."""
  if logits.shape[-1] == 1:
    probabilities = jax.nn.sigmoid(logits[..., 0].astype(jnp.float32))
    return (probabilities > threshold).astype(jnp.int32)
  return jnp.argmax(logits, axis=-1).astype(jnp.int32)


def n_label_classes(logits: jax.Array) -> int:
  """Binary models (one logit) still have two label classes."""
  return max(2, logits.shape[-1])


def per_image_counts(predictions: jax.Array, labels: jax.Array, n_classes: int,
                     mask: jax.Array | None = None) -> Stats:
  """True positives, false positives and false negatives, shape (N, C),
  counting only pixels where `mask` (N, H, W) is set."""
  pred = jax.nn.one_hot(predictions, n_classes, dtype=jnp.int32)
  true = jax.nn.one_hot(labels, n_classes, dtype=jnp.int32)
  if mask is not None:
    mask = mask.astype(jnp.int32)[..., None]
    pred, true = pred * mask, true * mask
  tp = jnp.sum(pred * true, axis=(1, 2))
  return {'tp': tp,
          'fp': jnp.sum(pred, axis=(1, 2)) - tp,
          'fn': jnp.sum(true, axis=(1, 2)) - tp}


def _nan_ratio(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
  return jnp.where(denominator > 0,
                   numerator / jnp.maximum(denominator, 1), jnp.nan)


def per_image_overlap(counts: Stats) -> dict[str, jax.Array]:
  """Dice and IoU of each image and class (N, C); NaN where the class is in
  neither label nor prediction."""
  tp, fp, fn = counts['tp'], counts['fp'], counts['fn']
  return {'dice': _nan_ratio(2 * tp, 2 * tp + fp + fn),
          'iou': _nan_ratio(tp, tp + fp + fn)}


def boundary(masks: jax.Array) -> jax.Array:
  """Pixels of boolean masks (..., H, W) with a 4-neighbour outside the mask;
  beyond the image border counts as outside."""
  padded = jnp.pad(masks, [(0, 0)] * (masks.ndim - 2) + [(1, 1), (1, 1)])
  interior = (padded[..., :-2, 1:-1] & padded[..., 2:, 1:-1]
              & padded[..., 1:-1, :-2] & padded[..., 1:-1, 2:])
  return masks & ~interior


def distance_to(points: jax.Array) -> jax.Array:
  """Euclidean distance from every pixel of an (H, W) grid to the nearest
  True pixel of `points`, exact (two separable passes, Felzenszwalb &
  Huttenlocher 2012); values beyond the image diagonal where there is none."""
  height, width = points.shape
  far = height + width  # farther than any real distance
  x = jnp.arange(width)
  nearest_left = jax.lax.cummax(jnp.where(points, x, -far), axis=1)
  nearest_right = jax.lax.cummin(jnp.where(points, x, 2 * far), axis=1,
                                 reverse=True)
  along_rows = jnp.minimum(x - nearest_left, nearest_right - x)
  squared_rows = jnp.minimum(along_rows, 2 * far).astype(jnp.float32)**2
  y = jnp.arange(height, dtype=jnp.float32)
  # For each output row, the nearest point is in some row y': min over y'.
  squared = jax.lax.map(
      lambda row: jnp.min(squared_rows + ((y - row)**2)[:, None], axis=0), y,
      batch_size=min(height, 32))
  return jnp.sqrt(squared)


def surface_scores(pred: jax.Array, true: jax.Array,
                   tolerance: float) -> dict[str, jax.Array]:
  """Boundary F1, HD95 and ASSD of one (H, W) pair of boolean masks; see the
  module docstring for definitions and empty-mask conventions."""
  pred_boundary, true_boundary = boundary(pred), boundary(true)
  to_true = jnp.where(pred_boundary, distance_to(true_boundary), jnp.nan).ravel()
  to_pred = jnp.where(true_boundary, distance_to(pred_boundary), jnp.nan).ravel()
  precision = jnp.nanmean(jnp.where(jnp.isnan(to_true), jnp.nan, to_true <= tolerance))
  recall = jnp.nanmean(jnp.where(jnp.isnan(to_pred), jnp.nan, to_pred <= tolerance))
  bf = jnp.where(precision + recall > 0,
                 2 * precision * recall / (precision + recall), 0.0)
  hd95 = jnp.maximum(jnp.nanpercentile(to_true, 95), jnp.nanpercentile(to_pred, 95))
  assd = jnp.nanmean(jnp.concatenate([to_true, to_pred]))
  has_pred, has_true = pred.any(), true.any()
  diagonal = jnp.hypot(*pred.shape).astype(jnp.float32)
  one_sided = has_pred != has_true
  neither = ~(has_pred | has_true)
  return {
      'boundary_f1': jnp.where(neither, jnp.nan, jnp.where(one_sided, 0.0, bf)),
      'hd95': jnp.where(neither, jnp.nan, jnp.where(one_sided, diagonal, hd95)),
      'assd': jnp.where(neither, jnp.nan, jnp.where(one_sided, diagonal, assd)),
  }


def _sum_valid(scores: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Sum and count over images (axis 0) of the defined (non-NaN) scores."""
  defined = ~jnp.isnan(scores) & valid[:, None]
  return (jnp.sum(jnp.where(defined, scores, 0.0), axis=0).astype(jnp.float32),
          jnp.sum(defined, axis=0).astype(jnp.int32))


def batch_statistics(logits: jax.Array, labels: jax.Array,
                     valid: jax.Array | None = None, *,
                     mask: jax.Array | None = None, threshold: float = 0.5,
                     boundary_tolerance: float = 2.0,
                     surface_metrics: bool = True) -> Stats:
  """Sums over one batch: pixel counts per class and per-image score sums.

  Args:
    logits: (N, H, W, C) model outputs.
    labels: (N, H, W) integer class ids.
    valid: (N,) bool; False drops an example (batch padding).
    mask: (N, H, W) bool; pixels to score (e.g. a field of view).
    threshold: sigmoid probability above which a binary pixel is foreground.
    boundary_tolerance: pixels of slack for boundary F1.
    surface_metrics: also compute boundary F1, HD95 and ASSD (distance maps
      cost O(H * W * (H + W)) per image and class).
  """
  n_classes = n_label_classes(logits)
  predictions = predict_classes(logits, threshold)
  if valid is None:
    valid = jnp.ones(labels.shape[0], bool)
  if mask is None:
    mask = jnp.ones(labels.shape, bool)
  mask = mask & valid[:, None, None]
  counts = per_image_counts(predictions, labels, n_classes, mask)
  stats = {k: v.sum(0) for k, v in counts.items()}
  stats['pixels'] = jnp.sum(mask, dtype=jnp.int32)
  stats['images'] = jnp.sum(valid, dtype=jnp.int32)
  scores = per_image_overlap(counts)
  if surface_metrics:
    classes = jnp.arange(1, n_classes)
    pred = (predictions[:, None] == classes[None, :, None, None]) & mask[:, None]
    true = (labels[:, None] == classes[None, :, None, None]) & mask[:, None]
    per_pair = jax.vmap(jax.vmap(
        lambda p, t: surface_scores(p, t, boundary_tolerance)))(pred, true)
    for name in _SURFACE_SCORES:  # background has no surface score: NaN
      scores[name] = jnp.pad(per_pair[name], ((0, 0), (1, 0)),
                             constant_values=jnp.nan)
  for name, values in scores.items():
    stats[f'{name}_sum'], stats[f'{name}_count'] = _sum_valid(values, valid)
  return stats


def merge(total: Mapping[str, np.ndarray] | None,
          stats: Mapping[str, jax.Array]) -> dict[str, np.ndarray]:
  """total + stats, on the host in 64-bit."""
  stats = {k: np.asarray(v, np.float64 if np.issubdtype(np.asarray(v).dtype,
                                                        np.floating) else np.int64)
           for k, v in jax.device_get(dict(stats)).items()}
  if total is None:
    return stats
  return {k: total[k] + stats[k] for k in stats}


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
  numerator = np.asarray(numerator, np.float64)
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.where(denominator > 0, numerator / np.maximum(denominator, 1), np.nan)


def _mean(values: np.ndarray) -> float:
  """Mean of the defined values; NaN if there are none."""
  return float(np.nanmean(values)) if np.isfinite(values).any() else float('nan')


def summarize(total: Mapping[str, np.ndarray],
              class_names: Sequence[str]) -> dict[str, float]:
  """Named metrics (see the module docstring); for more than two classes
  also each class's value as '<metric>/<class name>'."""
  tp, fp, fn = (np.asarray(total[k], np.float64) for k in ('tp', 'fp', 'fn'))
  per_class = {
      'dice': _ratio(2 * tp, 2 * tp + fp + fn),
      'iou': _ratio(tp, tp + fp + fn),
      'precision': _ratio(tp, tp + fp),
      'recall': _ratio(tp, tp + fn),
  }
  for name in ('dice', 'iou') + _SURFACE_SCORES:
    if f'{name}_sum' in total:
      per_class[f'{name}_per_image' if name in ('dice', 'iou') else name] = _ratio(
          total[f'{name}_sum'], total[f'{name}_count'])
  metrics = {
      'pixel_accuracy': float(_ratio(tp.sum(), total['pixels'])),
      'mean_pixel_accuracy': _mean(per_class['recall']),
      'miou': _mean(per_class['iou']),
  }
  for name, values in per_class.items():
    metrics[name] = _mean(values[1:])
    if len(class_names) > 2:
      first = 1 if name in _SURFACE_SCORES else 0  # background has no surface
      for class_name, value in zip(class_names[first:], values[first:]):
        metrics[f'{name}/{class_name}'] = float(value)
  return metrics


# Fiji's PixelError.getPixelErrorMaximalFScore(0.0, 1.0, 0.1), with which the
# ISBI 2012 challenge scored its entries.
CHALLENGE_THRESHOLDS = tuple(np.round(np.arange(11) * 0.1, 1))


def max_f_pixel_error(probabilities: Iterable[np.ndarray],
                      truths: Iterable[np.ndarray],
                      thresholds: Sequence[float] = CHALLENGE_THRESHOLDS
                      ) -> tuple[float, float]:
  """The ISBI 2012 EM challenge's pixel error: 1 - the largest F-score, over
  `thresholds`, of the pixels whose probability exceeds the threshold
  against the true (boolean) pixels, with the counts pooled over all images.
  Returns (error, the threshold that gives it).

  Written here because no library has it; it follows Fiji's
  trainableSegmentation.metrics.PixelError, the organisers' scorer, in which
  the positive pixels are those the challenge's label images mark non-zero:
  the cell interiors, not the membranes."""
  thresholds = np.asarray(thresholds, np.float64)
  tp = np.zeros(len(thresholds))
  fp = np.zeros(len(thresholds))
  fn = np.zeros(len(thresholds))
  for probability, truth in zip(probabilities, truths, strict=True):
    probability = np.asarray(probability, np.float64).ravel()
    truth = np.asarray(truth, bool).ravel()
    found = probability[None] > thresholds[:, None]
    tp += (found & truth).sum(1)
    fp += (found & ~truth).sum(1)
    fn += (~found & truth).sum(1)
  with np.errstate(invalid='ignore', divide='ignore'):
    f_score = np.nan_to_num(2 * tp / (2 * tp + fp + fn))
  best = int(np.argmax(f_score))
  return float(1 - f_score[best]), float(thresholds[best])
