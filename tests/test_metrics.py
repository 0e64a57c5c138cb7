import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

from unetjax import metrics


def random_case(rng, n_classes, shape=(6, 16, 16), noise=0.3):
  """Labels and logits that agree with them on about (1 - noise) of pixels."""
  label_classes = max(2, n_classes)
  labels = rng.integers(0, label_classes, shape)
  flip = rng.random(shape) < noise
  predicted = np.where(flip, rng.integers(0, label_classes, shape), labels)
  if n_classes == 1:
    logits = np.where(predicted == 1, 2.0, -2.0)[..., None]
  else:
    logits = np.eye(n_classes)[predicted] * 3 + rng.normal(0, 0.1, shape + (n_classes,))
  return logits.astype(np.float32), labels, predicted


def summarize_all(logits, labels, class_names, valid=None):
  stats = jax.jit(metrics.batch_statistics)(logits, labels, valid)
  return metrics.summarize(metrics.merge(None, stats), class_names)


@pytest.mark.parametrize('n_classes', [1, 4])
def test_dataset_level_scores_match_scikit_learn(n_classes):
  rng = np.random.default_rng(0)
  logits, labels, predicted = random_case(rng, n_classes)
  names = [f'c{i}' for i in range(max(2, n_classes))]
  result = summarize_all(logits, labels, names)
  y_true, y_pred = labels.ravel(), predicted.ravel()
  foreground = list(range(1, len(names)))
  for ours, reference in [
      ('dice', skm.f1_score), ('iou', skm.jaccard_score),
      ('precision', skm.precision_score), ('recall', skm.recall_score)]:
    expected = reference(y_true, y_pred, labels=foreground, average='macro')
    np.testing.assert_allclose(result[ours], expected, rtol=1e-9, err_msg=ours)
  np.testing.assert_allclose(result['pixel_accuracy'],
                             skm.accuracy_score(y_true, y_pred), rtol=1e-6)
  if n_classes > 2:
    per_class = skm.f1_score(y_true, y_pred, labels=range(4), average=None)
    for name, expected in zip(names, per_class):
      np.testing.assert_allclose(result[f'dice/{name}'], expected, rtol=1e-9)


def test_counts_match_scikit_learn_confusion_matrix():
  rng = np.random.default_rng(1)
  logits, labels, predicted = random_case(rng, 3)
  stats = metrics.merge(None, metrics.batch_statistics(logits, labels))
  matrix = skm.confusion_matrix(labels.ravel(), predicted.ravel(), labels=range(3))
  np.testing.assert_array_equal(stats['tp'], np.diag(matrix))
  np.testing.assert_array_equal(stats['fp'], matrix.sum(0) - np.diag(matrix))
  np.testing.assert_array_equal(stats['fn'], matrix.sum(1) - np.diag(matrix))
  assert stats['pixels'] == labels.size


def test_hand_computed_binary_case():
  # labels:      prediction (logit > 0):
  #   1 1 0 0      1 0 0 1
  labels = np.array([[[1, 1, 0, 0]]])
  logits = np.array([[[3.0, -1.0, -2.0, 0.5]]])[..., None]
  result = summarize_all(logits, labels, ['bg', 'fg'])
  # TP=1, FP=1, FN=1: Dice = 2/4, IoU = 1/3.
  assert result['dice'] == pytest.approx(0.5)
  assert result['iou'] == pytest.approx(1 / 3)
  assert result['pixel_accuracy'] == pytest.approx(0.5)


def test_threshold_is_a_probability():
  labels = np.ones((1, 1, 2), int)
  logits = np.array([[[0.0, 1.0]]])[..., None]  # probabilities 0.5, 0.73
  strict = summarize_all(logits, labels, ['bg', 'fg'])
  stats = metrics.batch_statistics(logits, labels, threshold=0.25)
  lenient = metrics.summarize(metrics.merge(None, stats), ['bg', 'fg'])
  assert strict['recall'] == pytest.approx(0.5)
  assert lenient['recall'] == pytest.approx(1.0)


@pytest.mark.parametrize('n_chunks', [1, 2, 3, 6])
def test_accumulating_batches_gives_the_same_numbers(n_chunks):
  rng = np.random.default_rng(2)
  logits, labels, _ = random_case(rng, 3)
  names = ['a', 'b', 'c']
  whole = summarize_all(logits, labels, names)
  total = None
  for lo, la in zip(np.array_split(logits, n_chunks), np.array_split(labels, n_chunks)):
    total = metrics.merge(total, metrics.batch_statistics(lo, la))
  chunked = metrics.summarize(total, names)
  assert chunked.keys() == whole.keys()
  for key in whole:
    np.testing.assert_allclose(chunked[key], whole[key], rtol=1e-6, err_msg=key)


def test_invalid_examples_are_ignored():
  rng = np.random.default_rng(3)
  logits, labels, _ = random_case(rng, 1)
  garbage_logits = rng.normal(size=logits.shape).astype(np.float32)
  padded = summarize_all(np.concatenate([logits, garbage_logits]),
                         np.concatenate([labels, 1 - labels]),
                         ['bg', 'fg'],
                         valid=np.arange(2 * len(labels)) < len(labels))
  assert padded == summarize_all(logits, labels, ['bg', 'fg'])


def test_per_image_dice_is_the_mean_over_images_that_have_the_class():
  labels = np.zeros((3, 2, 2), int)
  labels[0, 0, 0] = 1  # image 0: fg predicted right  -> Dice 1
  labels[1, 0, :] = 1  # image 1: half of fg found     -> Dice 2/3
  logits = np.full((3, 2, 2, 1), -5.0)
  logits[0, 0, 0] = logits[1, 0, 0] = 5.0  # image 2: no fg anywhere -> left out
  result = summarize_all(logits, labels, ['bg', 'fg'])
  assert result['dice_per_image'] == pytest.approx((1 + 2 / 3) / 2)
  assert result['dice'] == pytest.approx(2 * 2 / (2 * 2 + 1))


def test_class_absent_everywhere_is_nan_and_left_out_of_the_mean():
  labels = np.zeros((1, 2, 2), int)
  labels[0, 0, 0] = 1
  logits = np.eye(3)[labels] * 5.0  # perfect; class 2 never occurs
  result = summarize_all(logits, labels, ['bg', 'one', 'two'])
  assert np.isnan(result['dice/two'])
  assert result['dice'] == pytest.approx(1.0)


def test_dice_and_iou_are_one_for_a_perfect_prediction_under_vmap():
  labels = np.random.default_rng(4).integers(0, 2, (4, 8, 8))
  logits = np.where(labels == 1, 5.0, -5.0)[..., None]
  stats = jax.vmap(lambda lo, la: metrics.batch_statistics(lo[None], la[None]))(
      jnp.asarray(logits), jnp.asarray(labels))
  summed = jax.tree.map(lambda x: x.sum(0), stats)
  result = metrics.summarize(metrics.merge(None, summed), ['bg', 'fg'])
  assert result['dice'] == result['iou'] == result['dice_per_image'] == 1.0
