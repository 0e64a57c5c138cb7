"""`drive`: retinal vessels in colour fundus photographs (DRIVE)."""

import os

from unetjax.data.builders import image_masks
from unetjax.errors import DataError


class Drive(image_masks.ImageMaskBuilder):
  """DRIVE with its official split (images 21-40 train, 01-20 test); 4 of the
  training images, drawn with a fixed seed, are the validation split. The
  field-of-view masks are the `roi` feature: metrics count only those pixels."""

  name = 'drive'

  BUILDER_CONFIGS = image_masks.sized_configs(
      (512, 256, 128), '565x584 RGB fundus images', native=True)
  CLASS_NAMES = ('background', 'vessel')
  HAS_ROI = True
  MASK_THRESHOLD = 127
  HOMEPAGE = 'https://drive.grand-challenge.org/'
  DESCRIPTION = ('DRIVE: 40 colour fundus images with manual vessel '
                 'annotations and field-of-view masks (Staal et al. 2004).')
  CITATION = '''@article{staal2004ridge,
  title={Ridge-based vessel segmentation in color images of the retina},
  author={Staal, Joes and Abr{\\`a}moff, Michael D and Niemeijer, Meindert and
          Viergever, Max A and van Ginneken, Bram},
  journal={IEEE Transactions on Medical Imaging}, volume={23}, number={4},
  pages={501--509}, year={2004}}'''
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Put the images in <manual_dir>/images/NN_{training,test}.tif, the first '
      "observer's annotations in <manual_dir>/masks/NN_manual1.gif and the "
      'field-of-view masks in <manual_dir>/fov_masks/NN_{training,test}_mask.gif.')

  def _find_pairs(self, manual_dir):
    pairs = {'train': [], 'test': []}
    for image in image_masks.list_images(os.path.join(manual_dir, 'images')):
      number, part = image_masks.stem(image).split('_')
      files = [os.path.join(manual_dir, 'masks', f'{number}_manual1.gif'),
               os.path.join(manual_dir, 'fov_masks', f'{number}_{part}_mask.gif')]
      for path in files:
        if not os.path.exists(path):
          raise DataError(f'Missing {path} for image {image}.')
      split = 'train' if part == 'training' else 'test'
      pairs[split].append(image_masks.Pair(number, image, *files))
    splits = image_masks.seeded_split(pairs['train'],
                                      {'train': 0.8, 'validation': 0.2}, seed=0)
    return {**splits, 'test': sorted(pairs['test'], key=lambda p: p.key)}
