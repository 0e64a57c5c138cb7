"""Bad and unusual inputs, as a demanding new user has them: each either
builds a correct dataset (stored pixels checked against the source file,
read independently with PIL and numpy) or stops with one `error:` line,
exit status 1 and the workdir untouched.

Datasets are tiny image folders made with PIL and built in-process; the
`slow` tests run the real command in a subprocess for every refused input
and check that no traceback reaches the user.
"""

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from typing import Any, Callable

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from configs import default
from unetjax import configuration, evaluation, models, train
from unetjax.data import pipeline
from unetjax.errors import UserInputError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 16  # stored side; sources are 16x16 unless a case says otherwise
EXIF_ORIENTATION = 0x0112


def source_image(seed: int, shape=(SIZE, SIZE)) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def source_mask(seed: int, shape=(SIZE, SIZE)) -> np.ndarray:
  """0/1 blocks, never all one class."""
  mask = np.kron(np.random.default_rng(100 + seed).integers(0, 2, (4, 4)),
                 np.ones((shape[0] // 4, shape[1] // 4), np.int64))
  mask[0, 0], mask[-1, -1] = 0, 1
  return mask.astype(np.uint8)


@dataclasses.dataclass
class Folder:
  """A dataset folder: images/ and masks/ under `root`."""
  root: str

  def __post_init__(self):
    os.makedirs(self.images, exist_ok=True)
    os.makedirs(self.masks, exist_ok=True)

  @property
  def images(self):
    return os.path.join(self.root, 'images')

  @property
  def masks(self):
    return os.path.join(self.root, 'masks')

  def image(self, name: str, array: np.ndarray, mode=None, **save):
    Image.fromarray(array, mode).save(os.path.join(self.images, name), **save)

  def mask(self, name: str, array: np.ndarray, mode=None, **save):
    Image.fromarray(array, mode).save(os.path.join(self.masks, name), **save)

  def grey_pairs(self, n: int = 3, start: int = 0):
    """n 8-bit greyscale PNG images with 0/255 masks."""
    for i in range(start, start + n):
      self.image(f'{i:03d}.png', source_image(i))
      self.mask(f'{i:03d}.png', source_mask(i) * 255)


def build(tmp_path, folder: Folder, **options) -> dict[str, dict[str, Any]]:
  """Builds `folder` as image_folder (image_size SIZE) and returns every
  stored example by file stem: image (H, W, C) uint8 and mask (H, W)."""
  config = dataset_config(tmp_path, folder, **options)
  info = pipeline.prepare(config)
  builder = pipeline._builder(config)
  examples = {}
  for split in info.split_sizes:
    for example in builder.as_data_source(split=split):
      name = os.path.splitext(example['file_name'].decode())[0]
      examples[name] = {'image': example['image'], 'mask': example['mask'][..., 0],
                        'split': split}
  return examples


def dataset_config(tmp_path, folder: Folder, **options):
  config = default.get_config().dataset
  config.name = 'image_folder'
  config.data_dir = str(tmp_path / 'tfds')
  config.manual_dir = folder.root
  config.folder = {'image_size': SIZE, 'split_fractions': (0.34, 0.33, 0.33),
                   **options}
  return config


# Each case writes a folder and says what a build gives: ('ok', check) with
# check(examples, folder) asserting the stored values, or ('error', text)
# with text part of the one error line.
Case = Callable[[Folder], tuple[dict[str, Any], str, Any]]
CASES: dict[str, Case] = {}


REFUSED: set[str] = set()  # the cases whose outcome is 'error'


def case(outcome: str) -> Callable[[Case], Case]:
  def register(function: Case) -> Case:
    CASES[function.__name__] = function
    if outcome == 'error':
      REFUSED.add(function.__name__)
    return function
  return register


def check_grey(expected_images: dict[str, np.ndarray], channels: int = 1):
  def check(examples, folder):
    assert set(examples) == set(expected_images)
    for name, expected in expected_images.items():
      image = examples[name]['image']
      assert image.shape == (SIZE, SIZE, channels)
      for c in range(channels):
        np.testing.assert_array_equal(image[..., c], expected, err_msg=name)
      np.testing.assert_array_equal(examples[name]['mask'],
                                    source_mask(int(name[-3:])), err_msg=name)
  return check


@case('ok')
def image_16_bit(folder):
  for i in range(3):
    folder.image(f'{i:03d}.png', source_image(i).astype(np.uint16) * 257)
    folder.mask(f'{i:03d}.png', source_mask(i) * 255)
  assert Image.open(os.path.join(folder.images, '000.png')).mode == 'I;16'
  return {'n_channels': 1}, 'ok', check_grey({f'{i:03d}': source_image(i)
                                              for i in range(3)})


@case('ok')
def image_16_bit_as_rgb(folder):
  for i in range(3):
    folder.image(f'{i:03d}.png', source_image(i).astype(np.uint16) * 257)
    folder.mask(f'{i:03d}.png', source_mask(i) * 255)
  return {'n_channels': 3}, 'ok', check_grey(
      {f'{i:03d}': source_image(i) for i in range(3)}, channels=3)


@case('ok')
def image_16_bit_full_range(folder):
  # 12-bit-like values: scaled by the 16-bit range, value / 257, rounded.
  values = {}
  for i in range(3):
    raw = np.random.default_rng(i).integers(0, 65536, (SIZE, SIZE)).astype(np.uint16)
    folder.image(f'{i:03d}.png', raw)
    folder.mask(f'{i:03d}.png', source_mask(i) * 255)
    values[f'{i:03d}'] = np.floor(raw / 257 + 0.5).astype(np.uint8)
  return {'n_channels': 1}, 'ok', check_grey(values)


@case('ok')
def image_float_tiff(folder):
  for i in range(3):
    folder.image(f'{i:03d}.tif', source_image(i).astype(np.float32) / 255)
    folder.mask(f'{i:03d}.png', source_mask(i) * 255)
  assert Image.open(os.path.join(folder.images, '000.tif')).mode == 'F'
  return {'n_channels': 1}, 'ok', check_grey({f'{i:03d}': source_image(i)
                                              for i in range(3)})


@case('ok')
def image_float_tiff_with_window(folder):
  for i in range(3):
    folder.image(f'{i:03d}.tif', source_image(i).astype(np.float32) * 4 - 100)
    folder.mask(f'{i:03d}.png', source_mask(i) * 255)
  return ({'n_channels': 1, 'intensity_window': (-100, 920)}, 'ok',
          check_grey({f'{i:03d}': source_image(i) for i in range(3)}))


@case('error')
def image_float_tiff_out_of_range(folder):
  for i in range(3):
    folder.image(f'{i:03d}.tif', source_image(i).astype(np.float32) * 4 - 100)
    folder.mask(f'{i:03d}.png', source_mask(i) * 255)
  return {'n_channels': 1}, 'error', 'intensity_window'


def check_masks(expected: dict[str, np.ndarray]):
  def check(examples, folder):
    assert set(examples) == set(expected)
    for name, mask in expected.items():
      np.testing.assert_array_equal(examples[name]['mask'], mask, err_msg=name)
  return check


def coloured(mask: np.ndarray, colors) -> np.ndarray:
  return np.asarray(colors, np.uint8)[mask]


@case('ok')
def mask_colour_with_table(folder):
  colors = ((0, 0, 0), (0, 255, 0), (255, 0, 0))
  expected = {}
  for i in range(3):
    folder.image(f'{i:03d}.png', source_image(i))
    mask = source_mask(i) * (1 + (np.arange(SIZE)[None] >= SIZE // 2))
    folder.mask(f'{i:03d}.png', coloured(mask, colors))
    expected[f'{i:03d}'] = mask
  return ({'mask_colors': colors, 'class_names': ('bg', 'green', 'red')}, 'ok',
          check_masks(expected))


@case('error')
def mask_colour_without_table(folder):
  for i in range(3):
    folder.image(f'{i:03d}.png', source_image(i))
    folder.mask(f'{i:03d}.png', coloured(source_mask(i), ((0, 0, 0), (0, 255, 0))))
  return {}, 'error', 'mask_colors'


@case('error')
def mask_colour_not_in_table(folder):
  for i in range(3):
    folder.image(f'{i:03d}.png', source_image(i))
    folder.mask(f'{i:03d}.png', coloured(source_mask(i), ((0, 0, 0), (0, 255, 0))))
  return ({'mask_colors': ((0, 0, 0), (255, 0, 0))}, 'error',
          '(0, 255, 0) that are not in config.dataset.folder.mask_colors')


@case('ok')
def mask_colour_with_threshold(folder):
  for i in range(3):
    folder.image(f'{i:03d}.png', source_image(i))
    folder.mask(f'{i:03d}.png', coloured(source_mask(i), ((0, 0, 0), (0, 255, 0))))
  return {'mask_threshold': 127}, 'ok', check_masks(
      {f'{i:03d}': source_mask(i) for i in range(3)})


@case('ok')
def mask_la_label_in_alpha(folder):
  for i in range(3):
    folder.image(f'{i:03d}.png', source_image(i))
    alpha = source_mask(i) * 255
    folder.mask(f'{i:03d}.png', np.stack([np.zeros_like(alpha), alpha], -1), 'LA')
  assert Image.open(os.path.join(folder.masks, '000.png')).mode == 'LA'
  return {}, 'ok', check_masks({f'{i:03d}': source_mask(i) for i in range(3)})


@case('ok')
def mask_1_bit(folder):
  for i in range(3):
    folder.image(f'{i:03d}.png', source_image(i))
    Image.fromarray(source_mask(i) * 255).convert('1').save(
        os.path.join(folder.masks, f'{i:03d}.png'))
  assert Image.open(os.path.join(folder.masks, '000.png')).mode == '1'
  return {}, 'ok', check_masks({f'{i:03d}': source_mask(i) for i in range(3)})


def palette_mask(folder, name, mask, palette):
  image = Image.fromarray(mask, 'P')
  image.putpalette([v for color in palette for v in color])
  image.save(os.path.join(folder.masks, name))


@case('ok')
def mask_palette_grey(folder):
  for i in range(3):
    folder.image(f'{i:03d}.png', source_image(i))
    palette_mask(folder, f'{i:03d}.png', source_mask(i), ((0, 0, 0), (255, 255, 255)))
  return {}, 'ok', check_masks({f'{i:03d}': source_mask(i) for i in range(3)})


@case('ok')
def mask_palette_indices(folder):  # PASCAL VOC: index = class, coloured palette
  for i in range(3):
    folder.image(f'{i:03d}.png', source_image(i))
    palette_mask(folder, f'{i:03d}.png', source_mask(i), ((0, 0, 0), (128, 0, 0)))
  return {'mask_values': (0, 1)}, 'ok', check_masks(
      {f'{i:03d}': source_mask(i) for i in range(3)})


@case('ok')
def mask_palette_by_colour(folder):
  for i in range(3):
    folder.image(f'{i:03d}.png', source_image(i))
    palette_mask(folder, f'{i:03d}.png', source_mask(i), ((0, 0, 0), (128, 0, 0)))
  return {'mask_colors': ((0, 0, 0), (128, 0, 0))}, 'ok', check_masks(
      {f'{i:03d}': source_mask(i) for i in range(3)})


@case('error')
def duplicate_stems(folder):
  folder.grey_pairs(3)
  folder.image('001.jpg', source_image(1))
  return {}, 'error', '001.jpg and 001.png'


@case('error')
def duplicate_mask_stems(folder):
  folder.grey_pairs(3)
  folder.mask('002.gif', source_mask(2) * 255)
  return {}, 'error', '002.gif and 002.png'


def exif(orientation: int) -> Image.Exif:
  tags = Image.Exif()
  tags[EXIF_ORIENTATION] = orientation
  return tags


@case('ok')
def exif_orientation(folder):
  # Orientation 6: the stored pixels are shown turned 90 degrees clockwise.
  upright = {}
  for i in range(3):
    raw = source_image(i, (SIZE, SIZE // 2))  # 8 wide, 16 high as stored
    folder.image(f'{i:03d}.jpg', raw, exif=exif(6), quality=100)
    decoded = np.asarray(Image.open(os.path.join(folder.images, f'{i:03d}.jpg')))
    upright[f'{i:03d}'] = np.rot90(decoded, k=-1)  # 16 wide, 8 high
    folder.mask(f'{i:03d}.png', source_mask(i, (SIZE // 2, SIZE)) * 255)

  def check(examples, folder):
    for name, image in upright.items():
      expected = np.asarray(Image.fromarray(image).resize((SIZE, SIZE),
                                                          Image.BILINEAR))
      np.testing.assert_array_equal(examples[name]['image'][..., 0], expected)
      mask = np.asarray(Image.fromarray(source_mask(int(name), (SIZE // 2, SIZE)))
                        .resize((SIZE, SIZE), Image.NEAREST))
      np.testing.assert_array_equal(examples[name]['mask'], mask)
  return {'n_channels': 1}, 'ok', check


@case('ok')
def exif_orientation_on_image_and_mask(folder):
  for i in range(3):
    folder.image(f'{i:03d}.png', np.rot90(source_image(i)).copy(), exif=exif(6))
    folder.mask(f'{i:03d}.png', np.rot90(source_mask(i) * 255).copy(), exif=exif(6))
  return {'n_channels': 1}, 'ok', check_grey({f'{i:03d}': source_image(i)
                                              for i in range(3)})


def images_equal(expected):
  """A case's check: each stored image equals its expected pixels."""
  def check(examples, folder):
    for name, image in expected.items():
      np.testing.assert_array_equal(examples[name]['image'], image)
  return check


@case('ok')
def cmyk_jpeg(folder):
  expected = {}
  for i in range(3):
    rgb = np.stack([source_image(i), source_image(i + 10), source_image(i + 20)], -1)
    path = os.path.join(folder.images, f'{i:03d}.jpg')
    Image.fromarray(rgb).convert('CMYK').save(path, quality=100)
    expected[f'{i:03d}'] = np.asarray(Image.open(path).convert('RGB'))
    folder.mask(f'{i:03d}.png', source_mask(i) * 255)
  return {}, 'ok', images_equal(expected)


@case('ok')
def rgba_image(folder):
  expected = {}
  for i in range(3):
    rgba = np.stack([source_image(i + k) for k in (0, 10, 20, 30)], -1)
    folder.image(f'{i:03d}.png', rgba)
    expected[f'{i:03d}'] = rgba[..., :3]
    folder.mask(f'{i:03d}.png', source_mask(i) * 255)
  return {}, 'ok', images_equal(expected)


@case('ok')
def non_ascii_and_upper_case_names(folder):
  names = ('écho_é', '病例', 'CASE')
  for i, name in enumerate(names):
    folder.image(f'{name}.PNG' if i == 2 else f'{name}.png', source_image(i))
    folder.mask(f'{name}.JPG' if i == 1 else f'{name}.png', source_mask(i) * 255,
                **({'quality': 100} if i == 1 else {}))

  def check(examples, folder):
    assert set(examples) == set(names)
    for i, name in enumerate(names):
      np.testing.assert_array_equal(examples[name]['image'][..., 0], source_image(i))
      np.testing.assert_array_equal(examples[name]['mask'], source_mask(i))
  return {'n_channels': 1, 'mask_threshold': 127}, 'ok', check


@case('ok')
def three_images(folder):
  folder.grey_pairs(3)

  def check(examples, folder):
    assert sorted(e['split'] for e in examples.values()) == [
        'test', 'train', 'validation']
  return {'n_channels': 1}, 'ok', check


@case('error')
def n_channels_4(folder):
  folder.grey_pairs(3)
  return {'n_channels': 4}, 'error', 'n_channels=4 must be 1 (greyscale) or 3'


@case('error')
def n_channels_2(folder):
  folder.grey_pairs(3)
  return {'n_channels': 2}, 'error', 'n_channels=2 must be 1 (greyscale) or 3'


@case('error')
def negative_split_fraction(folder):
  folder.grey_pairs(3)
  return ({'split_fractions': (1.2, -0.1, -0.1)}, 'error',
          'split_fractions=(1.2, -0.1, -0.1) must be three fractions >= 0')


@case('error')
def image_size_negative(folder):  # (0 keeps each image's size: tests/test_patches.py)
  folder.grey_pairs(3)
  return {'image_size': -8}, 'error', 'image_size=-8 must be a whole number'


@case('error')
def empty_manual_dir(folder):
  os.rmdir(folder.images)
  os.rmdir(folder.masks)
  return {}, 'error', 'is empty'


@pytest.mark.parametrize('name', sorted(CASES))
def test_folder_input_is_stored_exactly_or_refused(tmp_path, name):
  folder = Folder(str(tmp_path / 'data'))
  options, outcome, expected = CASES[name](folder)
  assert outcome == ('error' if name in REFUSED else 'ok')
  if outcome == 'ok':
    expected(build(tmp_path, folder, **options), folder)
  else:
    with pytest.raises(UserInputError) as error:
      build(tmp_path, folder, **options)
    assert expected in str(error.value)
    assert '\n' not in str(error.value)


def test_a_changed_folder_builds_anew(tmp_path):
  folder = Folder(str(tmp_path / 'data'))
  folder.grey_pairs(3)
  first = build(tmp_path, folder, n_channels=1)
  assert first['001']['mask'].any()
  # A corrected mask (same name, same size on disk would still differ in time).
  folder.mask('001.png', np.zeros((SIZE, SIZE), np.uint8))
  os.utime(os.path.join(folder.masks, '001.png'), ns=(1, 1))
  second = build(tmp_path, folder, n_channels=1)
  assert not second['001']['mask'].any()
  folder.grey_pairs(1, start=3)  # an added image
  assert len(build(tmp_path, folder, n_channels=1)) == 4


@pytest.mark.slow
def test_a_run_records_the_build_it_used(tmp_path):
  folder = Folder(str(tmp_path / 'data'))
  for i in range(3):
    folder.image(f'{i:03d}.png', source_image(i, (32, 32)))
    folder.mask(f'{i:03d}.png', source_mask(i, (32, 32)) * 255)
  config = tiny_run_config(dataset_config(tmp_path, folder, n_channels=1,
                                          image_size=32))
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(config, workdir)
  saved = json.load(open(os.path.join(workdir, 'config.json')))
  name = pipeline._builder(config.dataset).builder_config.name
  assert saved['dataset_build'] == f'image_folder/{name}/1.0.0'
  folder.grey_pairs(1, start=3)
  with pytest.raises(UserInputError, match='dataset_build: .* -> '):
    train.train_and_evaluate(config, workdir)


def tiny_run_config(dataset, **overrides):
  config = default.get_config()
  config.dataset = dataset
  config.model.base_filters = 4
  config.model.depth = 2
  config.model.dropout_rates = (0.0, 0.0, 0.0)
  config.batch_size = config.eval_batch_size = 8
  config.num_train_steps = config.log_every_steps = 2
  config.eval_every_steps = config.checkpoint_every_steps = 2
  config.progress_bar = False
  config.metrics.surface_metrics = False
  config.update_from_flattened_dict(overrides)
  return config


def model_fields(**fields):
  config = default.get_config().model
  config.update(fields)
  return config


@pytest.mark.parametrize('fields, message', [
    ({'base_filters': 0}, 'config.model.base_filters=0 must be a whole number >= 1'),
    ({'dropout_rates': (0.1, 0.1, 1.0, 0.2, 0.3)}, 'must hold rates in [0, 1)'),
    ({'dropout_rates': (-0.1,)}, 'must hold rates in [0, 1)'),
])
def test_model_fields_out_of_range_are_refused(fields, message):
  with pytest.raises(UserInputError) as error:
    models.get_model(model_fields(**fields))
  assert message in str(error.value)


def test_one_dropout_rate_from_the_command_line_is_every_level():
  # --config.model.dropout_rates=0.1 gives a tuple of one.
  model = models.get_model(model_fields(dropout_rates=(0.1,)))
  assert model.level_dropout_rates() == (0.1,) * 5


def test_an_evaluation_batch_larger_than_the_split_is_capped():
  cap = getattr(evaluation, 'eval_batch_size', None)
  assert cap is not None, 'evaluation pads every split to config.eval_batch_size'
  n = len(__import__('jax').devices())
  assert cap(64, 3) == n  # 3 images on n devices: one batch of n
  assert cap(64, 5 * n + 1) == 6 * n
  assert cap(8, 1000) == 8


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
  """Three tiny image_folder datasets are enough to train on."""
  root = tmp_path_factory.mktemp('synthetic')
  folder = Folder(str(root / 'data'))
  for i in range(8):
    folder.image(f'{i:03d}.png', source_image(i, (32, 32)))
    folder.mask(f'{i:03d}.png', source_mask(i, (32, 32)) * 255)
  return root, folder


@pytest.mark.slow
def test_skipping_most_updates_stops_the_run(synthetic, tmp_path):
  root, folder = synthetic
  config = tiny_run_config(
      dataset_config(root, folder, n_channels=1, image_size=32,
                     split_fractions=(0.5, 0.25, 0.25)),
      **{'optimizer.learning_rate': 1e30, 'optimizer.schedule': 'constant',
         'on_nonfinite_loss': 'skip', 'num_train_steps': 4,
         'log_every_steps': 4, 'eval_every_steps': 4,
         'checkpoint_every_steps': 4})
  with pytest.raises(UserInputError, match='max_skipped_fraction') as error:
    train.train_and_evaluate(config, str(tmp_path))
  records = [json.loads(line) for line in open(tmp_path / 'metrics.jsonl')]
  assert records[-1]['event'] == 'stopped'
  assert records[-1]['reason'] == str(error.value)


@pytest.mark.slow
def test_a_non_finite_validation_loss_stops_the_run(synthetic, tmp_path,
                                                    monkeypatch):
  root, folder = synthetic
  config = tiny_run_config(dataset_config(root, folder, n_channels=1,
                                          image_size=32,
                                          split_fractions=(0.5, 0.25, 0.25)))
  evaluate = evaluation.evaluate

  def nan_loss(*args, **kwargs):  # as a model with non-finite outputs gives
    return {**evaluate(*args, **kwargs), 'loss': math.nan}
  monkeypatch.setattr(evaluation, 'evaluate', nan_loss)
  with pytest.raises(UserInputError, match='validation loss is nan'):
    train.train_and_evaluate(config, str(tmp_path))
  records = [json.loads(line) for line in open(tmp_path / 'metrics.jsonl')]
  assert records[-1]['event'] == 'stopped'


@pytest.mark.slow
def test_a_huge_learning_rate_does_not_end_as_a_normal_run(synthetic, tmp_path):
  root, folder = synthetic
  config = tiny_run_config(
      dataset_config(root, folder, n_channels=1, image_size=32,
                     split_fractions=(0.5, 0.25, 0.25)),
      **{'optimizer.learning_rate': 1e3, 'optimizer.schedule': 'constant',
         'num_train_steps': 4, 'log_every_steps': 4, 'eval_every_steps': 4,
         'checkpoint_every_steps': 4, 'model.base_filters': 8,
         'model.depth': 3, 'model.dropout_rates': (0.0,) * 4})
  # The losses stay finite (validation loss ~1e13), so only their size tells.
  with pytest.raises(UserInputError, match='training diverged'):
    train.train_and_evaluate(config, str(tmp_path))
  records = [json.loads(line) for line in open(tmp_path / 'metrics.jsonl')]
  assert records[-1]['event'] == 'stopped'


@pytest.mark.parametrize('loss, first, expected', [
    (0.3, 0.7, False), (699.0, 0.7, False), (701.0, 0.7, True),
    (math.nan, 0.7, True), (math.inf, None, True), (1e9, None, False)])
def test_divergence_is_a_non_finite_or_exploded_validation_loss(loss, first,
                                                                expected):
  assert train.diverged(loss, first) == expected


def test_config_ranges_are_checked_with_the_config():
  config = default.get_config()
  config.max_skipped_fraction = 1.5
  with pytest.raises(UserInputError, match='max_skipped_fraction=1.5'):
    configuration.validate(config)


# The real command, in a subprocess, for every refused input above and the
# command-line mistakes: one `error:` line (the last), exit status 1, no
# traceback, the workdir as it was.

def run_command(tmp_path, *args, config='configs/folder.py'):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  (workdir / 'notes.txt').write_text('keep me')
  command = [sys.executable, '-m', 'unetjax.main', f'--config={config}',
             f'--workdir={workdir}', f'--config.dataset.data_dir={tmp_path / "tfds"}',
             '--config.progress_bar=False', '--config.num_train_steps=2',
             '--config.eval_every_steps=2', '--config.checkpoint_every_steps=2',
             *args]
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                          timeout=300)
  return result, workdir


def assert_one_error_line(result, workdir, expected):
  assert result.returncode == 1, result.stderr
  assert 'Traceback' not in result.stderr, result.stderr
  errors = [line for line in result.stderr.splitlines()
            if line.startswith('error:')]
  assert len(errors) == 1, result.stderr
  assert expected in errors[0]
  assert result.stderr.rstrip().splitlines()[-1] == errors[0]
  assert os.listdir(workdir) == ['notes.txt']


def folder_flags(folder: Folder, options: dict[str, Any]) -> list[str]:
  options = {'image_size': SIZE, 'split_fractions': (0.34, 0.33, 0.33), **options}
  return [f'--config.dataset.manual_dir={folder.root}'] + [
      f'--config.dataset.folder.{key}={value!r}' for key, value in options.items()]


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(REFUSED))
def test_refused_folder_input_is_one_line_from_the_command(tmp_path, name):
  folder = Folder(str(tmp_path / 'data'))
  options, _, expected = CASES[name](folder)
  result, workdir = run_command(tmp_path, *folder_flags(folder, options))
  assert_one_error_line(result, workdir, expected)


@pytest.mark.slow
@pytest.mark.parametrize('args, expected', [
    (['--config.batch_sise=4'],
     '--config.batch_sise: no such config field; did you mean --config.batch_size?'),
    (['--config.optimizer.learnig_rate=1e-3'],
     'did you mean --config.optimizer.learning_rate?'),
    (['--config.model.foo=1'],
     '--config.model.foo: no such config field; config.model has: activation, base_filters'),
    (['--config.batch_size=abc'], "invalid literal for int() with base 10: 'abc'"),
    (['--config.model.base_filters=0'], 'config.model.base_filters=0 must be'),
    (['--config.model.dropout_rates=1.0'], 'must hold rates in [0, 1)'),
])
def test_command_line_mistakes_are_one_line(tmp_path, args, expected):
  result, workdir = run_command(tmp_path, *args, config='configs/default.py')
  assert_one_error_line(result, workdir, expected)


@pytest.mark.slow
@pytest.mark.parametrize('text, expected', [
    (None, 'no such file'),
    ('x = 1\n', 'defines no get_config() function'),
    ('def get_config():\n  return {"batch_size": 4}\n',
     'not an ml_collections.ConfigDict'),
    ('def get_config(:\n', 'loading it failed (line 1): SyntaxError'),
])
def test_a_bad_config_file_is_one_line(tmp_path, text, expected):
  path = tmp_path / 'my_config.py'
  if text is not None:
    path.write_text(text)
  result, workdir = run_command(tmp_path, config=str(path))
  assert_one_error_line(result, workdir, expected)


@pytest.mark.slow
def test_every_accepted_input_trains_from_the_command(tmp_path):
  """The accepted inputs above that need no special option, all in one
  folder (names prefixed by case), through the real command."""
  mixed = Folder(str(tmp_path / 'mixed'))
  count = 0
  for name in sorted(set(CASES) - REFUSED):
    folder = Folder(str(tmp_path / 'cases' / name))
    options, _, _ = CASES[name](folder)
    if set(options) - {'n_channels', 'mask_threshold'}:
      continue
    for sub in ('images', 'masks'):
      for file in os.listdir(getattr(folder, sub)):
        shutil.copy2(os.path.join(getattr(folder, sub), file),
                     os.path.join(getattr(mixed, sub), f'{name}-{file}'))
    count += len(os.listdir(folder.images))
  assert count >= 30
  result, workdir = run_command(
      tmp_path, *folder_flags(mixed, {'n_channels': 3, 'mask_threshold': 127}))
  assert result.returncode == 0, result.stderr
  assert 'Traceback' not in result.stderr and 'error:' not in result.stderr
  assert 'Best checkpoint: step 2' in result.stdout
  saved = json.load(open(workdir / 'config.json'))
  info = tfds.builder_from_directory(str(
      tmp_path / 'tfds' / saved['dataset_build'])).info
  assert sum(split.num_examples for split in info.splits.values()) == count


def test_a_16_bit_copy_of_real_data_stores_the_same_dataset(real_fixtures,
                                                            tmp_path):
  """Crops of ISBI 2012 slices and their copies as value * 257 in 16-bit PNGs
  build into identical datasets, so training on them gives identical results."""
  source = os.path.join(real_fixtures, 'isbi2012_em_crops')
  eight, sixteen = Folder(str(tmp_path / 'eight')), Folder(str(tmp_path / 'sixteen'))
  for name in sorted(os.listdir(os.path.join(source, 'images')))[:6]:
    pixels = np.asarray(Image.open(os.path.join(source, 'images', name)))
    assert pixels.dtype == np.uint8
    eight.image(name, pixels)
    sixteen.image(name, pixels.astype(np.uint16) * 257)
    for folder in (eight, sixteen):
      shutil.copy(os.path.join(source, 'masks', name), folder.masks)
  assert Image.open(os.path.join(sixteen.images, name)).mode == 'I;16'
  options = {'n_channels': 1, 'image_size': 64, 'mask_threshold': 127}
  built = [build(tmp_path, folder, **options) for folder in (eight, sixteen)]
  assert set(built[0]) == set(built[1]) and len(built[0]) == 6
  for name, example in built[0].items():
    assert example['split'] == built[1][name]['split']
    np.testing.assert_array_equal(example['image'], built[1][name]['image'])
    np.testing.assert_array_equal(example['mask'], built[1][name]['mask'])
  assert len({e['image'].tobytes() for e in built[0].values()}) == 6
