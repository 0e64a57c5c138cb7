"""Three-class segmentation of the synthetic cells: background, cell body, nucleus.

python -m unetjax.main --config=configs/multiclass.py --workdir=runs/multiclass
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset.name = 'synthetic_cells/multiclass'
  config.model.n_classes = 3  # softmax over background / cell / nucleus
  return config
