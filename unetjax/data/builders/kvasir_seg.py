"""`kvasir_seg`: gastrointestinal polyps in colonoscopy frames (Kvasir-SEG)."""

import os

from unetjax.data.builders import image_masks


class KvasirSeg(image_masks.ImageMaskBuilder):
  """Kvasir-SEG, split 80/10/10 with a fixed seed, as in the ResUNet++ paper
  (which drew its own split; the file names of ours are in the metadata).
  Masks are JPEG in the official download, so they are thresholded at 127."""

  name = 'kvasir_seg'

  BUILDER_CONFIGS = image_masks.sized_configs((256, 128, 64), 'RGB frames',
                                               native=True)
  CLASS_NAMES = ('background', 'polyp')
  MASK_THRESHOLD = 127
  HOMEPAGE = 'https://datasets.simula.no/kvasir-seg/'
  DESCRIPTION = ('Kvasir-SEG: 1000 polyp images from colonoscopies with '
                 'manual masks (Jha et al. 2020).')
  CITATION = '''@inproceedings{jha2020kvasir,
  title={Kvasir-SEG: A Segmented Polyp Dataset},
  author={Jha, Debesh and Smedsrud, Pia H and Riegler, Michael A and
          Halvorsen, P{\\aa}l and de Lange, Thomas and Johansen, Dag and
          Johansen, H{\\aa}vard D},
  booktitle={MultiMedia Modeling (MMM)}, pages={451--462}, year={2020}}'''
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Unpack kvasir-seg.zip so that <manual_dir>/images/*.jpg and '
      '<manual_dir>/masks/*.jpg hold the images and masks (same file names).')

  def _find_pairs(self, manual_dir):
    pairs = image_masks.pairs_in_folders(os.path.join(manual_dir, 'images'),
                                         os.path.join(manual_dir, 'masks'))
    return image_masks.seeded_split(
        pairs, {'train': 0.8, 'validation': 0.1, 'test': 0.1}, seed=0)
