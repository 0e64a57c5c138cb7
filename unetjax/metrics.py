"""Segmentation metrics from one confusion-count accumulator.

`batch_statistics` runs inside the jitted eval step and returns a small pytree
of counts for a batch. Counts from batches, devices or hosts add up with
`merge` (on the host, in int64, so large datasets cannot overflow), and
`summarize` turns the total into named metrics. Dataset-level ("micro")
scores come from the summed counts; `dice_per_image` is the mean over images
("macro"), the other convention in published results.

Empty classes: a class with no pixels in the labels and the predictions has
an undefined score (0/0). Dataset-level it is reported as NaN and left out of
the means over classes; per image it is left out of the per-image mean.
"""

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

Stats = dict[str, jax.Array]


def predict_classes(logits: jax.Array, threshold: float = 0.5) -> jax.Array:
  """Class ids (N, H, W): sigmoid(logit) > threshold if C == 1, else argmax."""
  if logits.shape[-1] == 1:
    probabilities = jax.nn.sigmoid(logits[..., 0].astype(jnp.float32))
    return (probabilities > threshold).astype(jnp.int32)
  return jnp.argmax(logits, axis=-1).astype(jnp.int32)


def n_label_classes(logits: jax.Array) -> int:
  """Binary models (one logit) still have two label classes."""
  return max(2, logits.shape[-1])


def per_image_counts(predictions: jax.Array, labels: jax.Array,
                     n_classes: int) -> Stats:
  """True positives, false positives and false negatives, shape (N, C)."""
  pred = jax.nn.one_hot(predictions, n_classes, dtype=jnp.int32)
  true = jax.nn.one_hot(labels, n_classes, dtype=jnp.int32)
  tp = jnp.sum(pred * true, axis=(1, 2))
  return {'tp': tp,
          'fp': jnp.sum(pred, axis=(1, 2)) - tp,
          'fn': jnp.sum(true, axis=(1, 2)) - tp}


def batch_statistics(logits: jax.Array, labels: jax.Array,
                     valid: jax.Array | None = None,
                     threshold: float = 0.5) -> Stats:
  """Counts for one batch; `valid` (N,) drops padding images."""
  n_classes = n_label_classes(logits)
  counts = per_image_counts(predict_classes(logits, threshold), labels, n_classes)
  if valid is None:
    valid = jnp.ones(labels.shape[0], bool)
  weight = valid.astype(jnp.int32)[:, None]
  tp, fp, fn = (counts[k] * weight for k in ('tp', 'fp', 'fn'))
  denominator = 2 * tp + fp + fn
  has_class = denominator > 0
  dice = jnp.where(has_class, 2 * tp / jnp.maximum(denominator, 1), 0.0)
  return {
      'tp': tp.sum(0), 'fp': fp.sum(0), 'fn': fn.sum(0),
      'pixels': jnp.sum(valid.astype(jnp.int32)) * labels.shape[1] * labels.shape[2],
      'images': jnp.sum(valid.astype(jnp.int32)),
      'dice_per_image_sum': dice.sum(0).astype(jnp.float32),
      'dice_per_image_count': has_class.sum(0).astype(jnp.int32),
  }


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
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.where(denominator > 0, numerator / np.maximum(denominator, 1), np.nan)


def summarize(total: Mapping[str, np.ndarray],
              class_names: Sequence[str]) -> dict[str, float]:
  """Named metrics; headline scores average the foreground classes (1..C-1)."""
  tp, fp, fn = (np.asarray(total[k], np.float64) for k in ('tp', 'fp', 'fn'))
  per_class = {
      'dice': _ratio(2 * tp, 2 * tp + fp + fn),
      'iou': _ratio(tp, tp + fp + fn),
      'precision': _ratio(tp, tp + fp),
      'recall': _ratio(tp, tp + fn),
      'dice_per_image': _ratio(total['dice_per_image_sum'],
                               total['dice_per_image_count']),
  }
  metrics = {'pixel_accuracy': float(tp.sum() / total['pixels'])}
  for name, values in per_class.items():
    foreground = values[1:]
    metrics[name] = (float(np.nanmean(foreground))
                     if np.isfinite(foreground).any() else float('nan'))
    if len(class_names) > 2:
      for class_name, value in zip(class_names, values):
        metrics[f'{name}/{class_name}'] = float(value)
  return metrics
