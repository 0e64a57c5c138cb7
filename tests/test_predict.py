"""unetjax.predict: sliding windows, flip TTA and the command on a workdir."""

import csv
import functools
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as skm

from configs import default
from unetjax import checkpoints, models, optimizers, predict, sliding_window
from unetjax import state as state_lib
from unetjax import workdir as workdir_lib
from unetjax.data import synthetic
from unetjax.errors import DataError, UserInputError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WINDOW = (64, 64)  # synthetic_cells/binary's image size


def tiny_config(data_dir):
  config = default.get_config()
  config.dataset.data_dir = data_dir  # never built: prediction only describes it
  config.model.base_filters = 4
  config.model.depth = 2
  config.model.dropout_rates = (0.0,) * 3
  return config


@pytest.fixture(scope='module')
def model_and_state(tmp_path_factory):
  config = tiny_config(str(tmp_path_factory.mktemp('tfds')))
  model = models.get_model(config.model)
  schedule = optimizers.create_learning_rate_schedule(config.optimizer,
                                                 config.num_train_steps)
  state = state_lib.init_train_state(jax.random.key(0), model,
                                 optimizers.create_optimizer(config.optimizer, schedule),
                                 WINDOW + (1,))
  return config, model, jax.device_get(state)


@pytest.fixture(scope='module')
def apply_fn(model_and_state):
  _, model, state = model_and_state
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  return functools.partial(state_lib.forward, model, variables)


def make_workdir(path, config, state, best=True):
  """A workdir as training leaves it: config.json and a checkpoint."""
  workdir_lib.record_config(str(path), config)
  ckpts = checkpoints.Checkpoints(str(path))
  meta = {'wall_time_s': 1.0, 'best_score': 0.5, 'best_step': 3}
  if best:
    ckpts.save_best(3, state, 0.5, meta)
  else:  # no validation score was finite, so none is the best
    ckpts.save_latest(3, state, {**meta, 'best_score': None, 'best_step': None})
  ckpts.wait()
  ckpts.close()
  return str(path)


@pytest.fixture(scope='module')
def run_dir(model_and_state, tmp_path_factory):
  config, _, state = model_and_state
  return make_workdir(tmp_path_factory.mktemp('run'), config, state)


def cells(seed, height, width, channels=1):
  """A synthetic image (H, W, C) uint8 and its 0/1 mask, cropped to size."""
  size = max(height, width)
  image, mask = synthetic.render_cells(np.random.default_rng(seed), size,
                                       channels, False)
  return image[:height, :width], mask[:height, :width]


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
  """images/ and masks/ (0/255 PNG) of a window-sized and a larger image
  (each image size compiles the metrics anew); small/, a smaller image."""
  root = tmp_path_factory.mktemp('data')
  for folder in ('images', 'masks', 'small'):
    (root / folder).mkdir()
  for seed, (name, shape) in enumerate([('fits', (64, 64)), ('large', (100, 150)),
                                        ('small', (40, 50))]):
    image, mask = cells(seed, *shape)
    folder = 'small' if name == 'small' else 'images'
    Image.fromarray(image[..., 0]).save(root / folder / f'{name}.png')
    Image.fromarray((mask > 0).astype(np.uint8) * 255).save(
        root / 'masks' / f'{name}.png')
  return root


def pointwise(images):
  """A model whose logit at a pixel depends on that pixel only."""
  return jnp.sum(images * 8 - 4, axis=-1, keepdims=True)


def test_window_starts_cover_the_image_and_end_at_the_border():
  assert sliding_window.window_starts(64, 64, 0.5) == [0]
  assert sliding_window.window_starts(40, 64, 0.5) == [0]
  assert sliding_window.window_starts(150, 64, 0.5) == [0, 32, 64, 86]
  assert sliding_window.window_starts(128, 64, 0.75) == [0, 16, 32, 48, 64]
  weights = sliding_window.window_weights(WINDOW, 'linear')
  assert weights.shape == WINDOW and weights.min() > 0
  np.testing.assert_allclose(weights, weights[::-1, ::-1])


