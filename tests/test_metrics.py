"""Metrics against scikit-learn, medpy, scipy and scikit-image, on real masks
committed in tests/data with random perturbations, and their properties."""

import functools
import glob
import os

import chex
import jax
import jax.numpy as jnp
import medpy.metric.binary as medpy_binary
import numpy as np
import pytest
from absl.testing import parameterized
from hypothesis import given, settings, strategies as st
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from PIL import Image
from scipy import ndimage
from skimage import segmentation
from sklearn import metrics as skm

from unetjax import metrics

SIZE = 96  # crops of the real masks, small enough for quick distance maps


def load_masks(folder):
  """Binary (N, SIZE, SIZE) masks: ISBI membranes, Kvasir polyps, DRIVE vessels."""
  files = (sorted(glob.glob(os.path.join(folder, 'isbi2012_em/masks/*.png')))[:2]
           + sorted(glob.glob(os.path.join(folder, 'kvasir_seg/masks/*.jpg')))[:3]
           + sorted(glob.glob(os.path.join(folder, 'drive/masks/*.gif')))[:2])
  masks = []
  for path in files:
    image = np.asarray(Image.open(path).convert('L'))
    foreground = image < 128 if 'isbi' in path else image > 127  # membranes
    h, w = foreground.shape
    top, left = (h - 2 * SIZE) // 2, (w - 2 * SIZE) // 2
    crop = foreground[top:top + 2 * SIZE:2, left:left + 2 * SIZE:2]
    assert 0.02 < crop.mean() < 0.98, path  # has both classes
    masks.append(crop)
  return np.stack(masks)


def perturb(masks, rng):
  """Plausible predictions: grown or shrunk, shifted, with speckle noise."""
  out = []
  for mask in masks:
    op = rng.choice([ndimage.binary_dilation, ndimage.binary_erosion])
    pred = op(mask, iterations=int(rng.integers(1, 3)))
    pred = np.roll(pred, tuple(rng.integers(-3, 4, 2)), axis=(0, 1))
    pred ^= rng.random(mask.shape) < 0.01
    out.append(pred)
  return np.stack(out)


@pytest.fixture(scope='module')
def real_case(real_fixtures):
  labels = load_masks(real_fixtures).astype(np.int32)
  predictions = perturb(labels.astype(bool), np.random.default_rng(0))
  logits = np.where(predictions, 3.0, -3.0).astype(np.float32)[..., None]
  return logits, labels, predictions.astype(np.int32)


def multiclass_case(rng, shape=(6, 24, 24), n_classes=4, noise=0.3):
  labels = rng.integers(0, n_classes, shape)
  flip = rng.random(shape) < noise
  predicted = np.where(flip, rng.integers(0, n_classes, shape), labels)
  logits = np.eye(n_classes)[predicted] * 3 + rng.normal(0, 0.1, shape + (n_classes,))
  return logits.astype(np.float32), labels, predicted


def summarize(logits, labels, class_names=('background', 'foreground'), **kw):
  stats = jax.jit(functools.partial(metrics.batch_statistics, **kw))(logits, labels)
  return metrics.summarize(metrics.merge(None, stats), class_names)


# --- references --------------------------------------------------------------

def reference_boundary(mask):
  """medpy's boundary: the mask minus its erosion by a cross, border outside."""
  return mask ^ ndimage.binary_erosion(mask, ndimage.generate_binary_structure(2, 1))


def reference_surface(pred, true, tolerance):
  """BF from scipy distance transforms; HD95 from medpy's directed surface
  distances (larger of the two 95th percentiles); ASSD = medpy.assd."""
  directed = getattr(medpy_binary, '__surface_distances')
  to_true, to_pred = directed(pred, true), directed(true, pred)
  bp, bt = reference_boundary(pred), reference_boundary(true)
  precision = np.mean(ndimage.distance_transform_edt(~bt)[bp] <= tolerance)
  recall = np.mean(ndimage.distance_transform_edt(~bp)[bt] <= tolerance)
  bf = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
  return {'boundary_f1': bf,
          'hd95': max(np.percentile(to_true, 95), np.percentile(to_pred, 95)),
          'assd': medpy_binary.assd(pred, true)}


