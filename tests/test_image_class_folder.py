"""image_class_folder: classes from folder names, stratified or given splits,
resized and scaled images, and one clear error per broken folder."""

import glob
import os

import numpy as np
import pytest
from PIL import Image

from configs import default
from unetjax.data import pipeline
from unetjax.data.builders import image_class_folder
from unetjax.errors import ConfigError, DataError

NAME = 'image_class_folder'


def dataset_config(tmp_path, folder, **options):
  config = default.get_config().dataset
  config.name, config.data_dir = NAME, str(tmp_path / 'tfds')
  config.manual_dir = str(folder)
  if options:
    config.folder = options
  return config


def write_classes(root, counts, seed=0):
  """counts[class] random RGB PNGs per class folder, 12x10 or 8x8."""
  rng = np.random.default_rng(seed)
  for name, n in counts.items():
    os.makedirs(root / name, exist_ok=True)
    for i in range(n):
      shape = (10, 12, 3) if i % 2 else (8, 8, 3)
      Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(
          root / name / f'{i:03d}.png')


def examples(config, split):
  """(file_name, label, image) of each example of `split`."""
  source = pipeline._builder(config).as_data_source(split)
  return [(ex['file_name'].decode(), int(ex['label']), ex['image'])
          for ex in source]


def built_datasets(tmp_path):
  return glob.glob(str(tmp_path / 'tfds' / '**' / 'dataset_info.json'),
                   recursive=True)


def test_labels_are_the_sorted_class_folders_split_per_class(tmp_path):
  root = tmp_path / 'pets'
  write_classes(root, {'dogs': 10, 'cats': 10, 'birds': 20})
  Image.fromarray(np.zeros((9, 7, 3), np.uint8)).save(root / 'cats' / 'x.JPEG')
  (root / 'dogs' / 'notes.txt').write_text('not an image')
  config = dataset_config(tmp_path, root, image_size=16)
  info = pipeline.prepare(config)
  assert info.class_names == ('birds', 'cats', 'dogs')
  assert info.task == 'classification'
  assert info.image_shape == (16, 16, 3)
  # Each class split 80/10/10 on its own: birds 16/2/2, cats (11) 9/1/1.
  assert info.split_sizes == {'train': 16 + 9 + 8, 'validation': 4, 'test': 4}
  builder = pipeline._builder(config)
  assert builder.info.features['label'].names == ['birds', 'cats', 'dogs']
  split_files = builder.info.metadata['split_files']
  seen = []
  for split in ('train', 'validation', 'test'):
    found = examples(config, split)
    assert sorted(name for name, _, _ in found) == split_files[split]
    for name, label, image in found:
      assert name.split('/')[0] == info.class_names[label]
      assert image.shape == (16, 16, 3) and image.dtype == np.uint8
    assert {label for _, label, _ in found} == {0, 1, 2}  # every class
    seen += split_files[split]
  expected = sorted(f'{c}/{f}' for c in ('birds', 'cats', 'dogs')
                    for f in os.listdir(root / c) if f != 'notes.txt')
  assert sorted(seen) == expected  # each image once, the text file not
  batch = next(pipeline.eval_batches(config, 'validation', 8))
  assert batch['image'].shape == (8, 16, 16, 3)
  np.testing.assert_array_equal(batch['label'][:4], [
      label for _, label, _ in examples(config, 'validation')])
  assert list(batch['valid']) == [True] * 4 + [False] * 4


def test_the_split_seed_draws_the_split(tmp_path):
  root = tmp_path / 'data'
  write_classes(root, {'a': 10, 'b': 10})
  splits = []
  for seed, tfds_dir in ((0, 'one'), (0, 'two'), (1, 'one')):
    config = dataset_config(tmp_path / tfds_dir, root, image_size=8,
                            split_seed=seed)
    pipeline.prepare(config)
    splits.append(pipeline._builder(config).info.metadata['split_files'])
  assert splits[0] == splits[1]  # built twice, the same
  assert splits[0] != splits[2]
  for split_files in splits:
    assert {f.split('/')[0] for f in split_files['test']} == {'a', 'b'}


def test_split_folders_are_kept(tmp_path):
  root = tmp_path / 'data'
  write_classes(root / 'train', {'ants': 4, 'bees': 3})
  write_classes(root / 'val', {'ants': 1, 'bees': 2}, seed=1)
  write_classes(root / 'test', {'ants': 2, 'bees': 1}, seed=2)
  config = dataset_config(tmp_path, root, image_size=8)
  info = pipeline.prepare(config)
  assert info.class_names == ('ants', 'bees')
  assert info.split_sizes == {'train': 7, 'validation': 3, 'test': 3}
  found = examples(config, 'validation')
  assert sorted((name, label) for name, label, _ in found) == [
      ('val/ants/000.png', 0), ('val/bees/000.png', 1), ('val/bees/001.png', 1)]
  with pytest.raises(ConfigError, match=r'split_fractions=\(0.5, 0.25, 0.25\) '
                     r'does nothing: .*train, val, test'):
    pipeline.prepare(dataset_config(tmp_path, root,
                                    split_fractions=(0.5, 0.25, 0.25)))


