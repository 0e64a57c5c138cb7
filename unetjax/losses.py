"""Segmentation losses: pure functions (logits, labels) -> scalar.

`logits` are (N, H, W, C) model outputs; C == 1 means binary (sigmoid), C > 1
means C-class softmax. `labels` are integer class ids (N, H, W) or targets
shaped like the logits (one-hot or soft). Every loss takes
- `mask` (N, H, W), optional: pixel weights, 0 for pixels to ignore (e.g.
  outside a field of view);
- `class_weights`, optional: one weight per label class (binary: background,
  foreground). Pixel-wise losses weight each pixel by its class and divide by
  the total weight (the weighted mean of PyTorch's `CrossEntropyLoss`);
  overlap losses take the weighted mean over classes.

Cross-entropy and focal terms come from optax. The overlap family (Dice,
IoU, Tversky, focal Tversky) is one function here: optax.losses.dice_loss
computes the same Tversky index but cannot take a pixel mask (the tests
check that both agree without one).
"""

import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import optax

from unetjax.errors import ConfigError

LossFn = Callable[..., jax.Array]

# config.loss.pixel_weights -> the maps of a batch, besides its region of
# interest ('roi'), that multiply each pixel's loss: 'border' is the weight
# map of U-Net's eq. 2 that the instance datasets store with each example.
PIXEL_WEIGHTS = {'none': (), 'border': ('weight',)}


def weight_maps(loss_config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The batch keys whose maps weight the loss's pixels (multiplied; those a
  batch lacks count as 1)."""
  return ('roi',) + PIXEL_WEIGHTS[loss_config.pixel_weights]


def _targets(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Float targets shaped like the logits."""
  if labels.ndim == logits.ndim:
    return labels.astype(jnp.float32)
  if logits.shape[-1] == 1:
    return labels[..., None].astype(jnp.float32)
  return jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.float32)


def _probabilities(logits: jax.Array) -> jax.Array:
  logits = logits.astype(jnp.float32)
  if logits.shape[-1] == 1:
    return jax.nn.sigmoid(logits)
  return jax.nn.softmax(logits, axis=-1)


def _pixel_weights(targets: jax.Array, mask: jax.Array | None,
                   class_weights: Sequence[float] | None) -> jax.Array:
  """(N, H, W): the mask times the weight of each pixel's class."""
  weights = jnp.ones(targets.shape[:-1], jnp.float32)
  if class_weights is not None and len(class_weights):
    class_weights = jnp.asarray(class_weights, jnp.float32)
    if targets.shape[-1] == 1:
      foreground = targets[..., 0]
      weights = class_weights[0] * (1 - foreground) + class_weights[1] * foreground
    else:
      weights = targets @ class_weights
  if mask is not None:
    weights = weights * mask.astype(jnp.float32)
  return weights


def _weighted_mean(per_pixel: jax.Array, weights: jax.Array) -> jax.Array:
  return jnp.sum(per_pixel * weights) / jnp.maximum(jnp.sum(weights), 1e-12)


def cross_entropy(logits: jax.Array, labels: jax.Array, *,
                  mask: jax.Array | None = None,
                  class_weights: Sequence[float] | None = None,
                  label_smoothing: float = 0.0) -> jax.Array:
  """Pixel-wise cross-entropy: sigmoid BCE for C == 1, softmax CE otherwise.

  `label_smoothing` a moves each target towards the uniform distribution
  over the K classes (K = 2 for sigmoid), y (1 - a) + a / K (Szegedy et al.
  2016; PyTorch's label_smoothing); class weights follow the true class.
  """
  targets = _targets(logits, labels)
  weights = _pixel_weights(targets, mask, class_weights)
  logits = logits.astype(jnp.float32)
  if logits.shape[-1] == 1:
    soft = targets[..., 0] * (1 - label_smoothing) + label_smoothing / 2
    per_pixel = optax.sigmoid_binary_cross_entropy(logits[..., 0], soft)
  else:
    per_pixel = optax.softmax_cross_entropy(
        logits, optax.smooth_labels(targets, label_smoothing))
  return _weighted_mean(per_pixel, weights)


