"""U-Net on DRIVE retinal vessels at their own resolution (565x584), trained
on random patches and scored on whole images inside the field of view.

python -m unetjax.main --config=configs/drive_native.py --workdir=runs/drive_native \
  --config.dataset.manual_dir=../shared/data/drive
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset.name = 'drive/native'
  config.dataset.patch_size = 128
  config.batch_size = 8
  config.eval_batch_size = 8
  config.num_train_steps = 400
  config.eval_every_steps = 50
  config.checkpoint_every_steps = 50
  config.log_every_steps = 25
  return config
