"""U-Net on the ISBI 2012 EM membranes (the data of the original U-Net paper).

python -m unetjax.main --config=configs/membranes.py --workdir=runs/membranes \
  --config.dataset.manual_dir=../shared/data/isbi2012_em

30 labelled 512x512 slices, split 20/5/5; here resized to 256x256.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset.name = 'isbi2012_em/256px'  # or isbi2012_em/512px
  config.batch_size = 8
  config.eval_batch_size = 8
  config.num_train_steps = 400
  config.eval_every_steps = 50
  config.checkpoint_every_steps = 50
  config.log_every_steps = 25
  return config
