"""`image_folder`: any folder of images with a folder of masks.

    <folder>/images/case001.png   <folder>/masks/case001.png   (PNG, JPEG,
    TIFF, BMP or GIF; matched by file stem, plus an optional mask suffix)

An optional folder of instance masks (`instances_dir`, e.g. 'instances',
files named as the masks) holds one whole number per object (0 =
background; 8-, 16- or 32-bit PNG or TIFF) for instance segmentation: the
examples then carry the ids and the U-Net paper's border weight map. With
`masks_dir=''` the instance masks alone make a binary dataset (foreground =
any object).

Masks hold one grey value (or palette index) per class, listed in
`mask_values` (class i is the pixel value mask_values[i]), or one colour per
class, listed in `mask_colors` (class i is the colour mask_colors[i]); any
other value is an error naming the file, unless `mask_threshold` >= 0 makes
the masks binary (value > threshold, in any channel, is foreground), which
lossy JPEG masks need. Images of more than 8 bits per pixel are scaled to 8
bits by their 16-bit range, or by `intensity_window` (see
`image_masks.to_uint8`). The folder, the options and the files (names, sizes
and modification times) are the builder config; its name carries a hash of
them, so changing any of them builds a new dataset instead of reusing a stale
one.
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
  # Folder of instance masks (one id per object), named as the masks; ''
  # = none. With masks_dir='' they are also the (binary) masks.
  instances_dir: str = ''
  n_channels: int = 3  # 1 = greyscale, 3 = RGB
  mask_values: tuple[int, ...] = (0, 255)  # pixel value of each class
  mask_colors: tuple[tuple[int, int, int], ...] = ()  # RGB of each class, or ()
  mask_threshold: int = -1  # >= 0: binary masks, foreground = value > threshold
  class_names: tuple[str, ...] = ()  # default: background, foreground / class_1..
  split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train, val, test
  split_seed: int = 0
  intensity_window: tuple[float, ...] = ()  # (low, high) -> 0..255; () = by dtype
  files: str = ''  # hash of the folder's file names, sizes and times

  @property
  def n_classes(self) -> int:
    if self.mask_threshold >= 0 or not self.masks_dir:
      return 2
    return len(self.mask_colors) if self.mask_colors else len(self.mask_values)

  @property
  def classes(self) -> tuple[str, ...]:
    if self.class_names:
      return tuple(self.class_names)
    n = self.n_classes
    if n == 2:
      return ('background', 'foreground')
    return ('background',) + tuple(f'class_{i}' for i in range(1, n))


OPTIONS = tuple(f.name for f in dataclasses.fields(ImageFolderConfig)
                if f.name not in {f.name for f in dataclasses.fields(
                    tfds.core.BuilderConfig)} | {'folder', 'files', 'instances'})


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _problems(config: ImageFolderConfig) -> list[str]:
  """What is wrong with the options of `config`, one entry per option."""
  problems = []
  if (not isinstance(config.image_size, int) or isinstance(config.image_size, bool)
      or config.image_size < 0):
    problems.append(f'image_size={config.image_size!r} must be a whole number: '
                    'the side of the square images, or 0 to keep each '
                    "image's own size")
  if config.n_channels not in (1, 3):
    problems.append(f'n_channels={config.n_channels!r} must be 1 (greyscale) or '
                    '3 (RGB)')
  fractions = config.split_fractions
  if (len(fractions) != 3 or not all(map(_is_number, fractions))
      or min(fractions) < 0 or fractions[0] <= 0
      or abs(sum(fractions) - 1) > 1e-6):
    problems.append(f'split_fractions={fractions!r} must be three fractions >= 0 '
                    '(train, validation, test; train > 0) summing to 1')
  if (not config.mask_values or not all(
      isinstance(v, int) and not isinstance(v, bool) for v in config.mask_values)
      or len(set(config.mask_values)) != len(config.mask_values)):
    problems.append(f'mask_values={config.mask_values!r} must be distinct whole '
                    'numbers, one per class')
  if config.mask_colors and not all(
      isinstance(c, tuple) and len(c) == 3 and all(
          isinstance(v, int) and 0 <= v <= 255 for v in c)
      for c in config.mask_colors):
    problems.append(f'mask_colors={config.mask_colors!r} must be (R, G, B) '
                    'triples of 0..255, one per class')
  elif len(set(config.mask_colors)) != len(config.mask_colors):
    problems.append(f'mask_colors={config.mask_colors!r} lists a colour twice')
  if config.mask_colors and config.mask_threshold < 0 and len(
      config.mask_colors) < 2:
    problems.append('mask_colors must list at least 2 colours (background '
                    'first)')
  if not config.masks_dir and not config.instances_dir:
    problems.append("masks_dir='' needs instances_dir: the folder of instance "
                    'masks that then make the masks')
  window = config.intensity_window
  if window and (len(window) != 2 or not all(map(_is_number, window))
                 or window[0] >= window[1]):
    problems.append(f'intensity_window={window!r} must be () or (low, high) '
                    'with low < high')
  if len(config.classes) != config.n_classes:
    problems.append('class_names must name one class per mask value (or '
                    'colour)')
  return problems


def files_digest(folder: str, subfolders: tuple[str, ...]) -> str:
  """A hash of the names, sizes and modification times of the files in
  `folder`/<subfolder>, so that changed files make a new dataset. An unused
  subfolder ('') counts nothing: files written beside images/ and masks/ (a
  log, a plan) are not the dataset."""
  entries = []
  for sub in filter(None, subfolders):
    path = os.path.join(folder, sub)
    if not os.path.isdir(path):
      continue
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
      if entry.is_file():
        info = entry.stat()
        entries.append((sub, entry.name, info.st_size, info.st_mtime_ns))
  return hashlib.sha1(json.dumps(entries).encode()).hexdigest()[:10]


def _tuples(value):
  return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def checked_options(folder: str, options: dict, config_class: type,
                    option_names: tuple[str, ...], problems_of, builder: str):
  """The absolute `folder`, `options` with lists as tuples, and an unnamed
  `config_class` of them; ConfigError naming unknown options and what
  `problems_of(config)` finds wrong (shared by the folder builders)."""
  unknown = sorted(set(options) - set(option_names))
  if unknown:
    raise ConfigError(f'Unknown config.dataset.folder option(s) {unknown}; '
                      f'{builder} takes: {", ".join(option_names)}.')
  options = {k: _tuples(v) for k, v in options.items()}
  folder = os.path.abspath(os.path.expanduser(folder))
  config = config_class(name='unchecked', folder=folder, **options)
  problems = problems_of(config)
  if problems:
    raise ConfigError('Invalid config.dataset.folder: ' + '; '.join(problems) + '.')
  return folder, options, config


def build_name(folder: str, options: dict, files: str) -> str:
  """A builder config name: the folder's name and a hash of the folder, the
  options and the files' digest."""
  digest = hashlib.sha1(json.dumps([folder, sorted(options.items()), files],
                                   default=str).encode()).hexdigest()[:10]
  name = f'{os.path.basename(folder.rstrip(os.sep)) or "data"}-{digest}'
  return ''.join(c if c.isalnum() or c in '-_' else '_' for c in name)


