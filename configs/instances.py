"""Touching cells told apart: a U-Net trained with the U-Net paper's border
weight map (Ronneberger et al. 2015) on the synthetic cells with one id per
cell, scored by object metrics as well as pixel ones.

python -m unetjax.main --config=configs/instances.py --workdir=runs/instances

The weight map w(x) = w_c(x) + w0 exp(-(d1 + d2)^2 / 2 sigma^2), w0 = 10 and
sigma = 5 px as published, is computed for every example when the dataset
is built (unetjax.instances.border_weight_map) and weights the per-pixel
cross-entropy, as in the paper. Objects are the connected regions of the
predicted foreground; validation and test report object F1, PQ, AJI, the
adapted Rand error and VI beside Dice (docs/losses_and_metrics.md).
`--config.loss.pixel_weights=none --config.loss.name=cross_entropy_dice`
gives the plain baseline of experiments/instances.py.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset.name = 'synthetic_cells/instances'
  config.loss.name = 'cross_entropy'  # weighted per pixel, as the U-Net paper
  config.loss.pixel_weights = 'border'
  config.best_metric = 'object_f1'
  return config
