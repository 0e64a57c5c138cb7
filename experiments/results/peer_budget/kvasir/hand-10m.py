"""Planned by `python -m unetjax.plan --config=configs/kvasir_native.py --budget=10m` on 1 cpu device(s): predicted wall time of `python -m unetjax.main` 10.0 min
(357 steps, 3.6 epochs). Fingerprint: hand-10m.fingerprint.json. Edit freely; each value says why.
"""

import ml_collections

from configs import default


def get_config():
  config = default.get_config()
  # from configs/kvasir_native.py
  config.augment.flip_horizontal_prob = 0.5
  # from configs/kvasir_native.py
  config.augment.flip_vertical_prob = 0.5
  # from configs/kvasir_native.py
  config.dataset.manual_dir = '../shared/data/kvasir_seg'
  # from configs/kvasir_native.py
  config.dataset.name = 'kvasir_seg/256px'
  # from configs/kvasir_native.py
  config.eval_batch_size = 16
  # from configs/kvasir_native.py
  config.model.base_filters = 8
  # from configs/kvasir_native.py
  config.model.dropout_rates = (0.0, 0.0, 0.0, 0.0, 0.0)
  # from configs/kvasir_native.py
  config.optimizer.schedule = 'poly'
  # from configs/kvasir_native.py
  config.optimizer.warmup_steps = 100
  # from configs/kvasir_native.py
  config.batch_size = 8
  # 10 min = start 18 s + steps x 1.387 s + 5 validations (~12 s) + final 25 s
  config.num_train_steps = 357
  # 5 validations, <= 10% of the budget
  config.eval_every_steps = 72
  # with each validation
  config.checkpoint_every_steps = 72
  # a few per validation
  config.log_every_steps = 18
  return config
