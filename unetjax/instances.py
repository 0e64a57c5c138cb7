"""Instances: objects separated from a foreground mask, the U-Net paper's
border weight map that teaches a network to keep touching objects apart,
and object-level scores of an instance label image against the truth.

Everything here runs on the host, in numpy, scipy and scikit-image:
connected components and the watershed are sequential flood fills that have
no efficient jittable form, and the scores need variable-size matchings.
Label images hold 0 for background and one positive id per object.
"""

import numpy as np
import scipy.ndimage as ndi
import scipy.optimize
from skimage import feature, metrics as sk_metrics, segmentation

from unetjax.errors import ConfigError

# 4-connectivity: objects that touch only at a corner stay apart, and a
# one-pixel membrane separates the regions on either side of it.
FOUR_CONNECTED = ndi.generate_binary_structure(2, 1)


def remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
  """`labels` with the objects of fewer than `min_size` pixels set to 0,
  the rest renumbered 1..K."""
  sizes = np.bincount(labels.ravel())
  keep = sizes >= max(min_size, 1)
  keep[0] = False
  ids = np.zeros(len(sizes), labels.dtype)
  ids[keep] = np.arange(1, keep.sum() + 1)
  return ids[labels]


def connected_components(foreground: np.ndarray, min_size: int = 0) -> np.ndarray:
  """One id per 4-connected region of `foreground` (H, W) bool."""
  labels, _ = ndi.label(foreground, structure=FOUR_CONNECTED)
  return remove_small(labels.astype(np.int32), min_size)


