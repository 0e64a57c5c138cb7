"""The base U-Net with a typical medical-imaging augmentation set: flips and
quarter turns (all 8 orientations), small rotations and zooms, a mild
elastic warp, and brightness, contrast, gamma and noise.

python -m unetjax.augment_grid --config=configs/augmented.py --out=augment_grid.png
shows what it does to the validation images.
"""

from configs import default


def get_config():
  config = default.get_config()
  augment = config.augment
  augment.flip_horizontal_prob = 0.5
  augment.flip_vertical_prob = 0.5
  augment.rot90_prob = 0.75  # with the flips: each of the 8 orientations 1/8
  augment.rotate_prob = 0.5
  augment.rotate_degrees = 15.0
  augment.scale_prob = 0.5
  augment.scale_range = (0.9, 1.1)
  # Sized for the 64x64 synthetic cells: ~1.5 px warps over ~6 px.
  augment.elastic_prob = 0.3
  augment.elastic_alpha = 1.5
  augment.elastic_sigma = 6.0
  augment.brightness_prob = 0.5
  augment.brightness = 0.1
  augment.contrast_prob = 0.5
  augment.contrast_range = (0.8, 1.2)
  augment.gamma_prob = 0.3
  augment.gamma_range = (0.7, 1.5)  # nnU-Net's range
  augment.noise_prob = 0.3
  augment.noise_std = 0.03
  return config
