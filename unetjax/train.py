"""Training: the pure train step, and the loop.

`train_step` (and `evaluation.eval_step`, the evaluation's) are pure
functions of (state, batch) of a `unetjax.state.TrainState`; the loop
compiles them with `jax.jit` (or `jax.pmap`) over the devices of
`unetjax.parallel`, and runs its periodic actions (logging, validation,
checkpointing) after the steps they are due. Everything random derives from `config.seed` and the step
number, and batches come in a fixed order by step, so a resumed run follows
the same trajectory as an uninterrupted one.
"""

import dataclasses
import functools
import math
import os
import time
from typing import Any, Callable, Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from tqdm import tqdm

from unetjax import augment
from unetjax import checkpoints
from unetjax import classification_metrics
from unetjax import configuration
from unetjax import evaluation
from unetjax import logs
from unetjax import losses
from unetjax import metrics
from unetjax import models
from unetjax import optimizers
from unetjax import parallel
from unetjax import plots
from unetjax import signals
from unetjax import state as state_lib
from unetjax import tasks
from unetjax import workdir as workdir_lib
from unetjax.data import pipeline
from unetjax.errors import DivergenceError, InputShapeError, Stopped, WorkdirError


# Figures written into the workdir at the end of a run.
CURVES_FILE = 'curves.png'
PREDICTIONS_FILE = 'predictions.png'


def augment_inputs(batch: dict[str, jax.Array], step: jax.Array,
                   augment_rng: jax.Array,
                   augment_config: ml_collections.ConfigDict | None,
                   axis_name: str | None,
                   weight_maps: tuple[str, ...] = ('roi',)):
  """Preprocessed images, labels and the loss's pixel weights (the product
  of the batch's `weight_maps` it has, `losses.weight_maps`; None: all 1) of
  `batch`,
  augmented on the device when `augment_config` enables any op. Example
  keys follow the example's place in the global batch, so jit and pmap
  augment alike. Segmentation labels ('mask') and the maps move with the
  image; a classification batch ('label', one class per image) has only the
  image to augment."""
  images = state_lib.preprocess(batch['image'])
  maps = tuple(batch[key] for key in ('mask',) + weight_maps if key in batch)
  if augment_config is not None and augment.enabled_ops(augment_config):
    offset = (jax.lax.axis_index(axis_name) * images.shape[0]
              if axis_name is not None else 0)
    images, maps = augment.augment_batch(
        jax.random.fold_in(augment_rng, step), images, maps, augment_config,
        index_offset=offset)
  if 'label' in batch:
    return images, batch['label'].astype(jnp.int32), None
  weights = None
  for weight_map in maps[1:]:
    weight_map = weight_map.astype(jnp.float32)
    weights = weight_map if weights is None else weights * weight_map
  return images, maps[0].astype(jnp.int32), weights


