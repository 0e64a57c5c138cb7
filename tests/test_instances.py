"""Instances from masks, the U-Net border weight map, and object-level
scores: hand-computed cases (empty images, one object split in two, two
merged in one), the weight map against its formula on two touching
squares, and the ISBI measures against scikit-image on real membranes."""

import os

import numpy as np
import pytest
from PIL import Image
from skimage import metrics as sk_metrics

from unetjax import instances
from unetjax.errors import ConfigError


def squares(*boxes, shape=(20, 20)):
  labels = np.zeros(shape, np.int32)
  for i, (r0, r1, c0, c1) in enumerate(boxes, 1):
    labels[r0:r1, c0:c1] = i
  return labels


def test_connected_components_are_four_connected_and_drop_small_objects():
  mask = np.zeros((6, 6), bool)
  mask[0:2, 0:2] = True  # 4 pixels
  mask[2, 2] = True  # touches the first only at a corner: a separate object
  mask[4:6, 3:6] = True  # 6 pixels
  labels = instances.connected_components(mask)
  assert labels.max() == 3 and len(np.unique(labels[0:2, 0:2])) == 1
  assert labels[2, 2] not in (0, labels[0, 0])
  small_gone = instances.connected_components(mask, min_size=2)
  assert small_gone.max() == 2 and small_gone[2, 2] == 0
  assert set(np.unique(small_gone)) == {0, 1, 2}  # renumbered


def test_watershed_separates_two_touching_discs():
  yy, xx = np.mgrid[:40, :60]
  mask = ((yy - 20)**2 + (xx - 18)**2 < 12**2) | ((yy - 20)**2 + (xx - 40)**2 < 12**2)
  assert instances.connected_components(mask).max() == 1  # one blob
  labels = instances.watershed(mask, min_distance=5)
  assert labels.max() == 2
  assert labels[20, 18] != labels[20, 40] and (labels > 0).sum() == mask.sum()
  interior = ((yy - 20)**2 + (xx - 18)**2 < 5**2) | ((yy - 20)**2 + (xx - 40)**2 < 5**2)
  assert instances.watershed(mask, interior=interior).max() == 2
  with pytest.raises(ConfigError, match='A watershed needs markers'):
    instances.watershed(mask)


def test_border_weight_map_is_the_papers_formula_on_two_touching_squares():
  # Two 6x6 squares with a one-pixel gap of background between them.
  labels = squares((4, 10, 2, 8), (4, 10, 9, 15), shape=(14, 18))
  weights = instances.border_weight_map(labels, w0=10, sigma=5)
  n, n_fg = labels.size, (labels > 0).sum()
  for (r, c), value in np.ndenumerate(weights):
    if labels[r, c]:
      assert value == pytest.approx(n / (2 * n_fg))
      continue
    # Distances to each square's nearest pixel, by brute force.
    d = sorted(min(np.hypot(r - rr, c - cc) for rr, cc in zip(*np.nonzero(labels == i)))
               for i in (1, 2))
    expected = n / (2 * (n - n_fg)) + 10 * np.exp(-(d[0] + d[1])**2 / (2 * 5**2))
    assert value == pytest.approx(expected, rel=1e-5)
  # The gap between the squares (d1 = d2 = 1) weighs far more than the far
  # background.
  assert weights[6, 8] > 8 * weights[13, 0]
  one = instances.border_weight_map(squares((4, 10, 2, 8), shape=(14, 18)))
  assert np.unique(one).size == 2  # one object: class balance only


def scores(true, pred):
  return instances.summarize([instances.object_scores(true, pred)])


def test_a_perfect_prediction_and_empty_images():
  true = squares((1, 5, 1, 5), (8, 12, 8, 14))
  perfect = scores(true, true)
  for name in ('object_f1', 'object_precision', 'object_recall', 'sq', 'rq',
               'pq', 'aji'):
    assert perfect[name] == 1.0, name
  empty = np.zeros_like(true)
  both_empty = scores(empty, empty)
  assert all(np.isnan(both_empty[k]) for k in ('object_f1', 'pq', 'aji'))
  both_empty = instances.rand_and_information(empty, empty)
  assert np.isnan(both_empty['adapted_rand_error'])  # no true foreground
  assert both_empty['variation_of_information'] == 0
  missed = scores(true, empty)
  assert missed['object_f1'] == 0 and missed['pq'] == 0 and missed['aji'] == 0
  invented = scores(empty, true)
  assert invented['object_f1'] == 0 and invented['pq'] == 0 and invented['aji'] == 0


