"""PNG figures of runs: training curves, example predictions, and the
confusion matrix and ROC curves of classifiers.

matplotlib is imported inside the functions, with the Agg backend, so
importing this module costs nothing and plots need no display.
"""

from typing import Any, Mapping, Sequence

import numpy as np

Records = Sequence[Mapping[str, Any]]


def pyplot():
  """matplotlib.pyplot with the Agg backend (no display needed)."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  return plt


def curve(records: Records, event: str, key: str,
          split: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Steps and values of `key` in the `event` records (of `split`), as in
  `unetjax.logs.read_metrics`; records without a finite value are skipped."""
  points = [(r['step'], r[key]) for r in records
            if r['event'] == event and (split is None or r.get('split') == split)
            and isinstance(r.get(key), (int, float)) and np.isfinite(r[key])]
  steps, values = zip(*points) if points else ((), ())
  return np.asarray(steps, np.int64), np.asarray(values, np.float64)


def plot_curves(path: str, runs: Mapping[str, Records],
                metric: str = 'dice') -> None:
  """Writes a PNG with two panels against step: training and validation loss,
  and the validation `metric`, one line per run (label: the run's name)."""
  plt = pyplot()
  figure, (loss_axes, metric_axes) = plt.subplots(1, 2, figsize=(10, 4))
  for name, records in runs.items():
    prefix = f'{name} ' if name else ''
    for event, split, style in (('train', 'train', '-'),
                                ('eval', 'validation', '--')):
      steps, values = curve(records, event, 'loss', split)
      if len(steps):
        loss_axes.plot(steps, values, style, marker='.',
                       label=f'{prefix}{split}')
    steps, values = curve(records, 'eval', metric, 'validation')
    if len(steps):
      metric_axes.plot(steps, values, '--', marker='.',
                       label=f'{prefix}validation')
  for axes, title in ((loss_axes, 'loss'), (metric_axes, metric)):
    axes.set_xlabel('step')
    axes.set_title(title)
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
      axes.legend()
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def plot_predictions(path: str, images: np.ndarray, labels: np.ndarray,
                     predictions: np.ndarray, n_classes: int) -> None:
  """Writes a PNG grid, one row per example: image, ground truth, prediction.

  Args:
    path: the PNG file to write.
    images: (N, H, W, C) uint8, C = 1 or 3.
    labels: (N, H, W) class ids.
    predictions: (N, H, W) class ids.
    n_classes: label classes (2 for binary), fixing the colour scale.
  """
  plt = pyplot()
  n = len(images)
  figure, axes = plt.subplots(n, 3, figsize=(7.5, 2.5 * n), squeeze=False)
  for row in range(n):
    image = images[row]
    panels = ((image[..., 0] if image.shape[-1] == 1 else image, 'image'),
              (labels[row], 'ground truth'), (predictions[row], 'prediction'))
    for column, (values, title) in enumerate(panels):
      ax = axes[row, column]
      if column == 0:
        ax.imshow(values, cmap='gray', vmin=0, vmax=255)
      else:
        ax.imshow(values, cmap='viridis', vmin=0, vmax=max(1, n_classes - 1),
                  interpolation='nearest')
      ax.set_axis_off()
      if row == 0:
        ax.set_title(title)
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def plot_confusion_matrix(path: str, confusion: np.ndarray,
                          class_names: Sequence[str]) -> None:
  """Writes a PNG of a confusion matrix (rows: true class, columns:
  predicted), each cell with its count and its share of the row."""
  plt = pyplot()
  confusion = np.asarray(confusion, np.int64)
  shares = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
  n = len(class_names)
  side = 2 + 0.6 * n
  figure, axes = plt.subplots(figsize=(side + 1, side))
  image = axes.imshow(shares, cmap='Blues', vmin=0, vmax=1)
  for i in range(n):
    for j in range(n):
      axes.text(j, i, f'{confusion[i, j]}\n{shares[i, j]:.0%}', ha='center',
                va='center', fontsize=8,
                color='white' if shares[i, j] > 0.5 else 'black')
  axes.set_xticks(range(n), class_names, rotation=45, ha='right')
  axes.set_yticks(range(n), class_names)
  axes.set_xlabel('predicted')
  axes.set_ylabel('true')
  figure.colorbar(image, ax=axes, label='share of the true class')
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def plot_roc_curves(path: str,
                    curves: Mapping[str, tuple[np.ndarray, np.ndarray, float]]
                    ) -> None:
  """Writes a PNG of one-vs-rest ROC curves: class name -> (false positive
  rates, true positive rates, area), in the legend with its area."""
  plt = pyplot()
  figure, axes = plt.subplots(figsize=(5, 5))
  for name, (fpr, tpr, area) in curves.items():
    axes.plot(fpr, tpr, label=f'{name} (AUROC {area:.3f})')
  axes.plot([0, 1], [0, 1], ':', color='grey')
  axes.set_xlabel('false positive rate')
  axes.set_ylabel('true positive rate')
  axes.set_title('one-vs-rest ROC (test)')
  axes.grid(alpha=0.3)
  axes.legend(loc='lower right')
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)
