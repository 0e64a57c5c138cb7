"""Deep residual U-Net (Zhang et al. 2018, "Road Extraction by Deep Residual
U-Net", IEEE GRSL): U-Net built from pre-activation residual units, with
strided convolutions in place of pooling."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from unetjax.models import layers
from unetjax.models.base import SegmentationModel


# The published architecture(s), row label -> fields (models --list, the
# benchmarks), and the tests' tiny one (tests/test_models_zoo.py).
PAPER = {'resunet': dict(base_filters=64, depth=3)}  # Zhang et al. 2018
TINY = dict(base_filters=4, depth=2)


class ResUNet(SegmentationModel):
  """Residual U-Net; returns float32 logits (N, H, W, n_classes).

  Level 0 is a residual unit on the image (64 channels in the paper); each
  deeper level l = 1..depth is a unit with base_filters * 2**l channels whose
  first convolution has stride 2, the last one being the bridge (512 channels
  at 1/8 resolution in the paper). The decoder upsamples, concatenates the
  skip of the same resolution and applies a unit of that level's width.

  Attributes: see SegmentationModel; defaults are the paper's (64 base
  filters, depth 3). A unit's dropout sits between its convolutions.
  `upsample='bilinear'` (default) resizes without parameters, like the
  paper's upsampling; 'transpose' learns a 2x2 up-convolution that keeps
  the channels.
  """
  base_filters: int = 64
  depth: int = 3
  upsample: str = 'bilinear'

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    x, skips = self.encode(images, train)
    for level in reversed(range(self.depth)):
      x = layers.Upsample(None, self.upsample, kernel_init=self.kernel_init,
                          **self.dtypes)(x)
      x = self.unit(level, jnp.concatenate([skips[level], x], axis=-1), train)
    return self.classify_pixels(x)

  def encode(self, images: jax.Array,
             train: bool) -> tuple[jax.Array, list[jax.Array]]:
    """The residual encoder: a unit on the image, then `depth` stride-2
    units. Returns the deepest features and those of levels 0..depth-1."""
    x = self.unit(0, self.prepare(images), train, normalize_input=False)
    skips = []
    for level in range(1, self.depth + 1):
      skips.append(x)
      x = self.unit(level, x, train, strides=2)
    return x, skips

  def unit(self, level: int, x: jax.Array, train: bool, strides: int = 1,
           normalize_input: bool = True, features: int | None = None) -> jax.Array:
    """A residual unit with level's dropout rate and (unless `features` is
    given) level's width."""
    return layers.ResidualBlock(
        features or self.width(level), strides=strides, norm=self.norm,
        normalize_input=normalize_input,
        dropout_rate=self.level_dropout_rates()[level],
        **self.block_fields)(x, train)