def test_one_object_split_in_two():
  true = squares((0, 4, 0, 8))  # 32 pixels
  pred = squares((0, 4, 0, 4), (0, 4, 4, 8))  # two halves of 16
  s = scores(true, pred)
  # Each half has IoU 16/32 = 0.5 >= 0.5: one of them matches for object F1.
  assert (s['object_precision'], s['object_recall']) == (0.5, 1.0)
  assert s['object_f1'] == pytest.approx(2 / 3)
  # Panoptic quality needs IoU > 0.5 (Kirillov et al. 2019; panopticapi):
  # no match, so RQ = PQ = 0 and SQ is undefined.
  assert s['pq'] == 0 and s['rq'] == 0 and np.isnan(s['sq'])
  # AJI: C = 16, U = 32 (true with one half) + 16 (the unused half).
  assert s['aji'] == pytest.approx(16 / 48)


def test_two_objects_merged_in_one():
  true = squares((0, 4, 0, 4), (0, 4, 4, 8))
  pred = squares((0, 4, 0, 8))
  s = scores(true, pred)
  assert (s['object_precision'], s['object_recall']) == (1.0, 0.5)
  assert s['pq'] == 0 and np.isnan(s['sq'])  # IoU exactly 0.5: not a PQ match
  # A little more than half: the larger true object matches for PQ too,
  # SQ = 20/32, RQ = 1 / (1 + 0 + 1/2).
  unequal = scores(squares((0, 4, 0, 5), (0, 4, 5, 8)), pred)
  assert unequal['sq'] == pytest.approx(20 / 32)
  assert unequal['pq'] == pytest.approx(20 / 32 / 1.5)
  # AJI: both true objects choose the blob: C = 16 + 16, U = 32 + 32.
  assert s['aji'] == pytest.approx(0.5)


def test_matches_below_the_threshold_do_not_count_and_scores_pool_over_images():
  true = squares((0, 10, 0, 10))
  shifted = squares((0, 10, 6, 16))  # IoU 40/160 = 0.25
  s = scores(true, shifted)
  assert s['object_f1'] == 0 and s['pq'] == 0
  assert s['aji'] == pytest.approx(40 / 160)
  pooled = instances.summarize([instances.object_scores(true, true),
                                instances.object_scores(true, shifted)])
  assert pooled['object_f1'] == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))
  assert pooled['aji'] == pytest.approx((1 + 0.25) / 2)


def test_rand_error_and_information_are_scikit_images_on_real_membranes(
    real_fixtures):
  label = np.asarray(Image.open(os.path.join(real_fixtures, 'isbi2012_em', 'masks', '00.png')))
  cells = instances.connected_components(label > 127)  # regions between membranes
  assert cells.max() > 20
  rng = np.random.default_rng(0)
  noisy = label > 127
  noisy ^= rng.random(noisy.shape) < 0.02
  pred = instances.connected_components(noisy)
  ours = instances.rand_and_information(cells, pred)
  error, _, _ = sk_metrics.adapted_rand_error(cells, pred)
  split, merge = sk_metrics.variation_of_information(cells, pred)
  assert ours['adapted_rand_error'] == pytest.approx(error)
  assert ours['variation_of_information'] == pytest.approx(split + merge)
  assert 0 < ours['adapted_rand_error'] < 1
  perfect = instances.rand_and_information(cells, cells)
  assert perfect['adapted_rand_error'] == pytest.approx(0, abs=1e-12)
  assert perfect['variation_of_information'] == pytest.approx(0, abs=1e-9)


# --- Instances in datasets, training and evaluation. ---


def test_synthetic_instances_give_each_visible_cell_one_id_and_its_weight_map():
  from unetjax.data import synthetic
  from unetjax.data.builders import synthetic_cells
  touching = 0
  for seed in range(8):
    image, mask, ids = synthetic.render_cells(np.random.default_rng(seed), 64,
                                              with_instances=True)
    plain_image, plain_mask = synthetic.render_cells(np.random.default_rng(seed), 64)
    np.testing.assert_array_equal(image, plain_image)  # same draw as 'binary'
    np.testing.assert_array_equal(mask, plain_mask)
    np.testing.assert_array_equal(ids > 0, mask > 0)
    assert set(np.unique(ids)) == set(range(ids.max() + 1))  # 0..n, none lost
    # Cells that touch: one connected blob holding several ids.
    blobs = instances.connected_components(mask > 0)
    touching += sum(len(np.unique(ids[blobs == b])) > 1
                    for b in range(1, blobs.max() + 1))
  assert touching > 0
  builder = synthetic_cells.SyntheticCells(config='instances', data_dir='/nonexistent')
  _, example = next(iter(builder._generate_examples('test', 1)))
  np.testing.assert_array_equal(example['weight'],
                                instances.border_weight_map(example['instances']))


