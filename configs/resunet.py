"""Deep residual U-Net (Zhang et al. 2018) at seed size: widths 16..128
(the paper's 64..512: --config.model.base_filters=64), no dropout as in the
paper, parameter-free upsampling.

python -m unetjax.main --config=configs/resunet.py --workdir=runs/resunet
"""

from configs import default


def get_config():
  config = default.get_config()
  config.model.name = 'resunet'
  config.model.base_filters = 16
  config.model.depth = 3  # two strided units and the strided bridge: 1/8
  config.model.dropout_rates = (0.0,) * 4  # levels 0-2 and the bridge
  config.model.upsample = 'bilinear'
  return config
