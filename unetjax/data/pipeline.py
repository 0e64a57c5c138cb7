"""Prepared TFDS datasets -> numpy batches, without importing TensorFlow.

Datasets are written as array_record files and read by random access through
`tfds` data sources and grain. The training order is a pure function of
(seed, step): batch k is element k of a shuffled, endlessly repeated (and
per epoch reshuffled) dataset, so a resumed run starts at its step and sees
exactly the batches an uninterrupted run would have seen.

Datasets kept at their own resolution (`native` configs) are trained on
random patches (`unetjax.data.patches`), drawn per example from the seed and
the example's position in the stream, and evaluated one whole image at a
time (`examples`).

With several processes, each reads its own share of every batch.
"""

import collections.abc
import dataclasses
import functools
import glob
import logging
import math
import os
import shutil
import sys
from typing import Iterator

import grain
import jax
import ml_collections
import numpy as np
import tensorflow_datasets as tfds
from absl import logging as absl_logging
from jax.experimental import multihost_utils

from unetjax import instances
from unetjax import locks
from unetjax import tasks
from unetjax.data import builders  # registers the builders with tfds
from unetjax.data import patches
from unetjax.errors import ConfigError, DataError

Batch = dict[str, np.ndarray]


def _expected_tfds_warning(record: logging.LogRecord) -> bool:
  """TFDS warns that every image_folder config is custom and that a build's
  folder is new; both are how image_folder works, not news for the user."""
  message = record.getMessage()
  return not (message.startswith('Using custom data configuration')
              or (message.startswith('Variant folder') and
                  'has no dataset_info.json' in message))


absl_logging.get_absl_handler().addFilter(_expected_tfds_warning)


# What a dataset's examples are labelled with, by task: a class per pixel
# ('mask', with class_names background first) or a class per image ('label').


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What the model and metrics need to know about a prepared dataset."""
  name: str
  # (height, width, channels); height and width are None for datasets that
  # keep every image at its own size.
  image_shape: tuple[int | None, int | None, int]
  class_names: tuple[str, ...]
  split_sizes: dict[str, int]
  task: str = tasks.SEGMENTATION  # a key of tasks.TARGETS
  has_roi: bool = False  # examples carry 'roi', the pixels to score
  # Examples carry 'instances' (one id per object) and 'weight' (the border
  # weight map of config.loss.pixel_weights='border').
  has_instances: bool = False
  # How objects are read from predicted classes (instances.OBJECT_RULES).
  objects: str = 'foreground'
  # Binary mask files: foreground above it (lossy masks); None: exactly {0, max}.
  mask_threshold: int | None = None
  # Native-size datasets: (height, width) of each image, per split.
  image_sizes: dict[str, tuple[tuple[int, int], ...]] = dataclasses.field(
      default_factory=dict)
  build: str = ''  # name/config/version of the prepared data, e.g. for config.json

  def smallest_image(self, split: str) -> tuple[int, int]:
    """The smallest height and width among `split`'s images."""
    if self.image_shape[0] is not None:
      return self.image_shape[:2]
    sizes = np.asarray(self.image_sizes[split])
    return tuple(int(v) for v in sizes.min(axis=0))


def _data_dir(dataset_config: ml_collections.ConfigDict) -> str:
  return (dataset_config.data_dir or os.environ.get('TFDS_DATA_DIR')
          or os.path.expanduser('~/tensorflow_datasets'))


FOLDER_BUILDERS = builders.FOLDER_BUILDERS  # the user's own folders


def _builder(dataset_config: ml_collections.ConfigDict):
  name = dataset_config.name
  data_dir = _data_dir(dataset_config)
  if name in FOLDER_BUILDERS:
    module, holds = FOLDER_BUILDERS[name]
    if not dataset_config.manual_dir:
      raise DataError(f'{name} needs config.dataset.manual_dir: the folder '
                      f'with {holds}.')
    options = dataset_config.get('folder', ml_collections.ConfigDict()).to_dict()
    config = module.make_config(dataset_config.manual_dir, **options)
    return module.BUILDER(config=config, data_dir=data_dir,
                          file_format='array_record')
  try:
    return tfds.builder(name, data_dir=data_dir, file_format='array_record')
  except tfds.core.registered.DatasetNotFoundError as e:
    raise DataError(
        f'Unknown dataset {name!r} (config.dataset.name); unetjax provides: '
        f'{", ".join(builders.DATASETS)}.') from e
  except ValueError as e:  # e.g. an unknown builder config
    raise DataError(f'config.dataset.name={name!r}: {e}') from e