def test_object_totals_score_the_connected_regions_of_the_prediction():
  from unetjax import evaluation
  # Two touching objects of unequal size, predicted as one region: the
  # larger matches it (IoU 24/32 > 0.5), the smaller is missed; AJI pairs
  # both with it (intersections 24 + 8 over unions 32 + 32).
  truth = squares((2, 6, 2, 8), (2, 6, 8, 10), shape=(12, 12))
  apart = squares((2, 6, 2, 4), (8, 10, 8, 10), shape=(12, 12))
  batch = {'image': np.zeros((3, 12, 12, 1), np.uint8),
           'instances': np.stack([truth, apart, apart]),
           'valid': np.array([True, True, False])}
  batch['mask'] = (batch['instances'] > 0).astype(np.uint8)
  foreground = (batch['instances'] > 0).astype(np.float32)[..., None]
  logits = lambda images: np.where(foreground > 0, 5.0, -5.0)
  total = evaluation.object_totals(logits, [batch], lambda x: x, 0.5)
  assert (total['tp'], total['fp'], total['fn']) == (3, 0, 1)
  summary = instances.summarize_totals(total)
  assert summary['object_f1'] == pytest.approx(2 * 3 / (2 * 3 + 1))
  assert summary['aji'] == pytest.approx(np.mean([32 / 64, 1.0]))
  assert summary == instances.summarize(
      [{**instances.object_scores(t, instances.connected_components(t > 0)),
        **instances.rand_and_information(t, instances.connected_components(t > 0))}
       for t in (truth, apart)])


def test_border_weights_reach_the_loss_only_when_asked():
  import jax.numpy as jnp
  from configs import default
  from unetjax import losses, train
  loss_config = default.get_config().loss
  loss_config.pixel_weights = 'border'
  border = losses.weight_maps(loss_config)
  batch = {'image': jnp.zeros((2, 8, 8, 1), jnp.uint8),
           'mask': jnp.ones((2, 8, 8), jnp.uint8),
           'weight': jnp.full((2, 8, 8), 3.0)}
  _, _, weights = train.augment_inputs(batch, 0, None, None, None)
  assert weights is None
  _, _, weights = train.augment_inputs(batch, 0, None, None, None, border)
  np.testing.assert_array_equal(weights, batch['weight'])
  roi = {**batch, 'roi': jnp.zeros((2, 8, 8), jnp.uint8).at[:, :4].set(1)}
  _, _, weights = train.augment_inputs(roi, 0, None, None, None, border)
  np.testing.assert_array_equal(weights, 3.0 * roi['roi'])


def test_border_weights_need_a_dataset_with_them_and_a_pixel_wise_loss(
    tfds_dir, tmp_path):
  from configs import instances as instances_config
  from unetjax import train
  config = instances_config.get_config()
  config.dataset.name, config.dataset.data_dir = 'synthetic_cells/binary', tfds_dir
  with pytest.raises(ConfigError, match="pixel_weights='border' needs a "
                     "dataset with instances.*'synthetic_cells/binary' has none"):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not os.path.exists(tmp_path / 'run')
  from unetjax import configuration
  config.loss.name = 'dice'
  with pytest.raises(ConfigError, match="loss.name='dice' is not pixel-wise"):
    configuration.check_instances_fit(config, 'synthetic_cells/instances', True)
  config.loss.pixel_weights = 'none'
  with pytest.raises(ConfigError, match="best_metric='object_f1' is an object "
                     "metric.*'synthetic_cells/binary' has none"):
    configuration.check_instances_fit(config, 'synthetic_cells/binary', False)
  configuration.check_instances_fit(config, 'synthetic_cells/instances', True)
  config.loss.pixel_weights = 'borders'
  with pytest.raises(ConfigError, match="pixel_weights='borders' must be one of"):
    configuration.validate(config)


