"""Planned by `python -m unetjax.plan --config=configs/membranes_native.py --budget=10m` on 1 cpu device(s): predicted wall time of `python -m unetjax.main` 10.0 min
(565 steps, 56.5 epochs). Fingerprint: hand-10m.fingerprint.json. Edit freely; each value says why.
"""

import ml_collections

from configs import default


def get_config():
  config = default.get_config()
  # from configs/membranes_native.py
  config.augment.brightness = 0.1
  # from configs/membranes_native.py
  config.augment.brightness_prob = 0.3
  # from configs/membranes_native.py
  config.augment.contrast_prob = 0.3
  # from configs/membranes_native.py
  config.augment.contrast_range = (0.8, 1.2)
  # from configs/membranes_native.py
  config.augment.elastic_alpha = 6.0
  # from configs/membranes_native.py
  config.augment.elastic_prob = 0.5
  # from configs/membranes_native.py
  config.augment.elastic_sigma = 32.0
  # from configs/membranes_native.py
  config.augment.flip_horizontal_prob = 0.5
  # from configs/membranes_native.py
  config.augment.flip_vertical_prob = 0.5
  # from configs/membranes_native.py
  config.augment.rot90_prob = 0.75
  # from configs/membranes_native.py
  config.augment.rotate_degrees = 15.0
  # from configs/membranes_native.py
  config.augment.rotate_prob = 0.3
  # from configs/membranes_native.py
  config.dataset.foreground_oversampling = 0.0
  # from configs/membranes_native.py
  config.dataset.manual_dir = '../shared/data/isbi2012_em'
  # from configs/membranes_native.py
  config.dataset.name = 'isbi2012_em/512px'
  # from configs/membranes_native.py
  config.dataset.patch_size = 256
  # from configs/membranes_native.py
  config.eval_batch_size = 4
  # from configs/membranes_native.py
  config.optimizer.schedule = 'poly'
  # from configs/membranes_native.py
  config.optimizer.warmup_steps = 100
  # from configs/membranes_native.py
  config.batch_size = 2
  # 10 min = start 24 s + steps x 0.919 s + 10 validations (~4 s) + final 12 s
  config.num_train_steps = 565
  # 10 validations, <= 10% of the budget
  config.eval_every_steps = 57
  # with each validation
  config.checkpoint_every_steps = 57
  # a few per validation
  config.log_every_steps = 14
  return config
