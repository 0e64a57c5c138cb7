"""Building blocks shared by the segmentation models (NHWC, flax.linen)."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from unetjax.errors import ConfigError, InputShapeError

Dtype = Any

UPSAMPLE_MODES = ('transpose', 'bilinear')


def check_input_size(shape: tuple[int, ...], depth: int) -> None:
  """Raises InputShapeError unless `shape` is NHWC with H, W divisible by 2**depth.

  Each of the `depth` poolings halves the resolution and the decoder must
  restore it exactly to concatenate skips, so any remainder would be a shape
  error deep inside XLA; this names the fix instead.
  """
  if len(shape) != 4:
    raise InputShapeError(
        f'Expected images of shape (batch, height, width, channels), got {shape}.')
  height, width = shape[1], shape[2]
  factor = 2**depth
  if height % factor or width % factor:
    fit = lambda n: max(factor, n // factor * factor)
    raise InputShapeError(
        f'Image size {height}x{width} cannot go through a model of depth {depth}: '
        f'height and width must be divisible by 2**depth = {factor}. Resize or '
        f'crop to e.g. {fit(height)}x{fit(width)}, or lower model.depth.')


def expand_per_level(values: Any, depth: int, name: str) -> tuple[float, ...]:
  """A scalar or a sequence of depth+1 values -> one value per level.

  Levels are the `depth` encoder stages plus the bottleneck; a decoder stage
  uses the value of the encoder stage at its resolution.
  """
  if isinstance(values, (int, float)):
    return (float(values),) * (depth + 1)
  values = tuple(float(v) for v in values)
  if len(values) != depth + 1:
    raise ConfigError(
        f'{name} has {len(values)} entries, but a model of depth {depth} needs '
        f'{depth + 1} (one per encoder level, shallow to deep, plus the '
        f'bottleneck), or one number for all levels.')
  return values


class ConvBlock(nn.Module):
  """Two 3x3 convolutions, each followed by optional batch norm and ReLU.

  The dropout sits between the two convolutions, as in the Keras U-Nets that
  popularised per-level rates (0.1 shallow ... 0.3 deep).
  """
  features: int
  use_batch_norm: bool = True
  dropout_rate: float = 0.0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    for i in range(2):
      x = nn.Conv(self.features, (3, 3), padding='SAME',
                  use_bias=not self.use_batch_norm, dtype=self.dtype,
                  param_dtype=self.param_dtype)(x)
      if self.use_batch_norm:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                         dtype=self.dtype, param_dtype=self.param_dtype)(x)
      x = nn.relu(x)
      if i == 0 and self.dropout_rate > 0:
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return x


class Upsample(nn.Module):
  """Doubles height and width and sets the channel count to `features`.

  'transpose' is the 2x2 stride-2 up-convolution of Ronneberger et al.;
  'bilinear' resizes and then mixes channels with a 1x1 convolution, which
  avoids the checkerboard artefacts of transposed convolutions.
  """
  features: int
  mode: str = 'transpose'
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.mode == 'transpose':
      return nn.ConvTranspose(self.features, (2, 2), strides=(2, 2),
                              dtype=self.dtype, param_dtype=self.param_dtype)(x)
    if self.mode == 'bilinear':
      n, h, w, c = x.shape
      x = jax.image.resize(x, (n, 2 * h, 2 * w, c), method='bilinear')
      return nn.Conv(self.features, (1, 1), dtype=self.dtype,
                     param_dtype=self.param_dtype)(x)
    raise ConfigError(
        f'Unknown upsample mode {self.mode!r}; choose one of {UPSAMPLE_MODES}.')


def max_pool_2x2(x: jax.Array) -> jax.Array:
  return nn.max_pool(x, (2, 2), strides=(2, 2))
