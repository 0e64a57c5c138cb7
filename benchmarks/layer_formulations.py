"""The U-Net train step with flax's pooling and up-convolution vs unetjax's.

python -m benchmarks.layer_formulations --torch

unetjax.models.layers writes 2x2 max pooling as a reshape and a max (with
the maxima kept for the gradient) and the 2x2 stride-2 up-convolution as one
matrix product; both give flax's nn.max_pool / nn.ConvTranspose outputs.
This times, in one process and interleaved, the CPU preset's train step
(benchmarks/common.py) built with flax's layers, with unetjax's pooling
only, with both of unetjax's layers, and with those plus XLA's YNNPACK
convolution and dot fusions; with --torch PyTorch's fp32 step too. Then the
gradient of each layer alone at the U-Net's shapes, and each level's 3x3
convolution alone: XLA's forward, input gradient and weight gradient, the
weight gradient as nine shifted matrix products, and (--torch) PyTorch's
forward and forward + backward. One JSON line per case; times are medians
over --steps rounds.
"""

import contextlib
import time
from typing import Any, Callable


import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from benchmarks import train_throughput
from unetjax import models
from unetjax.models import layers

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
    from benchmarks import torch_baseline
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
  return {name: _median_ms(lambda: jax.block_until_ready(fn(*args)), rounds)
          for name, (fn, args) in cases.items()}


def _median_ms(fn: Callable[[], Any], rounds: int) -> float:
  """Median ms of `fn()` over `rounds` calls, after one call to warm up."""
  fn()
  times = []
  for _ in range(rounds):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return round(common.median(times) * 1e3, 2)


def shifted_weight_gradient(x: jax.Array, g: jax.Array) -> jax.Array:
  """The 3x3 'same' convolution's kernel gradient as nine matrix products of
  the shifted input with the output gradient."""
  height, width = x.shape[1:3]
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  return jnp.stack([jnp.stack([
      jnp.einsum('nhwc,nhwd->cd', padded[:, i:i + height, j:j + width], g)
      for j in range(3)]) for i in range(3)])


def conv_layer_ms(shape: tuple[int, ...], out_channels: int, rounds: int,
                  with_torch: bool) -> dict[str, float]:
  """Median ms of one 3x3 'same' convolution of an NHWC map of `shape`."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  w = jnp.asarray(rng.standard_normal((3, 3, shape[-1], out_channels)) * 0.1,
                  jnp.float32)
  g = jnp.asarray(rng.standard_normal(shape[:3] + (out_channels,)), jnp.float32)
  conv = lambda x, w: jax.lax.conv_general_dilated(
      x, w, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  input_grad = jax.jit(lambda x, w, g: jax.vjp(conv, x, w)[1](g)[0])
  weight_grad = jax.jit(lambda x, w, g: jax.vjp(conv, x, w)[1](g)[1])
  shifted = jax.jit(shifted_weight_gradient)
  np.testing.assert_allclose(shifted(x, g), weight_grad(x, w, g),
                             rtol=1e-3, atol=1e-2)
  forward = jax.jit(conv)
  result = {
      'xla_forward': _median_ms(lambda: forward(x, w).block_until_ready(), rounds),
      'xla_input_gradient': _median_ms(
          lambda: input_grad(x, w, g).block_until_ready(), rounds),
      'xla_weight_gradient': _median_ms(
          lambda: weight_grad(x, w, g).block_until_ready(), rounds),
      'shifted_matmul_weight_gradient': _median_ms(
          lambda: shifted(x, g).block_until_ready(), rounds)}
  if with_torch:
    import torch
    tx = torch.randn(shape[0], shape[3], *shape[1:3], requires_grad=True)
    tconv = torch.nn.Conv2d(shape[3], out_channels, 3, padding=1, bias=False)
    tg = torch.randn(shape[0], out_channels, *shape[1:3])
    result['torch_forward'] = _median_ms(lambda: tconv(tx), rounds)
    result['torch_forward_backward'] = _median_ms(
        lambda: torch.autograd.grad(tconv(tx), [tx, tconv.weight], tg), rounds)
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
  for level in range(5):  # each level's second convolution (the first is alike)
    shape = (batch_size, height >> level, width >> level,
             preset.base_filters << level)
    common.emit({'benchmark': 'conv_layer', 'input_shape': list(shape),
                 'out_channels': shape[-1],
                 **conv_layer_ms(shape, shape[-1], rounds, args.torch),
                 **common.machine(device, versions)})


if __name__ == '__main__':
  main()
