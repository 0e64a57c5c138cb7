"""Attention U-Net (Oktay et al. 2018, "Attention U-Net: Learning Where to
Look for the Pancreas", MIDL): a U-Net whose skip connections pass through
additive attention gates."""

import jax

from unetjax.models import layers
from unetjax.models.unet import UNet


# The published architecture(s), row label -> fields (models --list, the
# benchmarks), and the tests' tiny one (tests/test_models_zoo.py).
PAPER = {'attention_unet': dict(base_filters=64, depth=4)}  # Oktay et al. 2018
TINY = dict(base_filters=4, depth=2)


class AttentionUNet(UNet):
  """U-Net (same attributes) with an AttentionGate on every skip connection.

  The gating signal of level l is the decoder's output one level deeper
  (the bottleneck for the deepest skip), as in the authors' code; the gate's
  intermediate width is half the skip's channels (their default).
  """

  def gate_skip(self, skip: jax.Array, below: jax.Array) -> jax.Array:
    return layers.AttentionGate(max(1, skip.shape[-1] // 2),
                                **self.block_fields)(skip, below)
