"""Each run's best checkpoint scored on its test split twice, plain and
mirrored (`config.eval_mirror`: the mean of each image's four flips), by
the evaluation's own whole-image path: the same training, scored two ways.

  python experiments/rescore_mirrored.py WORKDIR... > rescore.jsonl

One JSON line per workdir: the checkpoint's step, test Dice pooled and per
image each way, and the seconds each scoring took.
"""

import json
import sys
import time

import numpy as np

from unetjax import evaluation, losses, metrics
from unetjax import state as state_lib
from unetjax.data import pipeline


def test_scores(run: state_lib.TrainedRun, mirror: bool,
                overlap: float | None = None) -> dict[str, float]:
  """Test scores of `run`'s best checkpoint; `overlap` defaults to the run's
  `dataset.eval_overlap`."""
  config = run.config
  total, _ = evaluation.whole_image_statistics(
      run.apply_fn, pipeline.examples(config.dataset, 'test'),
      lambda image: np.asarray(state_lib.preprocess(image)),
      window=run.window,
      overlap=config.dataset.eval_overlap if overlap is None else overlap,
      batch_size=config.eval_batch_size, batch_multiple=1,
      loss_fn=losses.get_loss(config.loss),
      metric_options=config.metrics.to_dict(), mirror=mirror)
  return metrics.summarize(total, run.class_names)


def main(workdirs: list[str]) -> None:
  for workdir in workdirs:
    run = state_lib.load_run(workdir)
    row = {'workdir': workdir, 'step': run.step}
    for name, mirror in (('plain', False), ('mirrored', True)):
      start = time.perf_counter()
      scores = test_scores(run, mirror)
      row[name] = {k: round(float(scores[k]), 4)
                   for k in ('dice', 'dice_per_image')}
      row[f'{name}_s'] = round(time.perf_counter() - start, 1)
    print(json.dumps(row), flush=True)


if __name__ == '__main__':
  main(sys.argv[1:])
