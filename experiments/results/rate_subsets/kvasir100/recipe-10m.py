"""Planned by `python -m unetjax.plan --config=configs/folder.py --budget=10m` on 1 cpu device(s): predicted wall time of `python -m unetjax.main` 10.0 min
(373 steps, 14.9 epochs). Fingerprint: planned-10m.fingerprint.json. Edit freely; each value says why.
"""

import ml_collections

from configs import default


def get_config():
  config = default.get_config()
  # from configs/folder.py
  config.dataset.folder = ml_collections.ConfigDict({'class_names': ('background', 'foreground'), 'image_size': 256, 'instances_dir': '', 'intensity_window': (), 'mask_colors': (), 'mask_suffix': '', 'mask_threshold': 127, 'mask_values': (0, 255), 'masks_dir': 'masks', 'n_channels': 3, 'split_fractions': (0.6, 0.2, 0.2), 'split_seed': 0})
  # from configs/folder.py
  config.dataset.manual_dir = 'runs/kvasir100'
  # from configs/folder.py
  config.dataset.name = 'image_folder'
  # every image is 256x256: stored as is, whole images
  config.dataset.folder.image_size = 256
  # 2 classes: one sigmoid
  config.model.n_classes = 1
  # every image is 256x256: whole images
  config.dataset.patch_size = 0
  # 256 px edge / 2**4 = 16 px at the bottleneck (nnU-Net pools to 4-8 px; at most 4)
  config.model.depth = 4
  # cpu batch 8
  config.batch_size = 8
  # instance norm: group norm gained 0.034 Dice per image over batch norm on Kvasir-SEG (docs/experiments.md, the peer factor table); MONAI's and nnU-Net's default
  config.model.norm = 'instance'
  # whole images
  config.dataset.foreground_oversampling = 0.0
  # rarest class 15.2% of the pixels: Dice + CE as is
  config.loss.class_weights = ()
  # no dropout (nnU-Net; kvasir_native trains better without it at width 8)
  config.model.dropout_rates = (0.0,)
  # Dice + cross-entropy (nnU-Net, MONAI DiceCE)
  config.loss.name = 'cross_entropy_dice'
  # Adam (MONAI's peer setting)
  config.optimizer.name = 'adam'
  # 200 training images: 2e-3 over 4e-3 on Kvasir-SEG (798) in six seed pairs of six, +0.009 to +0.060 Dice (docs/experiments.md, the rate by dataset size)
  config.optimizer.learning_rate = 0.002
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
  # 15 epochs in 10 min (timed widths 8: 2.10 s/step (9 epochs), 8 slim: 1.32 s/step (15 epochs)); largest reaching 30 epochs and 3000 steps, else cheapest
  config.model.base_filters = 8
  # slim (BasicUNet's channel plan): under 10 epochs, more steps beat capacity
  config.model.level_filters = (8, 8, 16, 32, 64)
  # 10 min = start 34 s + steps x 1.317 s + 2 validations (~14 s) + final 35 s
  config.num_train_steps = 373
  # 2 validations, <= 5% of the budget
  config.eval_every_steps = 187
  # with each validation
  config.checkpoint_every_steps = 187
  # a few per validation
  config.log_every_steps = 46
  # twice the batch (no gradients to keep)
  config.eval_batch_size = 16
  # mirror: nnU-Net, and +0.06 Dice on Kvasir-SEG over 32 epochs
  config.augment.flip_horizontal_prob = 0.5
  # mirror (nnU-Net)
  config.augment.flip_vertical_prob = 0.5
  # scored on the mean of each image's four flips (nnU-Net's test-time mirroring): +0.003 test Dice on DRIVE, +0.002 on ISBI 2012, +0.011 on Kvasir-SEG, same checkpoints (docs/experiments.md, test-time mirroring)
  config.eval_mirror = True
  # 15 epochs < 100: flips only
  config.augment.rot90_prob = 0.0
  # 15 epochs < 100: flips only
  config.augment.rotate_prob = 0.0
  # 15 epochs < 100: flips only
  config.augment.scale_prob = 0.0
  # 15 epochs < 100: flips only
  config.augment.translate_prob = 0.0
  # 15 epochs < 100: flips only
  config.augment.elastic_prob = 0.0
  # 15 epochs < 100: flips only
  config.augment.brightness_prob = 0.0
  # 15 epochs < 100: flips only
  config.augment.contrast_prob = 0.0
  # 15 epochs < 100: flips only
  config.augment.gamma_prob = 0.0
  # 15 epochs < 100: flips only
  config.augment.blur_prob = 0.0
  # 15 epochs < 100: flips only
  config.augment.noise_prob = 0.0
  return config
