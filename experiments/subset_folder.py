"""A folder of N image/mask pairs drawn at random from a larger one, as
symbolic links, for `image_folder`: a dataset of the same kind at a smaller
size (e.g. Kvasir-SEG at 300 images, to see how a rule scales with size).

  python experiments/subset_folder.py ../shared/data/kvasir_seg runs/kvasir300 300

Pairs are matched by file stem in images/ and masks/, as `image_folder`
reads them; the draw is seeded (--seed, default 0), so the same command
gives the same folder.
"""

import argparse
import os

import numpy as np

from unetjax.data.builders import image_masks


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('source')
  parser.add_argument('out')
  parser.add_argument('n', type=int)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  source = os.path.abspath(args.source)
  pairs = image_masks.pairs_in_folders(os.path.join(source, 'images'),
                                       os.path.join(source, 'masks'))
  if not 0 < args.n <= len(pairs):
    raise SystemExit(f'n={args.n}: {source} has {len(pairs)} image/mask pairs.')
  taken = [d for d in ('images', 'masks') if os.path.exists(os.path.join(args.out, d))]
  if taken:
    raise SystemExit(f'{args.out} already has {" and ".join(d + "/" for d in taken)}: '
                     'give a new folder (nothing was written).')
  chosen = np.random.default_rng(args.seed).choice(len(pairs), args.n, replace=False)
  for sub in ('images', 'masks'):
    os.makedirs(os.path.join(args.out, sub))
  for index in sorted(chosen):
    for sub, path in (('images', pairs[index].image), ('masks', pairs[index].mask)):
      os.symlink(path, os.path.join(args.out, sub, os.path.basename(path)))
  print(f'{args.out}: {args.n} of {len(pairs)} pairs (seed {args.seed}).')


if __name__ == '__main__':
  main()
