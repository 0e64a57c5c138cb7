"""U-Net (Ronneberger et al. 2015, "U-Net: Convolutional Networks for
Biomedical Image Segmentation", MICCAI), with 'same' padding so the output
has the input's height and width."""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from unetjax.models import layers


class UNet(nn.Module):
  """Encoder-decoder with skip connections; returns float32 logits (N, H, W, n_classes).

  Attributes:
    n_classes: 1 for binary segmentation (sigmoid), K > 1 for K-class softmax.
    base_filters: channels at the first level; level l has base_filters * 2**l
      (16 in small "seed" U-Nets, 64 in Ronneberger et al.).
    depth: number of poolings; inputs must be divisible by 2**depth.
    dropout_rates: one rate for all levels or depth+1 rates, shallow to deep,
      the last for the bottleneck.
    use_batch_norm: batch norm after every convolution (then convs have no bias).
    upsample: 'transpose' (2x2 up-convolution) or 'bilinear' (resize + 1x1 conv).
    dtype: computation dtype (e.g. jnp.bfloat16); params stay in param_dtype.
  """
  n_classes: int = 1
  base_filters: int = 16
  depth: int = 4
  dropout_rates: float | Sequence[float] = 0.0
  use_batch_norm: bool = True
  upsample: str = 'transpose'
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    layers.check_input_size(images.shape, self.depth)
    rates = layers.expand_per_level(self.dropout_rates, self.depth,
                                    'dropout_rates')
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    block = lambda level: layers.ConvBlock(
        self.base_filters * 2**level, self.use_batch_norm, rates[level], **kw)

    x = images.astype(self.dtype)
    skips = []
    for level in range(self.depth):
      x = block(level)(x, train)
      skips.append(x)
      x = layers.max_pool_2x2(x)
    x = block(self.depth)(x, train)
    for level in reversed(range(self.depth)):
      x = layers.Upsample(self.base_filters * 2**level, self.upsample, **kw)(x)
      x = jnp.concatenate([skips[level], x], axis=-1)
      x = block(level)(x, train)
    logits = nn.Conv(self.n_classes, (1, 1), **kw)(x)
    return logits.astype(jnp.float32)
