"""Each run's best checkpoint scored mirrored on its test split at several
sliding-window overlaps: the same training, scored at each overlap, with the
seconds each scoring took.

  python -m experiments.rescore_overlap --overlaps=0.5,0.25 WORKDIR... > overlap.jsonl

One JSON line per workdir and overlap: the checkpoint's step, test Dice
pooled and per image, and the seconds the scoring took (the first overlap's
includes compiling the evaluation: score it twice to see).
"""

import argparse
import json
import time

from unetjax import state as state_lib

from experiments.rescore_mirrored import test_scores


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--overlaps', default='0.5,0.25',
                      help='Comma-separated overlaps, each in [0, 1).')
  parser.add_argument('workdirs', nargs='+')
  args = parser.parse_args()
  overlaps = [float(o) for o in args.overlaps.split(',')]
  for workdir in args.workdirs:
    run = state_lib.load_run(workdir)
    for overlap in overlaps:
      start = time.perf_counter()
      scores = test_scores(run, mirror=True, overlap=overlap)
      print(json.dumps({
          'workdir': workdir, 'step': run.step, 'overlap': overlap,
          'dice': round(float(scores['dice']), 4),
          'dice_per_image': round(float(scores['dice_per_image']), 4),
          'seconds': round(time.perf_counter() - start, 1)}), flush=True)


if __name__ == '__main__':
  main()