def test_an_image_that_fits_the_window_is_one_pass(apply_fn):
  image = cells(0, 64, 64)[0].astype(np.float32) / 255
  windowed = sliding_window.sliding_window_logits(apply_fn, image, WINDOW)
  single = np.asarray(apply_fn(image[None]))[0]
  np.testing.assert_array_equal(windowed, single)
  small = sliding_window.sliding_window_logits(apply_fn, image[:40, :50], WINDOW)
  assert small.shape == (40, 50, 1) and np.isfinite(small).all()


@pytest.mark.parametrize('blend', ['gaussian', 'linear'])
def test_blended_windows_of_a_pointwise_model_equal_one_pass(blend):
  image = np.random.default_rng(0).random((100, 150, 1), np.float32)
  windowed = sliding_window.sliding_window_logits(pointwise, image, WINDOW, 0.5, blend,
                                           batch_size=4)
  np.testing.assert_allclose(windowed, pointwise(image), rtol=1e-5, atol=1e-5)


def test_unet_windows_are_close_to_one_pass_away_from_the_border(apply_fn):
  # Windows on the 2**depth grid and far from their edges see what one pass
  # over the whole image sees; the blend also mixes in windows where a pixel
  # is near an edge (zero padding there), with small weights.
  image = cells(3, 128, 128)[0].astype(np.float32) / 255
  windowed = sliding_window.sliding_window_logits(apply_fn, image, WINDOW, 0.75)
  single = np.asarray(apply_fn(image[None]))[0]
  interior = (slice(16, -16), slice(16, -16))
  difference = np.abs(windowed - single)[interior]
  assert np.mean(difference) < 0.05 * np.std(single[interior])
  assert np.corrcoef(windowed[interior].ravel(), single[interior].ravel())[0, 1] > 0.99


def test_flip_tta_of_a_flip_symmetric_image_is_symmetric(apply_fn):
  image = cells(4, 64, 96)[0]
  image = np.maximum(image, image[::-1])
  image = np.maximum(image, image[:, ::-1])  # symmetric under both flips
  tta = predict.predict_image(apply_fn, image, WINDOW, tta=True)
  assert tta.shape == (64, 96, 1) and np.isfinite(tta).all()
  np.testing.assert_allclose(tta, tta[::-1], atol=1e-5)
  np.testing.assert_allclose(tta, tta[:, ::-1], atol=1e-5)
  passes = [np.flip(predict.predict_image(apply_fn, np.flip(image, axes).copy(),
                                          WINDOW), axes)
            for axes in ((), (0,), (1,), (0, 1))]
  np.testing.assert_allclose(tta, np.mean(passes, axis=0), atol=1e-5)
  # A pointwise model is flip-equivariant: TTA changes nothing.
  np.testing.assert_allclose(
      predict.predict_image(pointwise, image, WINDOW, tta=True),
      predict.predict_image(pointwise, image, WINDOW), atol=1e-5)


def test_resize_mode_returns_logits_of_the_image_size(apply_fn):
  image = cells(5, 100, 150)[0]
  resized = predict.predict_image(apply_fn, image, WINDOW, resize=True)
  assert resized.shape == (100, 150, 1) and np.isfinite(resized).all()
  fits = cells(5, 64, 64)[0]
  np.testing.assert_allclose(predict.predict_image(apply_fn, fits, WINDOW, resize=True),
                             predict.predict_image(apply_fn, fits, WINDOW), atol=1e-6)


