"""experiments/isbi_challenge.py: the ISBI 2012 challenge's two pixel errors
of whole predicted slices, with a model whose predictions are known."""

import numpy as np
from sklearn import metrics as skm

from configs import membranes_native
from experiments import isbi_challenge


def bright_is_membrane(images: np.ndarray) -> np.ndarray:
  """A pointwise 'model': confident membrane logits where the pixel is
  bright, confident interior logits where it is dark."""
  return (images[..., :1] * 2 - 1) * 20


def test_both_pixel_errors_count_the_wrong_pixels_of_the_interiors():
  rng = np.random.default_rng(0)
  labels = [(rng.random((24, 20)) < 0.25).astype(np.uint8) for _ in range(2)]
  examples, n_wrong = [], 0
  for label in labels:
    shown = label.copy()
    wrong = rng.random(label.shape) < 0.1  # these pixels the model gets wrong
    shown[wrong] = 1 - shown[wrong]
    n_wrong += int(wrong.sum())
    examples.append({'image': (shown * 255)[..., None], 'mask': label,
                     'predicted': shown})
  config = membranes_native.get_config()
  scores = isbi_challenge.score_examples(
      bright_is_membrane, (8, 8), config, examples, ('interior', 'membrane'))
  assert scores['images'] == 2
  np.testing.assert_allclose(scores['pixel_error'],
                             n_wrong / sum(l.size for l in labels), rtol=1e-6)
  # The challenge's F-score is of the interiors (label 0), pooled over slices.
  truth = np.concatenate([l.ravel() == 0 for l in labels])
  found = np.concatenate([e['predicted'].ravel() == 0 for e in examples])
  np.testing.assert_allclose(scores['max_f_pixel_error'],
                             1 - skm.f1_score(truth, found), rtol=1e-6)
  # ... not of the membranes, which would score worse here.
  assert scores['max_f_pixel_error'] < 1 - skm.f1_score(~truth, ~found)
  np.testing.assert_allclose(scores['dice'], skm.f1_score(~truth, ~found),
                             rtol=1e-6)


def test_a_perfect_prediction_scores_zero_both_ways():
  label = np.zeros((16, 16), np.uint8)
  label[5:7] = 1
  example = {'image': (label * 255)[..., None], 'mask': label}
  scores = isbi_challenge.score_examples(
      bright_is_membrane, (8, 8), membranes_native.get_config(), [example],
      ('interior', 'membrane'), tta=True)
  assert scores['pixel_error'] == 0 and scores['max_f_pixel_error'] == 0
