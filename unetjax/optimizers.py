"""The optimizer and its learning-rate schedule, built from config.optimizer.

`OPTIMIZERS` and `SCHEDULES` are the registries of `config.optimizer.name`
and `config.optimizer.schedule`: the config schema and `--help` read their
names from here, so a new choice is one entry.
"""

from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from unetjax.models import resnet


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
