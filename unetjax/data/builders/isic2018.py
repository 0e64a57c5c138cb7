"""`isic2018_task1`: skin lesion boundaries in dermoscopy images (ISIC 2018)."""

import os

from unetjax.data.builders import image_masks

_FOLDERS = {  # split: (images, masks) as named in the official downloads
    'train': ('ISIC2018_Task1-2_Training_Input',
              'ISIC2018_Task1_Training_GroundTruth'),
    'validation': ('ISIC2018_Task1-2_Validation_Input',
                   'ISIC2018_Task1_Validation_GroundTruth'),
    'test': ('ISIC2018_Task1-2_Test_Input', 'ISIC2018_Task1_Test_GroundTruth'),
}


class Isic2018Task1(image_masks.ImageMaskBuilder):
  """ISIC 2018 task 1 (lesion segmentation). The official training,
  validation and test sets are used where their folders are present; a
  missing validation or test set is drawn from the training set (10% each,
  fixed seed)."""

  name = 'isic2018_task1'

  BUILDER_CONFIGS = image_masks.sized_configs((256, 128), 'RGB dermoscopy images')
  CLASS_NAMES = ('background', 'lesion')
  HOMEPAGE = 'https://challenge.isic-archive.com/data/#2018'
  DESCRIPTION = 'ISIC 2018 challenge task 1: lesion boundary segmentation.'
  CITATION = '''@article{codella2019skin,
  title={Skin Lesion Analysis Toward Melanoma Detection 2018: A Challenge
         Hosted by the International Skin Imaging Collaboration (ISIC)},
  author={Codella, Noel and Rotemberg, Veronica and Tschandl, Philipp and
          others},
  journal={arXiv preprint arXiv:1902.03368}, year={2019}}'''
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Unpack the official zips into <manual_dir>, giving ' + ', '.join(
          f'{images}/ and {masks}/' for images, masks in _FOLDERS.values())
      + ' (the training pair is required).')

  def _find_pairs(self, manual_dir):
    found = {}
    for split, (images, masks) in _FOLDERS.items():
      if split == 'train' or os.path.isdir(os.path.join(manual_dir, images)):
        found[split] = image_masks.pairs_in_folders(
            os.path.join(manual_dir, images), os.path.join(manual_dir, masks),
            mask_suffix='_segmentation')
    missing = {s: 0.1 for s in ('validation', 'test') if s not in found}
    if missing:
      drawn = image_masks.seeded_split(
          found['train'], {'train': 1 - sum(missing.values()), **missing}, seed=0)
      found.update(drawn)
    return found
