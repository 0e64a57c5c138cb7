"""A dataset's fingerprint: what its training split holds, measured once on
the host (nnU-Net's "dataset fingerprint", Isensee et al. 2021, extended with
the objects and structure widths that decide resizing).

Intensities are those the model sees (the built dataset's uint8 pixels,
after a builder's 16-bit or float window). Class fractions, objects and
widths are counted inside the region of interest where the dataset has one.
"""

from typing import Any, Iterable

import ml_collections
import numpy as np
from PIL import Image
from scipy import ndimage

from unetjax import tasks
from unetjax.data import pipeline
from unetjax.data.builders import image_masks

PERCENTILES = (0.5, 50.0, 99.5)  # nnU-Net clips CT to the 0.5 / 99.5 percentiles
RAW_SAMPLE = 200_000  # values drawn per image for the raw percentiles


def raw_intensity(dataset_config: ml_collections.ConfigDict) -> dict[str, Any] | None:
  """The training images' own values where the files hold more than 8 bits
  (16-bit or 32-bit integers, floats), before any scaling to 8 bits: their
  0.5 / 50 / 99.5 percentiles, min and max (over at most RAW_SAMPLE values
  per image, drawn with a fixed seed), and how many of the files are such.
  None when none is."""
  rng = np.random.default_rng(0)
  samples, files, modes = [], pipeline.folder_image_files(dataset_config, 'train'), set()
  for path in files:
    with Image.open(path) as image:
      if image.mode not in image_masks.HIGH_DEPTH_MODES:
        continue
      modes.add(image.mode)
      values = np.asarray(image).ravel()
    values = values[np.isfinite(values)] if values.dtype.kind == 'f' else values
    if values.size > RAW_SAMPLE:
      values = rng.choice(values, RAW_SAMPLE, replace=False)
    samples.append(values.astype(np.float64))
  if not samples:
    return None
  values = np.concatenate(samples)
  return {'modes': sorted(modes), 'files': len(samples), 'of_files': len(files),
          'min': float(values.min()), 'max': float(values.max()),
          **dict(zip(('p0.5', 'p50', 'p99.5'), map(float, np.percentile(values, PERCENTILES))))}


def _spread(values: Iterable[float]) -> dict[str, float]:
  values = np.asarray(list(values), np.float64)
  if values.size == 0:
    return {'median': float('nan'), 'min': float('nan'), 'max': float('nan')}
  return {'median': float(np.median(values)), 'min': float(values.min()),
          'max': float(values.max())}


def histogram_percentiles(counts: np.ndarray, percentiles: Iterable[float]
                          ) -> list[float]:
  """Percentiles of integer values 0..len(counts)-1 given their counts, as
  numpy's 'inverted_cdf' method (the smallest value whose cumulative share
  reaches the percentile)."""
  cumulative = np.cumsum(counts, dtype=np.float64)
  total = cumulative[-1]
  return [float(np.searchsorted(cumulative, p / 100.0 * total, side='left'))
          for p in percentiles]


def class_distances(mask: np.ndarray, roi: np.ndarray, n_classes: int
                    ) -> list[np.ndarray]:
  """Per class, each pixel's Euclidean distance to the nearest pixel of
  another class, inside the roi."""
  out = []
  for c in range(n_classes):
    inside = mask == c
    if not inside.any() or inside.all():
      out.append(np.zeros(0))
      continue
    distance = ndimage.distance_transform_edt(inside)
    out.append(distance[inside & roi])
  return out


def structure_width(mean_distance: float) -> float:
  """The width in pixels of a class's typical structure (vessels, membranes)
  from its pixels' mean distance to another class: across a band of width w
  the distances are 1, 2, ..., w/2, w/2, ..., 1 (mean w/4 + 1/2), so
  4 * (mean - 1/2) is exact for bands of even width."""
  return 4 * (mean_distance - 0.5)