@pytest.mark.parametrize('target', ['mask', 'three_class'])
@pytest.mark.slow
def test_instance_config_trains_and_reports_object_metrics(tfds_dir, tmp_path,
                                                           target):
  """configs/instances.py as it is (border weights) and with the three-class
  target, whose objects come from a watershed of the predicted interiors."""
  from configs import instances as instances_config
  from unetjax import train
  config = instances_config.get_config()
  config.dataset.data_dir = tfds_dir
  config.model.base_filters, config.model.depth = 4, 2
  config.model.dropout_rates = (0.0,) * 3
  config.batch_size = config.eval_batch_size = 16
  config.num_train_steps = config.log_every_steps = 4
  config.eval_every_steps = config.checkpoint_every_steps = 4
  config.progress_bar = False
  # Boundary F1 / HD95 / ASSD are the default config's (tests/test_train.py);
  # without them the evaluation step compiles in a fraction of the time.
  config.metrics.surface_metrics = False
  if target == 'three_class':
    config.dataset.target, config.model.n_classes = 'three_class', 3
  final = train.train_and_evaluate(config, str(tmp_path / 'run'))
  for split in ('validation', 'test'):
    for name in ('object_f1', 'pq', 'aji', 'adapted_rand_error',
                 'variation_of_information', 'dice'):
      assert name in final[split]
    assert 0 <= final[split]['object_f1'] <= 1
  if target == 'three_class':
    assert 'dice/border' in final['test']


# --- The three-class target and the rules that read objects. ---


def test_three_class_target_parts_touching_objects_and_the_watershed_rejoins_them():
  two = squares((2, 8, 2, 7), (2, 8, 7, 12), shape=(10, 14))
  target = instances.three_class_target(two)
  np.testing.assert_array_equal(target > 0, two > 0)
  # Border: object pixels with a 4-neighbour outside the object (scikit-image).
  from skimage.segmentation import find_boundaries
  np.testing.assert_array_equal(
      target == 2, find_boundaries(two, connectivity=1, mode='inner') & (two > 0))
  assert target[4, 6] == target[4, 7] == 2  # the shared edge, both sides
  interiors = instances.connected_components(target == 1)
  assert interiors.max() == 2  # the interiors never touch
  # The watershed from the interiors gives back both squares whole.
  found = instances.objects_in(target, 'three_class')
  assert instances.object_scores(two, found)['tp'] == 2
  np.testing.assert_array_equal(found > 0, two > 0)
  # The plain rule sees one blob.
  assert instances.objects_in((two > 0).astype(np.uint8), 'foreground').max() == 1


def test_background_rule_reads_the_regions_between_membranes():
  membranes = np.zeros((9, 9), np.uint8)
  membranes[3:6, :] = 1  # one horizontal membrane, 3 px wide: two regions
  regions = instances.objects_in(membranes, 'background')
  # Each region grown over the membrane pixels nearest to it: the border's
  # width does not count.
  np.testing.assert_array_equal(regions[:4], 1)
  np.testing.assert_array_equal(regions[5:], 2)
  assert set(regions[4]) <= {1, 2}
  # A gap in the membrane joins the regions.
  membranes[3:6, 4] = 0
  assert instances.objects_in(membranes, 'background').max() == 1
  with pytest.raises(ConfigError, match='Unknown object rule'):
    instances.objects_in(membranes, 'edges')


def test_three_class_target_needs_a_dataset_with_instances(tfds_dir):
  from configs import default
  from unetjax.data import pipeline
  config = default.get_config().dataset
  config.data_dir, config.target = tfds_dir, 'three_class'
  with pytest.raises(ConfigError, match="target='three_class' is made from "
                     "instances.*'synthetic_cells/binary' has none"):
    pipeline.describe(config)


@pytest.mark.slow
def test_three_class_masks_come_from_the_instances(tfds_dir):
  from configs import default
  from unetjax.data import pipeline
  config = default.get_config().dataset
  config.name, config.data_dir = 'synthetic_cells/instances', tfds_dir
  plain = pipeline.prepare(config)
  assert plain.objects == 'foreground'
  config.target = 'three_class'
  info = pipeline.prepare(config)
  assert info.class_names == ('background', 'interior', 'border')
  assert info.objects == 'three_class'
  batch = next(pipeline.eval_batches(config, 'validation', 4))
  for ids, mask in zip(batch['instances'], batch['mask']):
    np.testing.assert_array_equal(mask, instances.three_class_target(ids))
  assert (batch['mask'] == 2).any() and (batch['mask'] == 1).any()


# --- Panoptic quality per class. ---


