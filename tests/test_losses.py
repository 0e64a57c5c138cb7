import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import ConfigDict

from unetjax import losses
from unetjax.errors import ConfigError


def np_sigmoid(x):
  return 1 / (1 + np.exp(-x))


def test_binary_cross_entropy_matches_hand_computed_value():
  logits = np.array([2.0, -1.0, 0.5, -3.0], np.float32).reshape(1, 2, 2, 1)
  labels = np.array([1, 0, 0, 1]).reshape(1, 2, 2)
  p = np_sigmoid(logits.ravel())
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


def test_binary_dice_loss_matches_hand_computed_value_per_image():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(3, 4, 5, 1)).astype(np.float32)
  labels = rng.integers(0, 2, (3, 4, 5))
  smooth = 1.0
  per_image = []
  for p, t in zip(np_sigmoid(logits[..., 0]), labels):
    dice = (2 * np.sum(p * t) + 2 * smooth) / (np.sum(p) + np.sum(t) + 2 * smooth)
    per_image.append(1 - dice)
  # optax's form (I + s) / (0.5 (P + T) + s) equals (2I + 2s) / (P + T + 2s).
  np.testing.assert_allclose(losses.dice_loss(logits, labels, smooth),
                             np.mean(per_image), rtol=1e-5)


def test_multiclass_dice_loss_averages_classes_per_image():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
  labels = rng.integers(0, 4, (2, 3, 3))
  probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  one_hot = np.eye(4)[labels]
  intersection = (probabilities * one_hot).sum((1, 2))
  total = probabilities.sum((1, 2)) + one_hot.sum((1, 2))
  expected = np.mean(1 - (intersection + 1) / (0.5 * total + 1))
  np.testing.assert_allclose(losses.dice_loss(logits, labels), expected, rtol=1e-5)


@pytest.mark.parametrize('n_classes', [1, 3])
def test_perfect_confident_prediction_has_near_zero_loss(n_classes):
  labels = np.random.default_rng(2).integers(0, max(2, n_classes), (2, 8, 8))
  if n_classes == 1:
    logits = np.where(labels[..., None] == 1, 30.0, -30.0).astype(np.float32)
  else:
    logits = 60.0 * np.eye(n_classes, dtype=np.float32)[labels] - 30.0
  for name in losses.LOSSES:
    loss_fn = losses.get_loss(ConfigDict(dict(name=name, ce_weight=0.5,
                                              dice_smooth=1.0)))
    assert float(loss_fn(logits, labels)) < 1e-6, name


def test_combined_loss_is_the_weighted_sum():
  rng = np.random.default_rng(3)
  logits = rng.normal(size=(2, 4, 4, 1)).astype(np.float32)
  labels = rng.integers(0, 2, (2, 4, 4))
  expected = (0.3 * losses.cross_entropy(logits, labels)
              + 0.7 * losses.dice_loss(logits, labels, 2.0))
  np.testing.assert_allclose(
      losses.cross_entropy_dice(logits, labels, ce_weight=0.3, smooth=2.0),
      expected, rtol=1e-6)


@pytest.mark.parametrize('n_classes', [1, 3])
def test_losses_jit_and_have_finite_gradients_on_empty_masks(n_classes):
  labels = jnp.zeros((2, 8, 8), jnp.int32)  # no foreground at all
  logits = jnp.zeros((2, 8, 8, n_classes))
  for name in losses.LOSSES:
    loss_fn = losses.get_loss(ConfigDict(dict(name=name, ce_weight=0.5,
                                              dice_smooth=1.0)))
    grads = jax.jit(jax.grad(loss_fn))(logits, labels)
    assert bool(jnp.all(jnp.isfinite(grads))), name


def test_unknown_loss_name_is_a_clear_error():
  with pytest.raises(ConfigError, match="Unknown loss 'dise'.*dice"):
    losses.get_loss(ConfigDict(dict(name='dise')))


def test_deep_supervision_averages_the_heads():
  rng = np.random.default_rng(5)
  labels = rng.integers(0, 2, (2, 4, 4))
  heads = [rng.normal(size=(2, 4, 4, 1)).astype(np.float32) for _ in range(3)]
  expected = np.mean([losses.cross_entropy(h, labels) for h in heads])
  np.testing.assert_allclose(
      losses.deep_supervision_loss(losses.cross_entropy, heads, labels),
      expected, rtol=1e-6)
  np.testing.assert_allclose(
      losses.deep_supervision_loss(losses.cross_entropy, heads[0], labels),
      losses.cross_entropy(heads[0], labels), rtol=1e-6)
