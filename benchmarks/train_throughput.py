"""Training throughput of unetjax's models: images/s, step time, memory, MFU.

python -m benchmarks.train_throughput --preset=cpu --torch --devices=1,2
python -m benchmarks.train_throughput --preset=gpu --torch --batch_sizes=8,16,32,64

One JSON line per case: a full training step (forward, backward, Adam
update, BCE + Dice loss) of `unetjax.train.train_step`, jitted with the state
donated, on random data already on the device; step time is the median over
--steps steps after warm-up, compile time is reported apart. Presets
(benchmarks/common.py): 'cpu' is the seed's U-Net (16 base filters, no batch
norm, 128x128x1, batch 8, fp32); 'gpu' is every segmentation model at its
paper's widths with batch norm at 256x256x3, batch 32, fp32 and bf16
(bf16 compute, fp32 parameters and optimizer state). --devices=1,2 times
each case also data parallel over the first 2 devices, the way
`unetjax.main` lays a step out (`unetjax.parallel.JitStrategy`: replicated
state, batch split over the devices); on the CPU the process first splits
the host into that many JAX devices (`jax_num_cpu_devices`, as
`unetjax.main --cpu_devices` does), which XLA runs side by side. With --torch the
PyTorch baseline (benchmarks/torch_baseline.py) runs in the same process
after the JAX cases, and the last lines give the ratio of unetjax's images/s
to the best PyTorch mode's, one per U-Net case.
"""

import functools
import os
import sys
import time
from typing import Any

os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')  # torch shares the GPU

import flax  # noqa: E402
import jax  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from benchmarks import common  # noqa: E402
from configs import default  # noqa: E402 (its loss: 0.5 BCE + 0.5 Dice)
from unetjax import losses, models, parallel, train  # noqa: E402
from unetjax import state as state_lib  # noqa: E402


def model_config(name: str, preset: common.Preset) -> ml_collections.ConfigDict:
  """`name` at its paper's widths (or the preset's), binary, no dropout."""
  fields = dict(next(f for label, _, f in models.paper_settings() if label == name))
  if preset.base_filters is not None:
    fields['base_filters'] = preset.base_filters
  fields.update(name=name, n_classes=1, dropout_rates=0.0,
                norm='batch' if preset.batch_norm else 'none')
  return ml_collections.ConfigDict(fields)


def device_name() -> str:
  device = jax.devices()[0]
  return device.device_kind if device.platform == 'gpu' else device.platform


def peak_memory() -> int | None:
  stats = jax.devices()[0].memory_stats()
  return stats.get('peak_bytes_in_use') if stats else None


def compiled_step(model, shape: common.Shape, batch_size: int, n_devices: int = 1):
  """The state-donating train step, compiled as `unetjax.main` compiles it
  for the first `n_devices` devices, with its freshly initialised state and a
  random batch, both placed on those devices."""
  strategy = parallel.JitStrategy(jax.devices()[:n_devices])
  tx = optax.adam(1e-3)
  state = state_lib.init_train_state(jax.random.key(0), model, tx, shape)
  step = strategy.compile(functools.partial(
      train.train_step, loss_fn=losses.get_loss(default.get_config().loss),
      dropout_rng=jax.random.key(1)), donate_state=True)
  rng = np.random.default_rng(0)
  batch = strategy.place_batch({
      'image': rng.integers(0, 256, (batch_size,) + shape, dtype=np.uint8),
      'mask': (rng.random((batch_size,) + shape[:2]) > 0.5).astype(np.uint8)})
  return step, strategy.place_state(state), batch


def timed_steps(compiled, state, batch, steps: int) -> tuple[Any, list[float]]:
  """The state after `steps` calls of the compiled step, and each call's
  seconds, the step's outputs waited for."""
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    state, out = compiled(state, batch)
    jax.block_until_ready(out)
    times.append(time.perf_counter() - start)
  return state, times


def measure(name: str, dtype: str, batch_size: int,
            preset: common.Preset, n_devices: int = 1) -> dict[str, Any]:
  config = model_config(name, preset)
  model = models.get_model(config, dtype=dtype)
  shape = preset.shape
  step, state, batch = compiled_step(model, shape, batch_size, n_devices)
  start = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  state, out = compiled(state, batch)
  jax.block_until_ready(out)
  first_step_s = time.perf_counter() - start
  state, _ = timed_steps(compiled, state, batch, preset.warmup)
  state, times = timed_steps(compiled, state, batch, preset.steps)
  return common.train_record(
      framework='jax', model=name, mode='unetjax', dtype=dtype, shape=shape,
      batch_size=batch_size, base_filters=config.base_filters,
      batch_norm=preset.batch_norm,
      params=models.parameter_count(model, (1,) + shape),
      forward_flops_per_image=models.forward_flops(model, (1,) + shape),
      step_s=common.median(times), step_times=times, first_step_s=first_step_s,
      compile_s=round(compile_s, 2), peak_memory_bytes=peak_memory(),
      device=device_name(), devices=n_devices, versions={
          'jax': jax.__version__, 'flax': flax.__version__,
          'backend': jax.default_backend(),
          'xla_flags': os.environ.get('XLA_FLAGS', '')})


def ratio_record(jax_records: list[dict[str, Any]],
                 torch_records: list[dict[str, Any]]) -> list[dict[str, Any]]:
  """unetjax's U-Net images/s over the best PyTorch mode's, per dtype and batch."""
  ratios = []
  for record in jax_records:
    if record['model'] != 'unet':
      continue
    rivals = [t for t in torch_records if t['batch_size'] == record['batch_size']
              and t['dtype'] == record['dtype']]
    if not rivals:
      continue
    best = max(rivals, key=lambda t: t['images_per_s'])
    ratios.append({
        'benchmark': 'train_throughput_ratio', 'dtype': record['dtype'],
        'batch_size': record['batch_size'], 'image_shape': record['image_shape'],
        'unetjax_images_per_s': record['images_per_s'],
        'unetjax_devices': record.get('devices', 1),
        'torch_mode': best['mode'], 'torch_images_per_s': best['images_per_s'],
        'ratio': round(record['images_per_s'] / best['images_per_s'], 3),
        'device': record['device']})
  return ratios


def main() -> None:
  args = common.parse_args(__doc__, data_parallel=True)
  preset = common.PRESETS[args.preset].override(args)
  device_counts = args.devices or [1]
  if args.devices:
    parallel.use_cpu_devices(max(device_counts))  # before any use of a device
  if max(device_counts) > jax.device_count():
    sys.exit(f'--devices={max(device_counts)} but this host has only '
             f'{jax.device_count()} {jax.default_backend()} devices.')
  records = []
  for name in preset.models:
    for dtype in preset.dtypes:
      for batch_size in preset.batch_sizes:
        for n_devices in device_counts:
          records.append(measure(name, dtype, batch_size, preset, n_devices))
          common.emit(records[-1])
  if args.torch:
    from benchmarks import torch_baseline  # here, so that the JAX cases need no torch
    torch_records = torch_baseline.run(preset, tuple(args.torch_modes or ()) or None)
    for ratio in ratio_record(records, torch_records):
      common.emit(ratio)


if __name__ == '__main__':
  main()
