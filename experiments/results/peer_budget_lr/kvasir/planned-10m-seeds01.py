"""Planned by `python -m unetjax.plan --config=configs/kvasir_native.py --budget=10m` on 1 cpu device(s): predicted wall time of `python -m unetjax.main` 10.0 min
(546 steps, 5.5 epochs). Fingerprint: planned-10m.fingerprint.json. Edit freely; each value says why.
"""

import ml_collections

from configs import default


def get_config():
  config = default.get_config()
  # from configs/kvasir_native.py
  config.dataset.manual_dir = '../shared/data/kvasir_seg'
  # from configs/kvasir_native.py
  config.dataset.name = 'kvasir_seg/256px'
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
  # rarest class 15.4% of the pixels: Dice + CE as is
  config.loss.class_weights = ()
  # no dropout (nnU-Net; kvasir_native trains better without it at width 8)
  config.model.dropout_rates = (0.0,)
  # Dice + cross-entropy (nnU-Net, MONAI DiceCE)
  config.loss.name = 'cross_entropy_dice'
  # Adam (MONAI's peer setting)
  config.optimizer.name = 'adam'
  # 2e-3 constant: over 1e-3 +0.008 Dice on DRIVE, +0.020 on Kvasir-SEG, -0.0015 on ISBI 2012 (docs/experiments.md, the learning rate)
  config.optimizer.learning_rate = 0.002
  # constant (as the peer)
  config.optimizer.schedule = 'constant'
  # no warm-up with a constant rate
  config.optimizer.warmup_steps = 0
  # half-window overlap (nnU-Net)
  config.dataset.eval_overlap = 0.5
  # best checkpoint by validation Dice
  config.best_metric = 'dice'
  # 5 epochs in 10 min (timed widths 8 slim: 0.93 s/step); largest reaching 30 epochs and 3000 steps, else cheapest
  config.model.base_filters = 8
  # slim: BasicUNet's channel plan, more steps in the budget than doubling per level
  config.model.level_filters = (8, 8, 16, 32, 64)
  # 10 min = start 16 s + steps x 0.931 s + 7 validations (~8 s) + final 19 s
  config.num_train_steps = 546
  # 7 validations, <= 10% of the budget
  config.eval_every_steps = 78
  # with each validation
  config.checkpoint_every_steps = 78
  # a few per validation
  config.log_every_steps = 19
  # twice the batch (no gradients to keep)
  config.eval_batch_size = 16
  # mirror: nnU-Net, and +0.06 Dice on Kvasir-SEG over 32 epochs
  config.augment.flip_horizontal_prob = 0.5
  # mirror (nnU-Net)
  config.augment.flip_vertical_prob = 0.5
  return config