def focal_loss(logits: jax.Array, labels: jax.Array, *, gamma: float = 2.0,
               mask: jax.Array | None = None,
               class_weights: Sequence[float] | None = None) -> jax.Array:
  """Focal loss (Lin et al. 2017): cross-entropy scaled by (1 - p_t)**gamma.

  Lin et al.'s alpha balancing is `class_weights`: alpha = 0.25 for the
  foreground is class_weights=(0.75, 0.25).
  """
  targets = _targets(logits, labels)
  logits = logits.astype(jnp.float32)
  if logits.shape[-1] == 1:
    per_pixel = optax.sigmoid_focal_loss(logits[..., 0], targets[..., 0],
                                         gamma=gamma)
  else:
    log_p = jax.nn.log_softmax(logits, axis=-1)
    per_pixel = -jnp.sum(targets * (1 - jnp.exp(log_p))**gamma * log_p, axis=-1)
  return _weighted_mean(per_pixel, _pixel_weights(targets, mask, class_weights))


def tversky_loss(logits: jax.Array, labels: jax.Array, *, alpha: float = 0.5,
                 beta: float = 0.5, gamma: float = 1.0, smooth: float = 1.0,
                 mask: jax.Array | None = None,
                 class_weights: Sequence[float] | None = None,
                 ignore_background: bool = False,
                 batch: bool = False) -> jax.Array:
  """(1 - TI)**gamma, the soft Tversky index TI averaged over classes.

  For each class with probabilities p and targets t summed over the pixels
  of an image (or of the whole batch if `batch`, nnU-Net's "batch Dice"):
  TI = (sum p*t + smooth) / (sum p*t + alpha * FP + beta * FN + smooth),
  FP = sum p*(1-t), FN = sum (1-p)*t (Salehi et al. 2017). alpha = beta = 0.5
  is soft Dice (Milletari et al. 2016), alpha = beta = 1 soft IoU/Jaccard,
  gamma != 1 the focal Tversky loss (Abraham & Khan 2019 use gamma = 0.75).
  `smooth` keeps a class absent from prediction and label at zero loss
  instead of 0/0. Binary models score the foreground only; multi-class
  models all classes, or 1..C-1 with `ignore_background`.
  """
  targets = _targets(logits, labels)
  probabilities = _probabilities(logits)
  if mask is not None:
    mask = mask.astype(jnp.float32)[..., None]
    probabilities, targets = probabilities * mask, targets * mask
  axis = (0, 1, 2) if batch else (1, 2)
  intersection = jnp.sum(probabilities * targets, axis=axis)
  false_positives = jnp.sum(probabilities, axis=axis) - intersection
  false_negatives = jnp.sum(targets, axis=axis) - intersection
  index = (intersection + smooth) / (
      intersection + alpha * false_positives + beta * false_negatives + smooth)
  per_class = jnp.maximum(1.0 - index, 0.0)**gamma  # (..., C)
  weights = jnp.ones(per_class.shape[-1], jnp.float32)
  if class_weights is not None and len(class_weights):
    weights = jnp.asarray(class_weights, jnp.float32)
    if per_class.shape[-1] == 1:  # binary: only the foreground is scored
      weights = weights[1:]
  if ignore_background and per_class.shape[-1] > 1:
    per_class, weights = per_class[..., 1:], weights[1:]
  return jnp.mean(jnp.sum(per_class * weights, axis=-1) / jnp.sum(weights))


dice_loss = functools.partial(tversky_loss, alpha=0.5, beta=0.5, gamma=1.0)
dice_loss.__doc__ = 'Soft Dice loss: tversky_loss with alpha = beta = 0.5.'
iou_loss = functools.partial(tversky_loss, alpha=1.0, beta=1.0, gamma=1.0)
iou_loss.__doc__ = 'Soft IoU (Jaccard) loss: tversky_loss with alpha = beta = 1.'


def cross_entropy_dice(logits: jax.Array, labels: jax.Array, *,
                       ce_weight: float = 0.5, smooth: float = 1.0,
                       mask: jax.Array | None = None,
                       class_weights: Sequence[float] | None = None,
                       ignore_background: bool = False,
                       batch: bool = False) -> jax.Array:
  """ce_weight * cross-entropy + (1 - ce_weight) * Dice loss."""
  ce = cross_entropy(logits, labels, mask=mask, class_weights=class_weights)
  dice = dice_loss(logits, labels, smooth=smooth, mask=mask,
                   class_weights=class_weights,
                   ignore_background=ignore_background, batch=batch)
  return ce_weight * ce + (1 - ce_weight) * dice


