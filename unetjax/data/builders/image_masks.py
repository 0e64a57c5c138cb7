"""Base TFDS builder for datasets of image files with mask files.

A subclass says where the files are (`_find_pairs`) and what the masks mean
(`CLASS_NAMES`, `_mask_to_classes`); this module reads, checks, resizes and
encodes them. Images are resized bilinearly and masks with nearest neighbour
to a square `image_size`, or kept at their own size when it is 0 (the
`native` configs; each example then has its own shape, and the sizes are in
the metadata), and both are stored as PNG. Splits that a dataset
does not define are drawn with a fixed seed and their file names written to
the dataset's metadata. Every problem with a file raises DataError naming it.
"""

import dataclasses
import io
import os
from typing import Iterable, Sequence

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image, UnidentifiedImageError

from unetjax.errors import DataError

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.bmp', '.gif')


@dataclasses.dataclass(eq=False)
class ImageMaskConfig(tfds.core.BuilderConfig):
  # Side of the square images and masks after resizing; 0 keeps each image's
  # own size.
  image_size: int = 256


@dataclasses.dataclass(frozen=True)
class Pair:
  """The files of one example; `roi` marks the pixels to score (optional)."""
  key: str
  image: str
  mask: str
  roi: str | None = None


def sized_configs(sizes: Iterable[int], what: str,
                  native: bool = False) -> list[ImageMaskConfig]:
  """A '<size>px' config per size, and with `native` a 'native' one that
  keeps every image at its own size."""
  configs = [ImageMaskConfig(name=f'{size}px', image_size=size,
                             description=f'{what}, resized to {size}x{size}.')
             for size in sizes]
  if native:
    configs.append(ImageMaskConfig(name='native', image_size=0,
                                   description=f'{what}, at their own size.'))
  return configs


def image_size(path: str) -> tuple[int, int]:
  """(height, width) of an image file, from its header."""
  try:
    with Image.open(path) as image:
      return image.height, image.width
  except (OSError, UnidentifiedImageError, ValueError) as e:
    raise DataError(f'Cannot read {path}: {e}. Replace or remove the file.') from e


def list_images(folder: str) -> list[str]:
  """Image files in `folder`, sorted; DataError if there is none."""
  if not os.path.isdir(folder):
    raise DataError(f'Folder not found: {folder}. Point config.dataset.manual_dir '
                    'at the folder holding the downloaded dataset.')
  files = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                 if f.lower().endswith(IMAGE_EXTENSIONS))
  if not files:
    raise DataError(f'No image files ({", ".join(IMAGE_EXTENSIONS)}) in {folder}.')
  return files


def stem(path: str) -> str:
  return os.path.splitext(os.path.basename(path))[0]


def pairs_in_folders(images_dir: str, masks_dir: str,
                     mask_suffix: str = '') -> list[Pair]:
  """Pairs each image in `images_dir` with the mask in `masks_dir` named
  <image stem><mask_suffix>.<any extension>."""
  masks = list_images(masks_dir)
  masks_by_stem = {stem(m): m for m in masks}
  pairs = []
  for image in list_images(images_dir):
    mask = masks_by_stem.get(stem(image) + mask_suffix)
    if mask is None:
      raise DataError(f'No mask for image {image}: expected a file named '
                      f'{stem(image) + mask_suffix}.<ext> among the masks in '
                      f'{masks_dir}.')
    pairs.append(Pair(stem(image), image, mask))
  return pairs


def seeded_split(pairs: Sequence[Pair], fractions: dict[str, float],
                 seed: int) -> dict[str, list[Pair]]:
  """Splits pairs (sorted by key, then permuted by `seed`) by `fractions`;
  every split gets at least one example."""
  pairs = sorted(pairs, key=lambda p: p.key)
  order = np.random.default_rng(seed).permutation(len(pairs))
  names = list(fractions)
  sizes = [max(1, int(round(fractions[n] * len(pairs)))) for n in names[1:]]
  sizes.insert(0, len(pairs) - sum(sizes))
  if sizes[0] < 1:
    raise DataError(f'{len(pairs)} examples are too few for splits {fractions}.')
  out, start = {}, 0
  for name, size in zip(names, sizes):
    out[name] = [pairs[i] for i in order[start:start + size]]
    start += size
  return out


def read_image(path: str, mode: str) -> np.ndarray:
  """Pixels of an image file converted to PIL `mode` ('RGB', 'L' or None to
  keep the file's values, e.g. palette indices)."""
  try:
    with Image.open(path) as image:
      image.load()
      if mode is not None and image.mode != mode:
        image = image.convert(mode)
      return np.asarray(image)
  except (OSError, UnidentifiedImageError, ValueError) as e:
    raise DataError(f'Cannot read {path}: {e}. Replace or remove the file.') from e


