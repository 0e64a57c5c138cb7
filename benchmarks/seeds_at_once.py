"""Seeds at once against one seed after another: the same training step of a
config, K seeds as one program (`unetjax.seeds_at_once`) against K runs of
the one-seed program, in one process.

python -m benchmarks.seeds_at_once --configs=default,kvasir_native --seeds=1,3,8
python -m benchmarks.seeds_at_once --cpu_devices=2 --layouts=loop,devices
python -m benchmarks.seeds_at_once --dry_run   (2 steps, K = 1 and 2: the GPU script's check)

One JSON line per (config, K, layout): the median step time of the K-seed
program and of the one-seed program (data parallel over all devices, as
`unetjax.main` trains one run), images per second per seed, and the ratio of
K one-seed steps to one K-seed step (above 1: seeds at once is faster).
`wall_*_s` is compile plus the timed steps, K compiles for the sequential
runs (each run compiles its own step). Batches are random pixels and masks
already on the device (the GPU host has no TFDS), `config`'s shape and
batch per seed.
"""

import argparse
import functools
import os
import statistics
import sys

os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402
from benchmarks import train_throughput  # noqa: E402
from unetjax import losses, models, optimizers, parallel, seeds_at_once, train  # noqa: E402
from unetjax import state as state_lib  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Config file and the shape its model trains on.
CONFIGS = {
    'default': ('configs/default.py', (64, 64, 1)),
    'kvasir_native': ('configs/kvasir_native.py', (256, 256, 3)),
}


def load(name: str):
  from unetjax import command_line
  if REPO not in sys.path:
    sys.path.insert(0, REPO)
  path, shape = CONFIGS[name]
  return command_line.load_config(os.path.join(REPO, path)), shape


def random_batch(rng: np.random.Generator, batch_size: int, shape, k: int | None):
  """uint8 images and binary masks; with `k`, a member axis after the batch."""
  lead = (batch_size,) if k is None else (batch_size, k)
  return {'image': rng.integers(0, 256, lead + shape, dtype=np.uint8),
          'mask': rng.integers(0, 2, lead + shape[:2], dtype=np.int32)}


def time_steps(step, state, batch, steps: int):
  """(compile-and-first-step seconds, median step seconds)."""
  state, (first,) = train_throughput.timed_steps(step, state, batch, 1)
  _, times = train_throughput.timed_steps(step, state, batch, steps)
  return first, statistics.median(times)


def measure(name: str, k: int, layout: str, steps: int) -> dict:
  config, shape = load(name)
  model = models.get_model(config.model, config.dtype, config.param_dtype)
  tx, _ = optimizers.optimizer_and_schedule(config.optimizer, config.num_train_steps)
  options = train.step_options(config, losses.get_loss(config.loss))
  rng = np.random.default_rng(0)
  states = [state_lib.init_train_state(train.seed_keys(s)[0], model, tx, shape)
            for s in range(k)]
  stacked = seeds_at_once.stack(states)  # host copies: the steps donate theirs

  one = parallel.JitStrategy()
  single = one.compile(functools.partial(
      train.train_step, dropout_rng=train.seed_keys(0)[1],
      augment_rng=train.seed_keys(0)[2], **options), donate_state=True)
  first_1, step_1 = time_steps(single, one.place_state(states[0]),
                               one.place_batch(random_batch(rng, config.batch_size,
                                                            shape, None)), steps)

  base = parallel.MembersOverDevices() if layout == 'devices' else one
  members = base.compile(functools.partial(
      seeds_at_once.members_step,
      dropout_rngs=jnp.stack([train.seed_keys(s)[1] for s in range(k)]),
      augment_rngs=jnp.stack([train.seed_keys(s)[2] for s in range(k)]),
      layout=layout, **options), donate_state=True)
  first_k, step_k = time_steps(
      members, base.place_state(stacked),
      base.place_batch(random_batch(rng, config.batch_size, shape, k)), steps)
  device = jax.devices()[0]
  return {
      'benchmark': 'seeds_at_once', 'config': name, 'seeds': k,
      'layout': layout, 'devices': jax.device_count(),
      'image_shape': list(shape), 'batch_per_seed': config.batch_size,
      'timed_steps': steps,
      'step_s_at_once': round(step_k, 4), 'step_s_one_seed': round(step_1, 4),
      'images_per_s_per_seed_at_once': round(config.batch_size / step_k, 2),
      'images_per_s_all_seeds_at_once': round(config.batch_size * k / step_k, 2),
      'images_per_s_one_seed': round(config.batch_size / step_1, 2),
      'ratio': round(k * step_1 / step_k, 3),
      'compile_s_at_once': round(first_k, 1), 'compile_s_one_seed': round(first_1, 1),
      'wall_at_once_s': round(first_k + steps * step_k, 1),
      'wall_sequential_s': round(k * (first_1 + steps * step_1), 1),
      **common.machine(device.device_kind if device.platform == 'gpu'
                       else device.platform, {'jax': jax.__version__}),
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--configs', default='default,kvasir_native')
  parser.add_argument('--seeds', default='1,3,8', help='values of K')
  parser.add_argument('--layouts', default=None, help='of ' + ', '.join(
      parallel.SEEDS_LAYOUTS[1:]) + ' (default: auto, by platform)')
  parser.add_argument('--steps', type=int, default=5, help='timed steps')
  parser.add_argument('--cpu_devices', type=int, default=None)
  parser.add_argument('--dry_run', action='store_true')
  parser.add_argument('--out', default=None)
  args = parser.parse_args()
  parallel.use_cpu_devices(args.cpu_devices)
  ks = [1, 2] if args.dry_run else [int(k) for k in args.seeds.split(',')]
  steps = 2 if args.dry_run else args.steps
  names = ['default'] if args.dry_run else args.configs.split(',')
  for name in names:
    for k in ks:
      layouts = (args.layouts.split(',') if args.layouts
                 else [parallel.choose_seeds_layout('auto', k)])
      for layout in layouts:
        if layout == 'devices' and k % jax.device_count():
          continue
        common.emit(measure(name, k, layout, steps), args.out)


if __name__ == '__main__':
  main()
