"""Model registries: `config.model.name` -> flax.linen Module class."""

import dataclasses
import sys
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from unetjax import tasks
from unetjax.errors import ConfigError
from unetjax.models import layers
from unetjax.models.attention_unet import AttentionUNet
from unetjax.models.fcn import FCN8s
from unetjax.models.resnet import ResNet
from unetjax.models.resnet_unet import ResNetUNet
from unetjax.models.resunet import ResUNet
from unetjax.models.resunet_pp import ResUNetPlusPlus
from unetjax.models.unet import UNet
from unetjax.models.unet3p import UNet3Plus
from unetjax.models.unet_pp import UNetPlusPlus

# Segmentation models: images (N, H, W, C) -> logits (N, H, W, n_classes).
MODELS: dict[str, type[nn.Module]] = {
    'unet': UNet,
    'unet_pp': UNetPlusPlus,
    'unet3p': UNet3Plus,
    'attention_unet': AttentionUNet,
    'resunet': ResUNet,
    'resunet_pp': ResUNetPlusPlus,
    'fcn8s': FCN8s,
    'resnet_unet': ResNetUNet,
}

# Image classifiers: images -> logits (N, n_classes), trained on datasets
# with one label per image.
CLASSIFIERS: dict[str, type[nn.Module]] = {
    'resnet': ResNet,
}

# The task of each registry: what a model's logits label, and so the
# datasets, loss and metrics it trains with (unetjax.tasks).
TASKS = {tasks.SEGMENTATION: MODELS, tasks.CLASSIFICATION: CLASSIFIERS}

# Models whose encoder takes torchvision's ImageNet ResNet weights, from the
# state_dict file named by config.model.pretrained, and can keep it frozen
# for config.model.freeze_encoder_steps (config fields, not module fields).
PRETRAINED_FIELD = 'pretrained'
FREEZE_FIELD = 'freeze_encoder_steps'
TAKE_RESNET_WEIGHTS = ('resnet', 'resnet_unet')



def _module(cls: type[nn.Module]):
  return sys.modules[cls.__module__]


def paper_settings() -> list[tuple[str, str, dict[str, Any]]]:
  """(row label, registry name, fields) of every registered model's
  published architectures, as its module declares them (PAPER), in
  registry order: what `models --list` and the benchmarks build."""
  return [(label, name, dict(fields)) for registry in TASKS.values()
          for name, cls in registry.items()
          for label, fields in _module(cls).PAPER.items()]


def tiny_settings() -> dict[str, dict[str, Any]]:
  """Registry name -> the tiny fields the tests build each segmentation
  model with (its module's TINY; None: tested apart)."""
  return {name: dict(_module(cls).TINY) for name, cls in MODELS.items()
          if _module(cls).TINY is not None}


DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16, 'float16': jnp.float16}


def _dtype(name: str, field: str):
  if name not in DTYPES:
    raise ConfigError(f'Unknown dtype {name!r} ({field}); choose one of: '
                      f'{", ".join(DTYPES)}.')
  return DTYPES[name]


def model_fields(cls: type[nn.Module]) -> set[str]:
  """The config.model fields (besides `name`) that `cls` takes."""
  return ({f.name for f in dataclasses.fields(cls)}
          - {'parent', 'name', 'dtype', 'param_dtype'})


def _check_ranges(fields: dict[str, Any]) -> None:
  """ConfigError for values of the fields the architectures share that no
  model can take (a zero width, a dropout rate of 1, an unknown activation
  or initialisation)."""
  problems = []
  for name in ('base_filters', 'depth'):
    value = fields.get(name, 1)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      problems.append(f'config.model.{name}={value!r} must be a whole number >= 1')
  level_filters = fields.get('level_filters', ())
  if not (isinstance(level_filters, (tuple, list)) and all(
      isinstance(w, int) and not isinstance(w, bool) and w >= 1
      for w in level_filters)):
    problems.append(f'config.model.level_filters={level_filters!r} must be '
                    'a tuple of whole numbers >= 1 (or () to double '
                    'base_filters per level)')
  rates = fields.get('dropout_rates', 0.0)
  rates = rates if isinstance(rates, (tuple, list)) else (rates,)
  if not all(isinstance(r, (int, float)) and not isinstance(r, bool)
             and 0 <= r < 1 for r in rates):
    problems.append(f'config.model.dropout_rates={fields["dropout_rates"]!r} '
                    'must hold rates in [0, 1)')
  for name, choices in (('activation', layers.ACTIVATIONS),
                        ('kernel_init', layers.KERNEL_INITS)):
    if name in fields and fields[name] not in choices:
      problems.append(f'config.model.{name}={fields[name]!r} must be one of '
                      f'{", ".join(map(repr, choices))}')
  if problems:
    raise ConfigError('; '.join(problems) + '.')


