"""ResUNet++ (Jha et al. 2019) with the official code's widths 16..256.

python -m unetjax.main --config=configs/resunet_pp.py --workdir=runs/resunet_pp
"""

from configs import default


def get_config():
  config = default.get_config()
  config.model.name = 'resunet_pp'
  config.model.base_filters = 16
  config.model.depth = 3  # three strided units: 64x64 images -> 8x8 bridge
  config.model.dropout_rates = (0.0,) * 4  # the official code has none
  config.model.upsample = 'bilinear'
  # ASPP dilations (6, 12, 18) * scale; on the 8x8 bridge of 64x64 images only
  # the centre taps of the 12 and 18 branches see the feature map.
  config.model.aspp_rate_scale = 1
  return config
