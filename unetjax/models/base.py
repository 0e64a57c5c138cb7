"""What the segmentation models share: the config fields an ablation varies
across architectures, and the input and output conventions."""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from unetjax.errors import ConfigError
from unetjax.models import layers


class SegmentationModel(nn.Module):
  """Base of the segmentation models: NHWC images in, float32 logits
  (N, H, W, n_classes) out. Subclasses change defaults and add fields.

  Attributes:
    n_classes: 1 for binary segmentation (sigmoid), K > 1 for K-class softmax.
    base_filters: channels at the first level; level l has base_filters * 2**l
      (16 in small "seed" U-Nets, 64 in Ronneberger et al.).
    level_filters: channels per level, shallow to deep (depth + 1 numbers),
      in place of the doubling; () = doubling. A slimmer network trains more
      steps in a time budget (e.g. MONAI BasicUNet's (32, 32, 64, 128, 256)).
    depth: number of 2x downsamplings; inputs must be divisible by 2**depth.
    dropout_rates: one rate for all levels or depth+1 rates, shallow to deep,
      the last for the bottleneck; a decoder stage uses the rate of the
      encoder level at its resolution.
    norm: 'batch' (batch norm after every convolution, which then has no
      bias), 'group' (group norm, for batches of a few images), 'instance'
      (per channel and image) or 'none'.
    upsample: 'transpose' (2x2 up-convolution), 'bilinear' or 'nearest'
      (resize, then a 1x1 convolution where the channel count changes).
    activation: the nonlinearity in place of every ReLU: 'relu' or
      'leaky_relu' (negative slope 0.01, MONAI DynUNet's and nnU-Net's);
      layers.activation_fn.
    kernel_init: how every convolution kernel starts: 'lecun_normal'
      (flax's default) or 'kaiming_normal' (MONAI DynUNet's,
      torch.nn.init.kaiming_normal_ with a=0.01); layers.kernel_initializer.
    dtype: computation dtype (e.g. jnp.bfloat16); params stay in param_dtype.
  """
  n_classes: int = 1
  base_filters: int = 16
  level_filters: Sequence[int] = ()
  depth: int = 4
  dropout_rates: float | Sequence[float] = 0.0
  norm: str = 'batch'
  upsample: str = 'transpose'
  activation: str = 'relu'
  kernel_init: str = 'lecun_normal'
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @property
  def dtypes(self) -> dict[str, Any]:
    """Keyword arguments that give a layer the model's dtypes."""
    return dict(dtype=self.dtype, param_dtype=self.param_dtype)

  @property
  def block_fields(self) -> dict[str, Any]:
    """Keyword arguments that give a block (ConvBlock, ResidualBlock, ...)
    the model's dtypes, activation and kernel initialisation."""
    return dict(activation=self.activation, kernel_init=self.kernel_init,
                **self.dtypes)

  @property
  def conv_fields(self) -> dict[str, Any]:
    """Keyword arguments that give an nn.Conv the model's dtypes and kernel
    initialisation (Upsample and ASPP take its name, `kernel_init`)."""
    return dict(kernel_init=layers.kernel_initializer(self.kernel_init),
                **self.dtypes)

  def width(self, level: int) -> int:
    if self.level_filters:
      return self.level_filters[level]
    return self.base_filters * 2**level

  @property
  def n_levels(self) -> int:
    """How many widths `width` gives (level_filters must hold this many)."""
    return self.depth + 1

  def level_dropout_rates(self) -> tuple[float, ...]:
    return layers.expand_per_level(self.dropout_rates, self.depth,
                                   'dropout_rates')

  def prepare(self, images: jax.Array) -> jax.Array:
    """Checks that the model can take `images` and casts them to `dtype`."""
    layers.check_input_size(images.shape, self.depth)
    layers.activation_fn(self.activation)  # ConfigError for an unknown name
    layers.kernel_initializer(self.kernel_init)
    if self.level_filters and not self.n_levels:
      raise ConfigError(
          f'config.model.level_filters is set, but {type(self).__name__} '
          'takes its widths from its encoder and decoder; leave it ().')
    if self.level_filters and len(self.level_filters) != self.n_levels:
      raise ConfigError(
          f'config.model.level_filters={tuple(self.level_filters)!r} holds '
          f'{len(self.level_filters)} widths; {type(self).__name__} at depth '
          f'{self.depth} has {self.n_levels} levels: give {self.n_levels}, or '
          '() to double base_filters per level.')
    return images.astype(self.dtype)

  def classify_pixels(self, x: jax.Array, name: str | None = None,
                      kernel: int = 1) -> jax.Array:
    """A kernel x kernel convolution to one float32 logit per class."""
    logits = nn.Conv(self.n_classes, (kernel, kernel), name=name,
                     **self.conv_fields)(x)
    return logits.astype(jnp.float32)
