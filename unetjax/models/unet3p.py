"""UNet 3+ (Huang et al. 2020, "UNet 3+: A Full-Scale Connected UNet for
Medical Image Segmentation", ICASSP): every decoder stage sees every scale,
full-scale deep supervision, and the classification-guided module."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from unetjax.errors import ConfigError
from unetjax.models import layers
from unetjax.models.base import SegmentationModel

# The output keys of a classification-guided model in training.
SEGMENTATION, HAS_FOREGROUND = 'segmentation', 'has_foreground'


def resize(x: jax.Array, factor: int, method: str) -> jax.Array:
  n, h, w, c = x.shape
  return jax.image.resize(x, (n, h * factor, w * factor, c), method=method)


# The published architecture(s), row label -> fields (models --list, the
# benchmarks), and the tests' tiny one (tests/test_models_zoo.py).
PAPER = {
    # Huang et al. 2020: widths 64..1024, branches of 64, five heads, the CGM
    'unet3p': dict(base_filters=64, depth=4, deep_supervision=True,
                   classification_guided=True)}
TINY = dict(base_filters=4, depth=2)


class UNet3Plus(SegmentationModel):
  """Returns float32 logits (N, H, W, n_classes); in training with
  `deep_supervision` a tuple of depth + 1 heads, shallow to deep, each
  resized to the input, and with `classification_guided` a dict
  {'segmentation': that, 'has_foreground': (N,) logits}.

  The encoder is U-Net's (a ConvBlock per level, max pooling between). The
  decoder stage at level i concatenates depth + 1 branches of `cat_filters`
  channels, each one 3x3 convolution with the norm and ReLU of: the encoder
  features of the shallower levels max-pooled down to level i, the encoder
  features of level i, and the decoder features of the deeper levels (the
  bottleneck as the deepest) resized up; then one 3x3 convolution of
  (depth + 1) * cat_filters channels fuses them (320 at the paper's 64).

  Attributes (besides SegmentationModel's):
    cat_filters: channels of each branch; 0 = base_filters, as the paper.
    deep_supervision: a 3x3 convolution head on every decoder stage and the
      bottleneck, each resized to the input bilinearly (training only;
      evaluation returns the shallowest head).
    classification_guided: the classification-guided module: dropout 0.5,
      a 1x1 convolution and global max pooling of the bottleneck predict
      whether the image holds any foreground; evaluation sets the
      segmentation of images it says are empty to background.
    upsample: 'bilinear' (the paper's) or 'nearest'.
  """
  cat_filters: int = 0
  deep_supervision: bool = True
  classification_guided: bool = False
  upsample: str = 'bilinear'

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False):
    if self.upsample not in ('bilinear', 'nearest'):
      raise ConfigError(f"model.upsample={self.upsample!r}: UNet 3+ resizes "
                        "features by up to 2**depth; use 'bilinear' (the "
                        "paper's) or 'nearest'.")
    rates = self.level_dropout_rates()
    x = self.prepare(images)
    encoder = []
    for level in range(self.depth + 1):
      if level:
        x = layers.max_pool_2x2(x)
      x = layers.ConvBlock(self.width(level), norm=self.norm,
                           dropout_rate=rates[level], **self.block_fields)(x, train)
      encoder.append(x)

    branch_width = self.cat_filters or self.base_filters
    decoder = {self.depth: encoder[-1]}
    for level in reversed(range(self.depth)):
      branches = []
      for source in range(self.depth + 1):
        if source < level:
          factor = 2**(level - source)
          y = nn.max_pool(encoder[source], (factor, factor), (factor, factor))
        elif source == level:
          y = encoder[source]
        else:
          y = resize(decoder[source], 2**(source - level), self.upsample)
        branches.append(self.conv_norm_relu(y, branch_width, train))
      decoder[level] = self.conv_norm_relu(jnp.concatenate(branches, axis=-1),
                                           len(branches) * branch_width, train)

    # Every head exists whatever the mode, so that the variables initialised
    # for evaluation are the ones training updates.
    heads = [self.classify_pixels(decoder[level], name=f'head_{level}', kernel=3)
             for level in range(self.depth + 1 if self.deep_supervision else 1)]
    segmentation = heads[0]
    if train and self.deep_supervision:
      segmentation = tuple(resize(head, 2**level, 'bilinear')
                           for level, head in enumerate(heads))
    if not self.classification_guided:
      return segmentation
    has_foreground = self.classification_guide(encoder[-1], train)
    if train:
      return {SEGMENTATION: segmentation, HAS_FOREGROUND: has_foreground}
    return self.gate(segmentation, has_foreground)

  def conv_norm_relu(self, x: jax.Array, features: int, train: bool) -> jax.Array:
    x = nn.Conv(features, (3, 3), padding='SAME', use_bias=self.norm == 'none',
                **self.conv_fields)(x)
    return layers.activation_fn(self.activation)(
        layers.normalization(self.norm, train, **self.dtypes)(x))

  def classification_guide(self, bottleneck: jax.Array, train: bool) -> jax.Array:
    """(N,) logits that the image holds foreground (the paper's CGM with one
    sigmoid output in place of two)."""
    x = nn.Dropout(0.5, deterministic=not train)(bottleneck)
    x = nn.Conv(1, (1, 1), name='guide', **self.conv_fields)(x)
    return jnp.max(x, axis=(1, 2, 3)).astype(jnp.float32)

  def gate(self, logits: jax.Array, has_foreground: jax.Array) -> jax.Array:
    """Logits of images predicted empty replaced by a confident background."""
    background = (jnp.full_like(logits, -20.0) if self.n_classes == 1 else
                  20.0 * jax.nn.one_hot(0, self.n_classes, dtype=logits.dtype) - 10.0)
    empty = (has_foreground <= 0)[:, None, None, None]
    return jnp.where(empty, jnp.broadcast_to(background, logits.shape), logits)
