"""Prediction speed of the U-Net: latency at batch 1, throughput at batch 32.

python -m benchmarks.inference --preset=cpu --torch
python -m benchmarks.inference --preset=gpu --torch

One JSON line per case: the evaluation-mode forward pass (logits to a
thresholded mask, on the device) of unetjax's U-Net, jitted, and with
--torch the same network in PyTorch (fp32 eager; on a GPU also AMP bf16 +
channels_last, with and without torch.compile), in the same process.
Latency is the median time of one call with the result back on the host at
batch 1; throughput is frames/s at the larger batch. Sizes 256 and 512 (the
'gpu' preset: paper widths, batch norm, RGB; 'cpu': the seed's U-Net,
greyscale).
"""

import os
import time
from typing import Any, Callable

os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402
from benchmarks import train_throughput  # noqa: E402
from unetjax import models  # noqa: E402

SIZES = (256, 512)


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
  """(first call's seconds, median seconds of `repeats` further calls)."""
  start = time.perf_counter()
  fn()
  first = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return first, common.median(times)


def record(framework: str, mode: str, dtype: str, size: int, channels: int,
           batch_size: int, first_s: float, call_s: float, device: str,
           versions: dict[str, str]) -> dict[str, Any]:
  return {'benchmark': 'inference', 'framework': framework, 'model': 'unet',
          'mode': mode, 'dtype': dtype, 'image_shape': [size, size, channels],
          'batch_size': batch_size, 'latency_ms': round(call_s * 1e3, 3),
          'frames_per_s': round(batch_size / call_s, 2),
          'first_call_s': round(first_s, 2),
          **common.machine(device, versions)}


def jax_cases(preset: common.Preset, batch_sizes: tuple[int, ...],
              repeats: int) -> list[dict[str, Any]]:
  records = []
  config = train_throughput.model_config('unet', preset)
  channels = preset.shape[2]
  for dtype in preset.dtypes:
    model = models.get_model(config, dtype=dtype)
    for size in SIZES:
      variables = models.initialize(model, jax.random.key(0), (1, size, size, channels))
      predict = jax.jit(lambda v, x: model.apply(v, x, train=False) > 0)
      for batch_size in batch_sizes:
        images = jnp.asarray(np.random.default_rng(0).random(
            (batch_size, size, size, channels), dtype=np.float32))
        first, call = timed(lambda: np.asarray(predict(variables, images)), repeats)
        records.append(record('jax', 'unetjax', dtype, size, channels, batch_size,
                              first, call, train_throughput.device_name(),
                              {'jax': jax.__version__}))
        common.emit(records[-1])
  return records


def torch_cases(preset: common.Preset, batch_sizes: tuple[int, ...],
                repeats: int) -> list[dict[str, Any]]:
  import torch
  from benchmarks import torch_baseline
  gpu = torch.cuda.is_available()
  device = torch.device('cuda' if gpu else 'cpu')
  modes = (('fp32', 'amp_bf16_channels_last', 'amp_bf16_channels_last_compile')
           if gpu else ('fp32',))
  channels = preset.shape[2]
  records = []
  for mode in modes:
    model = torch_baseline.UNet(channels, 1, preset.base_filters or 64, 4,
                                preset.batch_norm).to(device).eval()
    memory_format = (torch.channels_last if 'channels_last' in mode
                     else torch.contiguous_format)
    model = model.to(memory_format=memory_format)
    forward = torch.compile(model) if mode.endswith('_compile') else model

    def predict(images):
      with torch.inference_mode(), torch.autocast(
          device.type, dtype=torch.bfloat16, enabled=mode != 'fp32'):
        return (forward(images) > 0).cpu()

    for size in SIZES:
      for batch_size in batch_sizes:
        images = torch.rand(batch_size, channels, size, size, device=device)
        images = images.contiguous(memory_format=memory_format)
        first, call = timed(lambda: predict(images), repeats)
        records.append(record(
            'torch', mode, 'float32' if mode == 'fp32' else 'bfloat16', size,
            channels, batch_size, first, call,
            torch.cuda.get_device_name(device) if gpu else 'cpu',
            {'torch': torch.__version__}))
        common.emit(records[-1])
  return records


def main() -> None:
  args = common.parse_args(__doc__)
  preset = common.PRESETS[args.preset].override(args)
  gpu = args.preset == 'gpu'
  batch_sizes = tuple(args.batch_sizes or ((1, 32) if gpu else (1, 8)))
  repeats = args.steps or (30 if gpu else 5)
  jax_cases(preset, batch_sizes, repeats)
  if args.torch:
    torch_cases(preset, batch_sizes, repeats)


if __name__ == '__main__':
  main()
