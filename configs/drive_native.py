"""U-Net on DRIVE retinal vessels at their own resolution (565x584): trained
on random patches, scored on whole images inside the field of view. The
best recipe unetjax knows for a 2-core CPU hour; the study's `long`
protocol runs it (experiments/study.py).

python -m unetjax.main --config=configs/drive_native.py --workdir=runs/drive_native \
  --config.dataset.manual_dir=../shared/data/drive --cpu_devices=2
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset.name = 'drive/native'
  # Patches as in nnU-Net (random crops, a third centred on a vessel); vessels
  # are 1-10 px wide, so no downscaling: the R2U-Net paper trains DRIVE on
  # 48x48 patches, 128x128 gives the network more of the vessel tree.
  config.dataset.patch_size = 128
  config.batch_size = 8
  config.eval_batch_size = 16  # windows per forward pass in evaluation
  # Fundus images come in any orientation and illumination: flips, quarter
  # turns and small rotations, brightness, contrast and gamma.
  augment = config.augment
  augment.flip_horizontal_prob = augment.flip_vertical_prob = 0.5
  augment.rot90_prob = 0.75
  augment.rotate_prob = 0.3
  augment.rotate_degrees = 15.0
  augment.brightness_prob = augment.contrast_prob = 0.3
  augment.brightness = 0.1
  augment.contrast_range = (0.8, 1.2)
  augment.gamma_prob = 0.3
  augment.gamma_range = (0.7, 1.5)  # nnU-Net's range
  # nnU-Net's polynomial decay to 0 at the last step.
  config.optimizer.schedule = 'poly'
  config.optimizer.warmup_steps = 100
  config.num_train_steps = 3000
  config.eval_every_steps = 250
  config.checkpoint_every_steps = 250
  config.log_every_steps = 50
  return config
