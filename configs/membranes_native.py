"""U-Net on the ISBI 2012 EM membranes at their own 512x512 resolution, with
the U-Net paper's elastic deformations: trained on random 256x256 patches,
scored on whole slices. The study's `long` protocol runs it
(experiments/study.py).

python -m unetjax.main --config=configs/membranes_native.py \
  --workdir=runs/membranes_native \
  --config.dataset.manual_dir=../shared/data/isbi2012_em --cpu_devices=2
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset.name = 'isbi2012_em/512px'  # the slices' own size
  config.dataset.patch_size = 256
  # Membranes are everywhere: every patch holds some, no need to oversample.
  config.dataset.foreground_oversampling = 0.0
  config.batch_size = 2
  config.eval_batch_size = 4
  augment = config.augment
  # Ronneberger et al. 2015: shifts, rotations and, above all, smooth elastic
  # deformations (they drew ~10 px std displacements on a 3x3 grid over the
  # slice; here ~6 px std, smooth over ~32 px of the 256 px patch).
  augment.flip_horizontal_prob = augment.flip_vertical_prob = 0.5
  augment.rot90_prob = 0.75
  augment.rotate_prob = 0.3
  augment.rotate_degrees = 15.0
  augment.elastic_prob = 0.5
  augment.elastic_alpha = 6.0
  augment.elastic_sigma = 32.0
  augment.brightness_prob = augment.contrast_prob = 0.3
  augment.brightness = 0.1
  augment.contrast_range = (0.8, 1.2)
  config.optimizer.schedule = 'poly'
  config.optimizer.warmup_steps = 100
  config.num_train_steps = 3000
  config.eval_every_steps = 250
  config.checkpoint_every_steps = 250
  config.log_every_steps = 50
  return config
