"""A 2x2 smoke sweep on the synthetic cells: U-Net / ResUNet x augmentation
off / on, one seed, tiny models and a handful of steps (seconds per run).

python -m unetjax.ablation --sweep=experiments/smoke.py --out=runs/smoke
"""

from configs import augmented


def get_sweep():
  return {
      'base': 'configs/default.py',
      'fixed': {
          'config.model.base_filters': 4,
          'config.model.depth': 2,
          'config.model.dropout_rates': (0.0, 0.0, 0.0),
          'config.batch_size': 8,
          'config.num_train_steps': 4,
          'config.log_every_steps': 2,
          'config.eval_every_steps': 2,
          'config.checkpoint_every_steps': 2,
          'config.progress_bar': False,
          # Boundary F1 / HD95 / ASSD need distance maps: slower to compile.
          'config.metrics.surface_metrics': False,
      },
      'axes': {
          'model': [('unet', {}),
                    ('resunet', {'config.model.name': 'resunet',
                                 'config.model.upsample': 'bilinear'})],
          'aug': [('off', {}),
                  ('on', {'config.augment': augmented.get_config().augment})],
      },
      'seeds': [0],
  }