def watershed(foreground: np.ndarray, *, markers: np.ndarray | None = None,
              interior: np.ndarray | None = None, min_distance: int | None = None,
              min_size: int = 0) -> np.ndarray:
  """Marker-controlled watershed of `foreground` on its distance transform.

  The markers are, in this order of precedence: `markers` (a label image),
  the connected components of `interior` (e.g. the interior probability of
  a three-class target above 0.5), or the maxima of the distance transform
  at least `min_distance` pixels apart. Each foreground pixel joins the
  marker it floods from; objects smaller than `min_size` are dropped.
  """
  distance = ndi.distance_transform_edt(foreground)
  if markers is None and interior is not None:
    markers = connected_components(interior & foreground)
  if markers is None and min_distance is not None:
    seeds = connected_components(foreground)
    peaks = feature.peak_local_max(distance, min_distance=min_distance,
                                   labels=seeds, exclude_border=False)
    markers = np.zeros(foreground.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
  if markers is None:
    raise ConfigError('A watershed needs markers: give marker labels, an '
                      'interior mask, or min_distance to seed it at the '
                      'maxima of the distance transform.')
  labels = segmentation.watershed(-distance, markers, mask=foreground)
  return remove_small(labels.astype(np.int32), min_size)


# How objects are read from a predicted class map (DatasetInfo.objects):
# - 'foreground': the 4-connected regions of any class but background;
# - 'background': the 4-connected regions of the background class, which
#   thin foreground structures (cell membranes in EM) separate, each grown
#   over the foreground pixels nearest to it, so that the width of the
#   predicted borders does not count, only where they part or join regions
#   (as the ISBI 2012 challenge thinned borders before its Rand scores);
# - 'three_class': a watershed of the foreground (interior or border class)
#   from the connected interiors (class 1), for the background / interior /
#   border target (`three_class_target`).
OBJECT_RULES = ('foreground', 'background', 'three_class')


def objects_in(predicted: np.ndarray, rule: str = 'foreground',
               min_size: int = 0) -> np.ndarray:
  """The objects (a label image) of one (H, W) map of predicted class ids,
  read by `rule` (one of OBJECT_RULES)."""
  if rule == 'foreground':
    return connected_components(predicted > 0, min_size)
  if rule == 'background':
    regions = connected_components(predicted == 0, min_size)
    return segmentation.expand_labels(regions, distance=sum(regions.shape))
  if rule == 'three_class':
    return watershed(predicted > 0, interior=predicted == 1, min_size=min_size)
  raise ConfigError(f'Unknown object rule {rule!r}; one of {OBJECT_RULES}.')


# The classes of the three-class target.
THREE_CLASS_NAMES = ('background', 'interior', 'border')


def three_class_target(ids: np.ndarray) -> np.ndarray:
  """Background (0) / interior (1) / border (2) of a label image, the
  alternative to the border weight map for keeping touching objects apart:
  a border pixel is an object pixel with a 4-neighbour outside its object
  (scikit-image's inner boundaries), so touching objects are parted by two
  border pixels and their interiors never touch."""
  borders = segmentation.find_boundaries(ids, connectivity=1, mode='inner')
  return np.where(ids > 0, np.where(borders, 2, 1), 0).astype(np.uint8)


def border_weight_map(instances: np.ndarray, w0: float = 10.0,
                      sigma: float = 5.0) -> np.ndarray:
  """The U-Net paper's pixel weights (Ronneberger et al. 2015, eq. 2):
  w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 sigma**2)) on background
  pixels, where d1 and d2 are the distances to the nearest and the second
  nearest object, and w_c balances the classes: each pixel weighs
  n / (2 n_class), so background and foreground carry equal total weight.
  The paper's w0 = 10 and sigma = 5 pixels are the defaults."""
  foreground = instances > 0
  n, n_foreground = foreground.size, int(foreground.sum())
  weights = np.ones(instances.shape, np.float64)
  if 0 < n_foreground < n:
    weights = np.where(foreground, n / (2 * n_foreground),
                       n / (2 * (n - n_foreground)))
  ids = np.unique(instances[foreground])
  if len(ids) < 2:
    return weights.astype(np.float32)
  distances = np.sort(np.stack([ndi.distance_transform_edt(instances != i)
                                for i in ids]), axis=0)
  border = w0 * np.exp(-(distances[0] + distances[1])**2 / (2 * sigma**2))
  return (weights + np.where(foreground, 0.0, border)).astype(np.float32)


def overlaps(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The pixel counts of every (true object, predicted object) intersection
  (T, P), and the sizes of the true (T,) and predicted (P,) objects, in the
  order of their sorted ids."""
  true_ids, true_index = np.unique(true, return_inverse=True)
  pred_ids, pred_index = np.unique(pred, return_inverse=True)
  table = np.bincount(true_index.ravel() * len(pred_ids) + pred_index.ravel(),
                      minlength=len(true_ids) * len(pred_ids)).reshape(
                          len(true_ids), len(pred_ids))
  t = slice(1, None) if true_ids[0] == 0 else slice(None)
  p = slice(1, None) if pred_ids[0] == 0 else slice(None)
  return table[t, p], table[t].sum(1), table[:, p].sum(0)


def _first_pixels(ids: np.ndarray) -> np.ndarray:
  """The raster index of the first pixel of each id, in sorted id order."""
  return np.unique(ids.ravel(), return_index=True)[1]


def object_scores(true: np.ndarray, pred: np.ndarray,
                  iou_threshold: float = 0.5) -> dict[str, float]:
  """Sums of one image's object-level scores, to add over images.

  Object precision, recall and F1 (tp, fp, fn): the one-to-one assignment of
  predicted to true objects that maximises the total IoU among pairs with
  IoU >= iou_threshold (a pair at exactly the threshold matches: at 0.5
  two exact halves tie, and the assignment counts one of them).

  Panoptic quality (pq_tp, pq_fp, pq_fn, pq_iou, the IoU sum of its
  matches): pairs with IoU > 0.5, strictly (Kirillov et al. 2019, sec. 4.1;
  panopticapi's `iou > 0.5`), the only threshold at which each object has at
  most one partner, so no assignment is needed. An object split in exact
  halves matches nothing.

  AJI's intersection and union (Kumar et al. 2017, as HoVer-Net's
  get_fast_aji computes it: each true object with the predicted object of
  highest IoU, or alone if it overlaps none, plus every predicted object no
  true object chose; of predicted objects tied at the highest IoU, the one
  whose first pixel comes first in raster order)."""
  inter, true_sizes, pred_sizes = overlaps(true, pred)
  union = true_sizes[:, None] + pred_sizes[None, :] - inter
  iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
  rows, cols = scipy.optimize.linear_sum_assignment(
      np.where(iou >= iou_threshold, iou, 0.0), maximize=True)
  tp = int((iou[rows, cols] >= iou_threshold).sum())
  panoptic = iou[iou > 0.5]
  scores = {'tp': tp, 'fp': len(pred_sizes) - tp, 'fn': len(true_sizes) - tp,
            'pq_tp': panoptic.size, 'pq_fp': len(pred_sizes) - panoptic.size,
            'pq_fn': len(true_sizes) - panoptic.size,
            'pq_iou': float(panoptic.sum())}
  rows_all = np.arange(len(true_sizes))
  if len(pred_sizes):
    # Ties go to the predicted object met first in raster order, so that
    # renumbering the objects changes nothing (argmax alone takes the lowest
    # id); the last len(pred_sizes) ids are the objects, without background.
    raster = np.argsort(_first_pixels(pred)[-len(pred_sizes):])
    best, paired = raster[iou[:, raster].argmax(1)], iou.max(1) > 0
  else:
    best = np.zeros(len(true_sizes), int)
    paired = np.zeros(len(true_sizes), bool)
  pairs = (rows_all[paired], best[paired])
  unused = np.setdiff1d(np.arange(len(pred_sizes)), best[paired])
  scores['aji_intersection'] = float(inter[pairs].sum())
  scores['aji_union'] = float(union[pairs].sum() + true_sizes[~paired].sum()
                              + pred_sizes[unused].sum())
  return scores


def class_object_scores(true: np.ndarray, true_classes: np.ndarray,
                        predicted_classes: np.ndarray, n_classes: int,
                        iou_threshold: float = 0.5) -> dict[str, float]:
  """One image's matches per foreground class c (1..n_classes - 1), for
  panoptic quality per class (Kirillov et al. 2019): the true objects of
  class c (each object's class is the one most of its pixels hold in
  `true_classes`) against the 4-connected regions predicted as c. Returns
  'pq_tp/c', 'pq_fp/c', 'pq_fn/c' and 'pq_iou/c' (c the class id)."""
  majority = np.zeros(int(true.max()) + 1, np.int64)
  if majority.size > 1:
    counts = np.zeros((majority.size, n_classes), np.int64)
    np.add.at(counts, (true.ravel(), np.clip(true_classes.ravel(), 0, n_classes - 1)), 1)
    majority = counts.argmax(1)
  scores = {}
  for c in range(1, n_classes):
    of_class = np.where((true > 0) & (majority[true] == c), true, 0)
    found = connected_components(predicted_classes == c)
    matched = object_scores(of_class, found, iou_threshold)
    scores.update({f'{key}/{c}': matched[key] for key in _PANOPTIC})
  return scores


def rand_and_information(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
  """The ISBI 2012 challenge's measures of one image, from scikit-image:
  the adapted Rand error (true background ignored, so undefined, NaN, where
  the truth has no foreground) and the variation of information (the sum of
  the split and merge conditional entropies over all labels, background
  included, in bits: scikit-image takes log2), defined on every image, an
  empty truth with false positives included (Meila 2007)."""
  split, merge = sk_metrics.variation_of_information(true, pred)
  error = (sk_metrics.adapted_rand_error(true, pred)[0] if (true > 0).any()
           else float('nan'))
  return {'adapted_rand_error': float(error),
          'variation_of_information': float(split + merge)}


# Per-image scores that `totals` adds up, and the means it counts.
_PANOPTIC = ('pq_tp', 'pq_fp', 'pq_fn', 'pq_iou')
_SUMMED = ('tp', 'fp', 'fn') + _PANOPTIC
_MEANS = ('aji', 'adapted_rand_error', 'variation_of_information')


def totals(per_image: list[dict[str, float]]) -> dict[str, float]:
  """Sums over images of `object_scores` (and `rand_and_information` and
  `class_object_scores`) results, which add over batches and processes: the
  matches, and the sum and count of each per-image mean over the images
  where it is defined (an image with no objects in either mask has no AJI)."""
  nan = float('nan')
  summed = list(_SUMMED) + sorted(
      {k for s in per_image for k in s if k.split('/')[0] in _SUMMED and '/' in k})
  out = {k: float(sum(s.get(k, 0.0) for s in per_image)) for k in summed}
  values = {
      'aji': [s['aji_intersection'] / s['aji_union'] for s in per_image
              if s['aji_union'] > 0],
      'adapted_rand_error': [s.get('adapted_rand_error', nan) for s in per_image],
      'variation_of_information': [s.get('variation_of_information', nan)
                                   for s in per_image]}
  for name in _MEANS:
    finite = [v for v in values[name] if np.isfinite(v)]
    out[f'{name}_sum'], out[f'{name}_count'] = float(sum(finite)), float(len(finite))
  return out


def _panoptic(tp: float, fp: float, fn: float,
              matched_iou: float) -> dict[str, float]:
  """SQ, RQ and PQ = SQ x RQ (Kirillov et al. 2019, eq. 2): SQ is undefined
  without a match, PQ and RQ without any object in either mask."""
  nan = float('nan')
  sq = matched_iou / tp if tp else nan
  rq = tp / (tp + fp / 2 + fn / 2) if tp + fp + fn else nan
  return {'sq': sq, 'rq': rq, 'pq': sq * rq if tp else (0.0 if fp + fn else nan)}


def summarize_totals(total: dict[str, float],
                     class_names: tuple[str, ...] = ()) -> dict[str, float]:
  """Object precision, recall and F1, SQ, RQ and PQ from the matches pooled
  over images; AJI, adapted Rand error and VI as means over images.

  With per-class matches (`class_object_scores`, more than two
  `class_names`), SQ, RQ and PQ are also given per class as 'pq/<class
  name>' ..., and the plain names are their means over the classes that
  occur, true or predicted (Kirillov et al.'s multi-class PQ). A class that
  occurs without a match counts SQ 0 in the mean, as panopticapi's
  `pq_average` counts it (the paper is silent), though its own 'sq/<name>'
  stays undefined; object F1, AJI and the rest count objects whatever their
  class."""
  tp, fp, fn = total['tp'], total['fp'], total['fn']
  nan = float('nan')
  result = {
      'object_precision': tp / (tp + fp) if tp + fp else nan,
      'object_recall': tp / (tp + fn) if tp + fn else nan,
      'object_f1': 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else nan,
      **_panoptic(*(total[k] for k in _PANOPTIC)),
  }
  per_class = {
      name: _panoptic(*(total[f'{k}/{c}'] for k in _PANOPTIC))
      for c, name in enumerate(class_names) if f'pq_tp/{c}' in total}
  if per_class:
    occurring = [scores for scores in per_class.values() if np.isfinite(scores['rq'])]
    for key in ('sq', 'rq', 'pq'):
      values = [np.nan_to_num(scores[key]) for scores in occurring]
      result[key] = float(np.mean(values)) if values else nan
      result.update({f'{key}/{name}': scores[key]
                     for name, scores in per_class.items()})
  for name in _MEANS:
    count = total[f'{name}_count']
    result[name] = total[f'{name}_sum'] / count if count else nan
  return result


def summarize(per_image: list[dict[str, float]],
              class_names: tuple[str, ...] = ()) -> dict[str, float]:
  """`summarize_totals` of the `totals` of `per_image`."""
  return summarize_totals(totals(per_image), class_names)
