"""ResNet-18 image classifier (configs/classify.py) on your own folder of
images, one sub-folder per class.

python -m unetjax.main --config=configs/class_folder.py --workdir=runs/mine_classify \
  --config.dataset.manual_dir=/path/to/root --config.model.n_classes=4

root/<class name>/<image> (or root/train/<class name>/..., validation/,
test/); see unetjax/data/builders/image_class_folder.py. A wrong
n_classes stops with a message naming the number of class folders.
"""

import ml_collections

from configs import classify


def get_config():
  config = classify.get_config()
  config.dataset.name = 'image_class_folder'
  config.dataset.folder = ml_collections.ConfigDict()
  config.dataset.folder.image_size = 128  # square side after resizing
  config.dataset.folder.n_channels = 3  # 1 = greyscale, 3 = RGB
  config.dataset.folder.split_fractions = (0.8, 0.1, 0.1)  # per class: train, val, test
  config.dataset.folder.split_seed = 0
  # Images of more than 8 bits (16-bit, float): (low, high) values shown as
  # black and white; () = the 16-bit range 0..65535, or 0..1 for float images.
  config.dataset.folder.intensity_window = ()
  config.model.n_classes = 2  # the number of class folders
  config.batch_size = 16
  config.eval_batch_size = 32
  return config
