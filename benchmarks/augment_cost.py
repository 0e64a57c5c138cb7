"""Time of `augment_batch` vs the training step, on this machine.

python -m benchmarks.augment_cost --config=configs/augmented.py

Prints one JSON line per image shape. For a batch of random images and masks
it times, jitted on the first device: augment_batch alone, the config's
model's train step alone, and the train step with augment_batch inside the
same jitted function (how a step would run it); each is the median of
--repeats runs after one compile run.
"""

import functools
import os
import platform
import statistics
import time


import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from benchmarks import common
from ml_collections import config_flags

from unetjax import augment, losses, models, optimizers, train
from unetjax import state as state_lib

config_flags.DEFINE_config_file('config', None, 'Config file, e.g. '
                                'configs/augmented.py.', lock_config=True)
flags.DEFINE_list('shapes', ['64x64x1', '256x256x3'], 'HxWxC image shapes.')
flags.DEFINE_integer('batch_size', 16, 'Batch size.')
flags.DEFINE_integer('repeats', 5, 'Timed runs per measurement.')
flags.DEFINE_string('out', None, 'Also append the JSON lines to this file.')
flags.mark_flags_as_required(['config'])
FLAGS = flags.FLAGS


def median_seconds(fn, *args) -> float:
  jax.block_until_ready(fn(*args))  # compile
  times = []
  for _ in range(FLAGS.repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def measure(config, shape: tuple[int, int, int]) -> dict:
  rng = np.random.default_rng(0)
  n = FLAGS.batch_size
  images = rng.integers(0, 256, (n,) + shape, dtype=np.uint8)
  masks = rng.integers(0, max(2, config.model.n_classes), (n,) + shape[:2],
                       dtype=np.uint8)
  key = jax.random.key(0)

  augment_only = jax.jit(lambda key, images, masks: augment.augment_batch(
      key, state_lib.preprocess(images), (masks,), config.augment))

  model = models.get_model(config.model)
  tx = optimizers.create_optimizer(config.optimizer, optimizers.create_learning_rate_schedule(
      config.optimizer, 1000))
  state = state_lib.init_train_state(jax.random.key(0), model, tx, shape)
  step = functools.partial(train.train_step, loss_fn=losses.get_loss(config.loss),
                           dropout_rng=jax.random.key(1))

  def augmented_step(state, key, images, masks):
    # train_step takes uint8 images: round the augmented floats back, as a
    # step that augments before its own preprocessing would.
    augmented, (masks,) = augment.augment_batch(
        key, state_lib.preprocess(images), (masks,), config.augment)
    images = jnp.round(augmented * 255).astype(jnp.uint8)
    return step(state, {'image': images, 'mask': masks})

  batch = {'image': images, 'mask': masks}
  augment_s = median_seconds(augment_only, key, images, masks)
  step_s = median_seconds(jax.jit(step), state, batch)
  augmented_step_s = median_seconds(jax.jit(augmented_step), state, key,
                                    images, masks)
  return {
      'benchmark': 'augment_cost', 'image_shape': shape, 'batch_size': n,
      'ops': augment.enabled_ops(config.augment),
      'augment_ms': round(augment_s * 1e3, 1),
      'train_step_ms': round(step_s * 1e3, 1),
      'train_step_with_augment_ms': round(augmented_step_s * 1e3, 1),
      'augment_fraction_of_step': round(augment_s / step_s, 3),
      'model': f'{config.model.name} base_filters={config.model.base_filters} '
               f'depth={config.model.depth}',
      'device': str(jax.devices()[0]), 'cpu_count': os.cpu_count(),
      'machine': platform.machine(), 'jax': jax.__version__,
  }


def main(argv):
  del argv
  for text in FLAGS.shapes:
    shape = tuple(int(s) for s in text.split('x'))
    common.emit(measure(FLAGS.config, shape), FLAGS.out)


if __name__ == '__main__':
  app.run(main)