def has_foreground_loss(logits: jax.Array, labels: jax.Array,
                        mask: jax.Array | None = None) -> jax.Array:
  """Binary cross-entropy of (N,) logits that each image holds foreground
  (a class other than 0, inside `mask`): UNet 3+'s classification-guided
  module, trained on labels derived from the masks."""
  foreground = labels > 0
  if mask is not None:
    foreground = foreground & (mask > 0)
  targets = jnp.any(foreground, axis=tuple(range(1, foreground.ndim)))
  return optax.sigmoid_binary_cross_entropy(
      logits, targets.astype(jnp.float32)).mean()


def deep_supervision_loss(loss_fn: LossFn,
                          outputs: Any,
                          labels: jax.Array,
                          weights: Sequence[float] | None = None,
                          **kwargs) -> jax.Array:
  """`loss_fn` on a model's output; for a deeply supervised model, which
  returns one logits array per head in training, the weighted mean over the
  heads (equal weights by default, as in UNet++, Zhou et al. 2018); for a
  classification-guided one (a dict), plus `has_foreground_loss`."""
  if isinstance(outputs, dict):
    return (deep_supervision_loss(loss_fn, outputs['segmentation'], labels,
                                  weights, **kwargs)
            + has_foreground_loss(outputs['has_foreground'], labels,
                                  kwargs.get('mask')))
  if not isinstance(outputs, (list, tuple)):
    return loss_fn(outputs, labels, **kwargs)
  if weights is None or not len(weights):
    weights = (1.0,) * len(outputs)
  if len(weights) != len(outputs):
    raise ConfigError(
        f'config.loss.deep_supervision_weights has {len(weights)} entries but '
        f'the model has {len(outputs)} heads; give one weight per head or ().')
  total = sum(w * loss_fn(logits, labels, **kwargs)
              for w, logits in zip(weights, outputs))
  return total / sum(weights)


def _overlap_options(cfg):
  return dict(smooth=cfg.smooth, ignore_background=cfg.ignore_background,
              batch=cfg.batch_dice)


LOSSES: dict[str, Callable[[ml_collections.ConfigDict], LossFn]] = {
    'cross_entropy': lambda cfg: functools.partial(
        cross_entropy, label_smoothing=cfg.label_smoothing),
    'focal': lambda cfg: functools.partial(focal_loss, gamma=cfg.focal_gamma),
    'dice': lambda cfg: functools.partial(dice_loss, **_overlap_options(cfg)),
    'iou': lambda cfg: functools.partial(iou_loss, **_overlap_options(cfg)),
    'tversky': lambda cfg: functools.partial(
        tversky_loss, alpha=cfg.tversky_alpha, beta=cfg.tversky_beta,
        **_overlap_options(cfg)),
    'focal_tversky': lambda cfg: functools.partial(
        tversky_loss, alpha=cfg.tversky_alpha, beta=cfg.tversky_beta,
        gamma=cfg.focal_tversky_gamma, **_overlap_options(cfg)),
    'cross_entropy_dice': lambda cfg: functools.partial(
        cross_entropy_dice, ce_weight=cfg.ce_weight, **_overlap_options(cfg)),
}


# The losses defined per example as well as per pixel: logits (N, K) of
# image classifiers with labels (N,).
IMAGE_LOSSES = ('cross_entropy', 'focal')


def get_loss(loss_config: ml_collections.ConfigDict) -> LossFn:
  """The loss named by `loss_config.name` with all its parameters bound:
  a function (outputs, labels, mask=None) -> scalar, where outputs is one
  logits array or, for deeply supervised models, one per head."""
  if loss_config.name not in LOSSES:
    raise ConfigError(f'Unknown loss {loss_config.name!r} (config.loss.name); '
                      f'choose one of: {", ".join(LOSSES)}.')
  loss_fn = functools.partial(LOSSES[loss_config.name](loss_config),
                              class_weights=tuple(loss_config.class_weights) or None)
  return functools.partial(deep_supervision_loss, loss_fn,
                           weights=tuple(loss_config.deep_supervision_weights))
