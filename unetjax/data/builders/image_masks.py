"""Base TFDS builder for datasets of image files with mask files.

A subclass says where the files are (`_find_pairs`) and what the masks mean
(`CLASS_NAMES`, `_mask_to_classes`); this module reads, checks, resizes and
encodes them. Files are read upright by their EXIF orientation; images of
more than 8 bits per pixel are scaled to 8 bits by `to_uint8` (the 16-bit
range, or an intensity window), never clipped silently, and masks are read
as what they show (`read_mask`). Images are resized bilinearly and masks
with nearest neighbour to a square `image_size`, or kept at their own size
when it is 0 (the `native` configs; each example then has its own shape, and
the sizes are in the metadata), and both are stored as PNG. Splits that a dataset
does not define are drawn with a fixed seed and their file names written to
the dataset's metadata. Every problem with a file raises DataError naming it.
"""

import dataclasses
import io
import os
from typing import Iterable, Sequence

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image, ImageOps, UnidentifiedImageError

from unetjax import instances
from unetjax.errors import DataError

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.bmp', '.gif')


@dataclasses.dataclass(eq=False)
class ImageMaskConfig(tfds.core.BuilderConfig):
  # Side of the square images and masks after resizing; 0 keeps each image's
  # own size.
  image_size: int = 256
  # Instance data: examples also hold one id per object ('instances', read
  # by the builder's `_instances`) and the U-Net paper's border weight map
  # ('weight'), both at the stored size.
  instances: bool = False


@dataclasses.dataclass(frozen=True)
class Pair:
  """The files of one example; `roi` marks the pixels to score, `instances`
  holds one id per object (both optional)."""
  key: str
  image: str
  mask: str
  roi: str | None = None
  instances: str | None = None


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


# EXIF orientations that turn an image by a quarter (width and height swap).
_QUARTER_TURNS = (5, 6, 7, 8)


def image_size(path: str) -> tuple[int, int]:
  """(height, width) of an image file as read upright, from its header."""
  try:
    with Image.open(path) as image:
      if image.getexif().get(0x0112) in _QUARTER_TURNS:  # EXIF Orientation
        return image.width, image.height
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


def by_stem(files: Sequence[str]) -> dict[str, str]:
  """{file stem: file}; DataError naming the files if two share a stem
  (case001.png and case001.jpg), which would pair both with one mask."""
  found = {}
  for path in files:
    other = found.setdefault(stem(path), path)
    if other != path:
      raise DataError(
          f'{os.path.basename(other)} and {os.path.basename(path)} in '
          f'{os.path.dirname(path)} have the same name before the extension, '
          'which pairs images and masks; keep one of them.')
  return found


def pairs_in_folders(images_dir: str, masks_dir: str,
                     mask_suffix: str = '') -> list[Pair]:
  """Pairs each image in `images_dir` with the mask in `masks_dir` named
  <image stem><mask_suffix>.<any extension>."""
  masks_by_stem = by_stem(list_images(masks_dir))
  pairs = []
  for image in by_stem(list_images(images_dir)).values():
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


def _open(path: str) -> Image.Image:
  """The image of `path`, loaded and turned upright by its EXIF orientation
  (camera and phone JPEGs), as viewers show it."""
  try:
    with Image.open(path) as image:
      image.load()
      return ImageOps.exif_transpose(image)
  except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
    raise DataError(f'Cannot read {path}: {e}. Replace or remove the file.') from e


# Greyscale modes with more than 8 bits per pixel (16-bit, 32-bit int, float).
HIGH_DEPTH_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I', 'F')