def train_step(state: state_lib.TrainState, batch: dict[str, jax.Array], *,
               loss_fn: losses.LossFn, dropout_rng: jax.Array,
               augment_rng: jax.Array | None = None,
               augment_config: ml_collections.ConfigDict | None = None,
               skip_nonfinite: bool = False, axis_name: str | None = None,
               weight_maps: tuple[str, ...] = ('roi',), ema_decay: float = 0.0
               ) -> tuple[state_lib.TrainState, dict[str, jax.Array]]:
  """One optimizer update on `batch` ('image' uint8 NHWC, 'mask' class ids,
  optionally 'roi', the pixels to learn from, and the other `weight_maps`
  of the loss, `losses.weight_maps`), augmented per `augment_config`.

  Under pmap (`axis_name` set) gradients, loss and batch-norm statistics are
  averaged over devices, and each device draws its own dropout masks. A
  non-finite loss or gradient is reported as `finite` False; with
  `skip_nonfinite` the update is then dropped (the step still counts). A
  state with ema_params moves them towards the new params (`ema_decay`).
  """
  rng = jax.random.fold_in(dropout_rng, state.step)
  if axis_name is not None:
    rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))
  images, labels, roi = augment_inputs(batch, state.step, augment_rng,
                                       augment_config, axis_name, weight_maps)

  def compute_loss(params):
    outputs, updates = state.apply_fn(
        {'params': params, 'batch_stats': state.batch_stats},
        images, train=True, rngs={'dropout': rng},
        mutable=['batch_stats'])
    return (loss_fn(outputs, labels, mask=roi),
            updates.get('batch_stats', state.batch_stats))

  (loss, batch_stats), grads = jax.value_and_grad(compute_loss, has_aux=True)(
      state.params)
  if axis_name is not None:
    grads, loss, batch_stats = jax.lax.pmean((grads, loss, batch_stats), axis_name)
  finite = jnp.isfinite(loss) & jnp.all(jnp.array(
      [jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
  new_state = state_lib.average_weights(
      state.apply_gradients(grads=grads, batch_stats=batch_stats), state,
      ema_decay)
  if skip_nonfinite:
    kept = state.replace(step=new_state.step)
    new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old),
                             new_state, kept)
  return new_state, {'loss': loss, 'finite': finite}


# A validation loss this many times the untrained model's has diverged.
DIVERGED_FACTOR = 1000.0


def diverged(validation_loss: float, first_loss: float | None) -> bool:
  """Whether a validation loss says the model blew up: non-finite, or (for
  runs that know their first training loss) DIVERGED_FACTOR times it."""
  return not math.isfinite(validation_loss) or (
      first_loss is not None and validation_loss > DIVERGED_FACTOR * first_loss)


def _is_better(score: float, best: float | None, mode: str) -> bool:
  if not math.isfinite(score):
    return False
  return best is None or (score > best if mode == 'max' else score < best)


def _fit_for_training(config: ml_collections.ConfigDict):
  """Every check that can fail on user input, before the workdir is touched.
  Returns the model, the loss function, the prepared dataset's info, the
  shape the model trains on and the pretrained variables (or None)."""
  configuration.validate(config)
  model = models.get_model(config.model, config.dtype, config.param_dtype)
  loss_fn = losses.get_loss(config.loss)
  parallel.check_batch_size(config.batch_size, 'config.batch_size')
  parallel.check_batch_size(config.eval_batch_size, 'config.eval_batch_size')
  info = pipeline.prepare(config.dataset)
  configuration.check_task_fits(config, info.name, info.task)
  configuration.check_instances_fit(config, info.name, info.has_instances)
  configuration.check_dataset_fits(config.model.n_classes,
                                   config.loss.class_weights, info.name,
                                   info.class_names, info.task)
  pipeline.check_patches_fit(config.dataset, info)
  input_shape = pipeline.model_input_shape(config.dataset, info)
  # Tracing the model (no compute) raises InputShapeError for image sizes it
  # cannot take.
  try:
    jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                   jax.ShapeDtypeStruct((1,) + input_shape, jnp.float32))
  except InputShapeError as e:
    if pipeline.patch_sampling(config.dataset) is None:
      raise
    raise InputShapeError(
        f'config.dataset.patch_size={config.dataset.patch_size}: {e}') from e
  pretrained = models.pretrained_variables(config.model, model, input_shape)
  return model, loss_fn, info, input_shape, pretrained


def optimizer_and_schedule(config: ml_collections.ConfigDict):
  return optimizers.optimizer_and_schedule(
      config.optimizer, config.num_train_steps,
      config.model.get(models.FREEZE_FIELD, 0))


