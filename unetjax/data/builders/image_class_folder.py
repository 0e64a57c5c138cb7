"""`image_class_folder`: any folder of images sorted into one folder per class.

    <folder>/cats/001.png   <folder>/dogs/a.jpg   ...        (layout A)
    <folder>/train/cats/001.png   <folder>/validation/cats/... (or val/,
    valid/)   <folder>/test/cats/...                          (layout B)

The classes are the class folders' names, sorted (class i is the i-th name).
Layout A splits each class by `split_fractions` on its own, with a seed from
`split_seed` and the class name, so that every split holds every class
(stratified). Layout B, read when <folder>/train holds folders, keeps the
given splits, which must all hold the same class folders. Images (PNG, JPEG,
TIFF, BMP or GIF, any case of extension) are read upright, scaled to 8 bits
as image_folder's are (see `image_masks.to_uint8` and `intensity_window`)
and resized bilinearly to a square `image_size`. Other files, hidden ones
(named '.*') and folders inside a class folder are not read. The folder, the
options and the files (names, sizes and modification times) are the builder
config; its name carries a hash of them, so changing any of them builds a
new dataset instead of reusing a stale one.
"""

import dataclasses
import os
import zlib

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from unetjax.data.builders import image_folder
from unetjax.data.builders import image_masks
from unetjax.data.builders.image_folder import _is_number, files_digest
from unetjax.errors import ConfigError, DataError

SPLITS = ('train', 'validation', 'test')
# Layout B: the names each split's folder may have.
SPLIT_FOLDERS = {'train': ('train',), 'validation': ('validation', 'val', 'valid'),
                 'test': ('test',)}


@dataclasses.dataclass(eq=False)
class ImageClassFolderConfig(tfds.core.BuilderConfig):
  folder: str = ''  # absolute path of the dataset folder
  image_size: int = 128  # side of the square images after resizing
  n_channels: int = 3  # 1 = greyscale, 3 = RGB
  split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train, val, test
  split_seed: int = 0
  intensity_window: tuple[float, ...] = ()  # (low, high) -> 0..255; () = by dtype
  # Found in the folder by make_config, not options:
  class_names: tuple[str, ...] = ()  # the class folders, sorted
  split_dirs: tuple[str, ...] = ()  # layout B: train, validation, test folders
  files: str = ''  # hash of the class folders' file names, sizes and times


OPTIONS = tuple(f.name for f in dataclasses.fields(ImageClassFolderConfig)
                if f.name not in {f.name for f in dataclasses.fields(
                    tfds.core.BuilderConfig)} | {
                        'folder', 'class_names', 'split_dirs', 'files'})
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ImageClassFolderConfig)}


