"""Losses against plain-numpy references, optax, and their properties."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import parameterized
from hypothesis import given, settings, strategies as st

from configs import default
from unetjax import losses
from unetjax.errors import ConfigError


# --- independent numpy references ------------------------------------------

def np_probabilities(logits):
  logits = np.asarray(logits, np.float64)
  if logits.shape[-1] == 1:
    return 1 / (1 + np.exp(-logits))
  e = np.exp(logits - logits.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def np_targets(logits, labels):
  if logits.shape[-1] == 1:
    return np.asarray(labels, np.float64)[..., None]
  return np.eye(logits.shape[-1])[labels]


def np_pixel_weights(logits, labels, mask, class_weights):
  weights = np.ones(labels.shape)
  if class_weights is not None:
    weights = np.asarray(class_weights)[labels]
  return weights if mask is None else weights * mask


def np_cross_entropy(logits, labels, mask=None, class_weights=None, gamma=0.0):
  """Mean over pixels of -(1 - p_t)**gamma * log p_t (gamma 0: cross-entropy)."""
  p = np_probabilities(logits)
  t = np_targets(logits, labels)
  if logits.shape[-1] == 1:  # both outcomes of the sigmoid as two classes
    p = np.concatenate([1 - p, p], -1)
    t = np.concatenate([1 - t, t], -1)
  p_t = np.sum(p * t, -1)
  per_pixel = -(1 - p_t)**gamma * np.log(p_t)
  w = np_pixel_weights(logits, labels, mask, class_weights)
  return np.sum(per_pixel * w) / np.sum(w)


def np_tversky(logits, labels, alpha, beta, gamma=1.0, smooth=1.0, mask=None,
               class_weights=None, ignore_background=False, batch=False):
  p = np_probabilities(logits)
  t = np_targets(logits, labels)
  if mask is not None:
    p, t = p * mask[..., None], t * mask[..., None]
  if batch:
    p, t = p[None], t[None]
  losses_per_image = []
  for pi, ti in zip(p, t):
    tp = np.sum(pi * ti, axis=(0, 1, 2) if pi.ndim == 4 else (0, 1))
    fp = np.sum(pi * (1 - ti), axis=tuple(range(pi.ndim - 1)))
    fn = np.sum((1 - pi) * ti, axis=tuple(range(pi.ndim - 1)))
    index = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)
    per_class = (1 - index)**gamma
    w = np.ones_like(per_class) if class_weights is None else np.asarray(
        class_weights, np.float64)[-len(per_class):]
    if ignore_background and len(per_class) > 1:
      per_class, w = per_class[1:], w[1:]
    losses_per_image.append(np.sum(per_class * w) / np.sum(w))
  return np.mean(losses_per_image)


def case(n_classes, seed=0, shape=(3, 6, 7)):
  rng = np.random.default_rng(seed)
  logits = rng.normal(0, 2, shape + (n_classes,)).astype(np.float32)
  labels = rng.integers(0, max(2, n_classes), shape)
  mask = rng.random(shape) < 0.7
  return logits, labels, mask


def loss_config(name, **overrides):
  config = default.get_config().loss
  config.name = name
  for key, value in overrides.items():
    config[key] = value
  return config


REFERENCES = {
    'cross_entropy': lambda c: functools.partial(np_cross_entropy),
    'focal': lambda c: functools.partial(np_cross_entropy, gamma=c.focal_gamma),
    'dice': lambda c: functools.partial(np_tversky, alpha=0.5, beta=0.5,
                                        smooth=c.smooth),
    'iou': lambda c: functools.partial(np_tversky, alpha=1.0, beta=1.0,
                                       smooth=c.smooth),
    'tversky': lambda c: functools.partial(np_tversky, alpha=c.tversky_alpha,
                                           beta=c.tversky_beta, smooth=c.smooth),
    'focal_tversky': lambda c: functools.partial(
        np_tversky, alpha=c.tversky_alpha, beta=c.tversky_beta,
        gamma=c.focal_tversky_gamma, smooth=c.smooth),
    'cross_entropy_dice': lambda c: lambda lo, la, **kw: (
        c.ce_weight * np_cross_entropy(lo, la, **kw)
        + (1 - c.ce_weight) * np_tversky(lo, la, 0.5, 0.5, smooth=c.smooth, **kw)),
}


def test_every_registered_loss_has_a_reference():
  assert set(REFERENCES) == set(losses.LOSSES)


class LossVariantsTest(chex.TestCase, parameterized.TestCase):
  """Every loss, jitted, not jitted and pmapped over 8 devices, against numpy."""

  @chex.variants(with_jit=True, without_jit=True, with_pmap=True)
  @parameterized.product(name=sorted(losses.LOSSES), n_classes=[1, 3],
                         weighted=[False, True])
  def test_matches_numpy_reference(self, name, n_classes, weighted):
    logits, labels, mask = case(n_classes, seed=len(name))
    class_weights = (0.3, 2.0, 1.0)[:max(2, n_classes)] if weighted else None
    config = loss_config(name, class_weights=class_weights or ())
    loss_fn = losses.get_loss(config)
    ours = self.variant(loss_fn)(logits, labels, mask=mask)
    expected = REFERENCES[name](config)(logits, labels, mask=mask,
                                        class_weights=class_weights)
    np.testing.assert_allclose(ours, expected, rtol=2e-5, atol=1e-6)


def test_binary_cross_entropy_matches_hand_computed_value():
  logits = np.array([2.0, -1.0, 0.5, -3.0], np.float32).reshape(1, 2, 2, 1)
  labels = np.array([1, 0, 0, 1]).reshape(1, 2, 2)
  p = 1 / (1 + np.exp(-logits.ravel()))
  y = labels.ravel()
  expected = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
  np.testing.assert_allclose(losses.cross_entropy(logits, labels), expected,
                             rtol=1e-6)


def test_softmax_cross_entropy_matches_hand_computed_value():
  logits = np.array([[1.0, 2.0, 0.0], [0.5, 0.5, 3.0]], np.float32).reshape(1, 1, 2, 3)
  labels = np.array([0, 2]).reshape(1, 1, 2)
  flat = logits.reshape(2, 3)
  log_softmax = flat - np.log(np.exp(flat).sum(-1, keepdims=True))
  expected = -np.mean([log_softmax[0, 0], log_softmax[1, 2]])
  np.testing.assert_allclose(losses.cross_entropy(logits, labels), expected,
                             rtol=1e-6)


@pytest.mark.parametrize('n_classes', [1, 4])
@pytest.mark.parametrize('alpha, beta', [(0.5, 0.5), (0.3, 0.7), (1.0, 1.0)])
def test_overlap_losses_agree_with_optax_dice_loss(n_classes, alpha, beta):
  logits, labels, _ = case(n_classes, seed=3)
  targets = (labels[..., None] if n_classes == 1
             else np.eye(n_classes)[labels]).astype(np.float32)
  expected = optax.losses.dice_loss(logits, targets, alpha=alpha, beta=beta,
                                    smooth=1.0).mean()
  np.testing.assert_allclose(
      losses.tversky_loss(logits, labels, alpha=alpha, beta=beta), expected,
      rtol=1e-5)


@pytest.mark.parametrize('n_classes', [1, 3])
def test_focal_loss_wraps_optax_and_is_cross_entropy_at_gamma_zero(n_classes):
  logits, labels, _ = case(n_classes, seed=4)
  np.testing.assert_allclose(losses.focal_loss(logits, labels, gamma=0.0),
                             losses.cross_entropy(logits, labels), rtol=1e-5)
  if n_classes == 1:
    expected = optax.sigmoid_focal_loss(logits[..., 0], labels, gamma=2.0).mean()
    np.testing.assert_allclose(losses.focal_loss(logits, labels), expected,
                               rtol=1e-5)


@pytest.mark.parametrize('name', sorted(losses.LOSSES))
@pytest.mark.parametrize('n_classes', [1, 3])
def test_one_hot_labels_give_the_same_loss_as_class_ids(name, n_classes):
  logits, labels, mask = case(n_classes, seed=5)
  one_hot = (labels[..., None] if n_classes == 1 else np.eye(n_classes)[labels])
  loss_fn = losses.get_loss(loss_config(name))
  np.testing.assert_allclose(loss_fn(logits, one_hot, mask=mask),
                             loss_fn(logits, labels, mask=mask), rtol=1e-6)


def test_masked_pixels_do_not_change_the_loss():
  logits, labels, mask = case(3, seed=6)
  scrambled = np.where(mask[..., None], logits, -logits * 7)
  other_labels = np.where(mask, labels, (labels + 1) % 3)
  for name in losses.LOSSES:
    loss_fn = losses.get_loss(loss_config(name))
    np.testing.assert_allclose(loss_fn(scrambled, other_labels, mask=mask),
                               loss_fn(logits, labels, mask=mask), rtol=1e-6,
                               err_msg=name)


def test_batch_dice_and_ignore_background_match_numpy():
  logits, labels, mask = case(3, seed=7)
  for batch in (False, True):
    for ignore in (False, True):
      ours = losses.dice_loss(logits, labels, batch=batch, ignore_background=ignore)
      expected = np_tversky(logits, labels, 0.5, 0.5, batch=batch,
                            ignore_background=ignore)
      np.testing.assert_allclose(ours, expected, rtol=1e-5)


def test_deep_supervision_takes_the_weighted_mean_of_the_heads():
  rng = np.random.default_rng(5)
  labels = rng.integers(0, 2, (2, 4, 4))
  heads = [rng.normal(size=(2, 4, 4, 1)).astype(np.float32) for _ in range(3)]
  per_head = [losses.cross_entropy(h, labels) for h in heads]
  equal = losses.get_loss(loss_config('cross_entropy'))
  np.testing.assert_allclose(equal(heads, labels), np.mean(per_head), rtol=1e-6)
  weighted = losses.get_loss(loss_config('cross_entropy',
                                         deep_supervision_weights=(1.0, 2.0, 5.0)))
  np.testing.assert_allclose(weighted(heads, labels),
                             np.dot(per_head, [1, 2, 5]) / 8, rtol=1e-6)
  np.testing.assert_allclose(weighted(heads[0], labels), per_head[0], rtol=1e-6)
  with pytest.raises(ConfigError, match='has 3 entries but the model has 2 heads'):
    weighted(heads[:2], labels)


@settings(max_examples=10, deadline=None)
@given(n_classes=st.sampled_from([1, 3]), seed=st.integers(0, 2**16))
def test_confident_perfect_prediction_has_near_zero_loss(n_classes, seed):
  labels = np.random.default_rng(seed).integers(0, max(2, n_classes), (2, 8, 8))
  if n_classes == 1:
    logits = np.where(labels[..., None] == 1, 30.0, -30.0).astype(np.float32)
  else:
    logits = 60.0 * np.eye(n_classes, dtype=np.float32)[labels] - 30.0
  for name in losses.LOSSES:
    loss = losses.get_loss(loss_config(name))(logits, labels)
    assert float(loss) < 1e-6, name


@settings(max_examples=10, deadline=None)
@given(n_classes=st.sampled_from([1, 3]), fill=st.sampled_from([0, 1]),
       scale=st.floats(0.0, 40.0), seed=st.integers(0, 2**16))
def test_gradients_are_finite_on_all_background_and_all_foreground(
    n_classes, fill, scale, seed):
  labels = np.full((2, 8, 8), fill)
  logits = scale * np.random.default_rng(seed).normal(
      size=(2, 8, 8, n_classes)).astype(np.float32)
  for name in losses.LOSSES:
    grads = jax.grad(losses.get_loss(loss_config(name)))(jnp.asarray(logits), labels)
    assert bool(jnp.all(jnp.isfinite(grads))), name


def test_unknown_loss_name_is_a_clear_error():
  with pytest.raises(ConfigError, match="Unknown loss 'dise'.*dice"):
    losses.get_loss(loss_config('dise'))