def check_checkpoint_fits(config: ml_collections.ConfigDict, model: nn.Module,
                          input_shape: tuple[int, int, int], workdir: str) -> None:
  """WorkdirError unless every checkpoint of the workdir (the latest ones and
  the best) has the arrays of `config`'s model and optimizer, so that a
  changed config is refused before anything is written."""
  tx, _ = optimizer_and_schedule(config)
  shapes = jax.eval_shape(functools.partial(
      state_lib.create_train_state, model=model, tx=tx,
      image_shape=input_shape, averaged=state_lib.averaged(config)), jax.random.key(0))
  problem = checkpoints.misfit(workdir, shapes)
  if problem:
    raise WorkdirError(
        f'--allow_config_change: a checkpoint in {workdir} does not fit the '
        f'new config ({problem}); nothing was changed. Keep the saved '
        'config.json\'s model and optimizer fields, or use a new --workdir.')


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       allow_config_change: bool = False) -> dict[str, Any]:
  """Trains (or resumes) the run in `workdir`, then evaluates its best
  checkpoint on the validation and test splits. Returns the final record.

  Raises Stopped after checkpointing if SIGTERM or Ctrl-C arrives, and
  DivergenceError (keeping the checkpoints saved before) if the loss becomes
  non-finite and config.on_nonfinite_loss is 'stop'.
  """
  invocation_start = time.time()
  model, loss_fn, info, input_shape, pretrained = _fit_for_training(config)
  with workdir_lib.hold(workdir):  # one run writes to a workdir
    if allow_config_change:
      check_checkpoint_fits(config, model, input_shape, workdir)
    workdir_lib.record_config(workdir, config, allow_config_change, info.build)
    return _train_and_evaluate(config, workdir, model, loss_fn, info,
                               input_shape, invocation_start, pretrained)


@dataclasses.dataclass
class Progress:
  """What the loop changes as it goes. `meta` (best score and step, the
  untrained model's loss, skipped steps, wall time) and the current logging
  interval's losses go into checkpoints, so a resumed run logs and selects
  as an uninterrupted one."""
  step: int
  meta: dict[str, Any]
  invocation_start: float
  interval_start: float = dataclasses.field(default_factory=time.time)
  interval_first_step: int = 0
  interval_losses: list[float] = dataclasses.field(default_factory=list)
  interval_skipped: int = 0

  def wall_time(self) -> float:
    return self.meta['wall_time_s'] + time.time() - self.invocation_start

  def checkpoint_meta(self) -> dict[str, Any]:
    return {**self.meta, 'wall_time_s': self.wall_time(),
            'interval_losses': self.interval_losses,
            'interval_skipped': self.interval_skipped}

  def new_interval(self) -> None:
    self.interval_start, self.interval_first_step = time.time(), self.step
    self.interval_losses, self.interval_skipped = [], 0


@dataclasses.dataclass
class Loop:
  """The fixed parts of a training run, built once by `_train_and_evaluate`."""
  config: ml_collections.ConfigDict
  workdir: str
  strategy: parallel.Strategy
  evaluate_split: evaluation.Evaluator
  schedule: optax.Schedule
  ckpts: checkpoints.Checkpoints
  logger: logs.MetricLogger
  bar: tqdm
  task: str = tasks.SEGMENTATION  # the model's and the dataset's
  label: str = ''  # printed before its lines when several runs train at once

  def untrusted(self, step: int, reason: str) -> DivergenceError:
    """The error that stops a run whose results cannot be trusted, its
    reason logged to metrics.jsonl as a 'stopped' event."""
    self.logger.write('stopped', step, reason=reason)
    return DivergenceError(reason)


# A periodic action of the loop: (loop, progress, state) -> None, run after
# the steps its period divides (and the last step).
Action = Callable[[Loop, Progress, state_lib.TrainState], None]


def record_loss(loop: Loop, progress: Progress, step: int,
                outputs: dict[str, jax.Array]) -> None:
  """Waits for the dispatched `step` and checks its loss."""
  loss, finite = loop.strategy.fetch((outputs['loss'], outputs['finite']))
  if finite:
    progress.interval_losses.append(float(loss))
    if step == 1:  # the untrained model's loss, for `diverged`
      progress.meta['first_loss'] = float(loss)
  elif loop.config.on_nonfinite_loss == 'skip':
    progress.interval_skipped += 1
    progress.meta['skipped_steps'] = progress.meta.get('skipped_steps', 0) + 1
  else:
    raise loop.untrusted(step, (
        f'The training loss or its gradient became non-finite at step {step} '
        f'(loss {float(loss)}). Lower config.optimizer.learning_rate, set '
        'config.optimizer.grad_clip_norm, or set '
        "config.on_nonfinite_loss='skip'; the checkpoints saved before are "
        f'kept in {loop.workdir}.'))