def _whole(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _problems(config: ImageClassFolderConfig) -> list[str]:
  """What is wrong with the options of `config`, one entry per option."""
  problems = []
  if not _whole(config.image_size) or config.image_size <= 0:
    problems.append(f'image_size={config.image_size!r} must be a whole number '
                    '> 0: the side of the square images (0, each image at its '
                    'own size, is not available here, as batches of a '
                    'classifier need one size)')
  if not _whole(config.n_channels) or config.n_channels not in (1, 3):
    problems.append(f'n_channels={config.n_channels!r} must be 1 (greyscale) or '
                    '3 (RGB)')
  fractions = config.split_fractions
  if (not isinstance(fractions, tuple) or len(fractions) != 3
      or not all(map(_is_number, fractions)) or min(fractions) < 0
      or fractions[0] <= 0 or abs(sum(fractions) - 1) > 1e-6):
    problems.append(f'split_fractions={fractions!r} must be three fractions >= 0 '
                    '(train, validation, test; train > 0) summing to 1')
  if not _whole(config.split_seed) or config.split_seed < 0:
    problems.append(f'split_seed={config.split_seed!r} must be a whole number '
                    '>= 0')
  window = config.intensity_window
  if window and (not isinstance(window, tuple) or len(window) != 2
                 or not all(map(_is_number, window)) or window[0] >= window[1]):
    problems.append(f'intensity_window={window!r} must be () or (low, high) '
                    'with low < high')
  return problems


def _listed(names: list[str], limit: int = 5) -> str:
  return ', '.join(names[:limit]) + (', ...' if len(names) > limit else '')


def _subfolders(folder: str) -> list[str]:
  return sorted(e.name for e in os.scandir(folder)
                if e.is_dir() and not e.name.startswith('.'))


def image_files(folder: str) -> list[str]:
  """Names of the image files in `folder` (not hidden), sorted."""
  return sorted(e.name for e in os.scandir(folder)
                if e.is_file() and not e.name.startswith('.')
                and e.name.lower().endswith(image_masks.IMAGE_EXTENSIONS))


def _class_folders(folder: str) -> list[str]:
  """The class folders in `folder`; DataError if there are none, or if
  images lie beside them, where they have no class."""
  names, images = _subfolders(folder), image_files(folder)
  if not names:
    raise DataError(
        f'No class folders in {folder}'
        f'{", only image files" if images else ""}: image_class_folder reads '
        'one folder of images per class, named after the class '
        f'({folder}/<class name>/<image>). Move the images of each class into '
        'their own folder.')
  if images:
    raise DataError(
        f'{folder} holds image files beside its class folders ({_listed(images)}),'
        ' which gives them no class: move them into their class folder, or '
        'remove them.')
  return names


def _check_classes(folder: str, names: list[str]) -> None:
  """DataError unless there are 2 classes or more, each with an image."""
  if len(names) < 2:
    raise DataError(
        f'{folder} holds one class folder ({names[0]}), but a classifier needs '
        'at least 2 classes: add a folder of images for each other class.')
  for name in names:
    path = os.path.join(folder, name)
    if not image_files(path):
      nested = ' (folders inside it are not read)' if _subfolders(path) else ''
      raise DataError(
          f'Class folder {path} holds no image files '
          f'({", ".join(image_masks.IMAGE_EXTENSIONS)}){nested}: add its '
          'images, or remove the folder.')


def _split_dirs(folder: str) -> tuple[str, ...]:
  """Layout B: the folders of the train, validation and test splits."""
  found, missing = [], []
  for split in SPLITS:
    present = [n for n in SPLIT_FOLDERS[split]
               if os.path.isdir(os.path.join(folder, n))]
    if len(present) > 1:
      raise DataError(f'{folder} holds both {present[0]}/ and {present[1]}/ for '
                      f'the {split} split: keep one of them.')
    if present:
      found.append(present[0])
    else:
      missing.append('/ or '.join(SPLIT_FOLDERS[split]) + '/')
  if missing:
    raise DataError(
        f'{folder} holds train/ with class folders, so it is read as split '
        f'folders, but it has no {" and no ".join(missing)}: give all three '
        'splits (train/, validation/, test/, each with the same class '
        'folders), or put the class folders directly in it (<class name>/'
        '<image>) to split them by config.dataset.folder.split_fractions.')
  return tuple(found)


def find_classes(folder: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
  """(class names, split folders) of `folder`; the split folders are () in
  layout A. DataError naming the folder if its layout is wrong."""
  if not os.path.isdir(folder):
    raise DataError(
        f'{"Not a folder" if os.path.exists(folder) else "Folder not found"}: '
        f'{folder}. Point config.dataset.manual_dir at the folder holding one '
        'folder of images per class.')
  train = os.path.join(folder, 'train')
  if not (os.path.isdir(train) and _subfolders(train)):  # layout A
    names = _class_folders(folder)
    split_like = [n for s in SPLITS for n in SPLIT_FOLDERS[s] if n in names]
    if 'train' in split_like and len(split_like) > 1:
      raise DataError(
          f'{train} holds images but no class folders: split folders need one '
          f'folder of images per class ({train}/<class name>/<image>, and so '
          'for the others).')
    _check_classes(folder, names)
    return tuple(names), ()
  split_dirs = _split_dirs(folder)
  names = _class_folders(train)
  for split_dir in split_dirs[1:]:
    path = os.path.join(folder, split_dir)
    others = _class_folders(path)
    lacks = sorted(set(names) - set(others))
    extra = sorted(set(others) - set(names))
    if lacks or extra:
      raise DataError(
          f'{path} does not hold the class folders of {train}: ' + '; '.join(
              ([f'it lacks {_listed(lacks)}'] if lacks else []) +
              ([f'it has {_listed(extra)}, which train/ has not'] if extra
               else [])) +
          '. Every split folder needs one folder per class, the same ones.')
  for split_dir in split_dirs:
    _check_classes(os.path.join(folder, split_dir), names)
  return tuple(names), split_dirs


def make_config(folder: str, **options) -> ImageClassFolderConfig:
  """The builder config for `folder` with `options` (see
  ImageClassFolderConfig); reads which classes the folder holds."""
  folder, options, _ = image_folder.checked_options(
      folder, options, ImageClassFolderConfig, OPTIONS, _problems,
      'image_class_folder')
  class_names, split_dirs = find_classes(folder)
  for option in ('split_fractions', 'split_seed'):
    if split_dirs and options.get(option, _DEFAULTS[option]) != _DEFAULTS[option]:
      raise ConfigError(
          f'config.dataset.folder.{option}={options[option]!r} does nothing: '
          f'{folder} gives its splits as folders ({", ".join(split_dirs)}). '
          'Remove the option, or put the class folders directly in the folder '
          'to split them by split_fractions.')
  files = files_digest(folder, tuple(os.path.join(split, name) for split in (
      split_dirs or ('',)) for name in class_names))
  return ImageClassFolderConfig(
      name=image_folder.build_name(folder, options, files), folder=folder, class_names=class_names, split_dirs=split_dirs,
      files=files, **options,
      description=f'Images of {len(class_names)} classes from {folder}.')


def read_image(path: str, n_channels: int, image_size: int,
               intensity_window=()) -> np.ndarray:
  """uint8 pixels of an image file as the dataset stores them (and
  prediction must read them): greyscale or RGB, scaled to 8 bits, resized
  bilinearly to image_size x image_size."""
  image = image_masks.read_image(path, 'RGB' if n_channels == 3 else 'L',
                                 tuple(intensity_window) or None)
  return image_masks.resize(image, image_size, Image.BILINEAR)


@dataclasses.dataclass(frozen=True)
class Example:
  """The file of one example; `key` is its path relative to the folder."""
  key: str
  image: str
  label: int


def _examples(folder: str, class_names: tuple[str, ...],
              parent: str = '') -> list[list[Example]]:
  """The examples of each class in `folder`/`parent`, by file name."""
  return [[Example('/'.join(filter(None, (parent, name, file))),
                   os.path.join(folder, parent, name, file), label)
           for file in image_files(os.path.join(folder, parent, name))]
          for label, name in enumerate(class_names)]


class ImageClassFolder(tfds.core.GeneratorBasedBuilder):
  """Images and their classes from a folder of your own (see the module
  docstring)."""

  BUILDER_CONFIG_CLASS = ImageClassFolderConfig
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  DESCRIPTION = 'Images and their classes read from one folder per class.'
  MANUAL_DOWNLOAD_INSTRUCTIONS = ('Set config.dataset.manual_dir to the folder '
                                  'holding one folder of images per class.')

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    size = cfg.image_size
    classes = ', '.join(f'{i}={n}' for i, n in enumerate(cfg.class_names))
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(size, size, cfg.n_channels)),
            'label': tfds.features.ClassLabel(names=list(cfg.class_names)),
            'file_name': tfds.features.Text(),
        }),
        supervised_keys=('image', 'label'),
        description=f'{self.DESCRIPTION} Labels: {classes}.',
        metadata=tfds.core.MetadataDict(class_names=list(cfg.class_names)),
    )

  def image_files(self, split: str) -> list[str]:
    """The image files of `split` ('train', 'validation', 'test')."""
    return [example.image for example in self._find_examples()[split]]

  def _find_examples(self) -> dict[str, list[Example]]:
    """The examples of each split ('train', 'validation', 'test')."""
    cfg = self.builder_config
    if cfg.split_dirs:
      return {split: sum(_examples(cfg.folder, cfg.class_names, split_dir), [])
              for split, split_dir in zip(SPLITS, cfg.split_dirs)}
    splits = {split: [] for split in SPLITS}
    fractions = dict(zip(SPLITS, cfg.split_fractions))
    for name, examples in zip(cfg.class_names,
                              _examples(cfg.folder, cfg.class_names)):
      # A seed per class, from its name: classes split independently, and a
      # class's split does not change when classes are added or removed.
      seed = np.random.SeedSequence((cfg.split_seed, zlib.crc32(name.encode())))
      try:
        drawn = image_masks.seeded_split(examples, fractions,
                                         int(seed.generate_state(1)[0]))
      except DataError as e:
        raise DataError(
            f'Class folder {os.path.join(cfg.folder, name)} holds '
            f'{len(examples)} images, too few to put one in each split by '
            f'config.dataset.folder.split_fractions={cfg.split_fractions}: add '
            'images, change the fractions, or give the splits as folders '
            '(train/, validation/, test/, each with the class folders).') from e
      for split, chosen in drawn.items():
        splits[split] += chosen
    return {split: sorted(examples, key=lambda e: e.key)
            for split, examples in splits.items()}

  def _split_generators(self, dl_manager):
    del dl_manager  # the folder is part of the config
    splits = self._find_examples()
    self.info.metadata['split_files'] = {
        name: [example.key for example in examples]
        for name, examples in splits.items()}
    return {name: self._generate_examples(examples)
            for name, examples in splits.items()}

  def _generate_examples(self, examples: list[Example]):
    cfg = self.builder_config
    for example in examples:
      image = read_image(example.image, cfg.n_channels, cfg.image_size,
                         cfg.intensity_window)
      yield example.key, {'image': image_masks._png(image),
                          'label': example.label, 'file_name': example.key}

# The builder class, for pipeline.FOLDER_BUILDERS.
BUILDER = ImageClassFolder
