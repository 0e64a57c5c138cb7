"""What the speed benchmarks share: presets, command line, records, peaks.

Every record is one JSON line. Model FLOPs of a training step are 3x the
forward FLOPs (forward, plus a backward pass of twice its cost), the usual
convention for model FLOPs utilisation (MFU): achieved FLOP/s over the
device's dense peak for the compute dtype.
"""

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from typing import Any

Shape = tuple[int, int, int]

# Dense peak FLOP/s by compute dtype (NVIDIA datasheets, SXM parts; fp32 runs
# on TF32 tensor cores, which XLA and cuDNN use for fp32 convolutions by default).
PEAK_FLOPS = {
    'H100': {'bfloat16': 989.4e12, 'float32': 494.7e12},
    'H200': {'bfloat16': 989.4e12, 'float32': 494.7e12},
    'A100': {'bfloat16': 312e12, 'float32': 156e12},
}


@dataclasses.dataclass(frozen=True)
class Preset:
  """A set of cases: the models and dtypes to time at one image shape."""
  shape: Shape
  batch_sizes: tuple[int, ...]
  base_filters: int | None  # None: each model's paper widths
  batch_norm: bool
  models: tuple[str, ...]
  dtypes: tuple[str, ...]
  steps: int  # timed steps per case
  warmup: int  # untimed steps after the compiling one

  def override(self, args: argparse.Namespace) -> 'Preset':
    """The preset with the command line's explicit choices."""
    changes = {}
    if args.batch_sizes:
      changes['batch_sizes'] = tuple(args.batch_sizes)
    if args.models:
      changes['models'] = tuple(args.models)
    if args.dtypes:
      changes['dtypes'] = tuple(args.dtypes)
    if args.steps:
      changes['steps'] = args.steps
    if args.size:
      changes['shape'] = (args.size, args.size, self.shape[2])
    if args.shape:
      changes['shape'] = args.shape
    return dataclasses.replace(self, **changes)


def image_shape(text: str) -> Shape:
  """'HxWxC' as (H, W, C), for --shape; argparse reports what is wrong."""
  parts = text.split('x')
  if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
    raise argparse.ArgumentTypeError(
        f'{text!r} is not HxWxC with three positive integers, e.g. 256x240x3')
  return tuple(int(p) for p in parts)


PRESETS = {
    # The seed's U-Net on the project's 2-core CPUs.
    'cpu': Preset(shape=(128, 128, 1), batch_sizes=(8,), base_filters=16,
                  batch_norm=False, models=('unet',), dtypes=('float32',),
                  steps=10, warmup=2),
    # Every segmentation model at its paper's widths on one GPU.
    'gpu': Preset(shape=(256, 256, 3), batch_sizes=(32,), base_filters=None,
                  batch_norm=True,
                  models=('unet', 'unet_pp', 'attention_unet', 'resunet',
                          'resunet_pp', 'fcn8s'),
                  dtypes=('float32', 'bfloat16'), steps=30, warmup=5),
}


def parse_args(description: str, extra_modes: tuple[str, ...] = (),
               data_parallel: bool = False,
               config_file: bool = False) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--preset', choices=sorted(PRESETS), default='cpu')
  parser.add_argument('--models', type=lambda s: s.split(','), default=None)
  parser.add_argument('--dtypes', type=lambda s: s.split(','), default=None)
  parser.add_argument('--batch_sizes', type=lambda s: [int(b) for b in s.split(',')],
                      default=None, help='e.g. 8,16,32,64 for a batch sweep')
  parser.add_argument('--size', type=int, default=None, help='image side')
  parser.add_argument('--shape', type=image_shape, default=None,
                      help='input HxWxC, e.g. 256x240x3 (over --size)')
  parser.add_argument('--steps', type=int, default=None, help='timed steps')
  if data_parallel:
    parser.add_argument('--devices', type=lambda s: [int(n) for n in s.split(',')],
                        default=None, help='e.g. 1,2: also time each case data '
                        'parallel over the first 2 devices (CPU: 2 host devices)')
  if config_file:
    parser.add_argument('--config', default=None,
                        help="a unetjax config file: its model and batch size")
  parser.add_argument('--torch', action='store_true',
                      help='also time the PyTorch baseline in this process')
  parser.add_argument('--torch_modes', type=lambda s: s.split(','), default=None,
                      help=f'PyTorch modes, of {", ".join(extra_modes)}' if extra_modes
                      else argparse.SUPPRESS)
  parser.add_argument('--out', default=None, help='also append the JSON lines here')
  args = parser.parse_args()
  if args.out:
    os.environ['UNETJAX_BENCHMARK_OUT'] = args.out
  return args


