"""Image classification: a ResNet-18 (He et al. 2016) on the synthetic cells
labelled by their nuclei (anucleate / mononucleate / binucleate).

The network is ResNet-18's layout at half its width (base_filters 32, the
paper's 64 costs 4x the compute), so that the quick start trains in minutes
on a 2-core CPU; set --config.model.base_filters=64 for the paper's ResNet-18.

python -m unetjax.main --config=configs/classify.py --workdir=runs/classify

The same loop, checkpoints, logs and ablation runner as segmentation; the
task follows the model (unetjax.models.TASKS) and must match the dataset's
labels (one class per image). Your own images, one folder per class:
configs/class_folder.py.

`num_layers = 34` or `50` gives ResNet-34 or ResNet-50; `model.pretrained`
loads torchvision's ImageNet weights (configs/resnet_unet.py says how).
"""

import ml_collections

from configs import default


def get_config():
  config = default.get_config()
  config.dataset.name = 'synthetic_cells/classify'  # or image_class_folder
  config.model = ml_collections.ConfigDict()
  config.model.name = 'resnet'  # see unetjax.models.CLASSIFIERS
  config.model.n_classes = 3  # one logit per class (softmax)
  config.model.num_layers = 18  # 18, 34 or 50
  config.model.base_filters = 32  # stem and first-stage channels (paper: 64)
  config.model.norm = 'batch'  # 'batch', 'group' or 'none'
  config.model.pretrained = ''  # a torchvision ResNet state_dict (.pth)
  config.model.freeze_encoder_steps = 0  # steps the loaded encoder stays fixed
  config.loss.name = 'cross_entropy'  # losses.IMAGE_LOSSES: cross_entropy, focal
  config.loss.label_smoothing = 0.0
  # The classes' labels do not change under mirroring or quarter turns.
  config.augment.flip_horizontal_prob = 0.5
  config.augment.flip_vertical_prob = 0.5
  config.augment.rot90_prob = 0.5
  config.optimizer.learning_rate = 1e-3
  config.batch_size = 32
  config.eval_batch_size = 128
  config.num_train_steps = 800
  config.eval_every_steps = 100
  config.checkpoint_every_steps = 100
  config.best_metric = 'macro_f1'  # any classification metric (metrics.METRICS)
  return config
