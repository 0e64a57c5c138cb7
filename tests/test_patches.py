"""Native-resolution datasets: random training patches, whole-image
evaluation by a sliding window, and their config checks."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from configs import default
from unetjax import evaluation, losses, metrics, models, predict, train
from unetjax import sliding_window
from unetjax import state as state_lib
from unetjax.data import patches, pipeline
from unetjax.errors import ConfigError, InputShapeError

# Heights and widths of the native folder's images: larger and smaller than
# the 32-pixel patch, one narrower than half of it.
SIZES = ((40, 52), (70, 33), (24, 48), (64, 64), (45, 14), (50, 50),
         (36, 41), (33, 60), (58, 39), (32, 32))
PATCH = 32


@pytest.fixture(scope='module')
def native_folder(tmp_path_factory):
  """Images of varied sizes whose masks hold a few small square objects."""
  root = tmp_path_factory.mktemp('native')
  rng = np.random.default_rng(0)
  for sub in ('images', 'masks'):
    os.makedirs(root / sub)
  for i, (height, width) in enumerate(SIZES):
    mask = np.zeros((height, width), np.uint8)
    for _ in range(2):
      y, x = rng.integers(0, height - 3), rng.integers(0, width - 3)
      mask[y:y + 3, x:x + 3] = 255
    image = rng.integers(0, 100, (height, width, 3), dtype=np.uint8)
    image[mask > 0] += 120
    Image.fromarray(image).save(root / 'images' / f'case{i:02d}.png')
    Image.fromarray(mask).save(root / 'masks' / f'case{i:02d}.png')
  return root


def native_config(folder, tfds_dir, **dataset_fields):
  config = default.get_config()
  config.dataset.name = 'image_folder'
  config.dataset.manual_dir = str(folder)
  config.dataset.data_dir = str(tfds_dir)
  config.dataset.folder = {'image_size': 0, 'split_fractions': (0.6, 0.2, 0.2)}
  config.dataset.patch_size = PATCH
  config.model.depth = 2
  config.model.base_filters = 4
  config.model.dropout_rates = (0.0, 0.0, 0.0)
  for key, value in dataset_fields.items():
    config.dataset[key] = value
  return config


@pytest.fixture(scope='module')
def native_info(native_folder, tmp_path_factory):
  tfds_dir = tmp_path_factory.mktemp('native_tfds')
  config = native_config(native_folder, tfds_dir)
  return config, pipeline.prepare(config.dataset)


def take(iterator, n):
  return [next(iterator) for _ in range(n)]


def test_native_images_keep_their_sizes(native_info, native_folder):
  config, info = native_info
  assert info.image_shape == (None, None, 3)
  stored = {}
  for split in ('train', 'validation', 'test'):
    for example in pipeline.examples(config.dataset, split):
      stored[example['image'].shape[:2]] = example
  assert set(stored) == set(SIZES)
  assert sorted(map(tuple, sum(info.image_sizes.values(), ()))) == sorted(SIZES)
  # Pixels as in the files (PNG is lossless).
  for i, size in enumerate(SIZES):
    source = np.asarray(Image.open(native_folder / 'images' / f'case{i:02d}.png'))
    np.testing.assert_array_equal(stored[size]['image'], source)


def test_patches_have_the_patch_size_and_leave_padding_unscored(native_info):
  config, info = native_info
  batches = pipeline.train_batches(config.dataset, 4, seed=0)
  # The fewest real pixels a patch of a training image can hold.
  fewest = min(min(h, PATCH) * min(w, PATCH) for h, w in info.image_sizes['train'])
  for batch in take(batches, 10):
    assert batch['image'].shape == (4, PATCH, PATCH, 3)
    assert batch['mask'].shape == batch['roi'].shape == (4, PATCH, PATCH)
    for image, roi in zip(batch['image'], batch['roi']):
      # Padding (zeros) lies outside the roi; every patch has real pixels.
      assert roi.sum() >= fewest
      assert not np.any(image[roi == 0])


def test_previews_show_patches_of_the_first_examples(native_info):
  config, _ = native_info
  batch = pipeline.patch_examples(config.dataset, 'train', 3, seed=1)
  assert batch['image'].shape == (3, PATCH, PATCH, 3)
  again = pipeline.patch_examples(config.dataset, 'train', 3, seed=1)
  np.testing.assert_array_equal(batch['image'], again['image'])


def test_padding_is_outside_the_roi_of_a_small_image():
  image = np.full((10, 20, 1), 7, np.uint8)
  mask = np.zeros((10, 20), np.uint8)
  sampling = patches.PatchSampling(size=(16, 16), foreground_share=0.0)
  patch = patches.sample_patch({'image': image, 'mask': mask},
                               np.random.default_rng(1), sampling)
  assert patch['image'].shape == (16, 16, 1)
  assert patch['roi'].sum() == 10 * 16  # all 10 rows, 16 of the 20 columns
  assert np.all(patch['image'][patch['roi'] > 0] == 7)


def test_oversampled_patches_contain_foreground_inside_the_roi():
  rng = np.random.default_rng(0)
  mask = np.zeros((200, 300), np.uint8)
  mask[150, 40] = mask[20, 280] = 1  # two foreground pixels
  roi = np.ones_like(mask)
  roi[:, 200:] = 0  # the second one is outside the region of interest
  example = {'image': np.zeros((200, 300, 3), np.uint8), 'mask': mask, 'roi': roi}
  always = patches.PatchSampling(size=(32, 32), foreground_share=1.0)
  never = patches.PatchSampling(size=(32, 32), foreground_share=0.0)
  for _ in range(20):
    patch = patches.sample_patch(example, rng, always)
    assert patch['mask'].sum() == 1 and patch['roi'][patch['mask'] > 0].all()
  random_hits = sum(patches.sample_patch(example, rng, never)['mask'].sum()
                    for _ in range(200))
  assert random_hits < 20  # one pixel in 200x200: a patch hits it ~2.5% of the time
  # Without foreground oversampling, patches are centred in the roi.
  for _ in range(20):
    assert patches.sample_patch(example, rng, never)['roi'][16, 16] == 1


def test_same_seed_and_step_give_the_same_patches_after_a_resume(native_info):
  config, _ = native_info
  run = take(pipeline.train_batches(config.dataset, 4, seed=3), 6)
  resumed = take(pipeline.train_batches(config.dataset, 4, seed=3, start_step=4), 2)
  for expected, got in zip(run[4:], resumed):
    for key in expected:
      np.testing.assert_array_equal(expected[key], got[key])
  other_seed = next(pipeline.train_batches(config.dataset, 4, seed=4))
  assert not np.array_equal(other_seed['image'], run[0]['image'])
  # Later epochs draw new patches of the same images.
  epoch = len(_train_keys(config))
  assert any(not np.array_equal(a['image'], b['image'])
             for a, b in zip(run[:1], take(pipeline.train_batches(
                 config.dataset, 4, seed=3, start_step=epoch), 1)))


def _train_keys(config):
  return list(pipeline.examples(config.dataset, 'train'))


def tiny_model_and_variables():
  model = models.get_model(native_config('', '').model, 'float32', 'float32')
  variables = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(0), jnp.zeros((1, PATCH, PATCH, 3)))
  return model, variables


def test_whole_image_evaluation_of_one_window_is_one_forward_pass():
  model, variables = tiny_model_and_variables()
  apply_fn, n_devices = evaluation.local_apply_fn(model, variables)
  rng = np.random.default_rng(0)
  image = rng.integers(0, 255, (PATCH, PATCH, 3)).astype(np.uint8)
  label = (rng.random((PATCH, PATCH)) > 0.7).astype(np.uint8)
  loss_fn = losses.get_loss(default.get_config().loss)
  options = dict(default.get_config().metrics.to_dict(), surface_metrics=False)
  stats, _ = evaluation.whole_image_statistics(
      apply_fn, [{'image': image, 'mask': label}],
      lambda x: np.asarray(state_lib.preprocess(x)), window=(PATCH, PATCH),
      overlap=0.5, batch_size=8, batch_multiple=n_devices, loss_fn=loss_fn,
      metric_options=options)
  logits = state_lib.forward(model, variables, state_lib.preprocess(image[None]))
  expected = metrics.merge(None, jax.jit(functools.partial(
      metrics.batch_statistics, **options))(
          logits, jnp.asarray(label[None], jnp.int32)))
  for key in expected:
    np.testing.assert_allclose(stats[key], expected[key], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(stats['loss_sum'], loss_fn(logits, label[None]),
                             rtol=1e-5)


def test_mirrored_whole_image_evaluation_scores_the_flip_averaged_logits():
  """With `mirror`, an image larger than the window is scored on the mean of
  the sliding-window logits of its four flips, each flipped back."""
  model, variables = tiny_model_and_variables()
  apply_fn, n_devices = evaluation.local_apply_fn(model, variables)
  rng = np.random.default_rng(2)
  image = rng.integers(0, 255, (70, 84, 3)).astype(np.uint8)
  label = (rng.random((70, 84)) > 0.6).astype(np.uint8)
  loss_fn = losses.get_loss(default.get_config().loss)
  options = dict(default.get_config().metrics.to_dict(), surface_metrics=False)
  pixels = np.asarray(state_lib.preprocess(image))
  logits_of = lambda x: sliding_window.sliding_window_logits(
      apply_fn, np.ascontiguousarray(x), (PATCH, PATCH), 0.5,
      batch_multiple=n_devices)
  averaged = np.mean([np.flip(logits_of(np.flip(pixels, axes)), axes)
                      for axes in ((), (0,), (1,), (0, 1))], axis=0)
  expected = jax.jit(functools.partial(metrics.batch_statistics, **options))(
      jnp.asarray(averaged[None]), jnp.asarray(label[None], jnp.int32))
  scores = {}
  for mirror in (True, False):
    scores[mirror], _ = evaluation.whole_image_statistics(
        apply_fn, [{'image': image, 'mask': label}],
        lambda x: np.asarray(state_lib.preprocess(x)), window=(PATCH, PATCH),
        overlap=0.5, batch_size=8, batch_multiple=n_devices, loss_fn=loss_fn,
        metric_options=options, mirror=mirror)
  for key in expected:
    np.testing.assert_allclose(scores[True][key], expected[key], rtol=1e-5,
                               atol=1e-4, err_msg=key)
  assert not np.allclose(scores[True]['loss_sum'], scores[False]['loss_sum'])


def test_native_size_metrics_equal_the_metric_functions_inside_the_roi():
  """An image larger than the window (several blended windows), with a
  DRIVE-like circular field of view: the scores equal those of the same
  full-resolution prediction scored by `metrics`, counting only the roi."""
  model, variables = tiny_model_and_variables()
  apply_fn, n_devices = evaluation.local_apply_fn(model, variables)
  rng = np.random.default_rng(1)
  height, width = 76, 90
  image = rng.integers(0, 255, (height, width, 3)).astype(np.uint8)
  label = (rng.random((height, width)) > 0.6).astype(np.int32)
  yy, xx = np.mgrid[:height, :width]
  roi = ((yy - height / 2) ** 2 + (xx - width / 2) ** 2) < (height / 2.2) ** 2
  preprocess = lambda x: np.asarray(state_lib.preprocess(x))
  logits = np.asarray(evaluation.sliding_window.sliding_window_logits(
      apply_fn, preprocess(image), (PATCH, PATCH), 0.5,
      batch_multiple=n_devices))
  options = dict(default.get_config().metrics.to_dict(), surface_metrics=False)
  loss_fn = losses.get_loss(default.get_config().loss)
  stats, _ = evaluation.whole_image_statistics(
      apply_fn, [{'image': image, 'mask': label, 'roi': roi.astype(np.uint8)}],
      preprocess, window=(PATCH, PATCH), overlap=0.5, batch_size=8,
      batch_multiple=n_devices, loss_fn=loss_fn, metric_options=options)
  predicted = np.asarray(metrics.predict_classes(logits[None]))[0]
  inside = roi.astype(bool)
  tp = np.sum((predicted == 1) & (label == 1) & inside)
  fp = np.sum((predicted == 1) & (label == 0) & inside)
  fn = np.sum((predicted == 0) & (label == 1) & inside)
  assert stats['pixels'] == inside.sum()
  assert (stats['tp'][1], stats['fp'][1], stats['fn'][1]) == (tp, fp, fn)
  summary = metrics.summarize(stats, ('background', 'foreground'))
  assert summary['dice'] == pytest.approx(2 * tp / (2 * tp + fp + fn))
  # Pixels outside the roi do not count: changing them changes nothing.
  outside_changed = np.where(inside, label, 1 - label)
  again, _ = evaluation.whole_image_statistics(
      apply_fn, [{'image': image, 'mask': outside_changed,
                  'roi': roi.astype(np.uint8)}],
      preprocess, window=(PATCH, PATCH), overlap=0.5, batch_size=8,
      batch_multiple=n_devices, loss_fn=loss_fn, metric_options=options)
  for key in ('tp', 'fp', 'fn', 'pixels'):
    np.testing.assert_array_equal(again[key], stats[key])


@pytest.mark.parametrize('fields, message', [
    ({'patch_size': 30}, 'config.dataset.patch_size=30'),
    ({'patch_size': 128, 'pad_patches': False}, 'config.dataset.patch_size=128'),
    ({'foreground_oversampling': 1.5}, 'config.dataset.foreground_oversampling'),
    ({'patch_size': (32, -1)}, 'config.dataset.patch_size'),
])
def test_bad_patch_fields_stop_with_one_message_naming_the_field(
    native_folder, native_info, tmp_path, fields, message):
  config, _ = native_info
  config = native_config(native_folder, config.dataset.data_dir, **fields)
  with pytest.raises((ConfigError, InputShapeError), match=message.replace(
      '(', r'\(').replace(')', r'\)')):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not os.path.exists(tmp_path / 'run')


def test_a_native_dataset_without_a_patch_size_says_to_set_one(
    native_folder, native_info, tmp_path):
  config, _ = native_info
  config = native_config(native_folder, config.dataset.data_dir, patch_size=0)
  with pytest.raises(Exception, match='set config.dataset.patch_size'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))


@pytest.mark.slow
def test_training_on_patches_evaluates_whole_images(native_folder, native_info,
                                                    tmp_path):
  config, info = native_info
  config = native_config(native_folder, config.dataset.data_dir)
  config.batch_size = config.eval_batch_size = 8
  config.num_train_steps = 4
  config.eval_every_steps = config.checkpoint_every_steps = 2
  config.log_every_steps = 2
  config.progress_bar = False
  final = train.train_and_evaluate(config, str(tmp_path / 'run'))
  for split in ('validation', 'test'):
    assert 0 <= final[split]['pixel_accuracy'] <= 1
    assert np.isfinite(final[split]['loss'])
  assert os.path.exists(tmp_path / 'run' / train.PREDICTIONS_FILE)
  # Prediction slides the patch-sized window over images of any size.
  result = predict.predict_folder(
      str(tmp_path / 'run'), str(native_folder / 'images'),
      str(tmp_path / 'predicted'), str(native_folder / 'masks'))
  assert state_lib.load_run(str(tmp_path / 'run')).window == (PATCH, PATCH)
  assert result['images'] == len(SIZES)
  for i, (height, width) in enumerate(SIZES):
    mask = Image.open(tmp_path / 'predicted' / 'masks' / f'case{i:02d}.png')
    assert mask.size == (width, height)


def test_training_split_kept_in_memory_gives_the_same_batches(native_info):
  config, info = native_info
  epoch = len(info.image_sizes['train'])
  kept = config.dataset.copy_and_resolve_references()
  decoded = config.dataset.copy_and_resolve_references()
  kept.memory_cache_mib, decoded.memory_cache_mib = 64, 0
  # Three epochs: later ones read the kept examples.
  for got, expected in zip(take(pipeline.train_batches(kept, 4, seed=2), 3 * epoch),
                           take(pipeline.train_batches(decoded, 4, seed=2), 3 * epoch)):
    for key in expected:
      np.testing.assert_array_equal(got[key], expected[key])


def test_decoded_size_is_every_array_of_the_split(native_info):
  config, info = native_info
  source = pipeline._source(config.dataset, 'train')
  exact = sum(v.nbytes for ex in _train_keys(config) for v in ex.values())
  assert pipeline.decoded_mib(source, info.image_sizes['train']) == pytest.approx(
      exact / 2**20)
  # Kept only under the limit; kept examples are shared, so read-only.
  small = config.dataset.copy_and_resolve_references()
  with small.ignore_type():
    small.memory_cache_mib = 0.5 * exact / 2**20
  assert pipeline._kept_in_memory(source, small, 'train') is source
  with small.ignore_type():
    small.memory_cache_mib = 2 * exact / 2**20
  kept = pipeline._kept_in_memory(source, small, 'train')
  assert kept is not source
  with pytest.raises(ValueError):
    kept[0]['image'][0, 0, 0] = 1