def test_overlay_draws_prediction_truth_and_overlap_contours_in_their_colours():
  image = np.full((12, 12, 1), 100, np.uint8)
  label = np.zeros((12, 12), np.int32)
  label[2:8, 2:8] = 1
  prediction = np.zeros((12, 12), np.int32)
  prediction[2:8, 2:10] = 1  # shares the top, bottom and left edges
  rgb = predict.overlay(image, prediction, 2, label)
  assert tuple(rgb[2, 3]) == predict.BOTH_COLOUR
  assert tuple(rgb[4, 7]) == predict.GROUND_TRUTH_COLOUR  # the label's right edge
  assert tuple(rgb[4, 9]) == predict.PREDICTION_COLOUR
  assert tuple(rgb[4, 4]) == (100, 100, 100) and tuple(rgb[0, 0]) == (100,) * 3
  assert tuple(predict.overlay(image, prediction, 2)[2, 3]) == predict.PREDICTION_COLOUR


def test_masks_are_saved_as_0_255_or_class_ids_and_read_back(tmp_path):
  classes = np.array([[0, 1], [2, 1]])
  np.testing.assert_array_equal(predict.mask_png(classes > 0, 2), [[0, 255], [255, 255]])
  np.testing.assert_array_equal(predict.mask_png(classes, 3), classes)
  Image.fromarray(predict.mask_png(classes, 3)).save(tmp_path / 'multi.png')
  np.testing.assert_array_equal(
      predict.read_label(str(tmp_path / 'multi.png'), 3, None, (2, 2)), classes)
  Image.fromarray(np.array([[0, 200], [255, 30]], np.uint8)).save(tmp_path / 'jpeg.png')
  np.testing.assert_array_equal(
      predict.read_label(str(tmp_path / 'jpeg.png'), 2, 127, (2, 2)), [[0, 1], [1, 0]])
  with pytest.raises(DataError, match='is not binary.*set a threshold'):
    predict.read_label(str(tmp_path / 'jpeg.png'), 2, None, (2, 2))
  with pytest.raises(DataError, match='is not binary.*--mask_threshold'):
    predict.read_label(str(tmp_path / 'multi.png'), 2, None, (2, 2))
  Image.fromarray(np.array([[0, 5]], np.uint8)).save(tmp_path / 'five.png')
  with pytest.raises(DataError, match=r'holds class id 5, but the model has 3 '
                     r'classes \(0..2\)'):
    predict.read_label(str(tmp_path / 'five.png'), 3, None, (1, 2))
  with pytest.raises(DataError, match=r'is 2x2 but its image is 3x2'):
    predict.read_label(str(tmp_path / 'multi.png'), 3, None, (2, 3))


def read_csv(path):
  with open(path) as f:
    return {row['image']: {k: float(v) for k, v in row.items() if k != 'image'}
            for row in csv.DictReader(f)}


def workdir_files(workdir):
  return sorted((os.path.join(d, f), os.path.getmtime(os.path.join(d, f)))
                for d, _, files in os.walk(workdir) for f in files)


