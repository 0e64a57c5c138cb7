"""U-Net on Kvasir-SEG polyps at 256x256, the resolution of the ResUNet++
paper (and of the copy in ../shared/data): whole images, the study's `long`
protocol (experiments/study.py).

python -m unetjax.main --config=configs/kvasir_native.py --workdir=runs/kvasir_native \
  --config.dataset.manual_dir=../shared/data/kvasir_seg --cpu_devices=2
"""

from configs import default


def get_config():
  config = default.get_config()
  # Polyps fill a large part of the frame: whole images, no patches.
  config.dataset.name = 'kvasir_seg/256px'
  config.batch_size = 8
  config.eval_batch_size = 16
  augment = config.augment
  # Jha et al. 2019 (ResUNet++): flips, rotations, zooms, brightness.
  augment.flip_horizontal_prob = augment.flip_vertical_prob = 0.5
  augment.rot90_prob = 0.75
  augment.rotate_prob = 0.3
  augment.rotate_degrees = 15.0
  augment.scale_prob = 0.3
  augment.scale_range = (0.9, 1.2)
  augment.brightness_prob = augment.contrast_prob = 0.3
  augment.brightness = 0.1
  augment.contrast_range = (0.8, 1.2)
  config.optimizer.schedule = 'poly'
  config.optimizer.warmup_steps = 100
  config.num_train_steps = 1000
  config.eval_every_steps = 200
  config.checkpoint_every_steps = 200
  config.log_every_steps = 25
  return config
