"""Model registry: `config.model.name` -> flax.linen Module class."""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from unetjax.errors import ConfigError
from unetjax.models.unet import UNet

MODELS: dict[str, type[nn.Module]] = {
    'unet': UNet,
}

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16, 'float16': jnp.float16}


def _dtype(name: str, field: str):
  if name not in DTYPES:
    raise ConfigError(f'Unknown dtype {name!r} ({field}); choose one of: '
                      f'{", ".join(DTYPES)}.')
  return DTYPES[name]


def get_model(model_config: ml_collections.ConfigDict, dtype: str = 'float32',
              param_dtype: str = 'float32') -> nn.Module:
  """Builds the model named by model_config.name from its other fields."""
  name = model_config.name
  if name not in MODELS:
    raise ConfigError(f'Unknown model {name!r} (config.model.name); choose one '
                      f'of: {", ".join(MODELS)}.')
  cls = MODELS[name]
  accepted = ({f.name for f in dataclasses.fields(cls)}
              - {'parent', 'name', 'dtype', 'param_dtype'})
  kwargs = {k: v for k, v in model_config.items() if k != 'name'}
  unknown = sorted(set(kwargs) - accepted)
  if unknown:
    raise ConfigError(f'Model {name!r} has no field(s) {", ".join(unknown)} '
                      f'(config.model); it takes: {", ".join(sorted(accepted))}.')
  return cls(**kwargs, dtype=_dtype(dtype, 'config.dtype'),
             param_dtype=_dtype(param_dtype, 'config.param_dtype'))


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