def test_predict_folder_writes_masks_overlays_and_metrics_as_sklearn_scores(
    run_dir, folders, apply_fn, tmp_path):
  before = workdir_files(run_dir)
  out = tmp_path / 'out'
  # The checkpoint is an untrained model: a threshold at its median
  # probability gives masks with both classes.
  image = np.asarray(Image.open(folders / 'images' / 'fits.png'))[..., None]
  threshold = float(np.median(jax.nn.sigmoid(
      predict.predict_image(apply_fn, image, WINDOW))))
  result = predict.predict_folder(run_dir, str(folders / 'images'), str(out),
                                  str(folders / 'masks'), threshold=threshold,
                                  tta=True)
  assert result['checkpoint'] == 'best' and result['step'] == 3
  assert workdir_files(run_dir) == before  # the workdir is only read
  names = ['fits', 'large']
  assert sorted(os.listdir(out / 'masks')) == [f'{n}.png' for n in names]
  assert sorted(os.listdir(out / 'overlays')) == [f'{n}.png' for n in names]
  rows = read_csv(out / predict.METRICS_FILE)
  assert list(rows) == names + ['mean', 'all']
  all_true, all_pred = [], []
  for name in names:
    saved = np.asarray(Image.open(out / 'masks' / f'{name}.png'))
    true = np.asarray(Image.open(folders / 'masks' / f'{name}.png')) > 0
    assert set(np.unique(saved)) <= {0, 255}
    pred = saved > 0
    assert 0 < pred.mean() < 1, 'degenerate test: all pixels one class'
    row = rows[name]
    y_true, y_pred = true.ravel(), pred.ravel()
    assert row['dice'] == pytest.approx(skm.f1_score(y_true, y_pred), rel=1e-6)
    assert row['iou'] == pytest.approx(skm.jaccard_score(y_true, y_pred), rel=1e-6)
    assert row['precision'] == pytest.approx(skm.precision_score(y_true, y_pred),
                                             rel=1e-6)
    assert row['recall'] == pytest.approx(skm.recall_score(y_true, y_pred), rel=1e-6)
    assert row['pixel_accuracy'] == pytest.approx(
        skm.accuracy_score(y_true, y_pred), rel=1e-6)
    # Boundary F1 and HD95 are checked against references in test_metrics.
    assert 0 <= row['boundary_f1'] <= 1 and row['hd95'] >= 0
    all_true.append(y_true)
    all_pred.append(y_pred)
    overlay = np.asarray(Image.open(out / 'overlays' / f'{name}.png'))
    assert overlay.shape == true.shape + (3,)
    colours = {tuple(c) for c in overlay.reshape(-1, 3)}
    assert predict.PREDICTION_COLOUR in colours
    assert predict.GROUND_TRUTH_COLOUR in colours
  for column in ('dice', 'iou', 'boundary_f1'):
    assert rows['mean'][column] == pytest.approx(
        np.mean([rows[n][column] for n in names]), rel=1e-6)
  assert rows['all']['dice'] == pytest.approx(
      skm.f1_score(np.concatenate(all_true), np.concatenate(all_pred)), rel=1e-6)


def test_the_latest_checkpoint_serves_when_there_is_no_best(
    model_and_state, folders, tmp_path):
  config, _, state = model_and_state
  workdir = make_workdir(tmp_path / 'run', config, state, best=False)
  result = predict.predict_folder(workdir, str(folders / 'small'),
                                  str(tmp_path / 'out'))
  assert result == {'images': 1, 'checkpoint': 'latest', 'step': 3}
  assert os.listdir(tmp_path / 'out' / 'masks') == ['small.png']
  assert not os.path.exists(tmp_path / 'out' / predict.METRICS_FILE)


def make_bad_input(kind, run_dir, folders, tmp_path):
  """(workdir, images, masks, out, options) for one kind of bad input."""
  images, masks, out = str(folders / 'images'), None, str(tmp_path / 'out')
  workdir, options = run_dir, {}
  if kind == 'missing images':
    images = str(tmp_path / 'nowhere')
  elif kind == 'no images':
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'notes.txt').write_text('no images here')
    images = str(tmp_path / 'empty')
  elif kind == 'missing mask':
    (tmp_path / 'masks').mkdir()
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / 'masks' / 'fits.png')
    masks = str(tmp_path / 'masks')
  elif kind == 'missing workdir':
    workdir = str(tmp_path / 'no_run')
  elif kind == 'no config':
    (tmp_path / 'run').mkdir()
    workdir = str(tmp_path / 'run')
  elif kind == 'no checkpoint':
    workdir_lib.record_config(str(tmp_path / 'run'), tiny_config(str(tmp_path)))
    workdir = str(tmp_path / 'run')
  elif kind == 'overlap':
    options = {'overlap': 1.0}
  elif kind == 'out in checkpoints':
    out = os.path.join(run_dir, 'best', 'predictions')
  return workdir, images, masks, out, options


