"""A trained model's state: the TrainState, its optimizer and learning-rate
schedule, initialisation, input preprocessing, and the model's variables
restored from a workdir for inference.

`OPTIMIZERS` and `SCHEDULES` are the registries of `config.optimizer.name`
and `config.optimizer.schedule`: config checks and `--help` read their names
from here, so a new choice is one entry.
"""

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from unetjax import checkpoints
from unetjax import models
from unetjax.models import resnet, torchvision_weights


class TrainState(train_state.TrainState):
  batch_stats: Any = None


# name -> (learning rate schedule, optimizer config) -> optimizer
OPTIMIZERS: dict[str, Callable[[optax.Schedule, ml_collections.ConfigDict],
                               optax.GradientTransformation]] = {
    'adam': lambda lr, _: optax.adam(lr),
    'adamw': lambda lr, opt: optax.adamw(lr, weight_decay=opt.weight_decay),
    'sgd': lambda lr, _: optax.sgd(lr, momentum=0.9, nesterov=True),
}


def _constant(opt: ml_collections.ConfigDict, num_train_steps: int) -> optax.Schedule:
  del num_train_steps
  return optax.constant_schedule(opt.learning_rate)


def _warmup_cosine(opt: ml_collections.ConfigDict,
                   num_train_steps: int) -> optax.Schedule:
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=opt.learning_rate,
      warmup_steps=min(opt.warmup_steps, num_train_steps - 1),
      decay_steps=num_train_steps)


def _poly(opt: ml_collections.ConfigDict, num_train_steps: int) -> optax.Schedule:
  """nnU-Net's polynomial decay lr * (1 - t)**0.9 to 0 at the last step,
  after the linear warm-up."""
  warmup = min(opt.warmup_steps, num_train_steps - 1)
  return optax.join_schedules([
      optax.linear_schedule(0.0, opt.learning_rate, warmup),
      optax.polynomial_schedule(opt.learning_rate, 0.0, power=0.9,
                                transition_steps=num_train_steps - warmup)],
                              boundaries=[warmup])


# name -> (optimizer config, number of training steps) -> schedule
SCHEDULES: dict[str, Callable[[ml_collections.ConfigDict, int], optax.Schedule]] = {
    'constant': _constant,
    'warmup_cosine': _warmup_cosine,
    'poly': _poly,
}


def create_learning_rate_schedule(opt_config: ml_collections.ConfigDict,
                                  num_train_steps: int) -> optax.Schedule:
  return SCHEDULES[opt_config.schedule](opt_config, num_train_steps)


def create_optimizer(opt_config: ml_collections.ConfigDict,
                     schedule: optax.Schedule) -> optax.GradientTransformation:
  optimizer = OPTIMIZERS[opt_config.name](schedule, opt_config)
  if opt_config.grad_clip_norm > 0:
    return optax.chain(optax.clip_by_global_norm(opt_config.grad_clip_norm),
                       optimizer)
  return optimizer


def frozen_for(subtree: str, steps: int) -> optax.GradientTransformation:
  """Zeroes the updates of params[subtree] for the first `steps` updates."""

  def update(updates, state, params=None):
    del params
    frozen = state.count < steps
    updates = {**updates, subtree: jax.tree.map(
        lambda u: jnp.where(frozen, jnp.zeros_like(u), u), updates[subtree])}
    return updates, optax.ScaleByScheduleState(
        count=optax.safe_increment(state.count))

  return optax.GradientTransformation(
      lambda params: optax.ScaleByScheduleState(count=jnp.zeros([], jnp.int32)),
      update)


def optimizer_and_schedule(opt_config: ml_collections.ConfigDict,
                           num_train_steps: int, freeze_encoder_steps: int = 0
                           ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """The configured optimizer and the schedule that drives it. With
  `freeze_encoder_steps`, the encoder (of the ResNet models) stays as it
  was, e.g. as loaded from ImageNet weights, for that many steps: its
  gradients are zeroed before the optimizer (Adam's moments stay 0) and its
  updates after it (weight decay too)."""
  schedule = create_learning_rate_schedule(opt_config, num_train_steps)
  tx = create_optimizer(opt_config, schedule)
  if freeze_encoder_steps:
    freeze = frozen_for(resnet.ENCODER_SCOPE, freeze_encoder_steps)
    tx = optax.chain(freeze, tx, freeze)
  return tx, schedule


def create_train_state(rng: jax.Array, model: nn.Module,
                       tx: optax.GradientTransformation,
                       image_shape: tuple[int, ...],
                       pretrained: dict[str, Any] | None = None) -> TrainState:
  """A new state: `model`'s initial variables, with the leaves that
  `pretrained` (models.pretrained_variables) holds replaced."""
  variables = model.init(rng, jnp.zeros((1,) + tuple(image_shape)), train=False)
  if pretrained:
    variables = torchvision_weights.merge(variables, pretrained)
  state = TrainState.create(apply_fn=model.apply, params=variables['params'],
                            batch_stats=variables.get('batch_stats', {}), tx=tx)
  # A strongly typed step, as restored from a checkpoint, so resuming does not
  # recompile the steps for a different input type.
  return state.replace(step=jnp.zeros((), jnp.int32))


def init_train_state(rng: jax.Array, model: nn.Module,
                     tx: optax.GradientTransformation,
                     image_shape: tuple[int, ...], sharding=None,
                     pretrained: dict[str, Any] | None = None) -> TrainState:
  """`create_train_state`, compiled, with the result placed on `sharding`."""
  return jax.jit(functools.partial(create_train_state, model=model, tx=tx,
                                   image_shape=image_shape),
                 out_shardings=sharding,
                 compiler_options=models.init_compiler_options())(
                     rng, pretrained=pretrained)


def model_for_strategy(model: nn.Module, strategy: str,
                       sync_batch_norm: bool) -> nn.Module:
  """Under pmap with `sync_batch_norm`, batch norm takes its statistics over
  all devices (same parameters, so checkpoints are interchangeable)."""
  if strategy == 'pmap' and sync_batch_norm and getattr(model, 'norm', None) == 'batch':
    return model.clone(norm='sync_batch')
  return model


def preprocess(images: jax.Array) -> jax.Array:
  """uint8 pixels -> float32 in [0, 1]."""
  return images.astype(jnp.float32) / 255.0


def variables(state: TrainState) -> dict[str, Any]:
  """What inference needs of a state: {'params', 'batch_stats'} (the fields
  whose checksum `checkpoints` keeps apart)."""
  return checkpoints.variables_of(state)


def variables_template(model: nn.Module, image_shape: tuple[int, ...],
                       sharding: jax.sharding.Sharding) -> dict[str, Any]:
  """Shapes of `variables` of `model` on `sharding`, traced without compute,
  to restore a checkpoint's variables into (no optimizer is built)."""
  shapes = jax.eval_shape(lambda rng: model.init(
      rng, jnp.zeros((1,) + tuple(image_shape)), train=False), jax.random.key(0))
  shapes = {'params': shapes['params'],
            'batch_stats': shapes.get('batch_stats', {})}
  return jax.tree.map(
      lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)