def log_training(loop: Loop, progress: Progress,
                 state: state_lib.TrainState) -> None:
  """Logs the interval's mean loss and speed; stops a run that skipped more
  than config.max_skipped_fraction of its steps."""
  del state
  config, step = loop.config, progress.step
  images_per_s = ((step - progress.interval_first_step) * config.batch_size
                  / (time.time() - progress.interval_start))
  loss = (float(np.mean(progress.interval_losses)) if progress.interval_losses
          else float('nan'))
  loop.logger.write('train', step, split='train', loss=loss,
                    learning_rate=float(loop.schedule(step - 1)),
                    images_per_s=images_per_s,
                    skipped_steps=progress.interval_skipped)
  loop.bar.set_postfix(loss=f'{loss:.4f}', img_s=f'{images_per_s:.1f}')
  progress.new_interval()
  skipped = progress.meta.get('skipped_steps', 0)
  if skipped > config.max_skipped_fraction * step:
    raise loop.untrusted(step, (
        f'{skipped} of the {step} training steps so far were skipped for a '
        'non-finite loss or gradient, more than '
        f'config.max_skipped_fraction={config.max_skipped_fraction}: the model '
        'did not learn from its data. Lower config.optimizer.learning_rate or '
        'set config.optimizer.grad_clip_norm.'))


def validate(loop: Loop, progress: Progress,
             state: state_lib.TrainState) -> None:
  """Scores the validation split, stops a diverged run, and saves the best
  checkpoint by config.best_metric."""
  config, step, meta = loop.config, progress.step, progress.meta
  result = loop.evaluate_split(state, 'validation')
  loop.logger.write('eval', step, split='validation', **result)
  loop.bar.write(f'{loop.label}step {step}: validation ' + ', '.join(
      f'{k} {result[k]:.4f}' for k in metrics.HEADLINE[loop.task]))
  if diverged(result['loss'], meta.get('first_loss')):
    raise loop.untrusted(step, (
        f'The validation loss is {result["loss"]:.6g} at step {step} (the '
        f'untrained model had {meta.get("first_loss", math.nan):.4g}): '
        'training diverged. Lower config.optimizer.learning_rate or set '
        'config.optimizer.grad_clip_norm.'))
  score = result[config.best_metric]
  if _is_better(score, meta['best_score'], config.best_metric_mode):
    progress.meta = {**meta, 'best_score': score, 'best_step': step}
    loop.ckpts.save_best(step, loop.strategy.host_state(state), score,
                         {**progress.meta, 'wall_time_s': progress.wall_time()})


def save_checkpoint(loop: Loop, progress: Progress,
                    state: state_lib.TrainState) -> None:
  loop.ckpts.save_latest(progress.step, loop.strategy.host_state(state),
                         progress.checkpoint_meta())


def periodic_actions(config: ml_collections.ConfigDict
                     ) -> list[tuple[int, Action]]:
  """(period in steps, action), in the order they run after a step."""
  return [(config.log_every_steps, log_training),
          (config.eval_every_steps, validate),
          (config.checkpoint_every_steps, save_checkpoint)]


@dataclasses.dataclass
class Trainer:
  """What the runs trained by one program share: the device strategy, the
  evaluator, the model as the strategy trains it, the optimizer and the
  train step's options."""
  strategy: parallel.Strategy
  evaluate_split: evaluation.Evaluator
  totals: dict[str, metrics.Stats]  # each split's last evaluation's sums
  model: nn.Module
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  step_options: dict[str, Any]

  @classmethod
  def build(cls, config: ml_collections.ConfigDict, info: pipeline.DatasetInfo,
            model: nn.Module, loss_fn: losses.LossFn) -> 'Trainer':
    strategy = parallel.get_strategy(config.parallel)
    totals = {}
    evaluate_split = evaluation.make_evaluator(config, info, strategy, model,
                                               loss_fn, totals)
    tx, schedule = optimizer_and_schedule(config)
    return cls(strategy, evaluate_split, totals,
               state_lib.model_for_strategy(model, config.parallel,
                                            config.sync_batch_norm),
               tx, schedule, step_options(config, loss_fn))


