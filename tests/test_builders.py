"""TFDS builders of real datasets: built from $UNETJAX_REAL_DATA or from folders
generated here in the official layouts, checked against direct reads."""

import importlib
import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from configs import default
from unetjax import train
from unetjax.data import pipeline
from unetjax.data.builders import image_folder
from unetjax.errors import ConfigError, DataError


def dataset_config(tfds_dir, name, manual_dir, **folder_options):
  config = default.get_config().dataset
  config.name, config.data_dir, config.manual_dir = name, tfds_dir, str(manual_dir)
  if folder_options:
    config.folder = folder_options
  return config


def reference(path, size, resample, mode=None):
  """The file read and resized with PIL, independently of the builders."""
  image = Image.open(path)
  if mode:
    image = image.convert(mode)
  return np.asarray(image.resize((size, size), resample=resample))


def source(tfds_dir, name, split):
  return tfds.data_source(name, data_dir=tfds_dir, split=split)


def split_files(tfds_dir, name):
  path = os.path.join(tfds_dir, *name.split('/'), '1.0.0', 'metadata.json')
  with open(path) as f:
    return json.load(f)['split_files']


@pytest.fixture(scope='module')
def real_tfds_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('real_tfds'))


@pytest.mark.parametrize('name, folder, shape, sizes, classes', [
    ('isbi2012_em/256px', 'isbi2012_em', (256, 256, 1),
     {'train': 20, 'validation': 5, 'test': 5}, ('interior', 'membrane')),
    ('drive/256px', 'drive', (256, 256, 3),
     {'train': 16, 'validation': 4, 'test': 20}, ('background', 'vessel')),
    ('kvasir_seg/128px', 'kvasir_seg', (128, 128, 3),
     {'train': 798, 'validation': 100, 'test': 100}, ('background', 'polyp')),
])
def test_named_builders_build_from_the_real_data(
    real_tfds_dir, real_data, name, folder, shape, sizes, classes):
  tfds_dir = real_tfds_dir
  info = pipeline.prepare(dataset_config(tfds_dir, name,
                                         os.path.join(real_data, folder)))
  assert info.image_shape == shape
  assert info.split_sizes == sizes
  assert info.class_names == classes
  assert info.has_roi == (folder == 'drive')
  files = split_files(tfds_dir, name)
  all_keys = [k for keys in files.values() for k in keys]
  assert len(all_keys) == len(set(all_keys)) == sum(sizes.values())

  example = source(tfds_dir, name, 'test')[0]
  assert example['image'].shape == shape and example['image'].dtype == np.uint8
  assert set(np.unique(example['mask'])) <= {0, 1}
  file_name = example['file_name'].decode()
  size = shape[0]
  image_path = os.path.join(real_data, folder, 'images', file_name)
  np.testing.assert_array_equal(
      example['image'][..., 0] if shape[-1] == 1 else example['image'],
      reference(image_path, size, Image.BILINEAR, 'L' if shape[-1] == 1 else 'RGB'))
  stem = os.path.splitext(file_name)[0]
  if folder == 'isbi2012_em':  # files mark the interior; class 1 is membrane
    raw = reference(os.path.join(real_data, folder, 'masks', f'{stem}.png'),
                    size, Image.NEAREST)
    np.testing.assert_array_equal(example['mask'][..., 0], raw <= 127)
  elif folder == 'drive':
    number = stem.split('_')[0]
    raw = reference(os.path.join(real_data, folder, 'masks',
                                 f'{number}_manual1.gif'), size, Image.NEAREST)
    np.testing.assert_array_equal(example['mask'][..., 0], raw > 127)
    fov = reference(os.path.join(real_data, folder, 'fov_masks',
                                 f'{stem}_mask.gif'), size, Image.NEAREST, 'L')
    np.testing.assert_array_equal(example['roi'][..., 0], fov > 127)
    assert stem.endswith('_test') and files['test'] == sorted(files['test'])
  else:
    raw = reference(os.path.join(real_data, folder, 'masks', file_name),
                    size, Image.NEAREST, 'L')
    np.testing.assert_array_equal(example['mask'][..., 0], raw > 127)