def folder_image_files(dataset_config: ml_collections.ConfigDict,
                       split: str) -> list[str]:
  """The files a folder dataset (FOLDER_BUILDERS) takes `split`'s images
  from, without building it."""
  if dataset_config.name not in FOLDER_BUILDERS:
    raise DataError(f'{dataset_config.name} is not a folder dataset '
                    f'({", ".join(FOLDER_BUILDERS)}).')
  return _builder(dataset_config).image_files(split)


def manual_dir(dataset_config: ml_collections.ConfigDict, builder_name: str) -> str:
  """config.dataset.manual_dir, or the TFDS convention
  <data_dir>/downloads/manual/<dataset name>."""
  return dataset_config.manual_dir or os.path.join(
      _data_dir(dataset_config), 'downloads', 'manual', builder_name)


def _remove_unfinished_builds(builder) -> None:
  """Deletes the folders that TFDS builds in before renaming them, left by
  builds that were killed (called under the build lock, so none is live)."""
  version_dir = builder.data_dir
  pattern = os.path.join(os.path.dirname(version_dir), glob.escape(
      tfds.core.constants.INCOMPLETE_PREFIX) + '*_' +
                         glob.escape(os.path.basename(version_dir)))
  for folder in glob.glob(pattern):
    shutil.rmtree(folder, ignore_errors=True)
    print(f'Removed {folder}, an unfinished build of {builder.name} left by a '
          'stopped process.', file=sys.stderr)


def prepare(dataset_config: ml_collections.ConfigDict) -> DatasetInfo:
  """Builds the dataset into the TFDS data dir unless it is already there
  (process 0 builds, the others wait). Builds of one dataset by several
  processes on one machine take turns: the later ones find it built."""
  builder = _builder(dataset_config)
  if jax.process_index() == 0 and not builder.is_prepared():
    files = manual_dir(dataset_config, builder.name)
    instructions = builder.MANUAL_DOWNLOAD_INSTRUCTIONS
    if instructions and not (os.path.isdir(files) and os.listdir(files)):
      problem = (f'the folder {files} is empty' if os.path.isdir(files)
                 else f'no folder {files}')
      if 'config.dataset.manual_dir' not in instructions:
        instructions = ('Set config.dataset.manual_dir to the folder that holds '
                        f'the dataset files. {instructions}')
      raise DataError(f'{builder.name}: {problem}. {instructions}')
    parent, version = os.path.split(builder.data_dir)
    os.makedirs(parent, exist_ok=True)
    with locks.FileLock(os.path.join(parent, f'.build-{version}.lock')):
      builder = _builder(dataset_config)
      if not builder.is_prepared():  # else built while this process waited
        _remove_unfinished_builds(builder)
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(
                manual_dir=files, try_download_gcs=False))
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f'prepared {dataset_config.name}')
    builder = _builder(dataset_config)
  return _dataset_info(dataset_config, builder)


def describe(dataset_config: ml_collections.ConfigDict) -> DatasetInfo:
  """The image shape and class names of a dataset, from its builder, without
  building or reading it (split sizes are empty unless it is prepared)."""
  return _dataset_info(dataset_config, _builder(dataset_config))


def _dataset_info(dataset_config: ml_collections.ConfigDict,
                  builder) -> DatasetInfo:
  info = builder.info
  features = info.features
  targets = [key for key in tasks.TARGETS.values() if key in features]
  if 'image' not in features or len(targets) != 1:
    raise DataError(
        f'Dataset {dataset_config.name!r} has the features '
        f'{", ".join(features)}; datasets need "image" and one of "mask" '
        '(segmentation: a class per pixel) or "label" (classification: a '
        'class per image).')
  task = next(t for t, key in tasks.TARGETS.items() if key == targets[0])
  metadata = info.metadata or {}
  class_names = tuple(metadata.get('class_names', ()))
  if len(class_names) < 2:
    raise DataError(f'Dataset {dataset_config.name!r} lists no class names '
                    '(metadata "class_names", background first).')
  objects = metadata.get('objects', 'foreground')
  if three_class(dataset_config):
    if 'instances' not in features:
      raise ConfigError(
          "config.dataset.target='three_class' is made from instances (one id "
          f'per object), and {dataset_config.name!r} has none: use an instance '
          'dataset (synthetic_cells/instances, isbi2012_em/instances, or '
          "image_folder with an instances/ folder) or target='mask'.")
    class_names, objects = instances.THREE_CLASS_NAMES, 'three_class'
  return DatasetInfo(
      name=dataset_config.name,
      image_shape=tuple(features['image'].shape),
      class_names=class_names,
      split_sizes={name: split.num_examples for name, split in info.splits.items()},
      task=task,
      has_roi='roi' in features,
      has_instances='instances' in features,
      objects=objects,
      mask_threshold=getattr(builder, 'MASK_THRESHOLD', None),
      image_sizes={split: tuple(map(tuple, sizes)) for split, sizes
                   in metadata.get('image_sizes', {}).items()},
      build=info.full_name)


