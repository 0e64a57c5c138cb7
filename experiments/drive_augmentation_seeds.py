"""Which augmentation pays on DRIVE at 60 epochs? The planned 10-minute DRIVE
recipe (`experiments/results/peer_budget_pixel_epochs/drive/planned-10m.py`:
native resolution, patches of 256x240, slim width 8, instance norm, 1299
steps of batch 4) with nnU-Net's augmentation set (what the planner gave
from 50 epochs until this sweep; now from 100), with mirror flips alone, and
with none; three seeds per arm
trained at once; results.md pairs each arm with flips by seed (mean
difference, 95% interval, paired t-test).

python -m unetjax.ablation --sweep=experiments/drive_augmentation_seeds.py \
  --out=runs/drive_augmentation_seeds --cpu_devices=1 --seeds_at_once=3 \
  --workers=2

Results: experiments/results/drive_augmentation_seeds/.
"""

import os

DATA = os.environ.get('UNETJAX_REAL_DATA', '../shared/data')
NNUNET_ONLY = ('rot90_prob', 'rotate_prob', 'scale_prob', 'brightness_prob',
               'contrast_prob', 'gamma_prob')
FLIPS = ('flip_horizontal_prob', 'flip_vertical_prob')


def _off(names):
  return {f'config.augment.{name}': 0.0 for name in names}


def get_sweep():
  return {
      'base': 'experiments/results/peer_budget_pixel_epochs/drive/planned-10m.py',
      'fixed': {
          'config.dataset.manual_dir': os.path.join(DATA, 'drive'),
          'config.progress_bar': False,
      },
      'axes': {
          'augmentation': [
              ('nnunet', {}),  # the plan's: flips, rotations, scaling, intensity
              ('flips', _off(NNUNET_ONLY)),
              ('none', _off(NNUNET_ONLY + FLIPS)),
          ],
      },
      'baseline': {'augmentation': 'flips'},
      'seeds': [0, 1, 2],
      'tags': {'protocol': 'drive_planned_10m_augmentation'},
  }