def to_uint8(values: np.ndarray, path: str,
             window: Sequence[float] | None = None) -> np.ndarray:
  """Pixels scaled linearly from an intensity window [low, high] to 0..255.

  Without `window`: 8-bit images as they are; 16-bit images (and 32-bit
  integer ones whose values fit in 16 bits) by the 16-bit range, 0..65535,
  so value*257 gives back the 8-bit value exactly; float images holding
  values in [0, 1] by 0..1. Other images are refused: they need a window.
  Values outside a given window are clipped to it.
  """
  values = np.asarray(values)
  if window:
    low, high = (float(v) for v in window)
  elif values.dtype == np.uint8:
    return values
  elif values.dtype.kind in 'ui' and values.min() >= 0 and values.max() <= 65535:
    low, high = 0.0, 65535.0
  elif values.dtype.kind == 'f' and np.all((values >= 0) & (values <= 1)):
    low, high = 0.0, 1.0
  else:
    finite = values[np.isfinite(values)] if values.dtype.kind == 'f' else values
    span = (f'[{finite.min():.6g}, {finite.max():.6g}]' if finite.size
            else 'no finite values')
    raise DataError(
        f'Image {path} holds {values.dtype} values {span}'
        f'{" and NaN or infinity" if finite.size < values.size else ""}, '
        'which have no fixed range to scale to 8 bits. Set '
        'config.dataset.folder.intensity_window=(low, high), the values '
        'shown as black and white.')
  if values.dtype.kind == 'f' and not np.all(np.isfinite(values)):
    raise DataError(f'Image {path} holds NaN or infinite values; replace the '
                    'file.')
  scaled = (values.astype(np.float64) - low) / (high - low)
  return np.rint(np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def read_image(path: str, mode: str,
               window: Sequence[float] | None = None) -> np.ndarray:
  """uint8 pixels of an image file in PIL `mode` ('RGB' or 'L'), upright by
  its EXIF orientation; more than 8 bits per pixel are scaled by
  `to_uint8` (with `window`, every image is)."""
  image = _open(path)
  if image.mode in HIGH_DEPTH_MODES:
    grey = to_uint8(np.asarray(image), path, window)
    return np.stack([grey] * 3, axis=-1) if mode == 'RGB' else grey
  if image.mode != mode:
    image = image.convert(mode)
  values = np.asarray(image)
  return to_uint8(values, path, window) if window else values


def _uniform(values: np.ndarray) -> bool:
  return bool(np.all(values == values.reshape(-1)[0]))


def read_mask(path: str, colors: bool = False) -> np.ndarray:
  """The values of a mask file, upright by its EXIF orientation: (H, W) grey
  values, or (H, W, 3) colours for a colour mask.

  1-bit masks read as 0 / 255; palette masks as the grey values they show if
  every colour in use is grey, else as palette indices (class ids, as in
  PASCAL VOC); with an alpha channel that is not all opaque over uniform
  colour, the alpha is the mask. With `colors`, always (H, W, 3) colours.
  """
  image = _open(path)
  if image.mode == '1':
    image = image.convert('L')
  if image.mode == 'P' and 'transparency' in image.info:
    image = image.convert('RGBA')
  if image.mode == 'P':
    indices = np.asarray(image)
    entries = np.asarray(image.getpalette('RGB') or [], np.uint8).reshape(-1, 3)
    palette = np.zeros((256, 3), np.uint8)
    palette[:len(entries)] = entries[:256]
    used = palette[np.unique(indices)]
    if colors:
      return palette[indices]
    if np.all(used == used[:, :1]):
      return palette[indices, 0]
    return indices
  if image.mode in ('LA', 'La', 'PA', 'RGBA', 'RGBa'):
    bands = np.asarray(image.convert('RGBA' if image.mode != 'LA' else 'LA'))
    alpha, content = bands[..., -1], bands[..., :-1]
    if np.all(alpha == 255):
      values = content
    elif _uniform(content):
      values = alpha
    else:
      raise DataError(
          f'Mask {path} has an alpha channel and varying colours, so it is '
          'unclear which one is the mask; save it without alpha, or with the '
          'mask in the alpha over one colour.')
    image = Image.fromarray(values[..., 0] if values.ndim == 3 and
                            values.shape[-1] == 1 else values)
  if image.mode not in ('L',) + HIGH_DEPTH_MODES:
    image = image.convert('RGB')
  values = np.asarray(image)
  if values.ndim == 3 and np.all(values == values[..., :1]):
    values = values[..., 0]
  if colors and values.ndim == 2:
    if values.dtype != np.uint8:
      raise DataError(f'Mask {path} holds {values.dtype} values; colour masks '
                      '(config.dataset.folder.mask_colors) must be 8-bit.')
    values = np.stack([values] * 3, axis=-1)
  return values


# Instance ids are stored as uint16: at most this many objects per image.
MAX_INSTANCE_ID = np.iinfo(np.uint16).max


def read_instances(path: str) -> np.ndarray:
  """One image's instance ids (H, W) int32 from a label file (0 =
  background, one whole number per object; 8-, 16- or 32-bit PNG or TIFF).
  Ids above 65535 are renumbered 1..K in the order of their values; a file
  with more objects than 16-bit ids hold, or that is not one whole number
  per pixel, is a DataError naming it."""
  values = np.asarray(_open(path))
  if values.ndim != 2:
    raise DataError(
        f'Instance mask {path} has {values.shape[-1]} channels; save one whole '
        'number per object in a single channel (a 16-bit PNG or TIFF, 0 = '
        'background), not colours.')
  if values.dtype.kind == 'f':
    if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
      raise DataError(f'Instance mask {path} holds fractional values; it needs '
                      'one whole number per object (0 = background).')
  values = values.astype(np.int64)
  if values.min() < 0:
    raise DataError(f'Instance mask {path} holds negative ids; use 0 for the '
                    'background and positive ids for objects.')
  if values.max() <= MAX_INSTANCE_ID:
    return values.astype(np.int32)
  ids = np.unique(values)
  n_objects = len(ids) - (ids[0] == 0)
  if n_objects > MAX_INSTANCE_ID:
    raise DataError(
        f'Instance mask {path} holds {n_objects} objects, more than the '
        f'{MAX_INSTANCE_ID} that 16-bit ids hold; split the image into tiles '
        'with fewer objects each.')
  return np.searchsorted(ids[ids > 0], values, side='right').astype(np.int32) * (
      values > 0)


def colors_text(colors: np.ndarray, limit: int = 10) -> str:
  text = ', '.join(str(tuple(int(v) for v in c)) for c in colors[:limit])
  return text + (', ...' if len(colors) > limit else '')


def binary_mask(values: np.ndarray, path: str, threshold: int | None) -> np.ndarray:
  """0/1 classes from mask values (`read_mask`): > threshold, or exactly
  {0, max} if `threshold` is None (then any other value is an error). A
  colour mask is foreground where any channel is above the threshold, or
  (without threshold) where it is not black, if it holds one colour on black."""
  if values.ndim == 3:
    if threshold is None:
      colors = np.unique(values.reshape(-1, values.shape[-1]), axis=0)
      if len(colors) > 2 or (len(colors) == 2 and colors[0].any()):
        raise DataError(
            f'Mask {path} is a colour mask holding the colours '
            f'{colors_text(colors)}; a binary mask needs black and one '
            'colour. For lossy (JPEG) masks set a threshold.')
    values = values.max(axis=-1)
  if threshold is not None:
    return (values > threshold).astype(np.uint8)
  present = np.unique(values)
  if present.size > 2 or (present.size == 2 and present[0] != 0):
    raise DataError(
        f'Mask {path} is not binary: it holds the values {present[:10].tolist()}'
        f'{"..." if present.size > 10 else ""}. Expected 0 and one foreground '
        'value; for lossy (JPEG) masks set a threshold.')
  return (values > 0).astype(np.uint8)


def color_classes(colors: np.ndarray, path: str,
                  table: Sequence[Sequence[int]]) -> np.ndarray:
  """Class ids of an (H, W, 3) colour mask: class i is colour table[i]; a
  colour not in the table is an error naming it."""
  table = np.asarray(table, np.int64).reshape(-1, 3)
  codes = (colors[..., 0].astype(np.int64) << 16) | (colors[..., 1].astype(
      np.int64) << 8) | colors[..., 2]
  table_codes = (table[:, 0] << 16) | (table[:, 1] << 8) | table[:, 2]
  unknown = np.setdiff1d(np.unique(codes), table_codes)
  if unknown.size:
    rgb = np.stack([unknown >> 16, (unknown >> 8) & 255, unknown & 255], -1)
    raise DataError(
        f'Mask {path} holds colours {colors_text(rgb)} that are not in '
        f'config.dataset.folder.mask_colors={tuple(map(tuple, table.tolist()))}. '
        'List the colour of every class there (or set mask_threshold for a '
        'lossy binary mask).')
  order = np.argsort(table_codes)
  return order[np.searchsorted(table_codes[order], codes)].astype(np.uint8)


def resize(array: np.ndarray, size: int, resample: int) -> np.ndarray:
  """`array` resized to size x size with PIL's `resample` (0: as it is)."""
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
  INTENSITY_WINDOW: tuple[float, float] | None = None  # see `to_uint8`
  HOMEPAGE = ''
  CITATION = ''
  OBJECTS = 'foreground'  # how objects are read from predictions (instances.OBJECT_RULES)
  DESCRIPTION = ''

  def _find_pairs(self, manual_dir: str) -> dict[str, list[Pair]]:
    """The examples of each split ('train', 'validation', 'test')."""
    raise NotImplementedError

  def _mask_to_classes(self, values: np.ndarray, path: str) -> np.ndarray:
    """Mask file pixels -> class ids (uint8)."""
    return binary_mask(values, path, threshold=self.MASK_THRESHOLD)

  def _read_mask(self, path: str) -> np.ndarray:
    return read_mask(path)

  def _instances(self, classes: np.ndarray, pair: Pair) -> np.ndarray:
    """One id per object of an example without an instance file, from its
    stored mask of class ids: the 4-connected foreground regions, or with
    `OBJECTS` 'background' the 4-connected background regions."""
    del pair  # builders with other sources of ids use it
    objects = classes == 0 if self.OBJECTS == 'background' else classes > 0
    return instances.connected_components(objects)

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.image_size or None  # None: each its own
    features = {
        'image': tfds.features.Image(shape=(size, size, self.N_CHANNELS)),
        'mask': tfds.features.Image(shape=(size, size, 1)),
        'file_name': tfds.features.Text(),
    }
    if self.HAS_ROI:
      features['roi'] = tfds.features.Image(shape=(size, size, 1))
    metadata = {'class_names': list(self.CLASS_NAMES)}
    if self.builder_config.instances:
      features['instances'] = tfds.features.Tensor(
          shape=(size, size), dtype=np.uint16, encoding=tfds.features.Encoding.ZLIB)
      features['weight'] = tfds.features.Tensor(
          shape=(size, size), dtype=np.float32, encoding=tfds.features.Encoding.ZLIB)
      metadata['objects'] = self.OBJECTS
    classes = ', '.join(f'{i}={n}' for i, n in enumerate(self.CLASS_NAMES))
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(features),
        supervised_keys=('image', 'mask'),
        homepage=self.HOMEPAGE,
        citation=self.CITATION,
        description=f'{self.DESCRIPTION} Masks hold class ids: {classes}.',
        metadata=tfds.core.MetadataDict(**metadata),
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
    image = read_image(pair.image, 'RGB' if self.N_CHANNELS == 3 else 'L',
                       self.INTENSITY_WINDOW)
    mask = self._mask_to_classes(self._read_mask(pair.mask), pair.mask)
    maps = {'mask': mask}
    if self.HAS_ROI:
      maps['roi'] = binary_mask(read_mask(pair.roi), pair.roi, threshold=127)
    if pair.instances is not None:
      maps['instances'] = read_instances(pair.instances)
    for name, values in maps.items():
      if values.shape[:2] != image.shape[:2]:
        raise DataError(
            f'{name} {getattr(pair, name)} is {values.shape[1]}x{values.shape[0]} '
            f'but its image {pair.image} is {image.shape[1]}x{image.shape[0]}.')
    example = {'image': _png(resize(image, size, Image.BILINEAR)),
               'file_name': os.path.basename(pair.image)}
    stored = {name: resize(values, size, Image.NEAREST)
              for name, values in maps.items()}
    for name in ('mask', 'roi'):
      if name in stored:
        example[name] = _png(stored[name])
    if self.builder_config.instances:
      ids = stored.get('instances')
      if ids is None:
        ids = self._instances(stored['mask'], pair)
      example['instances'] = ids.astype(np.uint16)
      example['weight'] = instances.border_weight_map(ids)
    return example