def _standardize(example: dict) -> dict[str, np.ndarray]:
  """The arrays a step needs: image (H, W, C) uint8, and mask and roi
  (H, W) (with instance datasets, instances and weight too) or the image's
  class id `label`."""
  out = {'image': example['image']}
  if 'label' in example:
    out['label'] = np.asarray(example['label'], np.int32)
  for key in ('mask', 'roi', 'instances', 'weight'):
    if key in example:
      value = example[key]
      out[key] = value[..., 0] if value.ndim == 3 else value
  return out


def three_class(dataset_config: ml_collections.ConfigDict) -> bool:
  """Whether the masks trained on are the background / interior / border
  target made from the instances (config.dataset.target)."""
  return dataset_config.get('target', 'mask') == 'three_class'


def _three_class_mask(example: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  return {**example, 'mask': instances.three_class_target(example['instances'])}


def _source(dataset_config: ml_collections.ConfigDict,
            split: str) -> grain.MapDataset:
  builder = _builder(dataset_config)
  if split not in builder.info.splits:
    raise DataError(f'Dataset {dataset_config.name!r} has no split {split!r}; '
                    f'it has: {", ".join(builder.info.splits)}.')
  source = grain.MapDataset.source(builder.as_data_source(split=split)).map(
      _standardize)
  return source.map(_three_class_mask) if three_class(dataset_config) else source


def _read_options(dataset_config: ml_collections.ConfigDict) -> grain.ReadOptions:
  return grain.ReadOptions(num_threads=dataset_config.reader_threads,
                           prefetch_buffer_size=dataset_config.prefetch_batches)


def patch_sampling(dataset_config: ml_collections.ConfigDict
                   ) -> patches.PatchSampling | None:
  """How config.dataset samples training patches; None: whole images."""
  size = patches.patch_shape(dataset_config.get('patch_size', 0))
  if size is None:
    return None
  return patches.PatchSampling(
      size=size, foreground_share=dataset_config.foreground_oversampling,
      pad=dataset_config.pad_patches)


def model_input_shape(dataset_config: ml_collections.ConfigDict,
                      info: DatasetInfo) -> tuple[int, int, int]:
  """The (height, width, channels) a model of this dataset trains on: the
  patch, or the stored images' one size."""
  sampling = patch_sampling(dataset_config)
  if sampling is not None:
    return sampling.size + info.image_shape[2:]
  if info.image_shape[0] is None:
    raise DataError(
        f'Dataset {info.name!r} keeps every image at its own size, so it is '
        'trained on patches: set config.dataset.patch_size (e.g. 128).')
  return info.image_shape


def check_patches_fit(dataset_config: ml_collections.ConfigDict,
                      info: DatasetInfo) -> None:
  """ConfigError if padding is off and a training image is smaller than the
  patch."""
  sampling = patch_sampling(dataset_config)
  if sampling is None or sampling.pad:
    return
  smallest = info.smallest_image('train')
  if smallest[0] < sampling.size[0] or smallest[1] < sampling.size[1]:
    raise ConfigError(
        f'config.dataset.patch_size={dataset_config.patch_size} is larger than '
        f'the smallest training image of {info.name} ({smallest[1]}x'
        f'{smallest[0]}) and config.dataset.pad_patches is False: pad the '
        'patches or choose a smaller patch.')


class _DecodedOnce(collections.abc.Sequence):
  """The examples of `source`, each decoded at its first read and kept,
  read-only (grain 0.2 has no in-memory cache of a MapDataset)."""

  def __init__(self, source: grain.MapDataset):
    self._source = source
    self._kept = [None] * len(source)

  def __len__(self) -> int:
    return len(self._kept)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    example = self._kept[index]
    if example is None:
      example = {k: np.asarray(v) for k, v in self._source[index].items()}
      for value in example.values():
        value.flags.writeable = False  # shared by every later read
      self._kept[index] = example
    return example


def decoded_mib(source: grain.MapDataset, sizes: tuple[tuple[int, int], ...]
                ) -> float:
  """The decoded size of `source`: its first example's bytes per pixel times
  the pixels of every image (`sizes`, (height, width) each; empty when all
  share the first one's size)."""
  first = source[0]
  height, width = first['image'].shape[:2]
  bytes_per_pixel = sum(np.asarray(v).nbytes for v in first.values()) / (
      height * width)
  pixels = (sum(h * w for h, w in sizes) if sizes
            else len(source) * height * width)
  return bytes_per_pixel * pixels / 2**20


def _kept_in_memory(source: grain.MapDataset,
                    dataset_config: ml_collections.ConfigDict,
                    split: str) -> grain.MapDataset:
  """`split`'s `source` decoded once and kept when it fits in
  config.dataset.memory_cache_mib; else as is (decoded at every read). The
  order of examples is unchanged."""
  limit_mib = dataset_config.get('memory_cache_mib', 0)
  if not limit_mib or not len(source):
    return source
  metadata = _builder(dataset_config).info.metadata or {}
  sizes = tuple(map(tuple, metadata.get('image_sizes', {}).get(split, ())))
  if decoded_mib(source, sizes) > limit_mib:
    return source
  return grain.MapDataset.source(_DecodedOnce(source))


def train_batches(dataset_config: ml_collections.ConfigDict, batch_size: int,
                  seed: int, start_step: int = 0, process_index: int | None = None,
                  process_count: int | None = None) -> Iterator[Batch]:
  """Endless batches of `batch_size` examples for this process, from `start_step`.

  The global batch of step k is elements [k * B, (k + 1) * B) of one shuffled
  stream (B = batch_size * process_count) and process p reads the p-th slice
  of it, so the global batches do not depend on how many processes read them.
  With config.dataset.patch_size, element i of the stream is a random patch
  drawn with a generator seeded by (seed, i).
  """
  if process_index is None:
    process_index, process_count = jax.process_index(), jax.process_count()
  stream = _kept_in_memory(_source(dataset_config, 'train'), dataset_config,
                           'train')
  stream = stream.shuffle(seed=seed).repeat()
  sampling = patch_sampling(dataset_config)
  if sampling is not None:
    stream = stream.random_map(
        functools.partial(patches.sample_patch, sampling=sampling), seed=seed)
  host_batches = stream.batch(batch_size, drop_remainder=True)[
      process_index::process_count]
  return iter(host_batches[start_step:].to_iter_dataset(
      _read_options(dataset_config)))


def _process_share(dataset_config: ml_collections.ConfigDict,
                   split: str) -> grain.MapDataset:
  """Every process_count-th example of `split`, from this process's index."""
  return _source(dataset_config, split)[jax.process_index()::jax.process_count()]


def examples(dataset_config: ml_collections.ConfigDict, split: str
             ) -> Iterator[dict[str, np.ndarray]]:
  """This process's share of `split`, one example at a time, in order (for
  whole images of their own sizes, which do not batch)."""
  return iter(_process_share(dataset_config, split).to_iter_dataset(
      _read_options(dataset_config)))


def patch_examples(dataset_config: ml_collections.ConfigDict, split: str,
                   n: int, seed: int = 0) -> Batch:
  """The first `n` examples of `split`, each cut to a random training patch,
  as one batch (for previews of what training sees)."""
  sampling = patch_sampling(dataset_config)
  source = _source(dataset_config, split)
  patches_of_split = source[:min(n, len(source))].random_map(
      functools.partial(patches.sample_patch, sampling=sampling), seed=seed)
  return next(iter(patches_of_split.batch(n)))


def _pad(batch: Batch, size: int) -> Batch:
  n = len(batch['valid'])
  return {k: np.concatenate([v, np.zeros((size - n,) + v.shape[1:], v.dtype)])
          for k, v in batch.items()}


def eval_batches(dataset_config: ml_collections.ConfigDict, split: str,
                 batch_size: int) -> Iterator[Batch]:
  """One pass over `split` in order, in full batches of this process's
  `batch_size`; padding examples have valid == False. Every process yields the
  same number of batches, as the jitted step over all devices needs."""
  source = _process_share(dataset_config, split)
  split_size = _builder(dataset_config).info.splits[split].num_examples
  n_batches = math.ceil(math.ceil(split_size / jax.process_count()) / batch_size)
  dataset = source.map(lambda ex: {**ex, 'valid': np.bool_(True)}).batch(batch_size)
  last = None
  for last in dataset.to_iter_dataset(_read_options(dataset_config)):
    n_batches -= 1
    yield _pad(last, batch_size)
  for _ in range(n_batches):  # this process ran out before the others
    yield _pad({k: v[:0] for k, v in last.items()}, batch_size)
