"""Writes a PNG of validation examples and augmented versions of them, with
mask contours, to check by eye what a config's augmentation does.

  python -m unetjax.augment_grid --config=configs/augmented.py \
      --out=augment_grid.png --n=8

Columns are examples; rows are the image, its mask, the image with the mask's
contours, then --versions augmented copies (each with its own key) with the
contours of the augmented mask. Contours that hug the structures they
outline show that image and mask moved together.
"""

import functools

import jax
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags
from PIL import Image, ImageDraw

from unetjax import augment, train
from unetjax.data import pipeline

# Class colours, background first; classes past the end reuse the last ones.
PALETTE = np.array([(0, 0, 0), (255, 215, 0), (255, 60, 60), (70, 160, 255),
                    (60, 220, 120), (220, 90, 255)], np.uint8)
LABEL_WIDTH = 110  # pixels of the row-name column


def _colours(mask: np.ndarray) -> np.ndarray:
  return PALETTE[np.minimum(mask, len(PALETTE) - 1)]


def _upscale(array: np.ndarray, factor: int) -> np.ndarray:
  return array.repeat(factor, 0).repeat(factor, 1)


def _with_contours(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """RGB image with each foreground region's 1-pixel outline in its colour:
  mask pixels with a 4-neighbour of another class."""
  padded = np.pad(mask, 1, mode='edge')
  edge = np.zeros(mask.shape, bool)
  for rows, cols in [(slice(0, -2), slice(1, -1)), (slice(2, None), slice(1, -1)),
                     (slice(1, -1), slice(0, -2)), (slice(1, -1), slice(2, None))]:
    edge |= padded[rows, cols] != mask
  edge &= mask > 0
  return np.where(edge[..., None], _colours(mask), image)


def _rgb(image: np.ndarray) -> np.ndarray:
  """float [0, 1] (H, W, C) -> uint8 RGB; one channel is grey, three are RGB."""
  pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
  return np.repeat(pixels, 3, -1) if pixels.shape[-1] == 1 else pixels[..., :3]


def render_grid(images: np.ndarray, masks: np.ndarray,
                augmented: list[tuple[np.ndarray, np.ndarray]],
                factor: int) -> Image.Image:
  """images (N, H, W, C) float in [0, 1], masks (N, H, W), and a list of
  (images, masks) augmented versions -> one RGB image, `factor` times larger."""
  def outlined(image, mask):
    return _with_contours(_upscale(_rgb(image), factor), _upscale(mask, factor))

  rows = [('image', [_upscale(_rgb(image), factor) for image in images]),
          ('mask', [_upscale(_colours(mask), factor) for mask in masks]),
          ('contours', [outlined(*pair) for pair in zip(images, masks)])]
  rows += [(f'augmented {version}', [outlined(*pair) for pair in zip(*pair_of_batches)])
           for version, pair_of_batches in enumerate(augmented, 1)]
  tile_height, tile_width = images.shape[1] * factor, images.shape[2] * factor
  gap = 4
  grid = Image.new('RGB', (LABEL_WIDTH + len(images) * (tile_width + gap),
                           len(rows) * (tile_height + gap)), (255, 255, 255))
  draw = ImageDraw.Draw(grid)
  for r, (name, tiles) in enumerate(rows):
    top = r * (tile_height + gap)
    draw.text((6, top + tile_height // 2 - 6), name, fill=(0, 0, 0))
    for c, tile in enumerate(tiles):
      grid.paste(Image.fromarray(tile), (LABEL_WIDTH + c * (tile_width + gap), top))
  return grid


FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  if not FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # TFDS logs every file at INFO
  config = FLAGS.config
  pipeline.prepare(config.dataset)
  batch = next(pipeline.eval_batches(config.dataset, FLAGS.split, FLAGS.n))
  images = np.asarray(train.preprocess(batch['image'][:FLAGS.n]))
  masks = batch['mask'][:FLAGS.n]
  step = jax.jit(functools.partial(augment.augment_batch, config=config.augment))
  rng = jax.random.key(FLAGS.seed)
  augmented = []
  for version in range(FLAGS.versions):
    aug_images, (aug_masks,) = step(jax.random.fold_in(rng, version), images,
                                    (masks,))
    augmented.append((np.asarray(aug_images), np.asarray(aug_masks)))
  factor = max(1, 128 // images.shape[1])
  render_grid(images, masks, augmented, factor).save(FLAGS.out)
  print(f'Wrote {FLAGS.out}: {FLAGS.n} {FLAGS.split} examples of '
        f'{config.dataset.name}, {FLAGS.versions} augmented versions each '
        f'(ops on: {", ".join(augment.enabled_ops(config.augment)) or "none"}).')


if __name__ == '__main__':
  config_flags.DEFINE_config_file(
      'config', None, 'Python file with get_config(), e.g. configs/augmented.py.',
      lock_config=True)
  flags.DEFINE_string('out', 'augment_grid.png', 'PNG file to write.')
  flags.DEFINE_integer('n', 8, 'Examples (columns).')
  flags.DEFINE_integer('versions', 4, 'Augmented versions of each example (rows).')
  flags.DEFINE_string('split', 'validation', 'Dataset split to read.')
  flags.DEFINE_integer('seed', 0, 'Augmentation key.')
  flags.mark_flags_as_required(['config'])
  app.run(main)