def peak_flops(device: str, dtype: str) -> float | None:
  for name, peaks in PEAK_FLOPS.items():
    if name in device:
      return peaks.get(dtype)
  return None


def train_record(*, framework: str, model: str, mode: str, dtype: str,
                 shape: Shape, batch_size: int, base_filters: int | None,
                 batch_norm: bool, params: int, forward_flops_per_image: float,
                 step_s: float, step_times: list[float], first_step_s: float,
                 peak_memory_bytes: int | None, device: str,
                 versions: dict[str, str], **extra: Any) -> dict[str, Any]:
  """One training-throughput record with derived rates and utilisation."""
  train_flops = 3 * forward_flops_per_image
  achieved = train_flops * batch_size / step_s
  peak = peak_flops(device, dtype)
  return {
      'benchmark': 'train_throughput', 'framework': framework, 'model': model,
      'mode': mode, 'dtype': dtype, 'image_shape': list(shape),
      'batch_size': batch_size, 'base_filters': base_filters,
      'batch_norm': batch_norm, 'params': params,
      'images_per_s': round(batch_size / step_s, 2),
      'step_ms': round(step_s * 1e3, 3),
      'step_ms_spread': [round(min(step_times) * 1e3, 3),
                         round(max(step_times) * 1e3, 3)],
      'first_step_s': round(first_step_s, 2),
      'forward_gflops_per_image': round(forward_flops_per_image / 1e9, 3),
      'train_gflops_per_image': round(train_flops / 1e9, 3),
      'achieved_tflops': round(achieved / 1e12, 4),
      'mfu': round(achieved / peak, 4) if peak else None,
      'peak_memory_bytes': peak_memory_bytes,
      **extra, **machine(device, versions),
  }


def machine(device: str, versions: dict[str, str]) -> dict[str, Any]:
  return {'device': device, 'cpu_count': os.cpu_count(),
          'machine': platform.machine(), 'python': platform.python_version(),
          **versions}


def median(values: list[float]) -> float:
  return statistics.median(values)


def emit(record: dict[str, Any], out: str | None = None) -> None:
  """Prints `record` as a JSON line and appends it to `out` (default: the
  file given to --out, through $UNETJAX_BENCHMARK_OUT)."""
  line = json.dumps(record)
  print(line, flush=True)
  path = out or os.environ.get('UNETJAX_BENCHMARK_OUT')
  if path:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'a') as f:
      f.write(line + '\n')


def train_step_seconds(config, image_shape: Shape, batch_size: int,
                       steps: int) -> float:
  """Seconds per training step of `config`'s model on one batch of its
  training data, jitted on the first device, timed after a compiling call."""
  import jax
  from unetjax import losses, models, optimizers, parallel, train
  from unetjax import state as state_lib
  from unetjax.data import pipeline
  strategy = parallel.JitStrategy(jax.devices()[:1])
  model = models.get_model(config.model)
  schedule = optimizers.create_learning_rate_schedule(config.optimizer, 1000)
  state = strategy.place_state(state_lib.init_train_state(
      jax.random.key(0), model, optimizers.create_optimizer(config.optimizer, schedule),
      image_shape, strategy.init_sharding))
  step = strategy.compile(lambda s, b, axis_name: train.train_step(
      s, b, loss_fn=losses.get_loss(config.loss), dropout_rng=jax.random.key(1),
      axis_name=axis_name), donate_state=True)
  batch = strategy.place_batch(next(pipeline.train_batches(
      config.dataset, batch_size, seed=0)))
  state, out = step(state, batch)  # compile
  jax.block_until_ready(out)
  start = time.perf_counter()
  for _ in range(steps):
    state, out = step(state, batch)
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / steps
