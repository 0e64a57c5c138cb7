"""ResNet-18 image classifier (He et al. 2016), built from the same residual
blocks as the segmentation models.

It maps images to class logits, so `unetjax.main` cannot train it: the
training loop and datasets are for segmentation, and `--config` with this
file stops with an error saying so. Build it in Python instead:

  from configs import resnet18
  from unetjax import models
  model = models.get_classifier(resnet18.get_config().model)

`num_layers = 34` or `50` gives ResNet-34 or ResNet-50; `model.pretrained`
loads torchvision's ImageNet weights (configs/resnet_unet.py says how).
"""

import ml_collections

from configs import default


def get_config():
  config = default.get_config()
  config.model = ml_collections.ConfigDict()
  config.model.name = 'resnet'  # see unetjax.models.CLASSIFIERS
  config.model.n_classes = 10
  config.model.num_layers = 18  # 18, 34 or 50
  config.model.base_filters = 64  # stem and first-stage channels
  config.model.norm = 'batch'  # 'batch', 'group' or 'none'
  config.model.pretrained = ''  # a torchvision ResNet state_dict (.pth)
  config.model.freeze_encoder_steps = 0  # steps the loaded encoder stays fixed
  return config
