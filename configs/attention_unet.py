"""Attention U-Net (Oktay et al. 2018): the default U-Net with attention
gates on its skip connections.

python -m unetjax.main --config=configs/attention_unet.py --workdir=runs/attention_unet
"""

from configs import default


def get_config():
  config = default.get_config()
  config.model.name = 'attention_unet'
  return config
