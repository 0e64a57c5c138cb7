"""Scores a run trained on `isbi2012_em` the way the ISBI 2012 EM challenge
scored its entries, on the run's own test split (the challenge's test labels
were never released, so its numbers and these are from different slices):

  python -m experiments.isbi_challenge --workdir=runs/membranes_native \\
      [--tta] [--out=scores.json]

Each test slice is predicted whole, as the run's evaluation does (sliding
window of the training patch, Gaussian blending, the run's eval overlap);
with --tta the logits are averaged over the four flips, as the U-Net paper
averaged its ISBI predictions over rotated inputs. Prints, and with --out
writes as JSON:
  max_f_pixel_error      1 - the best F-score over thresholds 0.0..1.0 of the
                         cell interiors (`metrics.max_f_pixel_error`): the
                         challenge's definition, as the organisers' Fiji
                         scorer computes it;
  pixel_error            1 - pixel accuracy at the run's threshold: the
                         squared Euclidean distance of the binary maps, the
                         other reading the challenge's page gives;
and the run's pooled metrics of the membrane class (dice, iou, ...).
"""

import json
from typing import Any, Iterable, Sequence

import jax
import ml_collections
import numpy as np
from absl import flags

from unetjax import command_line
from unetjax import metrics
from unetjax import predict
from unetjax import sliding_window
from unetjax import state as state_lib
from unetjax.data import pipeline
from unetjax.errors import UserInputError

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string('workdir', None, 'Workdir of a run trained on isbi2012_em.')
  flags.DEFINE_string('split', 'test', 'The split to score.')
  flags.DEFINE_bool('tta', False, 'Average the logits over the four flips.')
  flags.DEFINE_string('out', None, 'Optional JSON file for the scores.')
  flags.mark_flag_as_required('workdir')


def membrane_probability(logits: np.ndarray) -> np.ndarray:
  """(H, W) probability of the membrane class (1) from (H, W, K) logits."""
  if logits.shape[-1] == 1:
    return np.asarray(jax.nn.sigmoid(logits[..., 0]))
  return np.asarray(jax.nn.softmax(logits, axis=-1)[..., 1])


def score(workdir: str, split: str = 'test', tta: bool = False
          ) -> dict[str, Any]:
  """The challenge's pixel errors and the pooled metrics of `split` of the
  run in `workdir` (its best checkpoint)."""
  run = state_lib.load_run(workdir)
  if not run.config.dataset.name.startswith('isbi2012_em'):
    raise UserInputError(f'{workdir} was trained on {run.config.dataset.name}, '
                         'not isbi2012_em.')
  scores = score_examples(run.apply_fn, run.window, run.config,
                          pipeline.examples(run.config.dataset, split),
                          run.class_names, tta=tta)
  return {'checkpoint': run.checkpoint, 'step': run.step, **scores}


def score_examples(apply_fn: sliding_window.ApplyFn, window: tuple[int, int],
                   config: ml_collections.ConfigDict,
                   examples: Iterable[dict[str, np.ndarray]],
                   class_names: Sequence[str], *, tta: bool = False
                   ) -> dict[str, Any]:
  """`score` of whole examples ('image' uint8 (H, W, C), 'mask' 1 on the
  membranes) predicted by `apply_fn`."""
  total, interiors, truths = None, [], []
  for example in examples:
    logits = predict.predict_image(apply_fn, example['image'], window,
                                   overlap=config.dataset.eval_overlap, tta=tta)
    label = example['mask'].astype(np.int32)
    total = metrics.merge(total, predict.image_metrics(
        logits, label, threshold=config.metrics.threshold,
        boundary_tolerance=config.metrics.boundary_tolerance))
    # The challenge's maps are interior probabilities, its labels interiors.
    interiors.append(1 - membrane_probability(logits))
    truths.append(label == 0)
  scores = metrics.summarize(total, class_names)
  error, threshold = metrics.max_f_pixel_error(interiors, truths)
  return {'images': len(truths), 'tta': tta,
          'pixel_error': 1 - scores['pixel_accuracy'],
          'max_f_pixel_error': error, 'max_f_threshold': threshold,
          **{k: scores[k] for k in metrics.main_metrics(scores)}}


def run():
  scores = score(FLAGS.workdir, FLAGS.split, FLAGS.tta)
  text = json.dumps(scores, indent=1)
  print(text)
  if FLAGS.out:
    with open(FLAGS.out, 'w') as f:
      f.write(text + '\n')


if __name__ == '__main__':
  define_flags()
  command_line.main(run, storage_path=lambda: FLAGS.out)
