"""Image-classification metrics from one accumulator, as unetjax.metrics does
for segmentation: `batch_statistics` runs inside the jitted eval step and
returns sums that add up over batches, devices (`jax.lax.psum`) and hosts
(`metrics.merge`), and `summarize` defines every metric once on the total.

The sums: the confusion matrix (rows: true class, columns: predicted) and,
for each class k, histograms of the one-vs-rest score of k over the images
of class k (positives) and of the other classes (negatives).

- `accuracy`; `balanced_accuracy`, the mean recall over the classes present
  in the labels; per class `precision`, `recall`, `f1` (0 where undefined,
  scikit-learn's zero_division=0) and their means over the classes seen in
  labels or predictions (`macro_precision`, `macro_recall`, `macro_f1`, as
  scikit-learn's average='macro'); `kappa`, Cohen's kappa.
- `auroc`: one-vs-rest area under the ROC curve, the mean over the classes
  that have both positives and negatives (scikit-learn's
  roc_auc_score(multi_class='ovr') needs every class present). Computed from
  the histograms: pairs of a positive and a negative in the same bin count
  one half, so the result is within `auroc_error` (half the share of such
  pairs, reported with it) of the exact value. The score of class k is
  z_k - logsumexp_{j != k} z_j of the logits z, the log-odds of its softmax
  probability, binned uniformly on [-SCORE_RANGE, SCORE_RANGE] so that
  confident predictions stay apart.
"""

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from unetjax.metrics import Stats

SCORE_BINS = 4096
SCORE_RANGE = 16.0


def one_vs_rest_scores(logits: jax.Array) -> jax.Array:
  """(N, K) log-odds of each class's softmax probability (any K >= 2)."""
  others = jnp.where(jnp.eye(logits.shape[-1], dtype=bool)[None],
                     -jnp.inf, logits[:, None, :])  # (N, K, K): row k without k
  return logits - jax.nn.logsumexp(others, axis=-1)


def batch_statistics(logits: jax.Array, labels: jax.Array,
                     valid: jax.Array | None = None) -> Stats:
  """Sums over one batch of logits (N, K) and integer labels (N,); `valid`
  (N,) bool drops padding examples."""
  n_classes = logits.shape[-1]
  logits = logits.astype(jnp.float32)
  if valid is None:
    valid = jnp.ones(labels.shape, bool)
  weight = valid.astype(jnp.int32)
  truth = jax.nn.one_hot(labels, n_classes, dtype=jnp.int32) * weight[:, None]
  predicted = jax.nn.one_hot(jnp.argmax(logits, -1), n_classes, dtype=jnp.int32)
  scaled = (one_vs_rest_scores(logits) + SCORE_RANGE) / (2 * SCORE_RANGE)
  bins = jnp.clip(jnp.floor(scaled * SCORE_BINS), 0, SCORE_BINS - 1).astype(jnp.int32)
  binned = jax.nn.one_hot(bins, SCORE_BINS, dtype=jnp.int32)  # (N, K, B)
  negatives = (1 - truth) * weight[:, None]
  return {
      'confusion': truth.T @ predicted,
      'positive_scores': jnp.einsum('nk,nkb->kb', truth, binned),
      'negative_scores': jnp.einsum('nk,nkb->kb', negatives, binned),
  }


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
  """numerator / denominator, 0 where the denominator is 0."""
  positive = denominator > 0
  return np.where(positive, numerator / np.where(positive, denominator, 1), 0.0)


def binned_auroc(positives: np.ndarray, negatives: np.ndarray) -> tuple[float, float]:
  """AUROC from histograms of the scores of positives and negatives (bins in
  increasing score order), and the bound on its error from ties in a bin."""
  positives, negatives = (np.asarray(x, np.float64) for x in (positives, negatives))
  pairs = positives.sum() * negatives.sum()
  if pairs == 0:
    return float('nan'), float('nan')
  below = np.cumsum(negatives) - negatives  # negatives in lower bins
  same_bin = positives @ negatives
  return (float((positives @ below + 0.5 * same_bin) / pairs),
          float(0.5 * same_bin / pairs))


def roc_curve(positives: np.ndarray, negatives: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, float]:
  """False and true positive rates at each bin edge, from the highest score
  down (from (0, 0) to (1, 1)), and the area `binned_auroc` gives."""
  positives, negatives = (np.asarray(x, np.float64) for x in (positives, negatives))
  tpr = np.concatenate([[0.0], np.cumsum(positives[::-1])]) / max(positives.sum(), 1)
  fpr = np.concatenate([[0.0], np.cumsum(negatives[::-1])]) / max(negatives.sum(), 1)
  return fpr, tpr, binned_auroc(positives, negatives)[0]


def summarize(total: Mapping[str, np.ndarray],
              class_names: Sequence[str]) -> dict[str, float]:
  """Named metrics (see the module docstring), and per class
  '<metric>/<class name>' for precision, recall, F1 and AUROC."""
  confusion = np.asarray(total['confusion'], np.float64)
  n = confusion.sum()
  tp = np.diag(confusion)
  true_count, predicted_count = confusion.sum(1), confusion.sum(0)
  precision = _divide(tp, predicted_count)
  recall = _divide(tp, true_count)
  f1 = _divide(2 * precision * recall, precision + recall)
  seen = (true_count + predicted_count) > 0
  present = true_count > 0
  expected = (true_count @ predicted_count) / n**2 if n else np.nan
  accuracy = tp.sum() / n if n else np.nan
  aurocs = [binned_auroc(p, q) for p, q in zip(total['positive_scores'],
                                                total['negative_scores'])]
  defined = [a for a in aurocs if np.isfinite(a[0])]
  metrics = {
      'accuracy': float(accuracy),
      'balanced_accuracy': float(recall[present].mean()) if present.any() else np.nan,
      'macro_precision': float(precision[seen].mean()) if seen.any() else np.nan,
      'macro_recall': float(recall[seen].mean()) if seen.any() else np.nan,
      'macro_f1': float(f1[seen].mean()) if seen.any() else np.nan,
      'kappa': float((accuracy - expected) / (1 - expected))
               if n and expected < 1 else np.nan,
      'auroc': float(np.mean([a for a, _ in defined])) if defined else np.nan,
      'auroc_error': float(np.mean([e for _, e in defined])) if defined else np.nan,
  }
  for k, name in enumerate(class_names):
    metrics[f'precision/{name}'] = float(precision[k])
    metrics[f'recall/{name}'] = float(recall[k])
    metrics[f'f1/{name}'] = float(f1[k])
    metrics[f'auroc/{name}'] = aurocs[k][0]
  return metrics
