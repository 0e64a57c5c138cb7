"""Do mirror flips pay off on Kvasir-SEG within 4 epochs? The planner's
short-budget recipe (`configs/kvasir_native.py` with instance norm, Adam 1e-3
constant and BasicUNet's slim channels (8, 8, 16, 32, 64): the factor
table's last unetjax row, docs/experiments.md) with its flips and without,
400 steps of batch 8 (UNETJAX_FLIPS_STEPS), three seeds per arm trained at
once; results.md pairs the arms by seed (mean difference, 95% interval,
paired t-test).

UNETJAX_REAL_DATA=../shared/data python -m unetjax.ablation \
  --sweep=experiments/kvasir_flips_seeds.py --out=runs/kvasir_flips_seeds \
  --cpu_devices=1 --seeds_at_once=3

Results: experiments/results/kvasir_flips_seeds/.
"""

import os

DATA = os.environ.get('UNETJAX_REAL_DATA', '../shared/data')
STEPS = int(os.environ.get('UNETJAX_FLIPS_STEPS', '400'))


def get_sweep():
  return {
      'base': 'configs/kvasir_native.py',
      'fixed': {
          'config.dataset.manual_dir': os.path.join(DATA, 'kvasir_seg'),
          'config.model.norm': 'instance',
          'config.model.level_filters': (8, 8, 16, 32, 64),
          'config.optimizer.learning_rate': 1e-3,
          'config.optimizer.schedule': 'constant',
          'config.optimizer.warmup_steps': 0,
          'config.num_train_steps': STEPS,
          'config.eval_every_steps': STEPS // 4,
          'config.checkpoint_every_steps': STEPS // 4,
          'config.log_every_steps': 50,
          'config.progress_bar': False,
      },
      'axes': {
          'flips': [
              ('on', {}),  # kvasir_native.py's: each mirror with probability 0.5
              ('off', {'config.augment.flip_horizontal_prob': 0.0,
                       'config.augment.flip_vertical_prob': 0.0}),
          ],
      },
      'seeds': [0, 1, 2],
      'tags': {'protocol': f'kvasir_flips_{STEPS}'},
  }