# --- dataset-level counts ----------------------------------------------------

def test_counts_based_metrics_match_scikit_learn_on_real_masks(real_case):
  logits, labels, predicted = real_case
  result = summarize(logits, labels)
  y_true, y_pred = labels.ravel(), predicted.ravel()
  for ours, reference in [('dice', skm.f1_score), ('iou', skm.jaccard_score),
                          ('precision', skm.precision_score),
                          ('recall', skm.recall_score)]:
    np.testing.assert_allclose(result[ours], reference(y_true, y_pred),
                               rtol=1e-6, atol=1e-6, err_msg=ours)
  np.testing.assert_allclose(result['miou'], skm.jaccard_score(
      y_true, y_pred, average='macro'), rtol=1e-6)
  np.testing.assert_allclose(result['pixel_accuracy'],
                             skm.accuracy_score(y_true, y_pred), rtol=1e-6)
  np.testing.assert_allclose(result['mean_pixel_accuracy'],
                             skm.balanced_accuracy_score(y_true, y_pred), rtol=1e-6)


def test_multiclass_metrics_match_scikit_learn():
  logits, labels, predicted = multiclass_case(np.random.default_rng(0))
  names = ['background', 'a', 'b', 'c']
  result = summarize(logits, labels, names)
  y_true, y_pred = labels.ravel(), predicted.ravel()
  foreground = [1, 2, 3]
  for ours, reference in [('dice', skm.f1_score), ('iou', skm.jaccard_score),
                          ('precision', skm.precision_score),
                          ('recall', skm.recall_score)]:
    np.testing.assert_allclose(
        result[ours], reference(y_true, y_pred, labels=foreground, average='macro'),
        rtol=1e-6, err_msg=ours)
    per_class = reference(y_true, y_pred, labels=range(4), average=None)
    for name, expected in zip(names, per_class):
      np.testing.assert_allclose(result[f'{ours}/{name}'], expected, rtol=1e-6)
  np.testing.assert_allclose(result['miou'], skm.jaccard_score(
      y_true, y_pred, average='macro'), rtol=1e-6)
  np.testing.assert_allclose(result['mean_pixel_accuracy'],
                             skm.balanced_accuracy_score(y_true, y_pred), rtol=1e-6)


def test_counts_match_scikit_learn_confusion_matrix():
  logits, labels, predicted = multiclass_case(np.random.default_rng(1))
  stats = metrics.merge(None, metrics.batch_statistics(logits, labels,
                                                       surface_metrics=False))
  matrix = skm.confusion_matrix(labels.ravel(), predicted.ravel(), labels=range(4))
  np.testing.assert_array_equal(stats['tp'], np.diag(matrix))
  np.testing.assert_array_equal(stats['fp'], matrix.sum(0) - np.diag(matrix))
  np.testing.assert_array_equal(stats['fn'], matrix.sum(1) - np.diag(matrix))
  assert stats['pixels'] == labels.size


def test_per_image_scores_are_means_of_scikit_learn_per_image(real_case):
  logits, labels, predicted = real_case
  result = summarize(logits, labels)
  for ours, reference in [('dice_per_image', skm.f1_score),
                          ('iou_per_image', skm.jaccard_score)]:
    expected = np.mean([reference(t.ravel(), p.ravel())
                        for t, p in zip(labels, predicted)])
    np.testing.assert_allclose(result[ours], expected, rtol=1e-6, err_msg=ours)


def test_pixel_mask_restricts_every_count(real_case):
  logits, labels, predicted = real_case
  mask = np.zeros(labels.shape, bool)
  mask[:, 10:70, 20:90] = True  # e.g. a field of view
  result = summarize(logits, labels, mask=mask, surface_metrics=False)
  y_true, y_pred = labels[mask], predicted[mask]
  np.testing.assert_allclose(result['dice'], skm.f1_score(y_true, y_pred), rtol=1e-6)
  np.testing.assert_allclose(result['pixel_accuracy'],
                             skm.accuracy_score(y_true, y_pred), rtol=1e-6)


