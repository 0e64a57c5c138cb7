"""ResUNet++ (Jha et al. 2019, "ResUNet++: An Advanced Architecture for
Medical Image Segmentation", IEEE ISM), following the authors' Keras code
(github.com/DebeshJha/ResUNetPlusPlus, m_resunet.py)."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from unetjax.models import layers
from unetjax.models.resunet import ResUNet


# The published architecture(s), row label -> fields (models --list, the
# benchmarks), and the tests' tiny one (tests/test_models_zoo.py).
PAPER = {'resunet_pp': dict(base_filters=16, depth=3)}  # Jha et al. 2019
TINY = dict(base_filters=8, depth=2)


class ResUNetPlusPlus(ResUNet):
  """ResUNet with squeeze-and-excitation, ASPP and attention; returns float32
  logits (N, H, W, n_classes).

  Encoder: ResUNet's, each unit followed by squeeze-and-excitation (stem of
  base_filters channels, then `depth` stride-2 units). Bridge: ASPP with
  twice the deepest width. Decoder, per level from deep to shallow: an
  attention block between the encoder features of that level and the
  decoder's features, upsampling, concatenation with the encoder features,
  and a unit (+ SE) with the width of the next deeper level (as in the
  official code: 128, 64, 32 for widths 16..256). Head: ASPP with
  base_filters channels, then a 1x1 convolution.

  Attributes: ResUNet's, with the official code's 16 base filters, plus
    aspp_rate_scale: ASPP dilations are (6, 12, 18) times this.
  `upsample='bilinear'` is parameter-free like the official UpSampling2D
  (which is nearest-neighbour).
  """
  base_filters: int = 16
  aspp_rate_scale: int = 1

  @property
  def n_levels(self) -> int:
    return self.depth + 2  # the bridge is one level below the encoder

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    aspp = lambda features, x: layers.ASPP(
        features, self.aspp_rate_scale, self.norm, kernel_init=self.kernel_init,
        **self.dtypes)(x, train)
    x, skips = self.encode(images, train)
    x = aspp(self.width(self.depth + 1), x)
    for level in reversed(range(self.depth)):
      x = layers.EncoderDecoderAttention(self.norm, **self.block_fields)(
          skips[level], x, train)
      x = layers.Upsample(None, self.upsample, kernel_init=self.kernel_init,
                          **self.dtypes)(x)
      x = jnp.concatenate([x, skips[level]], axis=-1)
      x = self.unit(level, x, train, features=self.width(level + 1))
    return self.classify_pixels(aspp(self.width(0), x))

  def unit(self, level: int, x: jax.Array, train: bool, **kwargs) -> jax.Array:
    x = super().unit(level, x, train, **kwargs)
    return layers.SqueezeExcite(activation=self.activation, **self.dtypes)(x)
