"""One config file per model: each is valid, builds its model for the default
dataset, and (slow) trains through the training loop."""

import importlib
import math
import os

import jax
import jax.numpy as jnp
import pytest

from unetjax import configuration, logs, models, train

CONFIGS_DIR = os.path.join(os.path.dirname(__file__), os.pardir, 'configs')
# The registered models with a config file named after them (a model needs
# none: `--config.model.name=<name>` trains it with the default config).
SEGMENTATION_CONFIGS = [name for name in models.MODELS
                        if os.path.exists(os.path.join(CONFIGS_DIR, f'{name}.py'))]


def load(name):
  return importlib.import_module(f'configs.{name}').get_config()


def test_the_models_configs_are_found():
  assert len(SEGMENTATION_CONFIGS) >= 8 and 'unet' in SEGMENTATION_CONFIGS


@pytest.mark.parametrize('name', SEGMENTATION_CONFIGS)
def test_config_is_valid_and_its_model_takes_the_default_images(name):
  config = load(name)
  configuration.validate(config)
  assert config.model.name == name
  model = models.get_model(config.model, config.dtype, config.param_dtype)
  # synthetic_cells/binary: 64x64 greyscale.
  logits = jax.eval_shape(
      lambda: model.apply(model.init(jax.random.key(0), jnp.zeros((2, 64, 64, 1))),
                          jnp.zeros((2, 64, 64, 1))))
  assert logits.shape == (2, 64, 64, 1)


@pytest.mark.parametrize('name', ['drive_native', 'membranes_native',
                                  'kvasir_native', 'membranes_instances'])
def test_native_recipes_are_valid_and_their_patches_fit_the_model(name):
  config = load(name)
  configuration.validate(config)
  model = models.get_model(config.model, config.dtype, config.param_dtype)
  side = config.dataset.patch_size or 256  # Kvasir-SEG: whole 256 px images
  channels = 1 if name.startswith('membranes') else 3
  logits = jax.eval_shape(lambda: model.apply(
      model.init(jax.random.key(0), jnp.zeros((1, side, side, channels))),
      jnp.zeros((1, side, side, channels))))
  assert logits.shape == (1, side, side, 1)
  assert config.optimizer.schedule == 'poly'


def test_classify_config_builds_a_classifier_for_its_dataset():
  config = load('classify')
  configuration.validate(config)
  assert models.task(config.model.name) == 'classification'
  model = models.get_model(config.model)
  # synthetic_cells/classify: 64x64 greyscale, 3 classes.
  logits = jax.eval_shape(
      lambda: model.apply(model.init(jax.random.key(0), jnp.zeros((2, 64, 64, 1))),
                          jnp.zeros((2, 64, 64, 1))))
  assert logits.shape == (2, config.model.n_classes) == (2, 3)


def test_unet_config_is_the_default_config():
  from configs import default
  assert load('unet').to_dict() == default.get_config().to_dict()


# configs/unet.py is the default config, which tests/test_train.py and
# tests/test_main.py train through the loop already.
@pytest.mark.slow
@pytest.mark.parametrize('name', [n for n in SEGMENTATION_CONFIGS if n != 'unet'])
def test_config_trains_a_few_steps_through_the_loop(tfds_dir, tmp_path, name):
  config = load(name)
  config.dataset.data_dir = tfds_dir
  config.model.base_filters = 4  # the config's architecture, narrower
  # Boundary F1 / HD95 / ASSD are the same code for every model (the default
  # config's runs in test_train and test_main cover them); without them the
  # evaluation step compiles in a fraction of the time.
  config.metrics.surface_metrics = False
  config.batch_size = 8
  config.num_train_steps = 2
  config.log_every_steps = config.eval_every_steps = 2
  config.checkpoint_every_steps = 2
  config.progress_bar = False
  final = train.train_and_evaluate(config, str(tmp_path))
  assert final['best_step'] == 2
  assert 0 <= final['validation']['dice'] <= 1
  assert math.isfinite(final['test']['loss'])
  events = [e['event'] for e in logs.read_metrics(str(tmp_path))]
  assert events.count('train') == 1 and events[-1] == 'final'