# --- boundaries and distances ------------------------------------------------

def test_boundary_matches_scipy_and_scikit_image(real_case):
  _, labels, predicted = real_case
  masks = np.concatenate([labels, predicted]).astype(bool)
  ours = np.asarray(metrics.boundary(jnp.asarray(masks)))
  for mask, boundary in zip(masks, ours):
    np.testing.assert_array_equal(boundary, reference_boundary(mask))
    padded = np.pad(mask, 1)  # scikit-image's border is not outside: pad it
    skimage = segmentation.find_boundaries(padded, connectivity=1, mode='inner')
    np.testing.assert_array_equal(boundary, skimage[1:-1, 1:-1])


def test_distance_map_is_scipy_euclidean_distance_transform(real_case):
  _, labels, _ = real_case
  for mask in labels.astype(bool):
    points = reference_boundary(mask)
    np.testing.assert_allclose(metrics.distance_to(jnp.asarray(points)),
                               ndimage.distance_transform_edt(~points), rtol=1e-6)


@pytest.mark.parametrize('tolerance', [0.0, 1.5, 3.0])
def test_surface_scores_match_medpy_and_scipy_on_real_masks(real_case, tolerance):
  _, labels, predicted = real_case
  for true, pred in zip(labels.astype(bool), predicted.astype(bool)):
    ours = jax.jit(metrics.surface_scores, static_argnums=2)(pred, true, tolerance)
    expected = reference_surface(pred, true, tolerance)
    for name, value in expected.items():
      np.testing.assert_allclose(ours[name], value, rtol=1e-5, err_msg=name)


def test_surface_metrics_average_per_image_scores(real_case):
  logits, labels, predicted = real_case
  result = summarize(logits, labels, boundary_tolerance=2.0)
  per_image = [reference_surface(p, t, 2.0) for t, p in
               zip(labels.astype(bool), predicted.astype(bool))]
  for name in ('boundary_f1', 'hd95', 'assd'):
    np.testing.assert_allclose(result[name], np.mean([s[name] for s in per_image]),
                               rtol=1e-5, err_msg=name)


def test_empty_mask_conventions():
  empty = np.zeros((16, 16), bool)
  blob = empty.copy()
  blob[4:9, 5:11] = True
  neither = metrics.surface_scores(empty, empty, 2.0)
  assert all(np.isnan(float(v)) for v in neither.values())
  for pred, true in [(blob, empty), (empty, blob)]:  # one side missing
    scores = metrics.surface_scores(pred, true, 2.0)
    assert float(scores['boundary_f1']) == 0.0
    assert float(scores['hd95']) == pytest.approx(np.hypot(16, 16))
    assert float(scores['assd']) == pytest.approx(np.hypot(16, 16))
  # Per image: the empty image is left out; dataset-level: its class is fine.
  labels = np.stack([blob, empty]).astype(np.int32)
  logits = np.where(labels == 1, 5.0, -5.0)[..., None]
  result = summarize(logits, labels)
  assert result['dice'] == result['dice_per_image'] == result['boundary_f1'] == 1.0
  assert result['hd95'] == result['assd'] == 0.0


def test_class_absent_everywhere_is_nan_and_left_out_of_the_means():
  labels = np.zeros((1, 8, 8), int)
  labels[0, 2:4, 2:5] = 1
  logits = np.eye(3)[labels] * 5.0  # perfect; class 2 never occurs
  result = summarize(logits, labels, ('background', 'one', 'two'))
  assert np.isnan(result['dice/two']) and np.isnan(result['hd95/two'])
  assert result['dice'] == result['miou'] == result['boundary_f1'] == 1.0


