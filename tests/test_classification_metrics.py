"""Classification metrics against scikit-learn, accumulated over batches and
over 8 devices, with the edge cases of a class never predicted and a class
absent from the labels."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as sk

from unetjax import classification_metrics as cm
from unetjax import metrics


def softmax(logits):
  e = np.exp(logits - logits.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def accumulate(logits, labels, batch=64):
  total = None
  step = jax.jit(cm.batch_statistics)
  for start in range(0, len(labels), batch):
    total = metrics.merge(total, step(jnp.asarray(logits[start:start + batch]),
                                      jnp.asarray(labels[start:start + batch])))
  return total


def check_against_sklearn(logits, labels):
  n_classes = logits.shape[1]
  names = [f'c{k}' for k in range(n_classes)]
  total = accumulate(logits, labels)
  ours = cm.summarize(total, names)
  predicted = logits.argmax(1)
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')  # sklearn warns about absent classes
    assert ours['accuracy'] == pytest.approx(sk.accuracy_score(labels, predicted))
    assert ours['balanced_accuracy'] == pytest.approx(
        sk.balanced_accuracy_score(labels, predicted))
    precision, recall, f1, _ = sk.precision_recall_fscore_support(
        labels, predicted, labels=range(n_classes), zero_division=0)
    for k, name in enumerate(names):
      assert ours[f'precision/{name}'] == pytest.approx(precision[k])
      assert ours[f'recall/{name}'] == pytest.approx(recall[k])
      assert ours[f'f1/{name}'] == pytest.approx(f1[k])
    for ours_name, average in (('macro_precision', sk.precision_score),
                               ('macro_recall', sk.recall_score),
                               ('macro_f1', sk.f1_score)):
      assert ours[ours_name] == pytest.approx(
          average(labels, predicted, average='macro', zero_division=0))
    assert ours['kappa'] == pytest.approx(sk.cohen_kappa_score(labels, predicted))
  probabilities = softmax(logits.astype(np.float64))
  exact = []
  for k, name in enumerate(names):
    if 0 < (labels == k).sum() < len(labels):
      exact.append(sk.roc_auc_score(labels == k, probabilities[:, k]))
      _, bound = cm.binned_auroc(total['positive_scores'][k],
                                 total['negative_scores'][k])
      assert abs(ours[f'auroc/{name}'] - exact[-1]) <= bound + 1e-12
    else:
      assert np.isnan(ours[f'auroc/{name}'])
  assert abs(ours['auroc'] - np.mean(exact)) <= ours['auroc_error'] + 1e-12
  return ours


def test_random_predictions_match_sklearn():
  rng = np.random.default_rng(0)
  logits = (rng.normal(size=(500, 4)) * 3).astype(np.float32)
  labels = rng.integers(0, 4, 500)
  logits[np.arange(500), labels] += 2.0  # better than chance
  ours = check_against_sklearn(logits, labels)
  probabilities = softmax(logits.astype(np.float64))
  exact = sk.roc_auc_score(labels, probabilities, multi_class='ovr')
  assert abs(ours['auroc'] - exact) <= ours['auroc_error'] + 1e-12
  assert ours['auroc_error'] < 1e-3 and 0.5 < ours['auroc'] < 1


def test_a_class_never_predicted_and_a_class_absent_from_the_labels():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(300, 5)).astype(np.float32)
  logits[:, 2] = -10.0  # class 2 is never predicted
  labels = rng.choice([0, 1, 2, 4], 300)  # class 3 never occurs
  ours = check_against_sklearn(logits, labels)
  assert ours['recall/c2'] == 0 and ours['precision/c2'] == 0
  assert np.isnan(ours['auroc/c3'])


def test_binary_auroc_is_sklearns_and_confident_scores_stay_apart():
  rng = np.random.default_rng(2)
  labels = rng.integers(0, 2, 400)
  # Confident, well-separated logits: probabilities pile up near 0 and 1,
  # where bins of the probability would tie most pairs.
  margin = np.where(labels == 1, 1.0, -1.0) * rng.uniform(8, 14, 400)
  margin += rng.normal(size=400) * 4
  logits = np.stack([np.zeros(400), margin], 1).astype(np.float32)
  ours = check_against_sklearn(logits, labels)
  exact = sk.roc_auc_score(labels, softmax(logits.astype(np.float64))[:, 1])
  assert abs(ours['auroc'] - exact) <= ours['auroc_error'] + 1e-12
  assert ours['auroc_error'] < 1e-3


def test_padding_is_not_counted():
  rng = np.random.default_rng(3)
  logits = jnp.asarray(rng.normal(size=(10, 3)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 3, 10))
  valid = jnp.arange(10) < 6
  padded = cm.batch_statistics(logits, labels, valid)
  kept = cm.batch_statistics(logits[:6], labels[:6])
  for key in kept:
    np.testing.assert_array_equal(padded[key], kept[key])


def test_sums_over_8_devices_equal_one_device():
  assert jax.local_device_count() == 8
  rng = np.random.default_rng(4)
  logits = rng.normal(size=(8, 16, 3)).astype(np.float32)
  labels = rng.integers(0, 3, (8, 16))
  per_device = jax.pmap(
      lambda lo, la: jax.lax.psum(cm.batch_statistics(lo, la), 'd'),
      axis_name='d')(logits, labels)
  whole = cm.batch_statistics(jnp.asarray(logits.reshape(-1, 3)),
                              jnp.asarray(labels.reshape(-1)))
  for key in whole:
    for device in range(8):
      np.testing.assert_array_equal(per_device[key][device], whole[key])


def test_one_vs_rest_scores_are_the_log_odds_of_softmax():
  logits = np.random.default_rng(5).normal(size=(6, 4)) * 5
  p = softmax(logits)
  np.testing.assert_allclose(cm.one_vs_rest_scores(jnp.asarray(logits, jnp.float32)),
                             np.log(p / (1 - p)), rtol=1e-4, atol=1e-4)
