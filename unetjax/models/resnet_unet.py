"""U-Net with a ResNet-18/34/50 encoder, laid out as segmentation_models_pytorch's
`Unet(encoder_name='resnet34')`: the encoder's five features as skips, five
decoder blocks (upsample x2, concatenate the skip, two 3x3 convolutions with
the norm and ReLU) of decoder_channels, and a 3x3 convolution to the logits.
The encoder takes torchvision's ImageNet weights
(unetjax.models.torchvision_weights)."""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from unetjax.errors import ConfigError
from unetjax.models import layers
from unetjax.models.base import SegmentationModel
from unetjax.models.resnet import ENCODER_SCOPE, ResNetEncoder

ENCODER_DEPTH = 5  # the encoder's deepest feature is at 1/32


# The published architecture(s), row label -> fields (models --list, the
# benchmarks), and the tests' tiny one (tests/test_models_zoo.py).
PAPER = {
    # segmentation_models_pytorch's Unet(encoder_name='resnet34')
    'resnet34_unet': dict(num_layers=34)}
TINY = None  # it downsamples 5 times: tested apart


class ResNetUNet(SegmentationModel):
  """Returns float32 logits (N, H, W, n_classes); H and W divisible by 32.

  Attributes (besides SegmentationModel's):
    num_layers: the encoder, ResNet-18, 34 or 50.
    base_filters: the encoder's stem and first-stage channels (64, as the
      ImageNet weights have them).
    depth: 5, the encoder's downsamplings.
    decoder_channels: channels of the five decoder blocks, deep to shallow.
    dropout_rates: one rate, or six (shallow to deep, the last applied to the
      encoder's deepest feature); a decoder block uses the rate of its
      output's level, between its two convolutions.
    upsample: 'nearest' (segmentation_models_pytorch's), 'bilinear' or
      'transpose'; all keep the channels.
    activation: 'relu' only: the encoder is torchvision's ResNet, whose
      ImageNet weights were trained with ReLU, and the decoder keeps smp's
      ReLU too; 'leaky_relu' is a ConfigError.
    kernel_init: every convolution's, the encoder's included (loaded
      ImageNet weights replace the encoder's).
  """
  num_layers: int = 34
  base_filters: int = 64
  depth: int = ENCODER_DEPTH
  decoder_channels: Sequence[int] = (256, 128, 64, 32, 16)
  upsample: str = 'nearest'

  @property
  def n_levels(self) -> int:
    return 0  # widths: the encoder's stages and decoder_channels

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    if self.depth != ENCODER_DEPTH or len(self.decoder_channels) != ENCODER_DEPTH:
      raise ConfigError(
          f'model.depth={self.depth}, model.decoder_channels='
          f'{tuple(self.decoder_channels)}: the ResNet encoder downsamples '
          f'{ENCODER_DEPTH} times, so depth must be {ENCODER_DEPTH} and '
          f'decoder_channels must hold {ENCODER_DEPTH} widths.')
    if self.activation != 'relu':
      raise ConfigError(
          f'config.model.activation={self.activation!r}: resnet_unet keeps '
          "'relu', the activation its torchvision ResNet encoder (and its "
          "ImageNet weights) was trained with; set 'relu'.")
    rates = self.level_dropout_rates()
    features = ResNetEncoder(self.num_layers, self.base_filters, self.norm,
                             self.kernel_init, self.dtype, self.param_dtype,
                             name=ENCODER_SCOPE)(self.prepare(images), train)
    x = nn.Dropout(rates[-1], deterministic=not train)(features[-1])
    skips = features[-2::-1] + [None]  # 1/16 ... 1/2, then none at 1/1
    for block, (skip, width) in enumerate(zip(skips, self.decoder_channels)):
      x = layers.Upsample(None, self.upsample, kernel_init=self.kernel_init,
                          **self.dtypes)(x)
      if skip is not None:
        x = jnp.concatenate([x, skip], axis=-1)
      level = ENCODER_DEPTH - 1 - block
      x = layers.ConvBlock(width, norm=self.norm, dropout_rate=rates[level],
                           **self.block_fields)(x, train)
    return self.classify_pixels(x, kernel=3)
