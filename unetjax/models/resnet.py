"""ResNet-18/34 image classifier (He et al. 2016, "Deep Residual Learning for
Image Recognition", CVPR), built from the segmentation models' residual
blocks. It maps images to class logits and is not a segmentation model: the
training loop (unetjax.train) cannot train it."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from unetjax.errors import ConfigError
from unetjax.models import layers

STAGE_SIZES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}  # basic blocks per stage


class ResNet(nn.Module):
  """Returns float32 class logits (N, n_classes) for images (N, H, W, C).

  A 7x7 stride-2 convolution, 3x3 stride-2 max pooling, four stages of basic
  (post-activation) residual blocks with base_filters * 2**stage channels,
  the first block of stages 2-4 with stride 2 and a projection shortcut,
  global average pooling and a dense layer: torchvision's resnet18/resnet34
  layer for layer. Any image size works.

  Attributes:
    n_classes: output classes (1000 for ImageNet).
    num_layers: 18 or 34.
    base_filters: channels of the stem and the first stage (64).
    norm: 'batch', 'group' or 'none'.
  """
  n_classes: int = 1000
  num_layers: int = 18
  base_filters: int = 64
  norm: str = 'batch'
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    if self.num_layers not in STAGE_SIZES:
      raise ConfigError(f'model.num_layers={self.num_layers}; choose one of '
                        f'{", ".join(map(str, STAGE_SIZES))}.')
    layers.check_input_size(images.shape, depth=0)
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = nn.Conv(self.base_filters, (7, 7), strides=(2, 2), padding='SAME',
                use_bias=self.norm == 'none', **kw)(images.astype(self.dtype))
    x = nn.relu(layers.normalization(self.norm, train, **kw)(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding='SAME')
    for stage, n_blocks in enumerate(STAGE_SIZES[self.num_layers]):
      for block in range(n_blocks):
        x = layers.ResidualBlock(
            self.base_filters * 2**stage,
            strides=2 if stage > 0 and block == 0 else 1, norm=self.norm,
            preactivation=False, **kw)(x, train)
    logits = nn.Dense(self.n_classes, **kw)(jnp.mean(x, axis=(1, 2)))
    return logits.astype(jnp.float32)