def test_hand_computed_binary_case():
  # labels: 1 1 0 0   prediction (logit > 0): 1 0 0 1  -> TP 1, FP 1, FN 1
  labels = np.array([[[1, 1, 0, 0]]])
  logits = np.array([[[3.0, -1.0, -2.0, 0.5]]])[..., None]
  result = summarize(logits, labels, surface_metrics=False)
  assert result['dice'] == pytest.approx(0.5)
  assert result['iou'] == pytest.approx(1 / 3)
  assert result['pixel_accuracy'] == pytest.approx(0.5)
  assert result['miou'] == pytest.approx((1 / 3 + 1 / 3) / 2)


def test_threshold_is_a_probability():
  labels = np.ones((1, 1, 2), int)
  logits = np.array([[[0.0, 1.0]]])[..., None]  # probabilities 0.5, 0.73
  assert summarize(logits, labels)['recall'] == pytest.approx(0.5)
  assert summarize(logits, labels, threshold=0.25)['recall'] == pytest.approx(1.0)


def test_padding_examples_are_ignored(real_case):
  logits, labels, _ = real_case
  garbage = np.random.default_rng(3).normal(size=logits.shape).astype(np.float32)
  padded = summarize(np.concatenate([logits, garbage]),
                     np.concatenate([labels, 1 - labels]),
                     valid=np.arange(2 * len(labels)) < len(labels))
  assert padded == summarize(logits, labels)


# --- devices -----------------------------------------------------------------

class MetricVariantsTest(chex.TestCase, parameterized.TestCase):
  """batch_statistics jitted, not jitted and pmapped gives the same sums."""

  @chex.variants(with_jit=True, without_jit=True, with_pmap=True)
  @parameterized.parameters(1, 3)
  def test_variants_agree(self, n_classes):
    rng = np.random.default_rng(n_classes)
    logits, labels, _ = multiclass_case(rng, (4, 16, 16), max(2, n_classes))
    if n_classes == 1:
      logits = logits[..., 1:] - logits[..., :1]
    fn = functools.partial(metrics.batch_statistics, boundary_tolerance=1.0)
    expected = metrics.merge(None, jax.jit(fn)(logits, labels))
    ours = metrics.merge(None, self.variant(fn)(logits, labels))
    for key in expected:
      np.testing.assert_allclose(ours[key], expected[key], rtol=1e-6, err_msg=key)


def test_sums_over_devices_equal_the_whole_batch():
  assert jax.device_count() == 8
  logits, labels, _ = multiclass_case(np.random.default_rng(4), (16, 16, 16), 3)
  whole = metrics.merge(None, jax.jit(metrics.batch_statistics)(logits, labels))
  split = lambda x: x.reshape((8, 2) + x.shape[1:])
  psummed = jax.pmap(lambda lo, la: jax.lax.psum(
      metrics.batch_statistics(lo, la), 'devices'), axis_name='devices')(
          split(logits), split(labels))
  sharding = NamedSharding(Mesh(np.array(jax.devices()), ('data',)),
                           PartitionSpec('data'))
  sharded = jax.jit(metrics.batch_statistics)(jax.device_put(logits, sharding),
                                              jax.device_put(labels, sharding))
  for stats in (jax.tree.map(lambda x: x[0], psummed), sharded):
    stats = metrics.merge(None, stats)
    for key in whole:
      np.testing.assert_allclose(stats[key], whole[key], rtol=1e-6, err_msg=key)


# --- properties --------------------------------------------------------------

masks_strategy = st.integers(0, 2**32 - 1).map(
    lambda seed: ndimage.binary_opening(
        ndimage.gaussian_filter(np.random.default_rng(seed).random((3, 20, 20)),
                                (0, 2, 2)) > 0.5))


