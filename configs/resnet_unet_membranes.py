"""U-Net with a ResNet-34 encoder (configs/resnet_unet.py) on the ISBI 2012
EM membranes at 256x256 (configs/membranes.py), from random weights.

python -m unetjax.main --config=configs/resnet_unet_membranes.py \
  --workdir=runs/resnet_unet_membranes \
  --config.dataset.manual_dir=../shared/data/isbi2012_em

Everything but the model is membranes.py's (batch 8, 400 steps), so the
two runs compare the networks.
"""

from configs import membranes
from configs import resnet_unet


def get_config():
  config = membranes.get_config()
  config.model = resnet_unet.get_config().model
  return config
