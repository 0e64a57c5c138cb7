"""The U-Net paper's recipe for telling neurites apart in the ISBI 2012 EM
slices: the border-weighted cross-entropy (Ronneberger et al. 2015, eq. 2,
w0 = 10, sigma = 5 px) on 256x256 patches of the 512x512 slices with
elastic deformations, scored on whole slices by the challenge's measures.

python -m unetjax.main --config=configs/membranes_instances.py \
  --workdir=runs/membranes_instances \
  --config.dataset.manual_dir=../shared/data/isbi2012_em

The objects are the regions between membranes: `isbi2012_em/instances`
numbers each 4-connected interior region of a label slice and builds its
weight map, and the predicted objects are the 4-connected regions of the
predicted interior (unetjax.instances.objects_in, rule 'background'), as
the challenge read a membrane map. Validation and test report the adapted
Rand error and the variation of information (the challenge's measures),
object F1, PQ and AJI beside the pixel metrics; the best checkpoint is the
one of lowest validation Rand error. `--config.loss.pixel_weights=none`
trains the same network unweighted (experiments/membranes_instances.py
runs both).
"""

from configs import membranes_native


def get_config():
  config = membranes_native.get_config()
  config.dataset.name = 'isbi2012_em/instances'  # 512x512, ids and weights
  config.loss.name = 'cross_entropy'  # weighted per pixel, as the U-Net paper
  config.loss.pixel_weights = 'border'
  config.best_metric = 'adapted_rand_error'
  config.best_metric_mode = 'min'
  # Half the native recipe's schedule: one run fits about 40 minutes on a
  # core of the 2-core CPU.
  config.num_train_steps = 1500
  return config
