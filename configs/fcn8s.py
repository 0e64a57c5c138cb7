"""FCN-8s-style baseline (Long et al. 2015): scores from strides 32, 16 and
8 fused, no decoder; at seed size (widths 16..128).

python -m unetjax.main --config=configs/fcn8s.py --workdir=runs/fcn8s
"""

from configs import default


def get_config():
  config = default.get_config()
  config.model.name = 'fcn8s'
  config.model.depth = 5  # 64x64 images -> 2x2 at the fc6/fc7 block
  config.model.dropout_rates = (0.0,) * 5 + (0.5,)  # FCN: dropout 0.5 at fc6/fc7
  return config
