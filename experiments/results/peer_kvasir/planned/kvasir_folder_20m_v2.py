"""Planned by `python -m unetjax.plan --config=configs/folder.py --budget=20m` on 1 cpu device(s): predicted wall time of `python -m unetjax.main` 20.0 min
(880 steps, 8.8 epochs). Fingerprint: kvasir_folder_20m_v2.fingerprint.json. Edit freely; each value says why.
"""

import ml_collections

from configs import default


def get_config():
  config = default.get_config()
  # from configs/folder.py
  config.dataset.folder = ml_collections.ConfigDict({'class_names': ('background', 'foreground'), 'image_size': 256, 'instances_dir': '', 'intensity_window': (), 'mask_colors': (), 'mask_suffix': '', 'mask_threshold': 127, 'mask_values': (0, 255), 'masks_dir': 'masks', 'n_channels': 3, 'split_fractions': (0.8, 0.1, 0.1), 'split_seed': 0})
  # from configs/folder.py
  config.dataset.manual_dir = '../shared/data/kvasir_seg'
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
  # instance norm: batch norm over 8 images of varied illumination lost 0.06 Dice to it on CVC-ClinicDB (docs/experiments.md); MONAI's and nnU-Net's default
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
  # 1e-3: 3e-3 with poly decay lost 0.03 Dice to it on CVC-ClinicDB (docs/experiments.md)
  config.optimizer.learning_rate = 0.001
  # constant (as the peer)
  config.optimizer.schedule = 'constant'
  # no warm-up with a constant rate
  config.optimizer.warmup_steps = 0
  # half-window overlap (nnU-Net)
  config.dataset.eval_overlap = 0.5
  # best checkpoint by validation Dice
  config.best_metric = 'dice'
  # 9 epochs in 20 min (timed widths 8: 1.22 s/step); widest reaching 30 epochs, else narrowest
  config.model.base_filters = 8
  # 20 min = start 15 s + steps x 1.222 s + 10 validations (~9 s) + final 19 s
  config.num_train_steps = 880
  # 10 validations, <= 10% of the budget
  config.eval_every_steps = 88
  # with each validation
  config.checkpoint_every_steps = 88
  # a few per validation
  config.log_every_steps = 22
  # twice the batch (no gradients to keep)
  config.eval_batch_size = 16
  # mirror: nnU-Net, and +0.06 Dice on Kvasir-SEG over 32 epochs
  config.augment.flip_horizontal_prob = 0.5
  # mirror (nnU-Net)
  config.augment.flip_vertical_prob = 0.5
  return config
