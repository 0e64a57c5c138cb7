"""UNet 3+ (Huang et al. 2020) with full-scale deep supervision and the
classification-guided module, at the default U-Net's seed size (the paper's
widths: --config.model.base_filters=64, branches of 64 channels).

python -m unetjax.main --config=configs/unet3p.py --workdir=runs/unet3p
"""

from configs import default


def get_config():
  config = default.get_config()
  model = config.model
  model.name = 'unet3p'
  model.cat_filters = 0  # channels of each full-scale branch; 0 = base_filters
  # One 3x3 head per decoder stage and the bottleneck, resized to the input;
  # training averages their losses (losses.deep_supervision_loss).
  model.deep_supervision = True
  # Predicts from the bottleneck whether an image holds any foreground
  # (trained on labels taken from the masks); evaluation blanks the
  # segmentation of images it calls empty.
  model.classification_guided = True
  model.upsample = 'bilinear'  # the paper's; 'nearest' also works
  return config
