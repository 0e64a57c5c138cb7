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
  missed = scores(true, empty)
  assert missed['object_f1'] == 0 and missed['pq'] == 0 and missed['aji'] == 0
  invented = scores(empty, true)
  assert invented['object_f1'] == 0 and invented['pq'] == 0 and invented['aji'] == 0


def test_one_object_split_in_two():
  true = squares((0, 4, 0, 8))  # 32 pixels
  pred = squares((0, 4, 0, 4), (0, 4, 4, 8))  # two halves of 16
  s = scores(true, pred)
  # Each half has IoU 16/32 = 0.5 >= 0.5: one of them matches.
  assert (s['object_precision'], s['object_recall']) == (0.5, 1.0)
  assert s['object_f1'] == pytest.approx(2 / 3)
  assert s['sq'] == 0.5 and s['rq'] == pytest.approx(1 / 1.5)
  assert s['pq'] == pytest.approx(0.5 / 1.5)
  # AJI: C = 16, U = 32 (true with one half) + 16 (the unused half).
  assert s['aji'] == pytest.approx(16 / 48)


def test_two_objects_merged_in_one():
  true = squares((0, 4, 0, 4), (0, 4, 4, 8))
  pred = squares((0, 4, 0, 8))
  s = scores(true, pred)
  assert (s['object_precision'], s['object_recall']) == (1.0, 0.5)
  assert s['pq'] == pytest.approx(0.5 / 1.5)
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
  from unetjax import train
  batch = {'image': jnp.zeros((2, 8, 8, 1), jnp.uint8),
           'mask': jnp.ones((2, 8, 8), jnp.uint8),
           'weight': jnp.full((2, 8, 8), 3.0)}
  _, _, weights = train.augment_inputs(batch, 0, None, None, None)
  assert weights is None
  _, _, weights = train.augment_inputs(batch, 0, None, None, None,
                                       pixel_weights=True)
  np.testing.assert_array_equal(weights, batch['weight'])
  roi = {**batch, 'roi': jnp.zeros((2, 8, 8), jnp.uint8).at[:, :4].set(1)}
  _, _, weights = train.augment_inputs(roi, 0, None, None, None,
                                       pixel_weights=True)
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


def test_instance_config_trains_and_reports_object_metrics(tmp_path):
  from configs import instances as instances_config
  from unetjax import train
  config = instances_config.get_config()
  config.dataset.data_dir = str(tmp_path / 'tfds')
  config.model.base_filters, config.model.depth = 4, 2
  config.model.dropout_rates = (0.0,) * 3
  config.batch_size = config.eval_batch_size = 16
  config.num_train_steps = config.log_every_steps = 4
  config.eval_every_steps = config.checkpoint_every_steps = 4
  config.progress_bar = False
  final = train.train_and_evaluate(config, str(tmp_path / 'run'))
  for split in ('validation', 'test'):
    for name in ('object_f1', 'pq', 'aji', 'adapted_rand_error',
                 'variation_of_information', 'dice'):
      assert name in final[split]
    assert 0 <= final[split]['object_f1'] <= 1
