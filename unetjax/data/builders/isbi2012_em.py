"""`isbi2012_em`: neuronal membranes in serial-section TEM (ISBI 2012)."""

import os

import numpy as np

from unetjax.data.builders import image_masks


class Isbi2012Em(image_masks.ImageMaskBuilder):
  """The 30 labelled training slices of the ISBI 2012 EM segmentation
  challenge, the data of the original U-Net paper. The challenge's test
  labels were never released, so the slices are split 20/5/5 with a fixed
  seed (the file names of each split are in the dataset's metadata)."""

  name = 'isbi2012_em'

  BUILDER_CONFIGS = image_masks.sized_configs(
      (512, 256, 128), '512x512 greyscale slices') + [
          image_masks.ImageMaskConfig(
              name='instances', image_size=512, instances=True,
              description=('512x512 greyscale slices with the regions between '
                           'membranes as instances (one id per 4-connected '
                           'interior region) and the border weight map.'))]
  # The objects (neurite cross-sections) are the interior regions that the
  # membranes part, as the challenge's Rand error reads a membrane map.
  OBJECTS = 'background'
  CLASS_NAMES = ('interior', 'membrane')
  N_CHANNELS = 1
  HOMEPAGE = 'https://imagej.net/events/isbi-2012-segmentation-challenge'
  DESCRIPTION = ('ISBI 2012 EM segmentation challenge: 30 slices of the '
                 'Drosophila first-instar larva ventral nerve cord (Cardona '
                 'et al. 2010), membranes labelled.')
  CITATION = '''@article{arganda2015crowdsourcing,
  title={Crowdsourcing the creation of image segmentation algorithms for
         connectomics},
  author={Arganda-Carreras, Ignacio and Turaga, Srinivas C and others},
  journal={Frontiers in Neuroanatomy}, volume={9}, pages={142}, year={2015}}'''
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Put the 30 training slices in <manual_dir>/images/NN.png and their '
      'labels (0 = membrane, 255 = interior) in <manual_dir>/masks/NN.png, as '
      'in the PNG export of the challenge data (e.g. zhixuhao/unet, '
      'data/membrane/train/{image,label}).')

  def _find_pairs(self, manual_dir):
    pairs = image_masks.pairs_in_folders(os.path.join(manual_dir, 'images'),
                                         os.path.join(manual_dir, 'masks'))
    return image_masks.seeded_split(
        pairs, {'train': 20 / 30, 'validation': 5 / 30, 'test': 5 / 30}, seed=0)

  def _mask_to_classes(self, values, path):
    # Files mark the cell interior with 255; the class to find is membrane.
    return (1 - image_masks.binary_mask(values, path, threshold=127)).astype(np.uint8)