def step_options(config: ml_collections.ConfigDict,
                 loss_fn: losses.LossFn) -> dict[str, Any]:
  """`train_step`'s keyword options that `config` sets (all but the keys)."""
  return dict(loss_fn=loss_fn, augment_config=config.augment,
              skip_nonfinite=config.on_nonfinite_loss == 'skip',
              weight_maps=losses.weight_maps(config.loss),
              ema_decay=config.optimizer.get('ema_decay', 0.0))


def seed_keys(seed: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(init, dropout, augmentation) keys of the run with config.seed `seed`."""
  init_rng, dropout_rng = jax.random.split(jax.random.key(seed))
  return init_rng, dropout_rng, jax.random.fold_in(jax.random.key(seed), 1)


@dataclasses.dataclass
class Run:
  """One workdir's run as the loop trains it: its fixed parts (`loop`), what
  changes (`progress`), its state as restored (one copy, not yet placed),
  the template the best checkpoint is restored into, and its keys."""
  loop: Loop
  progress: Progress
  state: state_lib.TrainState
  template: state_lib.TrainState
  dropout_rng: jax.Array
  augment_rng: jax.Array
  failure: DivergenceError | None = None


def new_state(trainer: Trainer, config: ml_collections.ConfigDict,
              input_shape: tuple[int, int, int],
              pretrained: dict[str, Any] | None) -> state_lib.TrainState:
  """The untrained state of `config.seed`."""
  return state_lib.init_train_state(seed_keys(config.seed)[0], trainer.model,
                                    trainer.tx, input_shape,
                                    trainer.strategy.init_sharding, pretrained,
                                    averaged=state_lib.averaged(config))


def start_run(trainer: Trainer, config: ml_collections.ConfigDict, workdir: str,
              ckpts: checkpoints.Checkpoints, state: state_lib.TrainState,
              restored: tuple[Any, dict[str, Any], int] | None,
              invocation_start: float, task: str, label: str = '',
              show_progress: bool = True) -> Run:
  """The run of `workdir` from its new `state`, or from the checkpoint
  `restored` (`Checkpoints.restore_latest`)."""
  meta = {'wall_time_s': 0.0, 'best_score': None, 'best_step': None}
  template = state  # one copy, for restoring the best checkpoint at the end
  if restored is not None:
    state, meta, _ = restored
    meta = ckpts.best_to_beat(
        meta, logs.validation_scores(workdir, config.best_metric))
  logger = logs.MetricLogger(workdir, resumed_at=int(state.step))
  if restored is not None:
    if jax.process_index() == 0:
      print(f'Resuming from step {int(state.step)} of {workdir}.')
    logger.write('resume', int(state.step))
  progress = Progress(step=int(state.step), meta=meta,
                      invocation_start=invocation_start,
                      interval_first_step=int(state.step),
                      interval_losses=list(meta.get('interval_losses', [])),
                      interval_skipped=meta.get('interval_skipped', 0))
  bar = tqdm(total=config.num_train_steps, initial=progress.step,
             desc=f'{label}train', unit='step', dynamic_ncols=True,
             disable=not (show_progress and config.progress_bar
                          and jax.process_index() == 0))
  loop = Loop(config, workdir, trainer.strategy, trainer.evaluate_split,
              trainer.schedule, ckpts, logger, bar, task, label)
  _, dropout_rng, augment_rng = seed_keys(config.seed)
  return Run(loop, progress, state, template, dropout_rng, augment_rng)


def open_checkpoints(config: ml_collections.ConfigDict,
                     workdir: str) -> checkpoints.Checkpoints:
  return checkpoints.Checkpoints(workdir, config.max_checkpoints_to_keep,
                                 config.best_metric_mode)


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                        model: nn.Module, loss_fn: losses.LossFn,
                        info: pipeline.DatasetInfo,
                        input_shape: tuple[int, int, int],
                        invocation_start: float,
                        pretrained: dict[str, Any] | None) -> dict[str, Any]:
  trainer = Trainer.build(config, info, model, loss_fn)
  state = new_state(trainer, config, input_shape, pretrained)
  ckpts = open_checkpoints(config, workdir)
  run = start_run(trainer, config, workdir, ckpts, state,
                  ckpts.restore_latest(state), invocation_start, info.task)
  step_fn = trainer.strategy.compile(functools.partial(
      train_step, dropout_rng=run.dropout_rng, augment_rng=run.augment_rng,
      **trainer.step_options), donate_state=True)
  batches = trainer.strategy.prefetch(pipeline.train_batches(
      config.dataset, parallel.host_batch_size(config.batch_size), config.seed,
      start_step=run.progress.step))
  run_loop([run], trainer.strategy.place_state(run.state), step_fn, batches)
  return finish_run(trainer, run, info)


def finish_run(trainer: Trainer, run: Run,
               info: pipeline.DatasetInfo) -> dict[str, Any]:
  """Evaluates the best checkpoint of a trained run on the validation and
  test splits, logs the final record, draws the figures; returns the record."""
  loop, config = run.loop, run.loop.config
  best = restore_best_state(run.template, loop.ckpts, loop.workdir,
                            config.best_metric)
  final = final_evaluation(trainer.evaluate_split,
                           trainer.strategy.place_state(best.state), best,
                           config.best_metric)
  final['wall_time_s'] = run.progress.wall_time()
  loop.logger.write('final', run.progress.step, **final)
  loop.logger.close()
  loop.ckpts.close()
  if jax.process_index() == 0:
    if info.task == tasks.CLASSIFICATION:
      write_classification_figures(loop.workdir, config, info,
                                   trainer.totals['test'])
    else:
      write_run_figures(loop.workdir, config, info, best.state)
    print(loop.label + logs.format_summary(final, config.best_metric))
  return final


def run_loop(runs: list[Run], state: Any, step_fn: Callable,
             batches: Iterator[dict[str, Any]]) -> None:
  """Trains `runs` (one, or the seeds trained at once, whose loops see their
  own part of `state` and of the step's outputs) from their step to
  config.num_train_steps, running the periodic actions; checkpoints and
  raises Stopped on a stop request.

  A run whose results cannot be trusted (DivergenceError) is left behind
  with its `failure` and the others go on; when none is left, the first
  failure is raised."""
  config, actions = runs[0].loop.config, periodic_actions(runs[0].loop.config)
  exit_message = lambda: ('Interrupted again: exited at once; ' + ' '.join(
      run.loop.ckpts.on_disk() for run in runs) + ' Re-run the same command '
      'to resume from that checkpoint.')
  step, pending = runs[0].progress.step, None

  def each_live_run(action: Callable[[Run], None]) -> None:
    for run in runs:
      if run.failure is None:
        try:
          action(run)
        except DivergenceError as e:
          run.failure = e
    if all(run.failure for run in runs):
      raise runs[0].failure

  def record(done_step: int, outputs: dict[str, jax.Array]) -> None:
    each_live_run(lambda run: record_loss(run.loop, run.progress, done_step,
                                          outputs))

  with signals.StopRequests(exit_message) as stop_requests:
    try:
      while step < config.num_train_steps:
        state, outputs = step_fn(state, next(batches))
        step += 1
        for run in runs:
          run.progress.step = step
        # Keep one step in flight, not an unbounded queue: the device stays
        # busy and the progress bar counts steps done, not steps dispatched.
        if pending:
          record(*pending)
        pending = (step, outputs)
        for run in runs:
          run.loop.bar.update(1)
        last = step == config.num_train_steps
        due = [action for every, action in actions
               if step % every == 0 or last]
        stop_now = stop_requests.requested(collective=log_training in due)
        if not (due or stop_now):
          continue
        record(*pending)  # nothing non-finite is logged or saved
        pending = None
        for action in due:
          each_live_run(lambda run: action(run.loop, run.progress, state))
        if stop_now and save_checkpoint not in due:
          each_live_run(lambda run: save_checkpoint(run.loop, run.progress, state))
        if stop_now and not last:
          raise Stopped(
              f'Stopped by {stop_requests.signal_name or "a stop request"} at '
              f'step {step}, after saving its checkpoint. Re-run the '
              'same command to resume.', stop_requests.signal_name)
    except BaseException:
      for run in runs:
        run.loop.bar.close()
        run.loop.ckpts.close(raise_errors=False)  # saves end before the error is reported
      raise
    for run in runs:
      run.loop.bar.close()
      run.loop.ckpts.wait()


def restore_best_state(template: state_lib.TrainState,
                       ckpts: checkpoints.Checkpoints, workdir: str,
                       best_metric: str) -> checkpoints.Best:
  """The best checkpoint (one copy, laid out as `template`): best/ if intact,
  else the intact checkpoint with the best validation score that
  metrics.jsonl records (`Checkpoints.restore_best`); the latest if no
  validation score was ever finite."""
  best = ckpts.restore_best(template, logs.validation_scores(workdir, best_metric),
                            best_metric)
  if best is None:
    raise WorkdirError(f'{workdir} holds no intact checkpoint to evaluate (the '
                       f'damaged ones are in {checkpoints.DAMAGED_DIR}/): '
                       'train again in a new --workdir.')
  return best


def final_evaluation(evaluate_split: evaluation.Evaluator, best_state: state_lib.TrainState,
                     best: checkpoints.Best, best_metric: str) -> dict[str, Any]:
  """Validation and test metrics of the best state (placed by the strategy),
  with the best step and the checkpoint they come from (not the best step's
  when the best was lost)."""
  return {
      'best_step': best.step if best.best_step is None else best.best_step,
      'best_restored_from': {'checkpoint': best.source, 'step': best.step},
      'best_metric': best_metric,
      'validation': evaluate_split(best_state, 'validation'),
      'test': evaluate_split(best_state, 'test'),
  }


CONFUSION_FILE = 'confusion_matrix.png'
ROC_FILE = 'roc_curves.png'


def write_classification_figures(workdir: str, config: ml_collections.ConfigDict,
                                 info: pipeline.DatasetInfo,
                                 test_total: metrics.Stats) -> None:
  """workdir/curves.png (losses and the validation best_metric against
  step), and the best state's confusion matrix and one-vs-rest ROC curves
  on the test split."""
  plots.plot_curves(os.path.join(workdir, CURVES_FILE),
                    {'': logs.read_metrics(workdir)}, config.best_metric)
  plots.plot_confusion_matrix(os.path.join(workdir, CONFUSION_FILE),
                              np.asarray(test_total['confusion']),
                              info.class_names)
  plots.plot_roc_curves(os.path.join(workdir, ROC_FILE), {
      name: classification_metrics.roc_curve(positives, negatives)
      for name, positives, negatives in zip(
          info.class_names, test_total['positive_scores'],
          test_total['negative_scores'])})


def write_run_figures(workdir: str, config: ml_collections.ConfigDict,
                      info: pipeline.DatasetInfo, best_state: state_lib.TrainState,
                      n_examples: int = 4) -> None:
  """workdir/curves.png (losses and the validation best_metric against step)
  and workdir/predictions.png (the first `n_examples` test images, their
  ground truth and the best state's prediction)."""
  plots.plot_curves(os.path.join(workdir, CURVES_FILE),
                    {'': logs.read_metrics(workdir)}, config.best_metric)
  images, labels, predictions = evaluation.predict_test_examples(
      config, best_state, n_examples)
  plots.plot_predictions(os.path.join(workdir, PREDICTIONS_FILE), images,
                         labels, predictions, len(info.class_names))