def write_pairs(images_dir, masks_dir, n, size=(40, 30), mask_name='{}.png',
                values=(0, 255), seed=0):
  """n random RGB images with blob masks holding `values`."""
  os.makedirs(images_dir, exist_ok=True)
  os.makedirs(masks_dir, exist_ok=True)
  rng = np.random.default_rng(seed)
  for i in range(n):
    image = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(image).save(os.path.join(images_dir, f'{i:03d}.jpg'))
    classes = rng.integers(0, len(values), (size[1] // 10, size[0] // 10))
    mask = np.kron(np.asarray(values, np.uint8)[classes], np.ones((10, 10), np.uint8))
    Image.fromarray(mask).save(os.path.join(masks_dir, mask_name.format(f'{i:03d}')))


def test_cvc_clinicdb_reads_its_official_layout(tmp_path):
  root = tmp_path / 'CVC-ClinicDB' / 'PNG'
  write_pairs(root / 'Original', root / 'Ground Truth', 20)
  info = pipeline.prepare(dataset_config(str(tmp_path / 'tfds'),
                                         'cvc_clinicdb/128px', tmp_path / 'CVC-ClinicDB'))
  assert info.split_sizes == {'train': 16, 'validation': 2, 'test': 2}
  assert info.image_shape == (128, 128, 3)


def test_isic2018_uses_official_splits_where_present(tmp_path):
  write_pairs(tmp_path / 'ISIC2018_Task1-2_Training_Input',
              tmp_path / 'ISIC2018_Task1_Training_GroundTruth', 20,
              mask_name='{}_segmentation.png')
  write_pairs(tmp_path / 'ISIC2018_Task1-2_Validation_Input',
              tmp_path / 'ISIC2018_Task1_Validation_GroundTruth', 3,
              mask_name='{}_segmentation.png', seed=1)
  info = pipeline.prepare(dataset_config(str(tmp_path / 'tfds'),
                                         'isic2018_task1/128px', tmp_path))
  # Official validation set kept; the missing test set drawn from training.
  assert info.split_sizes == {'train': 18, 'validation': 3, 'test': 2}


def test_image_folder_maps_grey_values_to_classes(tmp_path):
  write_pairs(tmp_path / 'data' / 'images', tmp_path / 'data' / 'masks', 10,
              mask_name='{}_mask.png', values=(0, 100, 200))
  config = dataset_config(str(tmp_path / 'tfds'), 'image_folder', tmp_path / 'data',
                          image_size=32, n_channels=1, mask_suffix='_mask',
                          mask_values=(0, 100, 200),
                          class_names=('background', 'cell', 'nucleus'),
                          split_fractions=(0.6, 0.2, 0.2))
  info = pipeline.prepare(config)
  assert info.class_names == ('background', 'cell', 'nucleus')
  assert info.image_shape == (32, 32, 1)
  assert info.split_sizes == {'train': 6, 'validation': 2, 'test': 2}
  batch = next(pipeline.eval_batches(config, 'train', 6))
  for mask, valid in zip(batch['mask'], batch['valid']):
    assert valid
    assert set(np.unique(mask)) <= {0, 1, 2}
  expected = {}
  for name in os.listdir(tmp_path / 'data' / 'masks'):
    raw = reference(tmp_path / 'data' / 'masks' / name, 32, Image.NEAREST)
    expected[name.split('_')[0]] = raw // 100
  found = sum(any(np.array_equal(mask, e) for e in expected.values())
              for mask in batch['mask'])
  assert found == 6


def test_image_folder_options_and_folder_name_the_dataset(tmp_path):
  write_pairs(tmp_path / 'a' / 'images', tmp_path / 'a' / 'masks', 10)
  names = set()
  for size in (16, 32):
    config = dataset_config(str(tmp_path / 'tfds'), 'image_folder', tmp_path / 'a',
                            image_size=size)
    pipeline.prepare(config)
    names.add(pipeline._builder(config).builder_config.name)
  assert len(names) == 2  # a changed option is a new dataset, not a stale one
  (tmp_path / 'a' / 'train.log').write_text('a log beside images/ and masks/')
  assert image_folder.make_config(str(tmp_path / 'a'), image_size=32).name in names
  (tmp_path / 'a' / 'masks' / 'notes.txt').write_text('a file among the masks')
  assert image_folder.make_config(str(tmp_path / 'a'), image_size=32).name not in names
  with pytest.raises(ConfigError, match="Unknown config.dataset.folder option.*'sise'"):
    pipeline.prepare(dataset_config(str(tmp_path / 'tfds'), 'image_folder',
                                    tmp_path / 'a', sise=3))


@pytest.mark.parametrize('damage, message', [
    ('missing_mask', r'No mask for image .*003\.jpg'),
    ('unexpected_values', r'Mask .*002\.png holds values \[7\] that are not in'),
    ('truncated', r'Cannot read .*001\.jpg'),
    ('size_mismatch', r'mask .*004\.png is 20x20 but its image .*004\.jpg is 40x30'),
    ('empty', r'No image files .* in .*images'),
])
def test_bad_files_are_named_in_one_clear_error(tmp_path, damage, message):
  images, masks = tmp_path / 'data' / 'images', tmp_path / 'data' / 'masks'
  write_pairs(images, masks, 6)
  if damage == 'missing_mask':
    os.remove(masks / '003.png')
  elif damage == 'unexpected_values':
    mask = np.asarray(Image.open(masks / '002.png')).copy()
    mask[0, 0] = 7
    Image.fromarray(mask).save(masks / '002.png')
  elif damage == 'truncated':
    data = (images / '001.jpg').read_bytes()
    (images / '001.jpg').write_bytes(data[:len(data) // 3])
  elif damage == 'size_mismatch':
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(masks / '004.png')
  elif damage == 'empty':
    for f in os.listdir(images):
      os.remove(images / f)
  config = dataset_config(str(tmp_path / 'tfds'), 'image_folder', tmp_path / 'data',
                          image_size=16, split_fractions=(0.5, 0.25, 0.25))
  with pytest.raises(DataError, match=message):
    pipeline.prepare(config)


def test_missing_manual_dir_says_where_to_put_the_files(tmp_path):
  with pytest.raises(DataError, match=r'no folder .*nowhere.*manual_dir'):
    pipeline.prepare(dataset_config(str(tmp_path), 'kvasir_seg/128px',
                                    tmp_path / 'nowhere'))


@pytest.mark.slow
@pytest.mark.parametrize('config_name, folder', [
    ('membranes', 'isbi2012_em'), ('drive', 'drive'), ('kvasir', 'kvasir_seg')])
def test_real_dataset_configs_train(real_tfds_dir, real_data, tmp_path,
                                    config_name, folder):
  config = importlib.import_module(f'configs.{config_name}').get_config()
  config.dataset.data_dir = real_tfds_dir
  config.dataset.manual_dir = os.path.join(real_data, folder)
  config.num_train_steps = 2
  config.eval_every_steps = config.checkpoint_every_steps = 2
  config.progress_bar = False
  # The dataset and the config's data settings are under test, not the
  # model's width or the surface metrics (covered on the synthetic cells):
  # a narrow network and no distance maps compile several times faster.
  config.model.base_filters = 4
  config.metrics.surface_metrics = False
  final = train.train_and_evaluate(config, str(tmp_path))
  for split in ('validation', 'test'):
    assert 0 <= final[split]['dice'] <= 1
    assert np.isfinite(final[split]['loss'])