@settings(max_examples=15, deadline=None)
@given(masks=masks_strategy)
def test_perfect_prediction_scores_perfectly(masks):
  labels = masks.astype(np.int32)
  logits = np.where(masks, 4.0, -4.0)[..., None].astype(np.float32)
  result = summarize(logits, labels)
  if masks.any():
    for name in ('dice', 'iou', 'dice_per_image', 'iou_per_image', 'boundary_f1',
                 'precision', 'recall'):
      assert result[name] == 1.0, name
    assert result['hd95'] == result['assd'] == 0.0
  assert result['pixel_accuracy'] == result['miou'] == 1.0


@settings(max_examples=15, deadline=None)
@given(masks=masks_strategy, seed=st.integers(0, 2**32 - 1))
def test_dice_is_2iou_over_1_plus_iou_for_every_image(masks, seed):
  predictions = perturb(masks, np.random.default_rng(seed))
  counts = metrics.per_image_counts(jnp.asarray(predictions, jnp.int32),
                                    jnp.asarray(masks, jnp.int32), 2)
  scores = metrics.per_image_overlap(counts)
  dice, iou = np.asarray(scores['dice']), np.asarray(scores['iou'])
  np.testing.assert_allclose(dice, 2 * iou / (1 + iou), rtol=1e-6)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_chunks=st.sampled_from([1, 2, 7]))
@pytest.mark.slow
def test_accumulating_in_chunks_gives_the_same_numbers(seed, n_chunks):
  logits, labels, _ = multiclass_case(np.random.default_rng(seed), (7, 12, 12), 3)
  names = ['background', 'a', 'b']
  whole = summarize(logits, labels, names)
  total = None
  for lo, la in zip(np.array_split(logits, n_chunks), np.array_split(labels, n_chunks)):
    total = metrics.merge(total, metrics.batch_statistics(lo, la))
  chunked = metrics.summarize(total, names)
  assert chunked.keys() == whole.keys()
  for key in whole:
    np.testing.assert_allclose(chunked[key], whole[key], rtol=1e-6, err_msg=key)


def test_max_f_pixel_error_is_the_best_pooled_sklearn_f1_over_the_thresholds():
  rng = np.random.default_rng(0)
  truths = [rng.random((12, 9)) < 0.7, rng.random((5, 7)) < 0.3]
  # Noisy probabilities of the truth, so that the thresholds differ.
  probabilities = [np.clip(t * 0.3 + rng.random(t.shape) * 0.7, 0, 1)
                   for t in truths]
  pooled_truth = np.concatenate([t.ravel() for t in truths])
  pooled = np.concatenate([p.ravel() for p in probabilities])
  f_scores = [skm.f1_score(pooled_truth, pooled > th, zero_division=0)
              for th in metrics.CHALLENGE_THRESHOLDS]
  error, threshold = metrics.max_f_pixel_error(probabilities, truths)
  np.testing.assert_allclose(error, 1 - max(f_scores), rtol=1e-12)
  assert threshold == metrics.CHALLENGE_THRESHOLDS[int(np.argmax(f_scores))]
  assert 0 < error < 1
  # Pooled, not averaged per image: the mean of the per-image errors differs.
  per_image = np.mean([metrics.max_f_pixel_error([p], [t])[0]
                       for p, t in zip(probabilities, truths)])
  assert abs(per_image - error) > 1e-3


def test_max_f_pixel_error_scores_the_positive_pixels_it_is_given():
  truth = np.zeros((4, 4), bool)
  truth[:, :3] = True  # mostly positive, like the challenge's cell interiors
  exact = truth.astype(np.float64)
  assert metrics.max_f_pixel_error([exact], [truth])[0] == 0.0
  # One false positive among 12 true pixels: F = 24 / 25.
  one_wrong = exact.copy()
  one_wrong[0, 3] = 1.0
  np.testing.assert_allclose(metrics.max_f_pixel_error([one_wrong], [truth])[0],
                             1 - 24 / 25)
  # Nothing found at any threshold: F = 0.
  assert metrics.max_f_pixel_error([np.zeros((4, 4))], [truth]) == (1.0, 0.0)
  with pytest.raises(ValueError):
    metrics.max_f_pixel_error([exact, exact], [truth])
