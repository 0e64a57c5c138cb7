"""A trained model's state: the TrainState, initialisation, input
preprocessing, and the model's variables restored from a workdir for
inference (its optimizer and schedule: unetjax/optimizers.py)."""

import dataclasses
import functools
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from unetjax import checkpoints
from unetjax import logs
from unetjax import models
from unetjax import sliding_window
from unetjax import workdir as workdir_lib
from unetjax.data import pipeline
from unetjax.errors import WorkdirError
from unetjax.models import torchvision_weights


class TrainState(train_state.TrainState):
  batch_stats: Any = None
  # The params' exponential moving average (config.optimizer.ema_decay), the
  # weights evaluation and prediction use; None: they use `params`.
  ema_params: Any = None


def averaged(config: ml_collections.ConfigDict) -> bool:
  """Whether `config`'s run keeps a moving average of its weights to
  evaluate (config.optimizer.ema_decay)."""
  return config.optimizer.get('ema_decay', 0.0) > 0


def average_weights(state: TrainState, previous: TrainState,
                    decay: float) -> TrainState:
  """`state` (one update after `previous`) with the moving average of its
  params moved towards them. The decay is min(decay, (1 + t) / (10 + t)) at
  step t, TensorFlow's ExponentialMovingAverage with num_updates, so the
  average does not linger on the first weights. (optax.ema averages an
  optimizer's updates, not the weights beside them.)"""
  if state.ema_params is None:
    return state
  t = state.step.astype(jnp.float32)
  rate = jnp.minimum(decay, (1.0 + t) / (10.0 + t))
  return state.replace(ema_params=jax.tree.map(
      lambda average, weight: (rate * average + (1.0 - rate) * weight
                               ).astype(average.dtype),
      previous.ema_params, state.params))


def create_train_state(rng: jax.Array, model: nn.Module,
                       tx: optax.GradientTransformation,
                       image_shape: tuple[int, ...],
                       pretrained: dict[str, Any] | None = None,
                       averaged: bool = False) -> TrainState:
  """A new state: `model`'s initial variables, with the leaves that
  `pretrained` (models.pretrained_variables) holds replaced; `averaged`: with
  a moving average of the params (`average_weights`), starting at them."""
  variables = model.init(rng, jnp.zeros((1,) + tuple(image_shape)), train=False)
  if pretrained:
    variables = torchvision_weights.merge(variables, pretrained)
  state = TrainState.create(apply_fn=model.apply, params=variables['params'],
                            batch_stats=variables.get('batch_stats', {}), tx=tx)
  if averaged:
    state = state.replace(ema_params=state.params)
  # A strongly typed step, as restored from a checkpoint, so resuming does not
  # recompile the steps for a different input type.
  return state.replace(step=jnp.zeros((), jnp.int32))


def init_train_state(rng: jax.Array, model: nn.Module,
                     tx: optax.GradientTransformation,
                     image_shape: tuple[int, ...], sharding=None,
                     pretrained: dict[str, Any] | None = None,
                     averaged: bool = False) -> TrainState:
  """`create_train_state`, compiled, with the result placed on `sharding`."""
  return jax.jit(functools.partial(create_train_state, model=model, tx=tx,
                                   image_shape=image_shape, averaged=averaged),
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


@functools.partial(jax.jit, static_argnums=0)
def forward(model: nn.Module, variables: dict[str, Any],
            images: jax.Array) -> jax.Array:
  """float32 logits of `model` in evaluation mode, compiled per model and
  window batch shape."""
  return model.apply(variables, images, train=False).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class TrainedRun:
  """What prediction needs from a training run's workdir."""
  config: ml_collections.ConfigDict
  apply_fn: sliding_window.ApplyFn
  window: tuple[int, int]
  channels: int
  class_names: tuple[str, ...]
  task: str  # 'segmentation' or 'classification' (models.TASKS)
  mask_threshold: int | None  # the dataset's, for lossy masks
  # Trained on instances: how objects are read from the predicted classes
  # (instances.OBJECT_RULES), to write them too; None otherwise.
  objects: str | None
  checkpoint: str  # 'best', 'next best' (the best was lost) or 'latest'
  step: int


def check_workdir(workdir: str) -> None:
  """WorkdirError unless `workdir` has a config and a checkpoint folder."""
  if not os.path.isdir(workdir):
    raise WorkdirError(f'--workdir={workdir}: no such folder. Pass the workdir '
                       'of a training run (python -m unetjax.main ...).')
  config_path = os.path.join(workdir, workdir_lib.CONFIG_FILE)
  if not os.path.isfile(config_path):
    raise WorkdirError(f'{workdir} has no {workdir_lib.CONFIG_FILE}, so it is '
                       'not a unetjax training run.')
  if not any(os.path.isdir(os.path.join(workdir, d))
             for d in ('best', 'checkpoints')):
    raise WorkdirError(f'{workdir} has no checkpoint yet (no best/ or '
                       'checkpoints/ folder): train it first.')


def _tuples(tree: Any) -> Any:
  """JSON lists back to the config's tuples (hashable model fields)."""
  if isinstance(tree, dict):
    return {k: _tuples(v) for k, v in tree.items()}
  if isinstance(tree, list):
    return tuple(_tuples(v) for v in tree)
  return tree


def load_run(workdir: str) -> TrainedRun:
  """The model of `workdir`'s best checkpoint (`Checkpoints.restore_best`),
  compiled per window shape; WorkdirError if the workdir holds no trained run."""
  check_workdir(workdir)
  saved = workdir_lib.read_config(workdir)
  saved.pop(workdir_lib.DATASET_BUILD, None)
  config = ml_collections.ConfigDict(_tuples(saved))
  model = models.get_model(config.model, config.dtype, config.param_dtype)
  info = pipeline.describe(config.dataset)
  shape = pipeline.model_input_shape(config.dataset, info)
  window, channels = tuple(shape[:2]), shape[2]
  ckpts = checkpoints.Checkpoints(workdir, best_mode=config.best_metric_mode,
                                  read_only=True)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  try:
    # Tolerates a damaged step and one that a training run in the same
    # workdir deletes while it is read.
    restored = ckpts.restore_variables(
        variables_template(model, window + (channels,), device),
        logs.validation_scores(workdir, config.best_metric), config.best_metric,
        averaged=averaged(config))
  finally:
    ckpts.close()
  if restored is None:
    raise WorkdirError(f'{workdir} has no complete checkpoint yet: train it '
                       'until it saves one.')
  variables, name, step = restored
  return TrainedRun(config=config,
             apply_fn=functools.partial(forward, model, variables),
             window=window, channels=channels, class_names=info.class_names,
             task=models.task(config.model.name),
             mask_threshold=info.mask_threshold,
             objects=info.objects if info.has_instances else None,
             checkpoint=name, step=int(step))
