"""Does the border weight map separate neurites in the ISBI 2012 EM slices?
configs/membranes_instances.py (512x512 slices, 256x256 patches, elastic
deformations) trained with the border-weighted cross-entropy and with the
same cross-entropy unweighted; scored on the 5 test slices by the ISBI 2012
challenge's adapted Rand error and variation of information, object F1,
PQ and AJI, beside pixel error and Dice.

python -m unetjax.ablation --sweep=experiments/membranes_instances.py \
  --out=runs/membranes_instances

UNETJAX_DATA names the folder holding isbi2012_em/ (default ../shared/data).
The two runs can train side by side, one per core: `--only=border` and
`--only=none` in two processes, then the command above for the tables.

Results: experiments/results/membranes_instances/.
"""

import os


def get_sweep():
  data = os.environ.get('UNETJAX_DATA', os.path.join('..', 'shared', 'data'))
  return {
      'base': 'configs/membranes_instances.py',
      'fixed': {'config.progress_bar': False,
                'config.dataset.manual_dir': os.path.join(data, 'isbi2012_em')},
      'axes': {
          'weights': [
              ('border', {'config.loss.pixel_weights': 'border'}),
              ('none', {'config.loss.pixel_weights': 'none'}),
          ],
      },
      'seeds': [0],
      'main_metric': 'adapted_rand_error',
  }
