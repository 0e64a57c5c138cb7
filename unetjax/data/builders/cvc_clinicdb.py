"""`cvc_clinicdb`: polyps in colonoscopy video frames (CVC-ClinicDB)."""

import os

from unetjax.data.builders import image_masks
from unetjax.errors import DataError


class CvcClinicDb(image_masks.ImageMaskBuilder):
  """CVC-ClinicDB's 612 frames, split 80/10/10 with a fixed seed."""

  name = 'cvc_clinicdb'

  BUILDER_CONFIGS = image_masks.sized_configs((256, 128), '384x288 RGB frames',
                                               native=True)
  CLASS_NAMES = ('background', 'polyp')
  MASK_THRESHOLD = 127
  HOMEPAGE = 'https://polyp.grand-challenge.org/CVCClinicDB/'
  DESCRIPTION = ('CVC-ClinicDB: 612 frames from 31 colonoscopy sequences with '
                 'polyp masks (Bernal et al. 2015).')
  CITATION = '''@article{bernal2015wm,
  title={WM-DOVA maps for accurate polyp highlighting in colonoscopy:
         Validation vs. saliency maps from physicians},
  author={Bernal, Jorge and S{\\'a}nchez, F Javier and Fern{\\'a}ndez-Esparrach,
          Gloria and Gil, Debora and Rodr{\\'i}guez, Cristina and Vilari{\\~n}o,
          Fernando},
  journal={Computerized Medical Imaging and Graphics}, volume={43},
  pages={99--111}, year={2015}}'''
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Unpack the download so that <manual_dir> (or one folder inside it, such '
      'as TIF/ or PNG/) holds "Original/" with the frames and "Ground Truth/" '
      'with the masks, named 1.tif ... 612.tif (or .png).')

  def _find_pairs(self, manual_dir):
    for root in (manual_dir, *sorted(
        os.path.join(manual_dir, d) for d in os.listdir(manual_dir))):
      if os.path.isdir(os.path.join(root, 'Original')):
        pairs = image_masks.pairs_in_folders(os.path.join(root, 'Original'),
                                             os.path.join(root, 'Ground Truth'))
        return image_masks.seeded_split(
            pairs, {'train': 0.8, 'validation': 0.1, 'test': 0.1}, seed=0)
    raise DataError(f'No "Original/" folder in {manual_dir} or its subfolders; '
                    f'{self.MANUAL_DOWNLOAD_INSTRUCTIONS}')
