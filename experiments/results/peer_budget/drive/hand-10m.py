"""Planned by `python -m unetjax.plan --config=configs/drive_native.py --budget=10m` on 1 cpu device(s): predicted wall time of `python -m unetjax.main` 10.0 min
(362 steps, 181.0 epochs). Fingerprint: hand-10m.fingerprint.json. Edit freely; each value says why.
"""

import ml_collections

from configs import default


def get_config():
  config = default.get_config()
  # from configs/drive_native.py
  config.augment.brightness = 0.1
  # from configs/drive_native.py
  config.augment.brightness_prob = 0.3
  # from configs/drive_native.py
  config.augment.contrast_prob = 0.3
  # from configs/drive_native.py
  config.augment.contrast_range = (0.8, 1.2)
  # from configs/drive_native.py
  config.augment.flip_horizontal_prob = 0.5
  # from configs/drive_native.py
  config.augment.flip_vertical_prob = 0.5
  # from configs/drive_native.py
  config.augment.gamma_prob = 0.3
  # from configs/drive_native.py
  config.augment.gamma_range = (0.7, 1.5)
  # from configs/drive_native.py
  config.augment.rot90_prob = 0.75
  # from configs/drive_native.py
  config.augment.rotate_degrees = 15.0
  # from configs/drive_native.py
  config.augment.rotate_prob = 0.3
  # from configs/drive_native.py
  config.dataset.manual_dir = '../shared/data/drive'
  # from configs/drive_native.py
  config.dataset.name = 'drive/native'
  # from configs/drive_native.py
  config.dataset.patch_size = 128
  # from configs/drive_native.py
  config.eval_batch_size = 16
  # from configs/drive_native.py
  config.optimizer.schedule = 'poly'
  # from configs/drive_native.py
  config.optimizer.warmup_steps = 100
  # from configs/drive_native.py
  config.batch_size = 8
  # 10 min = start 40 s + steps x 1.196 s + 5 validations (~11 s) + final 66 s
  config.num_train_steps = 362
  # 5 validations, <= 10% of the budget
  config.eval_every_steps = 73
  # with each validation
  config.checkpoint_every_steps = 73
  # a few per validation
  config.log_every_steps = 18
  return config
