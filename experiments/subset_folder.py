"""A folder of N image/mask pairs drawn at random from a larger one, as
symbolic links, for `image_folder`: a dataset of the same kind at a smaller
size (e.g. Kvasir-SEG at 300 images, to see how a rule scales with size).

  python experiments/subset_folder.py ../shared/data/kvasir_seg runs/kvasir300 300

Pairs are matched by file stem in images/ and masks/; the draw is seeded
(--seed, default 0), so the same command gives the same folder.
"""

import argparse
import os

import numpy as np


def stems(folder: str) -> dict[str, str]:
  return {os.path.splitext(name)[0]: name for name in sorted(os.listdir(folder))
          if not name.startswith('.')}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('source')
  parser.add_argument('out')
  parser.add_argument('n', type=int)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  source = os.path.abspath(args.source)
  images, masks = (stems(os.path.join(source, d)) for d in ('images', 'masks'))
  paired = sorted(images.keys() & masks.keys())
  if not 0 < args.n <= len(paired):
    raise SystemExit(f'n={args.n}: {source} has {len(paired)} image/mask pairs.')
  chosen = np.random.default_rng(args.seed).choice(paired, args.n, replace=False)
  for sub, names in (('images', images), ('masks', masks)):
    os.makedirs(os.path.join(args.out, sub), exist_ok=False)
    for stem in sorted(chosen):
      os.symlink(os.path.join(source, sub, names[stem]),
                 os.path.join(args.out, sub, names[stem]))
  print(f'{args.out}: {args.n} of {len(paired)} pairs (seed {args.seed}).')


if __name__ == '__main__':
  main()
