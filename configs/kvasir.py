"""U-Net on Kvasir-SEG polyps.

python -m unetjax.main --config=configs/kvasir.py --workdir=runs/kvasir \
  --config.dataset.manual_dir=../shared/data/kvasir_seg

998 colonoscopy frames split 80/10/10, resized to 128x128 here
(kvasir_seg/256px is the resolution of the ResUNet++ paper).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset.name = 'kvasir_seg/128px'
  config.batch_size = 16
  config.eval_batch_size = 32
  config.num_train_steps = 600
  config.eval_every_steps = 100
  config.checkpoint_every_steps = 100
  return config