def test_panoptic_quality_per_class_matches_within_each_class():
  """Class 1 (two squares): one found, one missed. Class 2 (one square):
  found, but a stray class-2 region is a false positive. Hand-computed:
  PQ_1 = 1 * 1 / (1 + 0 + 1/2) = 2/3, PQ_2 = 1 / (1 + 1/2) = 2/3 with SQ 1;
  a square predicted as the wrong class is missed in its class and a false
  positive in the other."""
  truth = squares((0, 4, 0, 4), (0, 4, 10, 14), (10, 14, 0, 4), shape=(16, 16))
  classes = np.select([truth == 3, truth > 0], [2, 1], 0)
  predicted = np.zeros_like(classes)
  predicted[0:4, 0:4] = 1  # object 1, right class
  predicted[10:14, 0:4] = 2  # object 3, right class
  predicted[12:16, 12:16] = 2  # nothing there
  per_class = instances.class_object_scores(truth, classes, predicted, 3)
  assert (per_class['pq_tp/1'], per_class['pq_fp/1'], per_class['pq_fn/1']) == (1, 0, 1)
  assert (per_class['pq_tp/2'], per_class['pq_fp/2'], per_class['pq_fn/2']) == (1, 1, 0)
  names = ('background', 'cell', 'nucleus')
  summary = instances.summarize(
      [{**instances.object_scores(truth, instances.objects_in(predicted)),
        **per_class}], names)
  assert summary['pq/cell'] == pytest.approx(2 / 3)
  assert summary['pq/nucleus'] == pytest.approx(2 / 3)
  assert summary['pq'] == pytest.approx(2 / 3)  # the mean over classes
  wrong = np.where(truth == 1, 2, predicted)  # object 1 predicted as class 2
  swapped = instances.class_object_scores(truth, classes, wrong, 3)
  assert (swapped['pq_tp/1'], swapped['pq_fn/1']) == (0, 2)
  assert swapped['pq_fp/2'] == 2
  # Without per-class matches (two classes) PQ pools every object.
  binary = instances.summarize([instances.object_scores(truth, instances.objects_in(predicted))])
  assert not any('/' in k for k in binary)


def panopticapi_pq(true, pred):
  """PQ, SQ, RQ of one class as panopticapi's pq_compute computes them
  (no void or crowd regions): every pair with IoU > 0.5 matches."""
  tp, iou_sum = 0, 0.0
  true_ids, pred_ids = np.unique(true[true > 0]), np.unique(pred[pred > 0])
  matched_pred = set()
  for t in true_ids:
    for p in pred_ids:
      inter = np.sum((true == t) & (pred == p))
      iou = inter / np.sum((true == t) | (pred == p))
      if iou > 0.5:
        tp, iou_sum = tp + 1, iou_sum + iou
        matched_pred.add(p)
  fp, fn = len(pred_ids) - len(matched_pred), len(true_ids) - tp
  if tp + fp + fn == 0:
    return None
  return {'pq': iou_sum / (tp + fp / 2 + fn / 2), 'sq': iou_sum / tp if tp else 0.0,
          'rq': tp / (tp + fp / 2 + fn / 2)}


def test_multi_class_means_count_a_class_without_matches_as_panopticapi_does():
  """pq_average (panopticapi): the mean over classes with any true or
  predicted object, a class without matches counting SQ 0. Here class 2's
  only object is missed: SQ_2 is undefined alone, 0 in the mean."""
  truth = squares((0, 4, 0, 4), (10, 14, 0, 4), shape=(16, 16))
  classes = np.select([truth == 2, truth > 0], [2, 1], 0)
  predicted = np.where(truth == 1, 1, 0)
  summary = instances.summarize(
      [{**instances.object_scores(truth, instances.objects_in(predicted)),
        **instances.class_object_scores(truth, classes, predicted, 3)}],
      ('background', 'cell', 'nucleus'))
  reference = [panopticapi_pq(np.where(classes == c, truth, 0),
                              instances.connected_components(predicted == c))
               for c in (1, 2)]
  for key in ('pq', 'sq', 'rq'):
    assert summary[key] == pytest.approx(np.mean([r[key] for r in reference]))
  assert summary['sq'] == 0.5 and np.isnan(summary['sq/nucleus'])
  assert summary['pq/nucleus'] == 0 and summary['pq/cell'] == 1


def test_variation_of_information_is_defined_on_an_empty_truth_and_in_bits():
  empty = np.zeros((8, 8), np.int32)
  blob = squares((0, 4, 0, 4), shape=(8, 8))  # a quarter of the image
  scores_ = instances.rand_and_information(empty, blob)
  split, merge = sk_metrics.variation_of_information(empty, blob)
  assert scores_['variation_of_information'] == pytest.approx(split + merge)
  # H(1/4) in bits: -(1/4 log2 1/4 + 3/4 log2 3/4) = 0.811 (in nats: 0.562).
  assert scores_['variation_of_information'] == pytest.approx(
      -(0.25 * np.log2(0.25) + 0.75 * np.log2(0.75)))
  assert np.isnan(scores_['adapted_rand_error'])
  # A false positive on an empty image now raises the mean VI.
  perfect = instances.rand_and_information(blob, blob)
  summary = instances.summarize([{**instances.object_scores(b, p), **r}
                                 for b, p, r in ((blob, blob, perfect),
                                                 (empty, blob, scores_))])
  assert summary['variation_of_information'] == pytest.approx(0.811278 / 2, rel=1e-5)
  assert summary['adapted_rand_error'] == pytest.approx(0)  # the one defined image


