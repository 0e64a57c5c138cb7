"""Planned by `python -m unetjax.plan --config=configs/drive_native.py --budget=10m` on 1 cpu device(s): predicted wall time of `python -m unetjax.main` 10.0 min
(564 steps, 26.3 epochs). Fingerprint: planned-10m.fingerprint.json. Edit freely; each value says why.
"""

from configs import default


def get_config():
  config = default.get_config()
  # from configs/drive_native.py
  config.augment.brightness = 0.1
  # from configs/drive_native.py
  config.augment.contrast_range = (0.8, 1.2)
  # from configs/drive_native.py
  config.augment.gamma_range = (0.7, 1.5)
  # from configs/drive_native.py
  config.augment.rotate_degrees = 15.0
  # from configs/drive_native.py
  config.dataset.manual_dir = '../shared/data/drive'
  # from configs/drive_native.py
  config.dataset.name = 'drive/native'
  # 2 classes: one sigmoid
  config.model.n_classes = 1
  # median image 584x565 over the 256x256 px cap of a cpu: patches of 256x240, whole images scored by a sliding window
  config.dataset.patch_size = (256, 240)
  # 240 px edge / 2**4 = 15 px at the bottleneck (nnU-Net pools to 4-8 px; at most 4)
  config.model.depth = 4
  # 16 training images of 584x565: 5% of their pixels hold 4 256x240 inputs (nnU-Net's cap)
  config.batch_size = 4
  # instance norm: group norm gained 0.034 Dice per image over batch norm on Kvasir-SEG (docs/experiments.md, the peer factor table); MONAI's and nnU-Net's default
  config.model.norm = 'instance'
  # foreground is 12.4% of the pixels: a third of the patches centred on it (nnU-Net)
  config.dataset.foreground_oversampling = 0.333333
  # rarest class 12.4% of the pixels: Dice + CE as is
  config.loss.class_weights = ()
  # no dropout (nnU-Net; kvasir_native trains better without it at width 8)
  config.model.dropout_rates = (0.0,)
  # Dice + cross-entropy (nnU-Net, MONAI DiceCE)
  config.loss.name = 'cross_entropy_dice'
  # Adam (MONAI's peer setting)
  config.optimizer.name = 'adam'
  # 4e-3 constant, scored on the average: over 2e-3 +0.0018 Dice on DRIVE, +0.0016 on ISBI 2012, four seeds each (docs/experiments.md, the weights' average)
  config.optimizer.learning_rate = 0.004
  # constant: poly decay to 0 lost 0.008 Dice on DRIVE (docs/experiments.md)
  config.optimizer.schedule = 'constant'
  # no warm-up with a constant rate
  config.optimizer.warmup_steps = 0
  # scored on the weights' moving average (~100 steps): +0.004 and +0.003 test Dice on DRIVE, same training (docs/experiments.md, the weights' average)
  config.optimizer.ema_decay = 0.99
  # half-window overlap (nnU-Net)
  config.dataset.eval_overlap = 0.5
  # best checkpoint by validation Dice
  config.best_metric = 'dice'
  # 26 epochs in 10 min (timed widths 8: 0.81 s/step); largest reaching 30 epochs and 3000 steps, else cheapest
  config.model.base_filters = 8
  # 10 min = start 22 s + steps x 0.812 s + 2 validations (~12 s) + final 89 s
  config.num_train_steps = 564
  # 2 validations, <= 5% of the budget
  config.eval_every_steps = 282
  # with each validation
  config.checkpoint_every_steps = 282
  # a few per validation
  config.log_every_steps = 50
  # twice the batch (no gradients to keep)
  config.eval_batch_size = 8
  # mirror: nnU-Net, and +0.06 Dice on Kvasir-SEG over 32 epochs
  config.augment.flip_horizontal_prob = 0.5
  # mirror (nnU-Net)
  config.augment.flip_vertical_prob = 0.5
  # scored on the mean of each image's four flips (nnU-Net's test-time mirroring): +0.003 test Dice on DRIVE, +0.002 on ISBI 2012, +0.011 on Kvasir-SEG, same checkpoints (docs/experiments.md, test-time mirroring)
  config.eval_mirror = True
  # 26 epochs < 100: flips only
  config.augment.rot90_prob = 0.0
  # 26 epochs < 100: flips only
  config.augment.rotate_prob = 0.0
  # 26 epochs < 100: flips only
  config.augment.scale_prob = 0.0
  # 26 epochs < 100: flips only
  config.augment.translate_prob = 0.0
  # 26 epochs < 100: flips only
  config.augment.elastic_prob = 0.0
  # 26 epochs < 100: flips only
  config.augment.brightness_prob = 0.0
  # 26 epochs < 100: flips only
  config.augment.contrast_prob = 0.0
  # 26 epochs < 100: flips only
  config.augment.gamma_prob = 0.0
  # 26 epochs < 100: flips only
  config.augment.blur_prob = 0.0
  # 26 epochs < 100: flips only
  config.augment.noise_prob = 0.0
  return config
