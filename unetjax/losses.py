"""Segmentation losses: pure functions (logits, labels) -> scalar.

`logits` are (N, H, W, C) model outputs; C == 1 means binary (sigmoid), C > 1
means C-class softmax. `labels` are integer class ids (N, H, W). Every loss
is the mean over the batch, so it does not depend on how a batch is split.
"""

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import optax

from unetjax.errors import ConfigError

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Pixel-wise cross-entropy: sigmoid BCE for C == 1, softmax CE otherwise."""
  if logits.shape[-1] == 1:
    return optax.sigmoid_binary_cross_entropy(
        logits[..., 0], labels.astype(logits.dtype)).mean()
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def dice_loss(logits: jax.Array, labels: jax.Array,
              smooth: float = 1.0) -> jax.Array:
  """Soft Dice loss (Milletari et al. 2016), per image, averaged over the batch.

  For each image and class c with probabilities p and one-hot targets t,
  loss_c = 1 - (sum p*t + smooth) / (0.5 * (sum p + sum t) + smooth);
  binary uses the foreground probability only, multi-class averages all C
  classes (optax.losses.dice_loss). `smooth` keeps an image whose class is
  absent in both prediction and label at zero loss instead of 0/0.
  """
  if logits.shape[-1] == 1:
    targets = labels[..., None].astype(logits.dtype)
    return optax.losses.binary_dice_loss(logits, targets, smooth=smooth).mean()
  targets = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
  return optax.losses.dice_loss(logits, targets, smooth=smooth).mean()


def cross_entropy_dice(logits: jax.Array, labels: jax.Array,
                       ce_weight: float = 0.5, smooth: float = 1.0) -> jax.Array:
  """ce_weight * cross-entropy + (1 - ce_weight) * Dice loss."""
  return (ce_weight * cross_entropy(logits, labels)
          + (1 - ce_weight) * dice_loss(logits, labels, smooth))


def deep_supervision_loss(loss_fn: LossFn, outputs: jax.Array | Sequence[jax.Array],
                          labels: jax.Array) -> jax.Array:
  """`loss_fn` on a model's output; for a deeply supervised model, which
  returns one logits array per head in training, the mean over the heads
  (equal weights, as in UNet++, Zhou et al. 2018)."""
  if isinstance(outputs, (list, tuple)):
    return sum(loss_fn(logits, labels) for logits in outputs) / len(outputs)
  return loss_fn(outputs, labels)


LOSSES = {
    'cross_entropy': lambda cfg: cross_entropy,
    'dice': lambda cfg: lambda lo, la: dice_loss(lo, la, cfg.dice_smooth),
    'cross_entropy_dice': lambda cfg: lambda lo, la: cross_entropy_dice(
        lo, la, cfg.ce_weight, cfg.dice_smooth),
}


def get_loss(loss_config: ml_collections.ConfigDict) -> LossFn:
  """The loss named by `loss_config.name`, with its parameters bound."""
  if loss_config.name not in LOSSES:
    raise ConfigError(f'Unknown loss {loss_config.name!r} (config.loss.name); '
                      f'choose one of: {", ".join(LOSSES)}.')
  return LOSSES[loss_config.name](loss_config)
