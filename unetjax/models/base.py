"""What the segmentation models share: the config fields an ablation varies
across architectures, and the input and output conventions."""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from unetjax.models import layers


class SegmentationModel(nn.Module):
  """Base of the segmentation models: NHWC images in, float32 logits
  (N, H, W, n_classes) out. Subclasses change defaults and add fields.

  Attributes:
    n_classes: 1 for binary segmentation (sigmoid), K > 1 for K-class softmax.
    base_filters: channels at the first level; level l has base_filters * 2**l
      (16 in small "seed" U-Nets, 64 in Ronneberger et al.).
    depth: number of 2x downsamplings; inputs must be divisible by 2**depth.
    dropout_rates: one rate for all levels or depth+1 rates, shallow to deep,
      the last for the bottleneck; a decoder stage uses the rate of the
      encoder level at its resolution.
    norm: 'batch' (batch norm after every convolution, which then has no
      bias), 'group' (group norm, for batches of a few images), 'instance'
      (per channel and image) or 'none'.
    upsample: 'transpose' (2x2 up-convolution), 'bilinear' or 'nearest'
      (resize, then a 1x1 convolution where the channel count changes).
    dtype: computation dtype (e.g. jnp.bfloat16); params stay in param_dtype.
  """
  n_classes: int = 1
  base_filters: int = 16
  depth: int = 4
  dropout_rates: float | Sequence[float] = 0.0
  norm: str = 'batch'
  upsample: str = 'transpose'
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @property
  def dtypes(self) -> dict[str, Any]:
    """Keyword arguments that give a layer the model's dtypes."""
    return dict(dtype=self.dtype, param_dtype=self.param_dtype)

  def width(self, level: int) -> int:
    return self.base_filters * 2**level

  def level_dropout_rates(self) -> tuple[float, ...]:
    return layers.expand_per_level(self.dropout_rates, self.depth,
                                   'dropout_rates')

  def prepare(self, images: jax.Array) -> jax.Array:
    """Checks that the model can take `images` and casts them to `dtype`."""
    layers.check_input_size(images.shape, self.depth)
    return images.astype(self.dtype)

  def classify_pixels(self, x: jax.Array, name: str | None = None,
                      kernel: int = 1) -> jax.Array:
    """A kernel x kernel convolution to one float32 logit per class."""
    logits = nn.Conv(self.n_classes, (kernel, kernel), name=name,
                     **self.dtypes)(x)
    return logits.astype(jnp.float32)
