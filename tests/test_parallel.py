"""Device strategies give the same numbers: 1 device, jit over 8, pmap over 8."""

import functools
import importlib

import jax
import numpy as np
import pytest

from configs import default
from unetjax import evaluation, losses, metrics, models, optimizers, parallel, train
from unetjax import state as state_lib
from unetjax.data import pipeline


def tiny_config(tfds_dir):
  config = default.get_config()
  config.dataset.data_dir = tfds_dir
  config.model.base_filters = 4
  config.model.depth = 2
  config.model.dropout_rates = (0.0,) * 3  # masks are drawn per device under pmap
  config.optimizer.warmup_steps = 2
  return config


def run(strategy, config, n_steps=6):
  """Loss curve, final params (numpy) and validation sums under `strategy`."""
  model = state_lib.model_for_strategy(models.get_model(config.model),
                                   config.parallel, config.sync_batch_norm)
  schedule = optimizers.create_learning_rate_schedule(config.optimizer, n_steps)
  state = state_lib.init_train_state(
      jax.random.key(0), model, optimizers.create_optimizer(config.optimizer, schedule),
      (64, 64, 1), strategy.init_sharding)
  state = strategy.place_state(state)
  loss_fn = losses.get_loss(config.loss)
  step = strategy.compile(functools.partial(
      train.train_step, loss_fn=loss_fn, dropout_rng=jax.random.key(1),
      augment_rng=jax.random.key(2), augment_config=config.augment),
      donate_state=True)
  curve = []
  for batch in pipeline.train_batches(config.dataset, 16, seed=0):
    state, out = step(state, strategy.place_batch(batch))
    curve.append(float(strategy.fetch(out['loss'])))
    if len(curve) == n_steps:
      break
  evaluate = strategy.compile(functools.partial(evaluation.eval_step, loss_fn=loss_fn))
  batch = next(pipeline.eval_batches(config.dataset, 'validation', 16))
  stats = metrics.merge(None, strategy.fetch(evaluate(state, strategy.place_batch(batch))))
  return np.array(curve), strategy.host_state(state).params, stats


def curve_rtol(norm):
  """How close two strategies' loss curves must be (see assert_same_training)."""
  return 1e-5 if norm == 'none' else 5e-4


def assert_same_training(result, reference, norm):
  """`result` (curve, params, validation sums) trained as `reference` did.

  Reductions run in another order on 8 devices. Without batch norm that
  float noise stays at the curves' 1e-5, and Adam turns it into parameter
  differences far below one step (lr 3e-3). Batch norm reduces its
  statistics over the shards too, and XLA's classic CPU emitters (which the
  tests use: tests/conftest.py) sum one device's 16 images less exactly:
  measured, the curves differ by up to 1.2e-4, the parameters by up to 5e-3
  after 6 Adam steps and 3% of the validation true positives flip. So with
  batch norm the curve (5e-4) and the sums (10%) are what must agree:
  statistics taken per device (pmap without sync_batch_norm) miss both by
  far (2.5e-3; 63%), which the pmap case checks.
  """
  curve, params, stats = result
  reference_curve, reference_params, reference_stats = reference
  np.testing.assert_allclose(curve, reference_curve, rtol=curve_rtol(norm))
  for key in ('pixels', 'images'):
    np.testing.assert_array_equal(stats[key], reference_stats[key])
  if norm == 'none':
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(reference_params)):
      np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
  for key in ('tp', 'fp', 'fn'):  # a pixel at probability ~0.5 may flip
    np.testing.assert_allclose(stats[key], reference_stats[key],
                               rtol=1e-3 if norm == 'none' else 0.1)


@pytest.fixture(scope='module', params=['none', 'batch'])
def single_device(tfds_dir, request):
  config = tiny_config(tfds_dir)
  config.model.norm = request.param
  return request.param, run(parallel.JitStrategy(jax.devices()[:1]), config)


@pytest.mark.parametrize('name', ['jit', 'pmap'])
def test_eight_devices_match_one_device(tfds_dir, single_device, name):
  assert jax.device_count() == 8
  norm, reference = single_device
  config = tiny_config(tfds_dir)
  config.model.norm = norm  # batch norm: pmap with sync_batch_norm (default)
  config.parallel = name
  assert reference[0][-1] < reference[0][0]  # it trained
  assert_same_training(run(parallel.get_strategy(name), config), reference, norm)
  if name == 'pmap' and norm == 'batch':  # the check tells per-device statistics apart
    config.sync_batch_norm = False
    with pytest.raises(AssertionError):
      assert_same_training(run(parallel.get_strategy(name), config), reference, norm)


def test_host_batches_compose_the_single_process_batch(tfds_dir):
  config = tiny_config(tfds_dir).dataset
  whole = pipeline.train_batches(config, 8, seed=0, start_step=3,
                                 process_index=0, process_count=1)
  halves = [pipeline.train_batches(config, 4, seed=0, start_step=3,
                                   process_index=p, process_count=2)
            for p in range(2)]
  for _ in range(3):
    expected = next(whole)
    parts = [next(h) for h in halves]
    for key in ('image', 'mask'):
      np.testing.assert_array_equal(
          np.concatenate([p[key] for p in parts]), expected[key])


@pytest.mark.slow
def test_augmented_training_is_the_same_under_jit_and_pmap(tfds_dir):
  config = importlib.import_module('configs.augmented').get_config()
  config.dataset.data_dir = tfds_dir
  for key, value in tiny_config(tfds_dir).model.items():
    config.model[key] = value
  plain = tiny_config(tfds_dir)
  curves = {}
  for name in ('jit', 'pmap'):
    config.parallel = name
    curves[name] = run(parallel.get_strategy(name), config)[0]
  np.testing.assert_allclose(curves['pmap'], curves['jit'],
                             rtol=curve_rtol(config.model.norm))
  unaugmented = run(parallel.get_strategy('jit'), plain)[0]
  assert not np.allclose(curves['jit'], unaugmented, rtol=1e-3)
