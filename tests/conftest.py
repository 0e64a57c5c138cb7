"""Test setup: 8 fake CPU devices (set before JAX starts, or chex's pmap
variants are silently skipped), XLA's CPU optimisation and new fusion
emitters off, one compilation cache for the session, and the synthetic
datasets built once."""

import atexit
import os
import shutil
import tempfile

# The tests run tiny programs for a few steps, so XLA's CPU code optimisation
# costs more than it saves: without it a U-Net 3+ train step compiles in 6 s
# instead of 14 (and runs 2x slower). XLA's newer CPU fusion emitters compile
# the same programs 2x slower again than the classic ones (a U-Net 3+ config's
# 2-step training: 57 s -> 35 s, of which compilation 31 s -> 17 s). Set
# before JAX starts, so the `unetjax.main` subprocesses inherit them; an
# XLA_FLAGS that names either keeps its own.
_flags = os.environ.get('XLA_FLAGS', '')
os.environ['XLA_FLAGS'] = ' '.join(
    [_flags, '--xla_force_host_platform_device_count=8']
    + [flag for flag in ('--xla_backend_optimization_level=0',
                         '--xla_cpu_use_fusion_emitters=false')
       if flag.split('=')[0] not in _flags]).strip()

# Many tests compile the same steps, in this process and in the `python -m
# unetjax.main` subprocesses they start (which inherit the environment): JAX's
# persistent cache compiles each program once per session. A fresh folder per
# session, removed at exit, so no test ever reads a cache it did not fill.
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  _cache = tempfile.mkdtemp(prefix='unetjax-tests-jax-cache-')
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)
  os.environ['JAX_COMPILATION_CACHE_DIR'] = _cache
  os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')

import pytest  # noqa: E402


@pytest.fixture(scope='session')
def tfds_dir(tmp_path_factory) -> str:
  """A TFDS data dir with synthetic_cells/binary and /multiclass prepared,
  one for the whole session: the xdist workers share it (pipeline.prepare
  takes turns on a build lock, so a dataset is built once), each worker
  starting with a different dataset so that two build both at once."""
  from configs import default
  from unetjax.data import pipeline

  worker = os.environ.get('PYTEST_XDIST_WORKER', '')
  session_tmp = tmp_path_factory.getbasetemp()
  if worker:  # each worker's basetemp is a folder of the session's
    session_tmp = session_tmp.parent
  data_dir = str(session_tmp / 'tensorflow_datasets')
  names = ['synthetic_cells/binary', 'synthetic_cells/multiclass']
  first = int(worker[2:]) % len(names) if worker.startswith('gw') else 0
  for name in names[first:] + names[:first]:
    dataset_config = default.get_config().dataset
    dataset_config.name, dataset_config.data_dir = name, data_dir
    pipeline.prepare(dataset_config)
  return data_dir


# The environment variable that names the real datasets (DRIVE, ISBI 2012,
# Kvasir-SEG, laid out as in ../shared/data) for the tests that build them
# whole. Unset, those tests are skipped with this reason; .ci/run sets it.
REAL_DATA_VARIABLE = 'UNETJAX_REAL_DATA'

# A few real masks and images committed with the tests (tests/data/PROVENANCE.md).
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data')


@pytest.fixture(scope='session')
def real_data() -> str:
  """The folder of real datasets named by $UNETJAX_REAL_DATA."""
  path = os.environ.get(REAL_DATA_VARIABLE)
  if not path:
    pytest.skip(f'builds whole real datasets: set {REAL_DATA_VARIABLE} to a '
                'folder laid out as ../shared/data to run it')
  if not os.path.isdir(path):
    pytest.fail(f'{REAL_DATA_VARIABLE}={path} is not a folder: point it at the '
                'real datasets (laid out as ../shared/data) or unset it.')
  return path


@pytest.fixture(scope='session')
def real_fixtures() -> str:
  """tests/data: a few real masks and images, committed."""
  return FIXTURES


def pytest_xdist_auto_num_workers(config):
  """Worker processes for `-n auto`: one per core, at most 4. Each test
  process compiles on one core and runs JAX on 8 fake devices; on 2 cores
  two workers took the suite from 35 to 25 minutes, and beyond a few the
  workers' memory grows faster than the time falls."""
  del config
  cores = (len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
           else os.cpu_count() or 1)
  return max(1, min(4, cores))


def pytest_collection_modifyitems(items):
  """Marks the tests that need $UNETJAX_REAL_DATA `real_data`, so that
  `-m real_data` selects (and counts) them."""
  for item in items:
    if 'real_data' in getattr(item, 'fixturenames', ()):
      item.add_marker(pytest.mark.real_data)
