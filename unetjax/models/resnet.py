"""ResNet-18/34/50 (He et al. 2016, "Deep Residual Learning for Image
Recognition", CVPR) as torchvision lays it out: the encoder that the
classifier and the ResNet U-Nets share, and the image classifier.

Layer for layer torchvision's resnet18/34/50 (v1.5: the bottleneck's stride
sits on its 3x3 convolution), with torchvision's symmetric padding, so that
unetjax.models.torchvision_weights can load its ImageNet weights and give
the same outputs.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from unetjax.errors import ConfigError
from unetjax.models import layers

# Residual blocks per stage; ResNet-50 uses bottleneck blocks.
STAGE_SIZES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}
BOTTLENECK_DEPTHS = (50,)
EXPANSION = 4  # a bottleneck block's output channels / its inner channels
# The encoder's scope in the classifier and the ResNet U-Nets: where
# torchvision_weights loads weights and what freeze_encoder_steps holds still.
ENCODER_SCOPE = 'encoder'


def check_num_layers(num_layers: int) -> None:
  if num_layers not in STAGE_SIZES:
    raise ConfigError(f'model.num_layers={num_layers}; choose one of '
                      f'{", ".join(map(str, STAGE_SIZES))}.')


def encoder_channels(num_layers: int, base_filters: int = 64) -> tuple[int, ...]:
  """Channels of the encoder's five features, shallow to deep."""
  expansion = EXPANSION if num_layers in BOTTLENECK_DEPTHS else 1
  return (base_filters,) + tuple(base_filters * 2**stage * expansion
                                 for stage in range(4))


# The published architecture(s), row label -> fields (models --list, the
# benchmarks), and the tests' tiny one (tests/test_models_zoo.py).
PAPER = {'resnet18': dict(num_layers=18),  # He et al. 2016
         'resnet34': dict(num_layers=34),
         'resnet50': dict(num_layers=50)}
TINY = None  # a classifier: tests/test_classification.py


class Bottleneck(nn.Module):
  """1x1, 3x3 (carrying the stride), 1x1 to 4x the channels, each followed
  by the norm, plus a shortcut (projected where the shape changes); ReLU
  after the sum. `kernel_init`: layers.kernel_initializer."""
  features: int
  strides: int = 1
  norm: str = 'batch'
  kernel_init: str = 'lecun_normal'
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    dtypes = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    kw = dict(kernel_init=layers.kernel_initializer(self.kernel_init), **dtypes)
    plain = self.norm == 'none'
    norm = lambda y: layers.normalization(self.norm, train, **dtypes)(y)
    out = self.features * EXPANSION
    y = nn.relu(norm(nn.Conv(self.features, (1, 1), use_bias=plain, **kw)(x)))
    y = nn.relu(norm(nn.Conv(self.features, (3, 3), strides=self.strides,
                             padding=1, use_bias=plain, **kw)(y)))
    y = norm(nn.Conv(out, (1, 1), use_bias=plain, **kw)(y))
    shortcut = x
    if x.shape[-1] != out or self.strides != 1:
      shortcut = norm(nn.Conv(out, (1, 1), strides=self.strides,
                              use_bias=plain, **kw)(x))
    return nn.relu(y + shortcut)


class ResNetEncoder(nn.Module):
  """Returns the five features of images (N, H, W, C), shallow to deep: the
  stem (7x7 stride-2 convolution, norm, ReLU) at 1/2, then the four stages
  at 1/4 (after 3x3 stride-2 max pooling), 1/8, 1/16 and 1/32, with
  `encoder_channels(num_layers, base_filters)` channels.

  Attributes:
    num_layers: 18, 34 (basic blocks) or 50 (bottleneck blocks).
    base_filters: channels of the stem and the first stage (64).
    norm: 'batch', 'group', 'instance' or 'none'.
    kernel_init: how the convolution kernels start (layers.kernel_initializer;
      loaded ImageNet weights replace them).
  """
  num_layers: int = 18
  base_filters: int = 64
  norm: str = 'batch'
  kernel_init: str = 'lecun_normal'
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> list[jax.Array]:
    check_num_layers(self.num_layers)
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = nn.Conv(self.base_filters, (7, 7), strides=(2, 2), padding=3,
                use_bias=self.norm == 'none', name='stem_conv',
                kernel_init=layers.kernel_initializer(self.kernel_init),
                **kw)(images.astype(self.dtype))
    x = nn.relu(layers.normalization(self.norm, train, **kw)(x))
    features = [x]
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    bottleneck = self.num_layers in BOTTLENECK_DEPTHS
    for stage, n_blocks in enumerate(STAGE_SIZES[self.num_layers]):
      for block in range(n_blocks):
        strides = 2 if stage > 0 and block == 0 else 1
        name = f'layer{stage + 1}_{block}'  # torchvision's layer1.0, ...
        if bottleneck:
          x = Bottleneck(self.base_filters * 2**stage, strides, self.norm,
                         self.kernel_init, name=name, **kw)(x, train)
        else:
          x = layers.ResidualBlock(
              self.base_filters * 2**stage, strides=strides, norm=self.norm,
              preactivation=False, padding=1, kernel_init=self.kernel_init,
              name=name, **kw)(x, train)
      features.append(x)
    return features


class ResNet(nn.Module):
  """Returns float32 class logits (N, n_classes) for images (N, H, W, C):
  the ResNetEncoder, global average pooling of its deepest feature and a
  dense layer. Any image size works.

  Attributes:
    n_classes: output classes (1000 for ImageNet).
    num_layers: 18, 34 or 50.
    base_filters: channels of the stem and the first stage (64).
    norm: 'batch', 'group', 'instance' or 'none'.
  """
  n_classes: int = 1000
  num_layers: int = 18
  base_filters: int = 64
  norm: str = 'batch'
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    layers.check_input_size(images.shape, depth=0)
    features = ResNetEncoder(self.num_layers, self.base_filters, self.norm,
                             dtype=self.dtype, param_dtype=self.param_dtype,
                             name=ENCODER_SCOPE)(images, train)
    logits = nn.Dense(self.n_classes, dtype=self.dtype,
                      param_dtype=self.param_dtype,
                      name='fc')(jnp.mean(features[-1], axis=(1, 2)))
    return logits.astype(jnp.float32)