def _build(registry: dict[str, type[nn.Module]], model_config: ml_collections.ConfigDict,
           dtype: str, param_dtype: str) -> nn.Module:
  cls = registry[model_config.name]
  kwargs = {k: v for k, v in model_config.items()
            if k not in ('name', PRETRAINED_FIELD, FREEZE_FIELD)}
  for field in (PRETRAINED_FIELD, FREEZE_FIELD):
    if model_config.get(field) and model_config.name not in TAKE_RESNET_WEIGHTS:
      raise ConfigError(
          f'config.model.{field} is set, but {model_config.name!r} has no '
          'ResNet encoder; models with one (which take torchvision ResNet '
          f'weights): {", ".join(TAKE_RESNET_WEIGHTS)}.')
  freeze = model_config.get(FREEZE_FIELD, 0)
  if not isinstance(freeze, int) or isinstance(freeze, bool) or freeze < 0:
    raise ConfigError(f'config.model.{FREEZE_FIELD}={freeze!r} must be a whole '
                      'number of steps >= 0.')
  unknown = sorted(set(kwargs) - model_fields(cls))
  if unknown:
    raise ConfigError(
        f'Model {model_config.name!r} has no field(s) {", ".join(unknown)} '
        f'(config.model); it takes: {", ".join(sorted(model_fields(cls)))}.')
  _check_ranges(kwargs)
  return cls(**kwargs, dtype=_dtype(dtype, 'config.dtype'),
             param_dtype=_dtype(param_dtype, 'config.param_dtype'))


def task(model_name: str) -> str:
  """'segmentation' or 'classification': the task of the model named
  `model_name` (ConfigError if there is no such model)."""
  for name, registry in TASKS.items():
    if model_name in registry:
      return name
  raise ConfigError(
      f'Unknown model {model_name!r} (config.model.name); choose one of: '
      + '; '.join(f'{", ".join(registry)} ({name})'
                  for name, registry in TASKS.items()) + '.')


def get_model(model_config: ml_collections.ConfigDict, dtype: str = 'float32',
              param_dtype: str = 'float32') -> nn.Module:
  """Builds the model named by model_config.name (segmentation model or
  classifier, see `task`) from its other fields."""
  registry = TASKS[task(model_config.name)]
  return _build(registry, model_config, dtype, param_dtype)


def pretrained_variables(model_config: ml_collections.ConfigDict, model: nn.Module,
                         input_shape: tuple[int, ...]) -> dict[str, Any] | None:
  """The variables that config.model.pretrained gives `model` (None when it
  is unset), checked against the model's; ConfigError names a mismatch."""
  path = model_config.get(PRETRAINED_FIELD)
  if not path:
    return None
  from unetjax.models import torchvision_weights  # pylint: disable=import-outside-toplevel
  return torchvision_weights.pretrained_variables(
      path, model.num_layers, variable_shapes(model, (1,) + tuple(input_shape)))


def init_compiler_options() -> dict[str, Any] | None:
  """XLA options for compiling a model's initialisation.

  XLA's CPU backend spends seconds optimising the random initialisers of a
  program that runs once; unoptimised it compiles ~5x faster.
  """
  return ({'xla_backend_optimization_level': 0}
          if jax.default_backend() == 'cpu' else None)


def initialize(model: nn.Module, rng: jax.Array,
               input_shape: tuple[int, ...]) -> dict[str, Any]:
  """model.init on zeros of `input_shape` (NHWC), compiled."""
  return jax.jit(lambda key: model.init(key, jnp.zeros(input_shape), train=False),
                 compiler_options=init_compiler_options())(rng)


def variable_shapes(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, Any]:
  """The shapes and dtypes of model.init's variables, traced without compute."""
  return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(input_shape),
                                           train=False))


def parameter_count(model: nn.Module, input_shape: tuple[int, ...]) -> int:
  """Trainable parameters (batch-norm running statistics are not counted)."""
  params = variable_shapes(model, input_shape)['params']
  return sum(leaf.size for leaf in jax.tree.leaves(params))


def forward_flops(model: nn.Module, input_shape: tuple[int, ...]) -> float:
  """FLOPs of one evaluation-mode forward pass on `input_shape`, as counted
  by XLA's cost analysis of the compiled program (2 per multiply-add)."""
  variables = variable_shapes(model, input_shape)
  images = jax.ShapeDtypeStruct(input_shape, jnp.float32)
  compiled = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(
      variables, images).compile()
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):  # one entry per program in older jax
    cost = cost[0]
  return float(cost['flops'])