def test_greyscale_and_16_bit_images_are_resized_and_scaled(tmp_path):
  root = tmp_path / 'data'
  write_classes(root, {'a': 4, 'b': 4})
  Image.fromarray(np.full((10, 12), 65535, np.uint16)).save(root / 'a' / 'w16.png')
  ramp = (np.arange(120, dtype=np.uint16).reshape(10, 12) * 257)
  Image.fromarray(ramp).save(root / 'b' / 'r16.png')
  config = dataset_config(tmp_path, root, image_size=6, n_channels=1,
                          split_fractions=(0.5, 0.25, 0.25))
  assert pipeline.prepare(config).image_shape == (6, 6, 1)
  images = {name: image for split in ('train', 'validation', 'test')
            for name, _, image in examples(config, split)}
  assert all(image.shape == (6, 6, 1) for image in images.values())
  np.testing.assert_array_equal(images['a/w16.png'], 255)
  expected = Image.fromarray((ramp // 257).astype(np.uint8)).resize(
      (6, 6), Image.BILINEAR)
  np.testing.assert_array_equal(images['b/r16.png'][..., 0], expected)
  reference = Image.open(root / 'a' / '001.png').convert('L').resize(
      (6, 6), Image.BILINEAR)
  np.testing.assert_array_equal(images['a/001.png'][..., 0], reference)


def test_options_and_files_name_the_dataset(tmp_path):
  root = tmp_path / 'data'
  write_classes(root, {'a': 3, 'b': 3})
  names = {image_class_folder.make_config(root, image_size=8).name,
           image_class_folder.make_config(root, image_size=16).name}
  write_classes(root, {'a': 4})  # one file more
  names.add(image_class_folder.make_config(root, image_size=8).name)
  assert len(names) == 3
  assert image_class_folder.make_config(root).image_size == 128


@pytest.mark.parametrize('options, message', [
    ({'sise': 3}, r"Unknown config.dataset.folder option.*'sise'.*takes: "
     'image_size, n_channels, split_fractions, split_seed, intensity_window'),
    ({'image_size': 0}, r'image_size=0 must be a whole number > 0.*one size'),
    ({'n_channels': 2}, r'n_channels=2 must be 1 \(greyscale\) or 3'),
    ({'split_fractions': (0.5, 0.5)}, r'split_fractions=\(0.5, 0.5\) must'),
    ({'split_seed': -1}, r'split_seed=-1 must'),
    ({'intensity_window': (5, 1)}, r'intensity_window=\(5, 1\) must'),
])
def test_bad_options_are_named(tmp_path, options, message):
  write_classes(tmp_path / 'data', {'a': 3, 'b': 3})
  with pytest.raises(ConfigError, match=message):
    pipeline.prepare(dataset_config(tmp_path, tmp_path / 'data', **options))


def damage(root, what):
  """Breaks the folder `root` (classes a, b and c of 10 PNGs) one way."""
  if what == 'missing':
    os.rename(root, root.parent / 'elsewhere')
  elif what == 'file':
    os.rename(root, root.parent / 'elsewhere')
    root.write_text('')
  elif what == 'flat':
    for name in 'abc':
      for f in os.listdir(root / name):
        os.rename(root / name / f, root / f'{name}{f}')
      os.rmdir(root / name)
  elif what == 'stray_image':
    os.rename(root / 'a' / '003.png', root / '003.png')
  elif what == 'one_class':
    for name in 'bc':
      for f in os.listdir(root / name):
        os.remove(root / name / f)
      os.rmdir(root / name)
  elif what == 'empty_class':
    for f in os.listdir(root / 'b'):
      os.remove(root / 'b' / f)
    (root / 'b' / 'readme.txt').write_text('')
  elif what == 'corrupt':
    data = (root / 'c' / '004.png').read_bytes()
    (root / 'c' / '004.png').write_bytes(data[:len(data) // 2])
  elif what == 'too_few':
    for f in sorted(os.listdir(root / 'c'))[2:]:
      os.remove(root / 'c' / f)
  elif what == 'split_names':  # split folders without class folders
    for name, split in zip('abc', ('train', 'val', 'test')):
      os.rename(root / name, root / split)
  else:  # split folders
    for i, split in enumerate(('train', 'validation', 'test')):
      for name in 'abc':
        os.makedirs(root / split / name)
        os.rename(root / name / f'00{i}.png', root / split / name / f'00{i}.png')
    if what == 'no_test':
      os.rename(root / 'test', root / 'elsewhere')
    elif what == 'class_mismatch':
      os.rename(root / 'test' / 'b', root / 'test' / 'x')
    elif what == 'val_twice':
      os.makedirs(root / 'val' / 'a')


@pytest.mark.parametrize('what, message', [
    ('missing', r'Folder not found: .*data\. Point config.dataset.manual_dir'),
    ('file', r'Not a folder: .*data\.'),
    ('flat', r'No class folders in .*data, only image files: .*'
     r'data/<class name>/<image>'),
    ('stray_image', r'data holds image files beside its class folders '
     r'\(003\.png\).*move them'),
    ('one_class', r'data holds one class folder \(a\), but a classifier needs '
     'at least 2 classes'),
    ('empty_class', r'Class folder .*data/b holds no image files'),
    ('corrupt', r'Cannot read .*data/c/004\.png'),
    ('too_few', r'Class folder .*data/c holds 2 images, too few .*'
     r'split_fractions=\(0.8, 0.1, 0.1\)'),
    ('split_names', r'data/train holds images but no class folders'),
    ('no_test', r'data holds train/ with class folders.*no test/: give all '
     r'three splits.*or put the class folders directly in it'),
    ('class_mismatch', r'data/test does not hold the class folders of .*'
     r'data/train: it lacks b; it has x, which train/ has not'),
    ('val_twice', r'data holds both validation/ and val/ for the validation '
     'split'),
])
def test_broken_folders_are_named_in_one_clear_error(tmp_path, what, message):
  root = tmp_path / 'data'
  write_classes(root, {'a': 10, 'b': 10, 'c': 10})
  damage(root, what)
  with pytest.raises(DataError, match=message):
    pipeline.prepare(dataset_config(tmp_path, root, image_size=8))
  assert not built_datasets(tmp_path)