hypothesis = pytest.importorskip('hypothesis')
from hypothesis import given, settings, strategies as st  # pylint: disable=wrong-import-position
from hypothesis.extra import numpy as hnp  # pylint: disable=wrong-import-position

_label_images = hnp.arrays(np.int32, (6, 7), elements=st.integers(0, 4))


@settings(max_examples=150, deadline=None)
@given(_label_images, _label_images, st.permutations(range(1, 5)))
def test_object_scores_on_random_label_images(true, pred, order):
  """PQ = SQ x RQ within [0, 1], equal to panopticapi's; relabelling either
  image changes nothing; a perfect prediction scores 1 (VI, ARE 0)."""
  s = instances.summarize([{**instances.object_scores(true, pred),
                            **instances.rand_and_information(true, pred)}])
  reference = panopticapi_pq(true, pred)
  if reference is None:
    assert np.isnan(s['pq'])
  else:
    assert s['pq'] == pytest.approx(reference['pq'])
    assert s['rq'] == pytest.approx(reference['rq'])
    if np.isfinite(s['sq']):
      assert s['sq'] == pytest.approx(reference['sq'])
      assert s['pq'] == pytest.approx(s['sq'] * s['rq'])
      assert 0.5 < s['sq'] <= 1
    for key in ('pq', 'rq', 'object_f1', 'aji'):
      assert 0 <= s[key] <= 1 or np.isnan(s[key])
  relabel = np.array([0, *order])
  for t, p in ((relabel[true], pred), (true, relabel[pred])):
    other = instances.summarize([{**instances.object_scores(t, p),
                                  **instances.rand_and_information(t, p)}])
    assert other.keys() == s.keys()
    for key, value in s.items():
      assert other[key] == pytest.approx(value, nan_ok=True), key
  perfect = instances.summarize([{**instances.object_scores(true, true),
                                  **instances.rand_and_information(true, true)}])
  if (true > 0).any():
    for key in ('pq', 'sq', 'rq', 'object_f1', 'aji'):
      assert perfect[key] == 1, key
    # 0, or undefined as scikit-image has it where no true object holds two
    # pixels (no pixel pairs to count).
    reference = sk_metrics.adapted_rand_error(true, true)[0]
    assert perfect['adapted_rand_error'] == pytest.approx(reference, nan_ok=True)
    assert perfect['adapted_rand_error'] == pytest.approx(0, abs=1e-12) or np.isnan(reference)
  assert perfect['variation_of_information'] == pytest.approx(0, abs=1e-9)


# --- Instance masks in folders. ---


def write_instance_folder(root, n=6, size=(36, 28), with_masks=True, seed=0):
  """Images, masks (0 / 100 / 200 for background, cell, nucleus) and 16-bit
  instance masks with ids above 255."""
  rng = np.random.default_rng(seed)
  for sub in ('images', 'masks', 'instances'):
    os.makedirs(root / sub, exist_ok=True)
  for i in range(n):
    image = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(image).save(root / 'images' / f'{i:02d}.png')
    ids = np.zeros((size[1], size[0]), np.uint16)
    ids[2:12, 2:14] = 300 + i
    ids[2:12, 14:30] = 1000  # touching the first
    ids[16:26, 5:20] = 40000
    Image.fromarray(ids).save(root / 'instances' / f'{i:02d}.png')
    if with_masks:
      mask = np.where(ids == 40000, 200, np.where(ids > 0, 100, 0)).astype(np.uint8)
      Image.fromarray(mask).save(root / 'masks' / f'{i:02d}.png')


