"""The first real-data study: U-Net, U-Net++, ResUNet and ResUNet++ at the
seed's settings (base_filters 16, combined BCE + Dice loss) x augmentation
off / on (configs/augmented.py) x seeds 0, 1, 2 on ISBI 2012 EM, DRIVE and
Kvasir-SEG, plus the pixel forest baseline per dataset and seed.

UNETJAX_PROTOCOL=cpu python -m unetjax.ablation --sweep=experiments/study.py \
  --out=runs/study_cpu

Settings (environment variables):
  UNETJAX_PROTOCOL  'cpu' (default): 128 px batch 2 (Kvasir-SEG 64 px batch
                    8), 200 steps: the whole study in ~90 min on a 2-core CPU
                    as two processes, one per core (README, Experiments);
                    'gpu': 256 px and the step counts of configs/membranes.py,
                    drive.py and kvasir.py scaled up, for one accelerator;
                    'long': each dataset at its own resolution with its
                    recipe (configs/drive_native.py, membranes_native.py,
                    kvasir_native.py: patches, whole-image evaluation, poly
                    schedule, per-dataset augmentation), trained to
                    convergence; the U-Net, seed 0, at most about an hour
                    per dataset data parallel over both cores of a 2-core CPU
                    (experiments/study_long.sh), with the recipe's
                    augmentation (aug=on) and without it (aug=off);
                    'long_gpu': the same recipes, all four networks and three
                    seeds, for one accelerator (aug=on).
  UNETJAX_DATA      folder holding isbi2012_em/, drive/ and kvasir_seg/
                    (default ../shared/data).
The protocol is recorded in every result row (tags) with the device.
"""

import os

from configs import augmented, default, resunet, resunet_pp, unet, unet_pp
from configs import drive_native, kvasir_native, membranes_native
from unetjax import pixel_forest
from unetjax.errors import ConfigError

# dataset -> (image side, batch size, train steps, eval/checkpoint interval)
PROTOCOLS = {
    # Equal pixels per step (2 x 128^2 = 8 x 64^2): on one core of a 2-core
    # CPU one dataset and seed (four networks, 200 steps each) takes ~10 min.
    'cpu': {'isbi2012_em': (128, 2, 200, 50),
            'drive': (128, 2, 200, 50),
            'kvasir_seg': (64, 8, 200, 50)},
    'gpu': {'isbi2012_em': (256, 8, 2000, 100),
            'drive': (256, 8, 2000, 100),
            'kvasir_seg': (256, 16, 4000, 200)},
}


def dataset_choice(name: str, data: str, side: int, batch_size: int,
                   steps: int, interval: int) -> tuple[str, dict]:
  return name, {
      'config.dataset.name': f'{name}/{side}px',
      'config.dataset.manual_dir': os.path.join(data, name),
      'config.batch_size': batch_size,
      'config.eval_batch_size': batch_size,
      'config.num_train_steps': steps,
      'config.eval_every_steps': interval,
      'config.checkpoint_every_steps': interval,
      'config.log_every_steps': max(1, interval // 2),
      'config.optimizer.warmup_steps': min(50, steps // 10),
  }


# The long protocols: dataset -> its native-resolution recipe.
LONG_RECIPES = {'isbi2012_em': membranes_native, 'drive': drive_native,
                'kvasir_seg': kvasir_native}
# Fields a recipe sets; everything else (the model, the loss) is the base's.
RECIPE_FIELDS = ('dataset', 'augment', 'optimizer', 'batch_size',
                 'eval_batch_size', 'num_train_steps', 'eval_every_steps',
                 'checkpoint_every_steps', 'log_every_steps')
# Model fields a recipe may set (a width sized for the CPU hour): they hold
# under the `long` protocol's U-Net; `long_gpu` trains each network's own.
RECIPE_MODEL_FIELDS = ('base_filters', 'dropout_rates')
MODELS = {'unet': unet, 'unet_pp': unet_pp, 'resunet': resunet,
          'resunet_pp': resunet_pp}


def recipe_choice(name: str, data: str) -> tuple[str, dict]:
  config = LONG_RECIPES[name].get_config()
  config.dataset.manual_dir = os.path.join(data, name)
  base_model = default.get_config().model
  return name, {
      **{f'config.{field}': config[field] for field in RECIPE_FIELDS},
      **{f'config.model.{field}': config.model[field]
         for field in RECIPE_MODEL_FIELDS
         if config.model[field] != base_model[field]}}


def long_sweep(protocol: str, data: str) -> dict:
  """One run per dataset x network x augmentation x seed, each dataset with
  its recipe."""
  return {
      'base': 'configs/default.py',
      'fixed': {'config.progress_bar': False},
      'axes': {
          'dataset': [recipe_choice(name, data) for name in LONG_RECIPES],
          # 'long': the U-Net of default.py (configs/unet.py), less the
          # recipe's model fields; 'long_gpu': each network's whole config.
          'model': ([('unet', {'config.model.name': 'unet'})]
                    if protocol == 'long' else
                    [(m, {'config.model': MODELS[m].get_config().model})
                     for m in MODELS]),
          # off: the recipe less its augmentation (default.py's, all off).
          'aug': [('on', {})] + ([('off', {
              'config.augment': default.get_config().augment})]
                                 if protocol == 'long' else []),
      },
      'seeds': [0] if protocol == 'long' else [0, 1, 2],
      'tags': {'protocol': protocol},
      'main_metric': 'dice',
  }


def get_sweep():
  protocol = os.environ.get('UNETJAX_PROTOCOL', 'cpu')
  if protocol not in (*PROTOCOLS, 'long', 'long_gpu'):
    raise ConfigError(f'UNETJAX_PROTOCOL={protocol!r}: choose one of '
                      f'{", ".join(PROTOCOLS)}, long, long_gpu.')
  data = os.environ.get('UNETJAX_DATA', os.path.join('..', 'shared', 'data'))
  if protocol.startswith('long'):
    return long_sweep(protocol, data)
  return {
      'base': 'configs/default.py',  # base_filters 16, cross_entropy_dice
      'fixed': {'config.progress_bar': False},
      'axes': {
          'dataset': [dataset_choice(name, data, *settings)
                      for name, settings in PROTOCOLS[protocol].items()],
          'model': [(m, {'config.model': module.get_config().model})
                    for m, module in MODELS.items()] + [
              ('pixel_forest', {'config.model': pixel_forest.default_config()})],
          'aug': [('off', {}),
                  ('on', {'config.augment': augmented.get_config().augment})],
      },
      # Augmentation does not apply to the forest's fixed filter bank.
      'exclude': lambda labels: (labels['model'] == 'pixel_forest'
                                 and labels['aug'] == 'on'),
      'seeds': [0, 1, 2],
      'tags': {'protocol': protocol},
      'main_metric': 'dice',
  }
