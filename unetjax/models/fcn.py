"""FCN-8s-style baseline (Long et al. 2015, "Fully Convolutional Networks for
Semantic Segmentation", CVPR): a plain encoder whose class scores from the
three coarsest scales are fused and upsampled, with no decoder."""

import flax.linen as nn
import jax

from unetjax.errors import ConfigError
from unetjax.models import layers
from unetjax.models.base import SegmentationModel


# The published architecture(s), row label -> fields (models --list, the
# benchmarks), and the tests' tiny one (tests/test_models_zoo.py).
PAPER = {'fcn8s': dict(base_filters=64, depth=5)}  # VGG-16 widths
TINY = dict(base_filters=4, depth=3)


class FCN8s(SegmentationModel):
  """Skip-fused fully convolutional network; returns float32 logits
  (N, H, W, n_classes).

  The encoder is `depth` VGG-like levels (a ConvBlock, then 2x2 max pooling),
  widths base_filters * 2**level capped at 8 * base_filters (VGG-16: 64..512,
  512), then a ConvBlock at 1/2**depth resolution in place of fc6/fc7. A 1x1
  convolution scores every class there and after the last two poolings
  before it (pool4 and pool3 of FCN-8s for depth 5: strides 32, 16, 8); the
  coarse scores are upsampled 2x and added to the finer ones, and the fused
  scores at 1/2**(depth-2) resolution are resized bilinearly to the input.
  A U-Net without a decoder: the baseline that shows what skips and a
  decoder buy.

  Attributes: see SegmentationModel; defaults 64 base filters and depth 5
  (FCN-8s), at least 3. The last dropout rate applies to the fc6/fc7 block.
  `upsample` is how the scores are upsampled 2x: 'transpose' (learned 2x2
  up-convolution; FCN learns 4x4 ones) or 'bilinear' (resize, 1x1 conv).
  """
  base_filters: int = 64
  depth: int = 5

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    if self.depth < 3:
      raise ConfigError(f'model.depth={self.depth}: FCN-8s fuses scores from '
                        'three scales, so it needs depth >= 3.')
    rates = self.level_dropout_rates()
    x = self.prepare(images)
    pooled = []
    for level in range(self.depth + 1):
      x = layers.ConvBlock(self.width(min(level, 3)), norm=self.norm,
                           dropout_rate=rates[level], **self.block_fields)(x, train)
      if level < self.depth:
        x = layers.max_pool_2x2(x)
        pooled.append(x)
    scores = self.classify_pixels(x)
    for skip in (pooled[-2], pooled[-3]):
      scores = layers.Upsample(self.n_classes, self.upsample,
                               kernel_init=self.kernel_init, **self.dtypes)(scores)
      scores = scores + self.classify_pixels(skip)
    return jax.image.resize(scores, images.shape[:3] + (self.n_classes,),
                            method='bilinear')
