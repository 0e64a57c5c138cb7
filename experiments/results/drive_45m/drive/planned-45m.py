"""Planned by `python -m unetjax.plan --config=configs/drive_native.py --budget=45m` on 1 cpu device(s): predicted wall time of `python -m unetjax.main` 45.0 min
(2569 steps, 119.6 epochs). Fingerprint: planned-45m.fingerprint.json. Edit freely; each value says why.
"""

from configs import default


def get_config():
  config = default.get_config()
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
  # 16 training images: 4e-3 over 2e-3 +0.0018 Dice on DRIVE (16), +0.0016 on ISBI 2012 (20), four seeds each (docs/experiments.md, the weights' average); level on 20 of Kvasir-SEG's, one seed
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
  # 120 epochs in 45 min (timed widths 8: 0.96 s/step (120 epochs)); largest reaching 30 epochs and 3000 steps, else cheapest
  config.model.base_filters = 8
  # 45 min = start 31 s + steps x 0.958 s + 5 validations (~15 s) + final 126 s
  config.num_train_steps = 2569
  # 5 validations, <= 5% of the budget
  config.eval_every_steps = 514
  # with each validation
  config.checkpoint_every_steps = 514
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
  # 120 epochs >= 100: nnU-Net's set
  config.augment.rot90_prob = 0.75
  # 120 epochs >= 100: nnU-Net's set
  config.augment.rotate_prob = 0.3
  # 120 epochs >= 100: nnU-Net's set
  config.augment.rotate_degrees = 15.0
  # 120 epochs >= 100: nnU-Net's set
  config.augment.scale_prob = 0.2
  # 120 epochs >= 100: nnU-Net's set (0.7-1.4 in 3D)
  config.augment.scale_range = (0.85, 1.25)
  # 120 epochs >= 100: nnU-Net's set
  config.augment.brightness_prob = 0.3
  # 120 epochs >= 100: nnU-Net's set
  config.augment.brightness = 0.1
  # 120 epochs >= 100: nnU-Net's set
  config.augment.contrast_prob = 0.3
  # 120 epochs >= 100: nnU-Net's set
  config.augment.contrast_range = (0.75, 1.25)
  # 120 epochs >= 100: nnU-Net's set
  config.augment.gamma_prob = 0.3
  # 120 epochs >= 100: nnU-Net's set
  config.augment.gamma_range = (0.7, 1.5)
  # not in nnU-Net's set
  config.augment.translate_prob = 0.0
  # not in nnU-Net's set
  config.augment.elastic_prob = 0.0
  # not in nnU-Net's set
  config.augment.blur_prob = 0.0
  # not in nnU-Net's set
  config.augment.noise_prob = 0.0
  return config