@pytest.mark.parametrize('kind, message', [
    ('missing images', r'--images=.*nowhere: no such folder'),
    ('no images', r'No image files \(.png, .jpg.*\) in .*empty'),
    ('missing mask', r'No mask for image .*large.png'),
    ('missing workdir', r'--workdir=.*no_run: no such folder'),
    ('no config', r'has no config.json, so it is not a unetjax training run'),
    ('no checkpoint', r'has no checkpoint yet'),
    ('overlap', r'--overlap=1.0 must be in \[0, 1\)'),
    ('out in checkpoints', r"inside the run's best/ folder"),
])
def test_bad_input_is_one_clear_error(kind, message, run_dir, folders, tmp_path):
  workdir, images, masks, out, options = make_bad_input(kind, run_dir, folders,
                                                        tmp_path)
  before = workdir_files(run_dir)
  with pytest.raises(UserInputError, match=message):
    predict.predict_folder(workdir, images, out, masks, **options)
  assert workdir_files(run_dir) == before


def test_the_command_prints_one_error_line_and_exits_1(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'unetjax.predict', f'--workdir={tmp_path / "none"}',
       f'--images={tmp_path}', f'--out={tmp_path / "out"}'],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith('error: --workdir=')
  assert 'Traceback' not in result.stderr


def file_bytes(folder):
  return {os.path.relpath(os.path.join(d, f), folder):
          open(os.path.join(d, f), 'rb').read()
          for d, _, files in os.walk(folder) for f in files}


@pytest.mark.parametrize('out', ['dataset', 'masks', 'images'])
def test_an_out_folder_that_is_or_holds_an_input_is_refused(run_dir, folders,
                                                            out):
  before = file_bytes(folders)
  out_dir = folders if out == 'dataset' else folders / out
  flag = {'dataset': '(images|masks)', 'images': 'images', 'masks': 'masks'}[out]
  with pytest.raises(UserInputError, match=rf'--out=.* (is|holds) the --{flag} '
                     'folder'):
    predict.predict_folder(run_dir, str(folders / 'images'), str(out_dir),
                           str(folders / 'masks'))
  assert file_bytes(folders) == before  # the ground truth is untouched


def test_predict_replaces_its_own_files_but_no_other(run_dir, folders, tmp_path):
  out = tmp_path / 'out'
  images = str(folders / 'small')
  predict.predict_folder(run_dir, images, str(out))
  first = file_bytes(out)
  assert 'masks/small.png' in first
  predict.predict_folder(run_dir, images, str(out))  # its own outputs: replaced
  assert file_bytes(out) == first
  mine = tmp_path / 'mine'
  (mine / 'masks').mkdir(parents=True)
  (mine / 'masks' / 'small.png').write_text('a file the user put here')
  with pytest.raises(UserInputError, match=r'masks/small.png already exists and '
                     'unetjax did not write it'):
    predict.predict_folder(run_dir, images, str(mine))
  assert file_bytes(mine) == {'masks/small.png': b'a file the user put here'}


def test_a_run_trained_on_instances_writes_its_objects(model_and_state, folders,
                                                       tmp_path):
  from unetjax import instances
  config, _, state = model_and_state
  config = config.copy_and_resolve_references()
  config.dataset.name = 'synthetic_cells/instances'  # described, never built
  workdir = make_workdir(tmp_path / 'run', config, state)
  predict.predict_folder(workdir, str(folders / 'images'), str(tmp_path / 'out'))
  for name in ('fits', 'large'):
    mask = np.asarray(Image.open(tmp_path / 'out' / 'masks' / f'{name}.png'))
    objects = np.asarray(Image.open(tmp_path / 'out' / 'objects' / f'{name}.png'))
    np.testing.assert_array_equal(objects, instances.connected_components(mask > 0))
    tinted = np.asarray(Image.open(tmp_path / 'out' / 'object_overlays' / f'{name}.png'))
    image = np.asarray(Image.open(folders / 'images' / f'{name}.png'))
    assert tinted.shape == image.shape + (3,)
    np.testing.assert_array_equal(tinted[objects == 0], np.stack([image[objects == 0]] * 3, -1))
    for i in np.unique(objects)[1:]:  # one colour per object (within rounding)
      colour = tinted[objects == i].astype(int) * 2 - image[objects == i][:, None]
      assert np.all(colour.max(0) - colour.min(0) <= 2)
