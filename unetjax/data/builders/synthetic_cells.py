"""`synthetic_cells`: the default dataset, generated offline in seconds."""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from unetjax.data import synthetic

_SPLIT_SIZES = {'train': 2048, 'validation': 256, 'test': 256}
# Seeds per split are disjoint so no example appears in two splits.
_SPLIT_SEED_OFFSETS = {'train': 0, 'validation': 1_000_000, 'test': 2_000_000}


@dataclasses.dataclass(eq=False)
class SyntheticCellsConfig(tfds.core.BuilderConfig):
  image_size: int = 64
  n_channels: int = 1
  with_nuclei: bool = False
  # Image classification: each image's label is the number of nuclei its
  # cells have, one of CELL_CLASSES; no masks.
  classify: bool = False
  # Instance segmentation: examples also hold each cell's id ('instances',
  # 0 = background) and the U-Net paper's border weight map ('weight').
  instances: bool = False

  @property
  def class_names(self) -> tuple[str, ...]:
    if self.classify:
      return CELL_CLASSES
    names = ('background', 'cell', 'nucleus')
    return names if self.with_nuclei else names[:2]


# Image classes of the `classify` config, by nuclei per cell (0, 1, 2).
CELL_CLASSES = ('anucleate', 'mononucleate', 'binucleate')


class SyntheticCells(tfds.core.GeneratorBasedBuilder):
  """Cells with nuclei on a textured, unevenly lit background.

  'binary' labels cell vs background; 'multiclass' labels background, cell
  body and nucleus; 'instances' is 'binary' with each cell's id and the
  border weight map; 'classify' labels each image by the nuclei per cell of
  its cells (none, one or two; a third of the images each). Every example is
  a pure function of its split and index.
  """

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  BUILDER_CONFIGS = [
      SyntheticCellsConfig(
          name='binary', description='64x64 greyscale, cell vs background.'),
      SyntheticCellsConfig(
          name='multiclass', with_nuclei=True,
          description='64x64 greyscale, background / cell body / nucleus.'),
      SyntheticCellsConfig(
          name='binary_128', image_size=128,
          description='128x128 greyscale, cell vs background.'),
      SyntheticCellsConfig(
          name='multiclass_rgb_128', image_size=128, n_channels=3,
          with_nuclei=True,
          description='128x128 RGB, background / cell body / nucleus.'),
      SyntheticCellsConfig(
          name='instances', instances=True,
          description='64x64 greyscale, cell vs background, with one id per '
                      'cell and the border weight map.'),
      SyntheticCellsConfig(
          name='classify', classify=True,
          description='64x64 greyscale images labelled anucleate / '
                      'mononucleate / binucleate by their cells\' nuclei.'),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    shape = (cfg.image_size, cfg.image_size)
    image = tfds.features.Tensor(shape=shape + (cfg.n_channels,), dtype=np.uint8)
    names = ', '.join(f'{i}={n}' for i, n in enumerate(cfg.class_names))
    if cfg.classify:
      features = {'image': image,
                  'label': tfds.features.ClassLabel(names=cfg.class_names)}
      labels = f'Each image is labelled by the nuclei of its cells: {names}.'
    else:
      features = {'image': image,
                  'mask': tfds.features.Tensor(shape=shape, dtype=np.uint8)}
      labels = f'Masks hold class ids: {names}.'
    if cfg.instances:
      features['instances'] = tfds.features.Tensor(shape=shape, dtype=np.uint16)
      features['weight'] = tfds.features.Tensor(shape=shape, dtype=np.float32)
      labels += (' Instances hold one id per cell (0 = background); weight '
                 "is the U-Net paper's border weight map (w0 = 10, sigma = 5).")
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(features),
        supervised_keys=('image', 'label' if cfg.classify else 'mask'),
        metadata=tfds.core.MetadataDict(class_names=list(cfg.class_names)),
        description=(
            'Procedurally generated microscopy-like cells: irregular '
            'touching shapes, bright rims, nuclei, smooth background texture '
            f'and illumination, elastic warp, blur and noise. {labels}'),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    return {split: self._generate_examples(split, size)
            for split, size in _SPLIT_SIZES.items()}

  def _generate_examples(self, split: str, n_examples: int):
    cfg = self.builder_config
    for index in range(n_examples):
      rng = np.random.default_rng(_SPLIT_SEED_OFFSETS[split] + index)
      if cfg.classify:
        label = index % len(CELL_CLASSES)  # nuclei per cell
        image, _ = synthetic.render_cells(rng, cfg.image_size, cfg.n_channels,
                                          nuclei_per_cell=label)
        yield index, {'image': image, 'label': label}
      elif cfg.instances:
        from unetjax import instances  # pylint: disable=import-outside-toplevel (scikit-image, for this config only)
        image, mask, ids = synthetic.render_cells(
            rng, cfg.image_size, cfg.n_channels, with_instances=True)
        yield index, {'image': image, 'mask': mask, 'instances': ids,
                      'weight': instances.border_weight_map(ids)}
      else:
        image, mask = synthetic.render_cells(
            rng, cfg.image_size, cfg.n_channels, cfg.with_nuclei)
        yield index, {'image': image, 'mask': mask}
