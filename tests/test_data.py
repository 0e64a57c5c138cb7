import itertools
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import default
from unetjax.data import pipeline, synthetic
from unetjax.errors import DataError


def dataset_config(tfds_dir, name='synthetic_cells/binary'):
  config = default.get_config().dataset
  config.name, config.data_dir = name, tfds_dir
  return config


@pytest.mark.parametrize('name, n_classes', [('synthetic_cells/binary', 2),
                                             ('synthetic_cells/multiclass', 3)])
def test_builder_has_three_splits_of_images_and_masks(tfds_dir, name, n_classes):
  info = pipeline.prepare(dataset_config(tfds_dir, name))
  assert info.image_shape == (64, 64, 1)
  assert len(info.class_names) == n_classes and info.class_names[0] == 'background'
  assert info.split_sizes == {'train': 2048, 'validation': 256, 'test': 256}
  source = tfds.data_source(name, data_dir=tfds_dir, split='validation')
  masks = np.stack([source[i]['mask'] for i in range(64)])
  images = np.stack([source[i]['image'] for i in range(64)])
  assert images.shape == (64, 64, 64, 1) and images.dtype == np.uint8
  assert masks.shape == (64, 64, 64) and masks.dtype == np.uint8
  assert set(np.unique(masks)) == set(range(n_classes))
  foreground = (masks > 0).mean()
  assert 0.05 < foreground < 0.6, foreground
  assert images.std() > 10  # not blank


def test_examples_are_reproducible_and_splits_differ():
  a = synthetic.render_cells(np.random.default_rng(7), 64)
  b = synthetic.render_cells(np.random.default_rng(7), 64)
  c = synthetic.render_cells(np.random.default_rng(8), 64)
  np.testing.assert_array_equal(a[0], b[0])
  np.testing.assert_array_equal(a[1], b[1])
  assert not np.array_equal(a[0], c[0])


def test_multiclass_nuclei_lie_inside_cells():
  image, labels = synthetic.render_cells(np.random.default_rng(3), 128, 3,
                                         with_nuclei=True)
  assert image.shape == (128, 128, 3)
  binary_image, binary = synthetic.render_cells(np.random.default_rng(3), 128, 3)
  np.testing.assert_array_equal(image, binary_image)  # same picture
  np.testing.assert_array_equal(labels > 0, binary == 1)  # nuclei are cell
  assert (labels == synthetic.NUCLEUS).any()


def test_reading_a_prepared_dataset_never_imports_tensorflow(tfds_dir):
  code = (
      'import sys\n'
      'from configs import default\n'
      'from unetjax.data import pipeline\n'
      'c = default.get_config().dataset\n'
      f'c.data_dir = {tfds_dir!r}\n'
      'pipeline.prepare(c)\n'
      'next(pipeline.train_batches(c, 4, seed=0))\n'
      'next(pipeline.eval_batches(c, "test", 4))\n'
      'assert "tensorflow" not in sys.modules, "tensorflow was imported"\n')
  subprocess.run([sys.executable, '-c', code], check=True)


def test_training_order_is_a_function_of_seed_and_step(tfds_dir):
  config = dataset_config(tfds_dir)
  first = list(itertools.islice(pipeline.train_batches(config, 8, seed=0), 6))
  again = list(itertools.islice(pipeline.train_batches(config, 8, seed=0), 6))
  resumed = list(itertools.islice(pipeline.train_batches(config, 8, seed=0,
                                                         start_step=4), 2))
  other_seed = next(pipeline.train_batches(config, 8, seed=1))
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a['image'], b['image'])
  for a, b in zip(first[4:], resumed):
    np.testing.assert_array_equal(a['image'], b['image'])
    np.testing.assert_array_equal(a['mask'], b['mask'])
  assert not np.array_equal(first[0]['image'], other_seed['image'])


def test_every_epoch_is_a_new_permutation_of_the_train_split(tfds_dir):
  config = dataset_config(tfds_dir)
  batches = pipeline.train_batches(config, 256, seed=0)
  epochs = [np.concatenate([next(batches)['image'] for _ in range(8)])
            for _ in range(2)]
  fingerprints = [[hash(x.tobytes()) for x in epoch] for epoch in epochs]
  assert len(set(fingerprints[0])) == 2048  # every example exactly once
  assert set(fingerprints[0]) == set(fingerprints[1])
  assert fingerprints[0] != fingerprints[1]


def test_eval_batches_cover_the_split_once_with_padding(tfds_dir):
  config = dataset_config(tfds_dir)
  batches = list(pipeline.eval_batches(config, 'validation', 48))
  assert len(batches) == 6  # 256 = 5 * 48 + 16
  assert all(b['image'].shape[0] == 48 for b in batches)
  valid = np.concatenate([b['valid'] for b in batches])
  assert valid.sum() == 256 and valid[:256].all()
  source = tfds.data_source('synthetic_cells/binary', data_dir=tfds_dir,
                            split='validation')
  np.testing.assert_array_equal(batches[-1]['image'][15], source[255]['image'])
  assert not batches[-1]['image'][16:].any()


def test_unknown_dataset_or_split_is_a_clear_error(tfds_dir):
  with pytest.raises(DataError, match="Unknown dataset 'synthetic_cellz.*"
                     'synthetic_cells/binary'):
    pipeline.prepare(dataset_config(tfds_dir, 'synthetic_cellz/binary'))
  with pytest.raises(DataError, match="no split 'valid'.*validation"):
    next(pipeline.eval_batches(dataset_config(tfds_dir), 'valid', 8))


PREPARE = '''
import sys
from configs import default
from unetjax.data import pipeline
config = default.get_config().dataset
config.data_dir = sys.argv[1]
print(pipeline.prepare(config).split_sizes)
'''


@pytest.mark.slow
def test_two_processes_preparing_one_dataset_take_turns_and_both_succeed(
    tmp_path):
  data_dir = tmp_path / 'tfds'
  stale = data_dir / 'synthetic_cells' / 'binary' / 'incomplete.KILLED_1.0.0'
  stale.mkdir(parents=True)  # as a killed build leaves it
  (stale / 'synthetic_cells-train.array_record-00000-of-00001').write_bytes(b'x')
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  processes = [subprocess.Popen(
      [sys.executable, '-c', PREPARE, str(data_dir)], cwd=repo,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
  outputs = [p.communicate(timeout=900) for p in processes]  # builds in turn
  for process, (out, err) in zip(processes, outputs):
    assert process.returncode == 0, err
    assert "'train'" in out and 'Traceback' not in err
  sizes = [out.strip().splitlines()[-1] for out, _ in outputs]
  assert sizes[0] == sizes[1]
  assert sum('Downloading and preparing' in out for out, _ in outputs) == 1
  assert sum('Removed' in err and 'incomplete.KILLED_1.0.0' in err
             for _, err in outputs) == 1
  assert not stale.exists()
  assert sorted(p.name for p in stale.parent.iterdir()
                if not p.name.startswith('.')) == ['1.0.0']
