"""Do the U-Net paper's border weight map, or the three-class target,
separate touching cells? The U-Net of configs/instances.py on
synthetic_cells/instances, trained with plain BCE + Dice (the default loss),
with the border-weighted cross-entropy, or on the background / interior /
border target with CE + Dice (objects from a watershed of the predicted
interiors), same steps, three seeds; scored by object F1, PQ, AJI and the
adapted Rand error as well as Dice.

python -m unetjax.ablation --sweep=experiments/instances.py --out=runs/instances

Results: experiments/results/instances/ (results.md, results.csv, plots).
"""


def get_sweep():
  return {
      'base': 'configs/instances.py',
      'fixed': {'config.progress_bar': False},
      'axes': {
          'target': [
              ('bce_dice', {'config.loss.name': 'cross_entropy_dice',
                            'config.loss.pixel_weights': 'none'}),
              ('border_ce', {'config.loss.name': 'cross_entropy',
                             'config.loss.pixel_weights': 'border'}),
              ('three_class', {'config.loss.name': 'cross_entropy_dice',
                               'config.loss.pixel_weights': 'none',
                               'config.dataset.target': 'three_class',
                               'config.model.n_classes': 3}),
          ],
      },
      'seeds': [0, 1, 2],
      'main_metric': 'object_f1',
  }
