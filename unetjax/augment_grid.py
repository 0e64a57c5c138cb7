"""Writes a PNG of validation examples and augmented versions of them, with
mask contours, to check by eye what a config's augmentation does.

  python -m unetjax.augment_grid --config=configs/augmented.py \
      --out=augment_grid.png --n=8

Columns are examples; rows are the image, its mask, the image with the mask's
contours, then --versions augmented copies (each with its own key) with the
contours of the augmented mask. Contours that hug the structures they
outline show that image and mask moved together. Where the dataset has a
region of interest (the pixels to learn from, e.g. DRIVE's field of view),
pixels outside the (augmented) ROI are shown dimmed, so that it can be seen
to move with the image too.
"""

import functools
import os

import jax
import numpy as np
from absl import flags
from ml_collections import config_flags
from PIL import Image, ImageDraw

from unetjax import augment, command_line, configuration, outputs
from unetjax import state as state_lib
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


ROI_DIMMING = 0.3  # brightness kept outside the region of interest


def _dim_outside(tile: np.ndarray, roi: np.ndarray | None) -> np.ndarray:
  if roi is None:
    return tile
  return np.where(roi[..., None] > 0, tile,
                  np.round(tile * ROI_DIMMING).astype(tile.dtype))


def _rgb(image: np.ndarray) -> np.ndarray:
  """float [0, 1] (H, W, C) -> uint8 RGB; one channel is grey, three are RGB."""
  pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
  return np.repeat(pixels, 3, -1) if pixels.shape[-1] == 1 else pixels[..., :3]


def render_grid(images: np.ndarray, masks: np.ndarray,
                augmented: list[tuple[np.ndarray, ...]], factor: int,
                rois: np.ndarray | None = None) -> Image.Image:
  """images (N, H, W, C) float in [0, 1], masks (N, H, W), optional rois
  (N, H, W), and a list of (images, masks) or (images, masks, rois)
  augmented versions -> one RGB image, `factor` times larger."""
  def outlined(image, mask, roi=None):
    tile = _with_contours(_upscale(_rgb(image), factor), _upscale(mask, factor))
    return _dim_outside(tile, None if roi is None else _upscale(roi, factor))

  per_example = lambda batch: [None] * len(images) if batch is None else batch
  rows = [('image', [_upscale(_rgb(image), factor) for image in images]),
          ('mask', [_upscale(_colours(mask), factor) for mask in masks]),
          ('contours', [outlined(*example) for example
                        in zip(images, masks, per_example(rois))])]
  for version, (aug_images, aug_masks, *aug_rois) in enumerate(augmented, 1):
    roi_batch = per_example(aug_rois[0] if aug_rois else None)
    rows.append((f'augmented {version}', [
        outlined(*example) for example in zip(aug_images, aug_masks, roi_batch)]))
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


def run():
  config = FLAGS.config
  configuration.validate(config)  # augment fields included, as training does
  pipeline.prepare(config.dataset)
  if pipeline.patch_sampling(config.dataset) is not None:  # what training sees
    batch = pipeline.patch_examples(config.dataset, FLAGS.split, FLAGS.n)
  else:
    batch = next(pipeline.eval_batches(config.dataset, FLAGS.split, FLAGS.n))
  claim = outputs.claim(os.path.dirname(FLAGS.out) or '.',
                        [os.path.basename(FLAGS.out)])
  images = np.asarray(state_lib.preprocess(batch['image'][:FLAGS.n]))
  maps = (batch['mask'][:FLAGS.n],) + (
      (batch['roi'][:FLAGS.n],) if 'roi' in batch else ())
  step = jax.jit(functools.partial(augment.augment_batch, config=config.augment))
  rng = jax.random.key(FLAGS.seed)
  augmented = []
  for version in range(FLAGS.versions):
    aug_images, aug_maps = step(jax.random.fold_in(rng, version), images, maps)
    augmented.append((np.asarray(aug_images), *map(np.asarray, aug_maps)))
  factor = max(1, 128 // images.shape[1])
  claim.save(os.path.basename(FLAGS.out), render_grid(
      images, maps[0], augmented, factor,
      rois=maps[1] if len(maps) > 1 else None).save)
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
  command_line.main(run, storage_path=lambda: FLAGS.out)
