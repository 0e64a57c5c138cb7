"""U-Net (Ronneberger et al. 2015, "U-Net: Convolutional Networks for
Biomedical Image Segmentation", MICCAI), with 'same' padding so the output
has the input's height and width."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from unetjax.models import layers
from unetjax.models.base import SegmentationModel


# The published architecture(s), row label -> fields (models --list, the
# benchmarks), and the tests' tiny one (tests/test_models_zoo.py).
PAPER = {'unet': dict(base_filters=64, depth=4, norm='none')}  # Ronneberger et al. 2015
TINY = dict(base_filters=4, depth=2)


class UNet(SegmentationModel):
  """Encoder-decoder with skip connections; returns float32 logits (N, H, W, n_classes).

  Each level is a ConvBlock (two 3x3 convolutions) of base_filters * 2**level
  channels; the encoder max-pools between levels, the decoder upsamples to
  the level's width and concatenates the encoder's features of the same
  resolution. Attributes: see SegmentationModel (defaults: 16 base filters,
  depth 4, 2x2 up-convolutions).
  """

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    rates = self.level_dropout_rates()
    block = lambda level: layers.ConvBlock(
        self.width(level), norm=self.norm, dropout_rate=rates[level],
        **self.block_fields)

    x = self.prepare(images)
    skips = []
    for level in range(self.depth):
      x = block(level)(x, train)
      skips.append(x)
      x = layers.max_pool_2x2(x)
    x = block(self.depth)(x, train)
    for level in reversed(range(self.depth)):
      skip = self.gate_skip(skips[level], x)
      x = layers.Upsample(self.width(level), self.upsample,
                          kernel_init=self.kernel_init, **self.dtypes)(x)
      x = jnp.concatenate([skip, x], axis=-1)
      x = block(level)(x, train)
    return self.classify_pixels(x)

  def gate_skip(self, skip: jax.Array, below: jax.Array) -> jax.Array:
    """What of the encoder's `skip` reaches the decoder, given the decoder's
    features `below` (one level deeper): all of it, in U-Net."""
    del below
    return skip
