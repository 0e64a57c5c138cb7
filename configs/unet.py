"""U-Net (Ronneberger et al. 2015) at seed size: the default config, by name.

python -m unetjax.main --config=configs/unet.py --workdir=runs/unet
"""

from configs import default


def get_config():
  return default.get_config()