@pytest.mark.parametrize('image_size', [0, 56])
def test_image_folder_reads_16_bit_instance_masks(tmp_path, image_size):
  from configs import default
  from unetjax.data import pipeline
  root = tmp_path / 'cells'
  write_instance_folder(root)
  config = default.get_config().dataset
  config.name, config.data_dir = 'image_folder', str(tmp_path / 'tfds')
  config.manual_dir = str(root)
  config.folder = dict(instances_dir='instances', image_size=image_size,
                       mask_values=(0, 100, 200),
                       class_names=('background', 'cell', 'nucleus'),
                       split_fractions=(0.5, 0.25, 0.25))
  info = pipeline.prepare(config)
  assert info.has_instances and info.class_names == ('background', 'cell', 'nucleus')
  for example in pipeline.examples(config, 'train'):
    ids = example['instances']
    side = image_size or None
    assert ids.dtype == np.uint16 and ids.shape == ((side, side) if side else (28, 36))
    assert {1000, 40000} <= set(np.unique(ids))  # 16-bit ids kept
    np.testing.assert_array_equal(example['weight'], instances.border_weight_map(ids))
    np.testing.assert_array_equal(example['mask'] == 2, ids == 40000)
    if not image_size:
      stored = [np.asarray(Image.open(root / 'instances' / f))
                for f in sorted(os.listdir(root / 'instances'))]
      assert any(np.array_equal(ids, s) for s in stored)
  # Instance masks alone make a binary dataset.
  config.folder = dict(instances_dir='instances', masks_dir='', image_size=0,
                       split_fractions=(0.5, 0.25, 0.25))
  info = pipeline.prepare(config)
  assert info.class_names == ('background', 'foreground')
  example = next(pipeline.examples(config, 'test'))
  np.testing.assert_array_equal(example['mask'], example['instances'] > 0)


@pytest.mark.slow
def test_a_multi_class_instance_folder_trains_and_reports_pq_per_class(tmp_path):
  from configs import folder
  from unetjax import train
  root = tmp_path / 'cells'
  write_instance_folder(root, n=8, size=(32, 32))
  config = folder.get_config()
  config.dataset.data_dir, config.dataset.manual_dir = str(tmp_path / 'tfds'), str(root)
  config.dataset.folder.update(instances_dir='instances', image_size=0,
                               mask_values=(0, 100, 200),
                               class_names=('background', 'cell', 'nucleus'),
                               split_fractions=(0.5, 0.25, 0.25))
  config.dataset.patch_size = 32
  config.model.update(n_classes=3, base_filters=4, depth=2, dropout_rates=(0.0,) * 3)
  config.batch_size = config.eval_batch_size = 8
  config.num_train_steps = config.log_every_steps = 2
  config.eval_every_steps = config.checkpoint_every_steps = 2
  config.best_metric, config.progress_bar = 'pq', False
  final = train.train_and_evaluate(config, str(tmp_path / 'run'))
  for split in ('validation', 'test'):
    for name in ('pq/cell', 'pq/nucleus', 'sq/cell', 'rq/nucleus', 'object_f1'):
      assert name in final[split]
    per_class = [final[split][f'pq/{c}'] for c in ('cell', 'nucleus')
                 if np.isfinite(final[split][f'pq/{c}'])]
    if per_class:
      assert final[split]['pq'] == pytest.approx(np.mean(per_class))


def test_instance_masks_that_do_not_fit_16_bits_or_are_not_ids_are_clear_errors(tmp_path):
  from unetjax.data.builders import image_masks
  from unetjax.errors import DataError
  # 32-bit ids above 65535 are renumbered, keeping the objects apart.
  big = np.zeros((6, 6), np.int32)
  big[:3], big[3:] = 70000, 123456
  Image.fromarray(big).save(tmp_path / 'big.tif')
  np.testing.assert_array_equal(image_masks.read_instances(str(tmp_path / 'big.tif')),
                                np.where(big == 70000, 1, 2))
  # More objects than 16-bit ids hold: one object per pixel of 256 x 257.
  many = np.arange(1, 256 * 257 + 1, dtype=np.int32).reshape(256, 257)
  Image.fromarray(many).save(tmp_path / 'many.tif')
  with pytest.raises(DataError, match=r'many.tif holds 65792 objects, more than '
                     r'the 65535 that 16-bit ids hold'):
    image_masks.read_instances(str(tmp_path / 'many.tif'))
  Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / 'rgb.png')
  with pytest.raises(DataError, match=r'rgb.png has 3 channels; save one whole number'):
    image_masks.read_instances(str(tmp_path / 'rgb.png'))
  Image.fromarray(np.full((4, 4), 1.5, np.float32)).save(tmp_path / 'frac.tif')
  with pytest.raises(DataError, match='frac.tif holds fractional values'):
    image_masks.read_instances(str(tmp_path / 'frac.tif'))


