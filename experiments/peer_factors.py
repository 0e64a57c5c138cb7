"""Why MONAI's plain BasicUNet beat our Kvasir-SEG recipe: one factor of
`configs/kvasir_native.py` changed per row, at the peer's width, steps,
batch, resolution, split and flips (benchmarks/peer_monai.py trains the
peer with the same numbers).

UNETJAX_FACTOR_STEPS (default 800) sets the steps of every row.

python -m unetjax.ablation --sweep=experiments/peer_factors.py \
  --out=runs/peer_factors --cpu_devices=1 [--only=<regular expression>]
"""

import os

STEPS = int(os.environ.get('UNETJAX_FACTOR_STEPS', '800'))
DATA = os.environ.get('UNETJAX_REAL_DATA', '../shared/data')

# MONAI's peer: Adam 1e-3, constant (its tutorials' and BasicUNet's usual
# setting); ours: Adam 3e-3, poly decay after a 100-step warm-up.
PEER_OPTIMIZER = {'config.optimizer.learning_rate': 1e-3,
                  'config.optimizer.schedule': 'constant',
                  'config.optimizer.warmup_steps': 0}


def get_sweep():
  return {
      'base': 'configs/kvasir_native.py',
      'fixed': {
          'config.dataset.manual_dir': os.path.join(DATA, 'kvasir_seg'),
          'config.num_train_steps': STEPS,
          'config.eval_every_steps': STEPS // 4,
          'config.checkpoint_every_steps': STEPS // 4,
          'config.log_every_steps': 50,
          'config.progress_bar': False,
      },
      'axes': {
          'recipe': [
              ('kvasir_native', {}),
              ('group_norm', {'config.model.norm': 'group'}),
              ('adam_1e-3_constant', PEER_OPTIMIZER),
              # Both changes: what unetjax.plan's rules choose.
              ('instance_norm+adam_1e-3_constant',
               {'config.model.norm': 'instance', **PEER_OPTIMIZER}),
              # ... with BasicUNet's slim channel plan (8, 8, 16, 32, 64)
              # in place of doubling (8 ... 128): unetjax.plan's short budgets.
              ('instance_norm+adam_1e-3_constant+slim',
               {'config.model.norm': 'instance', **PEER_OPTIMIZER,
                'config.model.level_filters': (8, 8, 16, 32, 64)}),
              # The remaining differences from MONAI's DynUNet, each on its
              # own and both: its LeakyReLU (slope 0.01) and its
              # initialisation (torch's kaiming_normal_, a=0.01).
              ('instance_norm+adam_1e-3_constant+leaky_relu',
               {'config.model.norm': 'instance', **PEER_OPTIMIZER,
                'config.model.activation': 'leaky_relu'}),
              ('instance_norm+adam_1e-3_constant+kaiming_normal',
               {'config.model.norm': 'instance', **PEER_OPTIMIZER,
                'config.model.kernel_init': 'kaiming_normal'}),
              ('instance_norm+adam_1e-3_constant+leaky_relu+kaiming_normal',
               {'config.model.norm': 'instance', **PEER_OPTIMIZER,
                'config.model.activation': 'leaky_relu',
                'config.model.kernel_init': 'kaiming_normal'}),
          ],
      },
      'seeds': [0],
      'tags': {'protocol': f'peer_factors_{STEPS}'},
  }
