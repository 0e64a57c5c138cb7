"""The U-Net train step with flax's pooling and up-convolution vs unetjax's.

python benchmarks/layer_formulations.py --torch

unetjax.models.layers writes 2x2 max pooling as a reshape and a max (with
the maxima kept for the gradient) and the 2x2 stride-2 up-convolution as one
matrix product; both give flax's nn.max_pool / nn.ConvTranspose outputs.
This times, in one process and interleaved, the CPU preset's train step
(benchmarks/common.py) built with flax's layers, with unetjax's pooling
only, with both of unetjax's layers, and with those plus XLA's YNNPACK
convolution and dot fusions; with --torch PyTorch's fp32 step too. Then the
gradient of each layer alone at the U-Net's shapes. One JSON line per case;
step times are medians over --steps interleaved rounds.
"""

import contextlib
import os
import sys
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import common  # noqa: E402
import train_throughput  # noqa: E402
from unetjax import models  # noqa: E402
from unetjax.models import layers  # noqa: E402

YNN_FUSIONS = {'xla_cpu_experimental_ynn_fusion_type':
               'LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION,'
               'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT'}


def flax_max_pool(x: jax.Array) -> jax.Array:
  return nn.max_pool(x, (2, 2), strides=(2, 2))


class FlaxUpConvolution(nn.Module):
  features: int
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return nn.ConvTranspose(self.features, (2, 2), strides=(2, 2),
                            dtype=self.dtype, param_dtype=self.param_dtype)(x)


@contextlib.contextmanager
def formulation(pool: Callable, up: type[nn.Module]):
  """Models built inside use `pool` and `up` for layers' pooling and up-conv."""
  saved = layers.max_pool_2x2, layers.UpConvolution
  layers.max_pool_2x2, layers.UpConvolution = pool, up
  try:
    yield
  finally:
    layers.max_pool_2x2, layers.UpConvolution = saved


VARIANTS = {  # name: (pooling, up-convolution, XLA compiler options)
    'flax_layers': (flax_max_pool, FlaxUpConvolution, {}),
    'unetjax_pooling': (layers.max_pool_2x2, FlaxUpConvolution, {}),
    'unetjax_layers': (layers.max_pool_2x2, layers.UpConvolution, {}),
    'unetjax_layers_ynn': (layers.max_pool_2x2, layers.UpConvolution, YNN_FUSIONS),
}


def compiled_variants(preset: common.Preset, batch_size: int) -> dict[str, list]:
  """name -> [compiled step, state, batch], each traced under its layers."""
  variants = {}
  for name, (pool, up, options) in VARIANTS.items():
    with formulation(pool, up):
      model = models.get_model(train_throughput.model_config('unet', preset))
      step, state, batch = train_throughput.compiled_step(model, preset.shape,
                                                          batch_size)
      variants[name] = [step.lower(state, batch).compile(compiler_options=options),
                        state, batch]
  return variants


def time_steps(preset: common.Preset, batch_size: int, rounds: int,
               with_torch: bool) -> dict[str, list[float]]:
  variants = compiled_variants(preset, batch_size)
  steps = {}
  for name, (compiled, state, batch) in variants.items():
    def run(compiled=compiled, name=name):
      variants[name][1], out = compiled(variants[name][1], variants[name][2])
      jax.block_until_ready(out)
    steps[name] = run
  if with_torch:
    import torch
    import torch_baseline
    height, width, channels = preset.shape
    model = torch_baseline.UNet(channels, 1, preset.base_filters, 4,
                                preset.batch_norm)
    torch_step = torch_baseline.make_train_step(model, 'fp32')
    images = torch.rand(batch_size, channels, height, width)
    targets = (torch.rand(batch_size, 1, height, width) > 0.5).float()
    steps['torch_fp32'] = lambda: torch_step(images, targets)
  times = {name: [] for name in steps}
  for round_ in range(rounds + 1):  # round 0 warms up
    for name, run in steps.items():
      start = time.perf_counter()
      run()
      if round_:
        times[name].append(time.perf_counter() - start)
  return times


def layer_gradient_ms(pool_shape: tuple[int, ...], rounds: int) -> dict[str, float]:
  """Median ms of the gradient of each formulation of both layers at one
  level: pooling an NHWC map of `pool_shape`, and up-convolving the map below
  it (half the size, twice the channels) back to that many channels."""
  rng = np.random.default_rng(0)
  n, h, w, c = pool_shape
  x = jnp.asarray(rng.random(pool_shape), jnp.float32)
  below = jnp.asarray(rng.random((n, h // 2, w // 2, 2 * c)), jnp.float32)
  up, flax_up = layers.UpConvolution(c), FlaxUpConvolution(c)
  flax_variables = flax_up.init(jax.random.key(0), below)
  variables = up.init(jax.random.key(0), below)
  loss = lambda f: jax.jit(jax.grad(lambda *a: jnp.sum(f(*a) ** 2)))
  cases = {'max_pool_flax': (loss(flax_max_pool), (x,)),
           'max_pool_unetjax': (loss(layers.max_pool_2x2), (x,)),
           'up_convolution_flax': (loss(flax_up.apply), (flax_variables, below)),
           'up_convolution_unetjax': (loss(up.apply), (variables, below))}
  result = {}
  for name, (fn, args) in cases.items():
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(rounds):
      start = time.perf_counter()
      jax.block_until_ready(fn(*args))
      times.append(time.perf_counter() - start)
    result[name] = round(common.median(times) * 1e3, 2)
  return result


def main() -> None:
  args = common.parse_args(__doc__)
  preset = common.PRESETS['cpu'].override(args)
  batch_size = preset.batch_sizes[0]
  rounds = args.steps or 10
  versions = {'jax': jax.__version__}
  device = train_throughput.device_name()
  for name, times in time_steps(preset, batch_size, rounds, args.torch).items():
    common.emit({'benchmark': 'layer_formulations', 'variant': name,
                 'image_shape': list(preset.shape), 'batch_size': batch_size,
                 'step_ms': round(common.median(times) * 1e3, 1),
                 'step_ms_spread': [round(min(times) * 1e3, 1),
                                    round(max(times) * 1e3, 1)],
                 **common.machine(device, versions)})
  height, width, channels = preset.shape
  del channels
  for level in range(4):  # the feature maps the U-Net pools and up-convolves to
    shape = (batch_size, height >> level, width >> level,
             preset.base_filters << level)
    common.emit({'benchmark': 'layer_gradient', 'pooled_shape': list(shape),
                 **layer_gradient_ms(shape, rounds),
                 **common.machine(device, versions)})


if __name__ == '__main__':
  main()
