"""`image_folder`: any folder of images with a folder of masks.

    <folder>/images/case001.png   <folder>/masks/case001.png   (PNG, JPEG,
    TIFF, BMP or GIF; matched by file stem, plus an optional mask suffix)

Masks hold one grey value (or palette index) per class, listed in
`mask_values` (class i is the pixel value mask_values[i]); any other value
is an error naming the file, unless `mask_threshold` >= 0 makes the masks
binary (value > threshold is foreground), which lossy JPEG masks need. The
folder and the options are the builder config; its name carries a hash of
them, so changing either builds a new dataset instead of reusing a stale one.
"""

import dataclasses
import hashlib
import json
import os

import numpy as np
import tensorflow_datasets as tfds

from unetjax.data.builders import image_masks
from unetjax.errors import ConfigError, DataError


@dataclasses.dataclass(eq=False)
class ImageFolderConfig(image_masks.ImageMaskConfig):
  folder: str = ''  # absolute path of the dataset folder
  images_dir: str = 'images'
  masks_dir: str = 'masks'
  mask_suffix: str = ''  # mask stem = image stem + suffix, e.g. '_segmentation'
  n_channels: int = 3  # 1 = greyscale, 3 = RGB
  mask_values: tuple[int, ...] = (0, 255)  # pixel value of each class
  mask_threshold: int = -1  # >= 0: binary masks, foreground = value > threshold
  class_names: tuple[str, ...] = ()  # default: background, foreground / class_1..
  split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train, val, test
  split_seed: int = 0

  @property
  def classes(self) -> tuple[str, ...]:
    if self.class_names:
      return tuple(self.class_names)
    n = 2 if self.mask_threshold >= 0 else len(self.mask_values)
    if n == 2:
      return ('background', 'foreground')
    return ('background',) + tuple(f'class_{i}' for i in range(1, n))


OPTIONS = tuple(f.name for f in dataclasses.fields(ImageFolderConfig)
                if f.name not in {f.name for f in dataclasses.fields(
                    tfds.core.BuilderConfig)} | {'folder'})


def make_config(folder: str, **options) -> ImageFolderConfig:
  """The builder config for `folder` with `options` (see ImageFolderConfig)."""
  unknown = sorted(set(options) - set(OPTIONS))
  if unknown:
    raise ConfigError(f'Unknown config.dataset.folder option(s) {unknown}; '
                      f'image_folder takes: {", ".join(OPTIONS)}.')
  options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
  folder = os.path.abspath(os.path.expanduser(folder))
  digest = hashlib.sha1(json.dumps([folder, sorted(options.items())],
                                   default=str).encode()).hexdigest()[:10]
  name = f'{os.path.basename(folder.rstrip(os.sep)) or "data"}-{digest}'
  name = ''.join(c if c.isalnum() or c in '-_' else '_' for c in name)
  config = ImageFolderConfig(name=name, folder=folder, **options,
                             description=f'Images and masks from {folder}.')
  if len(config.split_fractions) != 3 or abs(sum(config.split_fractions) - 1) > 1e-6:
    raise ConfigError('config.dataset.folder.split_fractions must be three '
                      'fractions (train, validation, test) summing to 1, got '
                      f'{config.split_fractions}.')
  if len(config.classes) != (2 if config.mask_threshold >= 0
                             else len(config.mask_values)):
    raise ConfigError('config.dataset.folder.class_names must name one class '
                      'per mask value.')
  return config


class ImageFolder(image_masks.ImageMaskBuilder):
  """Images and masks from a folder of your own (see the module docstring)."""

  BUILDER_CONFIG_CLASS = ImageFolderConfig
  DESCRIPTION = 'Images and masks read from a folder.'
  MANUAL_DOWNLOAD_INSTRUCTIONS = ('Set config.dataset.manual_dir to the folder '
                                  'holding images/ and masks/.')

  @property
  def CLASS_NAMES(self):  # noqa: N802 (the base class's constant, per config)
    return self.builder_config.classes

  @property
  def N_CHANNELS(self):  # noqa: N802
    return self.builder_config.n_channels

  def _find_pairs(self, manual_dir):
    del manual_dir  # the folder is part of the config
    cfg = self.builder_config
    pairs = image_masks.pairs_in_folders(os.path.join(cfg.folder, cfg.images_dir),
                                         os.path.join(cfg.folder, cfg.masks_dir),
                                         cfg.mask_suffix)
    return image_masks.seeded_split(
        pairs, dict(zip(('train', 'validation', 'test'), cfg.split_fractions)),
        cfg.split_seed)

  def _mask_to_classes(self, values, path):
    cfg = self.builder_config
    if cfg.mask_threshold >= 0:
      return image_masks.binary_mask(values, path, cfg.mask_threshold)
    if values.ndim == 3:
      values = values[..., 0]
    expected = np.asarray(cfg.mask_values)
    unexpected = np.setdiff1d(np.unique(values), expected)
    if unexpected.size:
      raise DataError(
          f'Mask {path} holds values {unexpected[:10].tolist()} that are not in '
          f'config.dataset.folder.mask_values={tuple(cfg.mask_values)}. List '
          'every class value there, or set mask_threshold for binary masks.')
    order = np.argsort(expected)
    return order[np.searchsorted(expected[order], values)].astype(np.uint8)
