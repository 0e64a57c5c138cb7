"""UNet++ (Zhou et al. 2018) with deep supervision, at the default U-Net's
seed size (the paper's widths: --config.model.base_filters=32).

python -m unetjax.main --config=configs/unet_pp.py --workdir=runs/unet_pp
"""

from configs import default


def get_config():
  config = default.get_config()
  config.model.name = 'unet_pp'
  # One head per X^{0,j}; training averages their losses (losses.deep_supervision_loss).
  config.model.deep_supervision = True
  # Evaluation output: 0 = mean of the heads' logits; L = head L alone, the
  # network pruned to depth L (faster inference).
  config.model.eval_head = 0
  return config