def binary_mask(values: np.ndarray, path: str, threshold: int | None) -> np.ndarray:
  """0/1 classes from a greyscale mask: > threshold, or exactly {0, max} if
  `threshold` is None (then any other value is an error)."""
  if values.ndim == 3:
    values = values[..., 0]
  if threshold is not None:
    return (values > threshold).astype(np.uint8)
  present = np.unique(values)
  if present.size > 2 or (present.size == 2 and present[0] != 0):
    raise DataError(
        f'Mask {path} is not binary: it holds the values {present[:10].tolist()}'
        f'{"..." if present.size > 10 else ""}. Expected 0 and one foreground '
        'value; for lossy (JPEG) masks set a threshold.')
  return (values > 0).astype(np.uint8)


def _resize(array: np.ndarray, size: int, resample: int) -> np.ndarray:
  if size == 0 or array.shape[:2] == (size, size):
    return array
  image = Image.fromarray(array)
  return np.asarray(image.resize((size, size), resample=resample))


def _png(array: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format='PNG')
  return buffer.getvalue()


class ImageMaskBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Images, masks of class ids, optional scoring regions, from manual_dir."""

  BUILDER_CONFIG_CLASS = ImageMaskConfig
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  CLASS_NAMES: tuple[str, ...] = ('background', 'foreground')
  N_CHANNELS = 3
  HAS_ROI = False
  MASK_THRESHOLD: int | None = None  # binary masks: > threshold; None: {0, max}
  HOMEPAGE = ''
  CITATION = ''
  DESCRIPTION = ''

  def _find_pairs(self, manual_dir: str) -> dict[str, list[Pair]]:
    """The examples of each split ('train', 'validation', 'test')."""
    raise NotImplementedError

  def _mask_to_classes(self, values: np.ndarray, path: str) -> np.ndarray:
    """Mask file pixels -> class ids (uint8)."""
    return binary_mask(values, path, threshold=self.MASK_THRESHOLD)

  def _read_mask(self, path: str) -> np.ndarray:
    return read_image(path, None)

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.image_size or None  # None: each its own
    features = {
        'image': tfds.features.Image(shape=(size, size, self.N_CHANNELS)),
        'mask': tfds.features.Image(shape=(size, size, 1)),
        'file_name': tfds.features.Text(),
    }
    if self.HAS_ROI:
      features['roi'] = tfds.features.Image(shape=(size, size, 1))
    classes = ', '.join(f'{i}={n}' for i, n in enumerate(self.CLASS_NAMES))
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(features),
        supervised_keys=('image', 'mask'),
        homepage=self.HOMEPAGE,
        citation=self.CITATION,
        description=f'{self.DESCRIPTION} Masks hold class ids: {classes}.',
        metadata=tfds.core.MetadataDict(class_names=list(self.CLASS_NAMES)),
    )

  def _split_generators(self, dl_manager):
    splits = self._find_pairs(os.fspath(dl_manager.manual_dir))
    self.info.metadata['split_files'] = {
        name: [pair.key for pair in pairs] for name, pairs in splits.items()}
    if not self.builder_config.image_size:
      self.info.metadata['image_sizes'] = {
          name: [list(image_size(pair.image)) for pair in pairs]
          for name, pairs in splits.items()}
    return {name: self._generate_examples(pairs) for name, pairs in splits.items()}

  def _generate_examples(self, pairs: Sequence[Pair]):
    for pair in pairs:
      yield pair.key, self._example(pair)

  def _example(self, pair: Pair) -> dict:
    size = self.builder_config.image_size
    image = read_image(pair.image, 'RGB' if self.N_CHANNELS == 3 else 'L')
    mask = self._mask_to_classes(self._read_mask(pair.mask), pair.mask)
    maps = {'mask': mask}
    if self.HAS_ROI:
      maps['roi'] = binary_mask(read_image(pair.roi, 'L'), pair.roi, threshold=127)
    for name, values in maps.items():
      if values.shape[:2] != image.shape[:2]:
        raise DataError(
            f'{name} {getattr(pair, name)} is {values.shape[1]}x{values.shape[0]} '
            f'but its image {pair.image} is {image.shape[1]}x{image.shape[0]}.')
    example = {'image': _png(_resize(image, size, Image.BILINEAR)),
               'file_name': os.path.basename(pair.image)}
    for name, values in maps.items():
      example[name] = _png(_resize(values, size, Image.NEAREST))
    return example