def make_config(folder: str, **options) -> ImageFolderConfig:
  """The builder config for `folder` with `options` (see ImageFolderConfig)."""
  folder, options, config = checked_options(
      folder, options, ImageFolderConfig, OPTIONS, _problems, 'image_folder')
  files = files_digest(folder, (config.images_dir, config.masks_dir,
                                 config.instances_dir))
  return ImageFolderConfig(name=build_name(folder, options, files),
                           folder=folder, files=files, **options,
                           instances=bool(config.instances_dir),
                           description=f'Images and masks from {folder}.')


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

  @property
  def INTENSITY_WINDOW(self):  # noqa: N802
    return self.builder_config.intensity_window or None

  def image_files(self, split: str) -> list[str]:
    """The image files of `split` ('train', 'validation', 'test')."""
    return [pair.image for pair in self._find_pairs(None)[split]]

  def _read_mask(self, path):
    if not self.builder_config.masks_dir:  # the instance masks are the masks
      return image_masks.read_instances(path)
    return image_masks.read_mask(path, colors=bool(
        self.builder_config.mask_colors))

  def _find_pairs(self, manual_dir):
    del manual_dir  # the folder is part of the config
    cfg = self.builder_config
    images = os.path.join(cfg.folder, cfg.images_dir)
    pairs = image_masks.pairs_in_folders(
        images, os.path.join(cfg.folder, cfg.masks_dir or cfg.instances_dir),
        cfg.mask_suffix)
    if cfg.instances_dir:
      with_ids = image_masks.pairs_in_folders(
          images, os.path.join(cfg.folder, cfg.instances_dir), cfg.mask_suffix)
      ids = {pair.key: pair.mask for pair in with_ids}
      pairs = [dataclasses.replace(pair, instances=ids[pair.key]) for pair in pairs]
    return image_masks.seeded_split(
        pairs, dict(zip(('train', 'validation', 'test'), cfg.split_fractions)),
        cfg.split_seed)

  def _mask_to_classes(self, values, path):
    cfg = self.builder_config
    if not cfg.masks_dir:
      return (values > 0).astype(np.uint8)
    if cfg.mask_threshold >= 0:
      return image_masks.binary_mask(values, path, cfg.mask_threshold)
    if cfg.mask_colors:
      return image_masks.color_classes(values, path, cfg.mask_colors)
    if values.ndim == 3:
      colors = np.unique(values.reshape(-1, 3), axis=0)
      raise DataError(
          f'Mask {path} is a colour mask holding the colours '
          f'{image_masks.colors_text(colors)}; list the colour of each class, '
          'background first, in config.dataset.folder.mask_colors (or set '
          'mask_threshold for a lossy binary mask).')
    expected = np.asarray(cfg.mask_values)
    unexpected = np.setdiff1d(np.unique(values), expected)
    if unexpected.size:
      raise DataError(
          f'Mask {path} holds values {unexpected[:10].tolist()} that are not in '
          f'config.dataset.folder.mask_values={tuple(cfg.mask_values)}. List '
          'every class value there, or set mask_threshold for binary masks.')
    order = np.argsort(expected)
    return order[np.searchsorted(expected[order], values)].astype(np.uint8)

# The builder class, for pipeline.FOLDER_BUILDERS.
BUILDER = ImageFolder