def measure_segmentation(examples: Iterable[dict[str, np.ndarray]],
                         n_classes: int) -> dict[str, Any]:
  """The fingerprint of segmentation examples (image uint8 (H, W, C), mask
  (H, W) class ids, optional roi (H, W))."""
  sizes, roi_share, objects_per_image = [], [], []
  object_sizes: list[float] = []
  intensity_counts = None
  class_pixels = np.zeros(n_classes, np.int64)
  width_samples: list[list[np.ndarray]] = [[] for _ in range(n_classes)]
  dtype = channels = None
  for ex in examples:
    image, mask = ex['image'], np.asarray(ex['mask'])
    roi = np.asarray(ex['roi'], bool) if 'roi' in ex else np.ones(mask.shape, bool)
    dtype, channels = image.dtype, image.shape[-1]
    sizes.append(image.shape[:2])
    roi_share.append(roi.mean())
    levels = 256 if image.dtype == np.uint8 else 65536
    per_channel = np.stack([np.bincount(image[..., c][roi].ravel().astype(np.int64),
                                        minlength=levels)[:levels]
                            for c in range(channels)])
    intensity_counts = (per_channel if intensity_counts is None
                        else intensity_counts + per_channel)
    class_pixels += np.bincount(mask[roi].ravel().astype(np.int64),
                                minlength=n_classes)[:n_classes]
    labelled, n = ndimage.label((mask > 0) & roi)
    objects_per_image.append(n)
    if n:
      object_sizes.extend(np.bincount(labelled.ravel())[1:].tolist())
    for c, distances in enumerate(class_distances(mask, roi, n_classes)):
      width_samples[c].append(distances)
  if not sizes:
    raise ValueError('no examples to measure')
  heights, widths = zip(*sizes)
  fractions = class_pixels / max(class_pixels.sum(), 1)
  mean_distance = [float(np.mean(np.concatenate(s))) if sum(map(len, s))
                   else float('nan') for s in width_samples]
  return {
      'task': tasks.SEGMENTATION,
      'n_images': len(sizes),
      'height': _spread(heights),
      'width': _spread(widths),
      'channels': int(channels),
      'bit_depth': int(np.dtype(dtype).itemsize * 8),
      'intensity': [dict(zip(('p0.5', 'p50', 'p99.5'),
                             histogram_percentiles(counts, PERCENTILES)),
                         mean=float(np.average(np.arange(len(counts)),
                                               weights=counts)))
                    for counts in intensity_counts],
      'class_fractions': [float(f) for f in fractions],
      'objects_per_image': _spread(objects_per_image),
      'object_pixels': _spread(object_sizes),
      'structure_width': [structure_width(d) for d in mean_distance],
      'roi_coverage': float(np.mean(roi_share)),
  }


def measure_classification(examples: Iterable[dict[str, np.ndarray]],
                           n_classes: int) -> dict[str, Any]:
  """The fingerprint of classification examples (image, label)."""
  sizes, counts = [], np.zeros(n_classes, np.int64)
  intensity_counts = None
  channels = None
  for ex in examples:
    image = ex['image']
    channels = image.shape[-1]
    sizes.append(image.shape[:2])
    counts[int(ex['label'])] += 1
    per_channel = np.stack([np.bincount(image[..., c].ravel(), minlength=256)[:256]
                            for c in range(channels)])
    intensity_counts = (per_channel if intensity_counts is None
                        else intensity_counts + per_channel)
  if not sizes:
    raise ValueError('no examples to measure')
  heights, widths = zip(*sizes)
  return {
      'task': tasks.CLASSIFICATION,
      'n_images': len(sizes),
      'height': _spread(heights),
      'width': _spread(widths),
      'channels': int(channels),
      'bit_depth': 8,
      'intensity': [dict(zip(('p0.5', 'p50', 'p99.5'),
                             histogram_percentiles(c, PERCENTILES)))
                    for c in intensity_counts],
      'class_fractions': [float(c) for c in counts / counts.sum()],
  }


def measure(dataset_config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Builds the dataset if needed and fingerprints its training split, with
  the sizes of its splits and its name."""
  info = pipeline.prepare(dataset_config)
  examples = pipeline.examples(dataset_config, 'train')
  n_classes = len(info.class_names)
  if info.task == tasks.CLASSIFICATION:
    result = measure_classification(examples, n_classes)
  else:
    result = measure_segmentation(examples, n_classes)
  return {'dataset': info.name, 'class_names': list(info.class_names),
          # None sides: images stored at their own sizes, trained on patches.
          'stored_shape': list(info.image_shape),
          'split_sizes': dict(info.split_sizes), 'has_roi': info.has_roi,
          'has_instances': info.has_instances, **result}
