"""U-Net on your own folder of images and masks.

python -m unetjax.main --config=configs/folder.py --workdir=runs/mine \
  --config.dataset.manual_dir=/path/to/data   # with images/ and masks/

Masks matched to images by file stem; see unetjax/data/builders/image_folder.py.
"""

import ml_collections

from configs import default


def get_config():
  config = default.get_config()
  config.dataset.name = 'image_folder'
  config.dataset.folder = ml_collections.ConfigDict()
  config.dataset.folder.image_size = 256  # square side after resizing
  config.dataset.folder.n_channels = 3  # 1 = greyscale, 3 = RGB
  config.dataset.folder.masks_dir = 'masks'  # '' = the instance masks make the masks
  config.dataset.folder.mask_suffix = ''  # mask stem = image stem + suffix
  # Instance segmentation: the folder of instance masks (one id per object,
  # 0 = background, 16-bit PNG or TIFF), named as the masks; '' = none.
  config.dataset.folder.instances_dir = ''
  config.dataset.folder.mask_values = (0, 255)  # pixel value of each class
  # Colour masks: the (R, G, B) of each class, background first, e.g.
  # ((0, 0, 0), (0, 255, 0)); () = grey masks read by mask_values.
  config.dataset.folder.mask_colors = ()
  config.dataset.folder.mask_threshold = -1  # >= 0: binary, value > threshold
  config.dataset.folder.class_names = ('background', 'foreground')
  config.dataset.folder.split_fractions = (0.8, 0.1, 0.1)  # train, val, test
  config.dataset.folder.split_seed = 0
  # Images of more than 8 bits (16-bit, float): (low, high) values shown as
  # black and white; () = the 16-bit range 0..65535, or 0..1 for float images.
  config.dataset.folder.intensity_window = ()
  config.batch_size = 8
  config.eval_batch_size = 8
  return config
