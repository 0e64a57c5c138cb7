"""U-Net on DRIVE retinal vessels; metrics count the field of view only.

python -m unetjax.main --config=configs/drive.py --workdir=runs/drive \
  --config.dataset.manual_dir=../shared/data/drive

Official split (20 training images, 4 of them for validation; 20 test),
resized to 256x256 (drive/512px keeps more of the thinnest vessels).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset.name = 'drive/256px'
  config.batch_size = 8
  config.eval_batch_size = 8
  config.num_train_steps = 400
  config.eval_every_steps = 50
  config.checkpoint_every_steps = 50
  config.log_every_steps = 25
  return config
