"""Test setup: 8 fake CPU devices (set before JAX starts, or chex's pmap
variants are silently skipped) and the synthetic datasets built once."""

import os

os.environ['XLA_FLAGS'] = ' '.join(
    [os.environ.get('XLA_FLAGS', ''),
     '--xla_force_host_platform_device_count=8']).strip()

import pytest  # noqa: E402


@pytest.fixture(scope='session')
def tfds_dir(tmp_path_factory) -> str:
  """A TFDS data dir with synthetic_cells/binary and /multiclass prepared."""
  from configs import default
  from unetjax.data import pipeline

  data_dir = str(tmp_path_factory.mktemp('tensorflow_datasets'))
  for name in ('synthetic_cells/binary', 'synthetic_cells/multiclass'):
    dataset_config = default.get_config().dataset
    dataset_config.name, dataset_config.data_dir = name, data_dir
    pipeline.prepare(dataset_config)
  return data_dir


@pytest.fixture(scope='session')
def shared_data() -> str:
  """The real datasets beside the repository (../shared/data), or
  $UNETJAX_SHARED_DATA."""
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  path = os.environ.get('UNETJAX_SHARED_DATA',
                        os.path.join(repo, '..', 'shared', 'data'))
  if not os.path.isdir(path):
    pytest.fail(f'Real test data not found at {path}: put the shared data '
                'folder beside the repository or set UNETJAX_SHARED_DATA.')
  return path