def test_instances_dir_is_checked_with_the_other_folder_options(tmp_path):
  from unetjax.data.builders import image_folder
  with pytest.raises(ConfigError, match="masks_dir='' needs instances_dir"):
    image_folder.make_config(str(tmp_path), masks_dir='')
  assert 'instances' not in image_folder.OPTIONS  # set from instances_dir


# --- Instance maps in training patches. ---


def test_patches_cut_the_instances_and_weights_with_the_image():
  from unetjax.data import patches
  rng = np.random.default_rng(0)
  ids = rng.integers(0, 5, (40, 50)).astype(np.uint16)
  example = {'image': np.stack([ids.astype(np.uint8)] * 3, -1),
             'mask': (ids > 0).astype(np.uint8), 'instances': ids,
             'weight': ids.astype(np.float32) / 2}
  sampling = patches.PatchSampling(size=(16, 24))
  for seed in range(5):
    patch = patches.sample_patch(example, np.random.default_rng(seed), sampling)
    assert patch['instances'].shape == patch['weight'].shape == (16, 24)
    np.testing.assert_array_equal(patch['instances'], patch['image'][..., 0])
    np.testing.assert_array_equal(patch['weight'], patch['instances'] / 2)
    np.testing.assert_array_equal(patch['mask'], patch['instances'] > 0)


def test_isbi_instances_are_the_regions_between_membranes(real_fixtures, tmp_path):
  """isbi2012_em/instances from a folder of the real label slices (committed
  fixtures): ids are the 4-connected interior regions, weights the formula,
  and the objects are read from predictions by the 'background' rule."""
  from unetjax.data.builders import isbi2012_em
  builder = isbi2012_em.Isbi2012Em(config='instances', data_dir=str(tmp_path))
  assert builder.builder_config.instances and builder.OBJECTS == 'background'
  masks = os.path.join(real_fixtures, 'isbi2012_em', 'masks')
  name = sorted(os.listdir(masks))[0]
  from unetjax.data.builders import image_masks
  pair = image_masks.Pair('00', os.path.join(masks, name), os.path.join(masks, name))
  example = builder._example(pair)
  label = np.asarray(Image.open(os.path.join(masks, name)))
  np.testing.assert_array_equal(example['instances'],
                                instances.connected_components(label > 127))
  np.testing.assert_array_equal(example['weight'],
                                instances.border_weight_map(example['instances']))
  assert example['instances'].max() > 20
  # Scoring a membrane map: a perfect one scores perfectly; thicker predicted
  # membranes cost little (the regions grow over them, and only the true
  # regions are scored); a gap that joins two regions is a merge.
  from scipy import ndimage
  from unetjax import evaluation
  score = evaluation.ObjectScoring('background')
  truth, membranes = example['instances'], (label <= 127).astype(np.uint8)
  perfect = instances.summarize([score(truth, membranes, membranes)])
  assert perfect['object_f1'] == perfect['pq'] == perfect['aji'] == 1
  assert perfect['adapted_rand_error'] == pytest.approx(0, abs=1e-12)
  assert perfect['variation_of_information'] == pytest.approx(0, abs=1e-9)
  thick = ndimage.binary_dilation(membranes, iterations=1).astype(np.uint8)
  thicker = instances.summarize([score(truth, membranes, thick)])
  assert 0 < thicker['adapted_rand_error'] < 0.02
  joined = membranes.copy()
  joined[:, 250:262] = 0  # a vertical band without membranes
  merged = instances.summarize([score(truth, membranes, joined)])
  assert merged['adapted_rand_error'] > 5 * thicker['adapted_rand_error']
  error, _, _ = sk_metrics.adapted_rand_error(
      truth, np.where(truth > 0, instances.objects_in(joined, 'background'), 0))
  assert merged['adapted_rand_error'] == pytest.approx(error)


def test_aji_breaks_ties_by_position_not_by_id():
  """A true object overlapping two predicted ones equally: AJI takes the one
  met first in raster order whatever their ids (argmax took the lower id)."""
  true = np.zeros((4, 6), int)
  true[1:3, 1:5] = 1
  pred = np.zeros((4, 6), int)
  pred[0:3, 0:3] = 2  # first in raster order; 4 of its 9 pixels are inside
  pred[1:4, 3:6] = 1  # 4 of its 9 pixels inside too: the same IoU
  swapped = np.where(pred > 0, 3 - pred, 0)
  scores = [instances.object_scores(true, p) for p in (pred, swapped)]
  for s in scores:
    # The chosen pair: 4 / (8 + 9 - 4); the other predicted object adds 9.
    assert s['aji_intersection'] == 4 and s['aji_union'] == 13 + 9
