"""UNet++ (Zhou et al. 2018, "UNet++: A Nested U-Net Architecture for Medical
Image Segmentation", DLMIA): a U-Net whose skip connections are nested, dense
convolution pathways, trained with deep supervision."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from unetjax.errors import ConfigError
from unetjax.models import layers
from unetjax.models.base import SegmentationModel


# The published architecture(s), row label -> fields (models --list, the
# benchmarks), and the tests' tiny one (tests/test_models_zoo.py).
PAPER = {'unet_pp': dict(base_filters=32, depth=4, norm='none')}  # Zhou et al. 2018
TINY = dict(base_filters=4, depth=2)


class UNetPlusPlus(SegmentationModel):
  """Nested U-Net; returns float32 logits (N, H, W, n_classes), or one per
  head in training with deep supervision.

  Node X^{i,j} (level i, column j) is a ConvBlock of base_filters * 2**i
  channels. Column 0 is the encoder (X^{depth,0} the bottleneck); for j > 0,
  X^{i,j} convolves the concatenation of X^{i,0..j-1} and the upsampled
  X^{i+1,j-1} (Zhou et al., Eq. 1).

  Attributes (besides SegmentationModel's; defaults: the paper's 32 base
  filters, depth 4; node X^{i,j} uses the dropout rate of level i):
    deep_supervision: one 1x1 head per X^{0,j}, j = 1..depth. Training then
      returns a tuple of their logits (the loss averages them); otherwise
      there is one head, on X^{0,depth}.
    eval_head: what evaluation (train=False) returns: 0, the mean of the
      heads' logits; L in 1..depth, head L alone, computing only the nodes
      X^{i,j} with i + j <= L: the network pruned to depth L, smaller and
      faster at inference (Zhou et al., Sec. 2). Pruning needs deep
      supervision, which trains the shallower heads.
  """
  base_filters: int = 32
  deep_supervision: bool = True
  eval_head: int = 0

  @nn.compact
  def __call__(self, images: jax.Array,
               train: bool = False) -> jax.Array | tuple[jax.Array, ...]:
    self._check_eval_head()
    rates = self.level_dropout_rates()
    # Initialisation creates every node, whatever evaluation will use.
    pruned = not train and self.eval_head > 0 and not self.is_initializing()
    reach = self.eval_head if pruned else self.depth  # nodes with i + j <= reach

    def node(i, j, x):
      return layers.ConvBlock(self.width(i), norm=self.norm,
                              dropout_rate=rates[i], name=f'X_{i}_{j}',
                              **self.block_fields)(x, train)

    nodes = {}  # (i, j) -> X^{i,j}
    x = self.prepare(images)
    for i in range(reach + 1):
      x = nodes[i, 0] = node(i, 0, layers.max_pool_2x2(x) if i else x)
    for j in range(1, reach + 1):
      for i in range(reach + 1 - j):
        up = layers.Upsample(self.width(i), self.upsample,
                             kernel_init=self.kernel_init,
                             name=f'up_{i + 1}_{j - 1}',
                             **self.dtypes)(nodes[i + 1, j - 1])
        inputs = [nodes[i, k] for k in range(j)] + [up]
        nodes[i, j] = node(i, j, jnp.concatenate(inputs, axis=-1))

    if pruned:
      heads = [self.eval_head]
    elif self.deep_supervision:
      heads = range(1, self.depth + 1)
    else:
      heads = [self.depth]
    logits = [self.classify_pixels(nodes[0, j], name=f'head_{j}') for j in heads]
    if train and self.deep_supervision:
      return tuple(logits)
    return sum(logits) / len(logits)

  def _check_eval_head(self) -> None:
    if not 0 <= self.eval_head <= self.depth:
      raise ConfigError(
          f'model.eval_head={self.eval_head} must be 0 (mean of the heads) or '
          f'a head 1..depth={self.depth}.')
    if not self.deep_supervision and self.eval_head not in (0, self.depth):
      raise ConfigError(
          f'model.eval_head={self.eval_head} prunes UNet++ to a head that is '
          'only trained with deep supervision: set model.deep_supervision=True '
          'or model.eval_head=0.')
