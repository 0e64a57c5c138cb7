"""Evaluation of a model: the eval steps, the evaluator of a run's splits
(batched, or every whole image at its own size), object metrics of datasets
with instances, and the test predictions a run's figures show.

A model trained on patches (config.dataset.patch_size) is evaluated by a
sliding window of the patch size over each whole image (`sliding_window`),
and the full-resolution logits are scored inside the image's region of
interest by the same accumulator as batched evaluation
(`metrics.batch_statistics`), so every metric means the same in both.

Windows are split over this process's devices; each process scores its share
of the images and the sums are added over processes.
"""

import dataclasses
import functools
import itertools
import math
from typing import Any, Callable, Iterable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from unetjax import classification_metrics
from unetjax import instances
from unetjax import losses
from unetjax import metrics
from unetjax import models
from unetjax import parallel
from unetjax import sliding_window
from unetjax import state as state_lib
from unetjax import tasks
from unetjax.data import pipeline


@functools.partial(jax.jit, static_argnames=('loss_fn', 'metric_options'))
def image_statistics(logits: jax.Array, label: jax.Array, roi: jax.Array, *,
                     loss_fn: losses.LossFn,
                     metric_options: tuple[tuple[str, Any], ...]
                     ) -> metrics.Stats:
  """`metrics.batch_statistics` of one (H, W, K) image's logits inside `roi`,
  with its loss as 'loss_sum' (compiled per image shape)."""
  logits, label, roi = logits[None], label[None], roi[None]
  stats = metrics.batch_statistics(logits, label, mask=roi, **dict(metric_options))
  stats['loss_sum'] = loss_fn(logits, label, mask=roi)
  return stats


def local_apply_fn(model: nn.Module, variables: dict[str, Any]
                   ) -> tuple[sliding_window.ApplyFn, int]:
  """A window-batch forward pass split over this process's devices, and the
  number of devices (window batches must be a multiple of it)."""
  local = parallel.JitStrategy(jax.local_devices())
  placed = local.place_state(variables)

  def apply_fn(images: np.ndarray) -> np.ndarray:
    return np.asarray(state_lib.forward(model, placed, local.place_batch(
        {'image': images})['image']))
  return apply_fn, len(jax.local_devices())


@dataclasses.dataclass(frozen=True)
class ObjectScoring:
  """How one image's objects are scored: read from the predicted classes by
  `rule` (instances.OBJECT_RULES) and matched to the true ids; with more
  than two classes (and objects of any foreground class), also matched per
  class for panoptic quality per class."""
  rule: str = 'foreground'
  n_classes: int = 2

  def __call__(self, truth: np.ndarray, true_classes: np.ndarray,
               predicted: np.ndarray) -> dict[str, float]:
    """The `instances.totals` inputs of one image: ids `truth`, the true
    class map and the (H, W) predicted classes."""
    found = instances.objects_in(predicted, self.rule)
    if self.rule == 'background':
      # Scored inside the true regions only (foreground-restricted, as the
      # ISBI 2012 challenge): the grown regions' share of the true borders
      # does not count.
      found = np.where(truth > 0, found, 0)
    scores = {**instances.object_scores(truth, found),
              **instances.rand_and_information(truth, found)}
    if self.n_classes > 2 and self.rule == 'foreground':
      scores.update(instances.class_object_scores(
          truth, true_classes, predicted, self.n_classes))
    return scores


def _process_sum(total: dict[str, float]) -> dict[str, float]:
  if jax.process_count() == 1:
    return total
  gathered = multihost_utils.process_allgather(
      {k: np.float64(v) for k, v in total.items()})
  return {k: float(np.sum(v)) for k, v in gathered.items()}


def whole_image_statistics(apply_fn: sliding_window.ApplyFn,
                           examples: Iterable[dict[str, np.ndarray]],
                           preprocess: Callable[[np.ndarray], np.ndarray], *,
                           window: tuple[int, int], overlap: float,
                           batch_size: int, batch_multiple: int,
                           loss_fn: losses.LossFn,
                           metric_options: dict[str, Any],
                           objects: ObjectScoring | None = None,
                           mirror: bool = False
                           ) -> tuple[metrics.Stats, dict[str, float] | None]:
  """Sums of `image_statistics` over `examples` (this process's) and over
  processes, each image predicted whole by a sliding window (with `mirror`,
  averaged over the image's flips); with `objects` (examples with
  'instances'), also the `instances.totals` of the objects it scores in the
  same predictions."""
  options = tuple(sorted(metric_options.items()))
  total, per_image = None, []
  for example in examples:
    image = np.asarray(preprocess(example['image']))
    logits_of = lambda pixels: sliding_window.sliding_window_logits(
        apply_fn, pixels, window, overlap, batch_size=batch_size,
        batch_multiple=batch_multiple)
    logits = (sliding_window.mirrored(logits_of, image) if mirror
              else logits_of(image))
    label = example['mask'].astype(np.int32)
    roi = (example['roi'] > 0 if 'roi' in example
           else np.ones(label.shape, bool))
    total = metrics.merge(total, image_statistics(
        logits, label, roi, loss_fn=loss_fn, metric_options=options))
    if objects is not None:
      predicted = np.asarray(metrics.predict_classes(
          logits[None], metric_options.get('threshold', 0.5)))[0]
      per_image.append(objects(example['instances'], label, predicted))
  if jax.process_count() > 1:
    gathered = multihost_utils.process_allgather(total)
    total = jax.tree.map(lambda x: np.sum(x, axis=0), gathered)
  if objects is None:
    return total, None
  return total, _process_sum(instances.totals(per_image))


def object_totals(apply_fn: sliding_window.ApplyFn,
                  batches: Iterable[dict[str, np.ndarray]],
                  preprocess: Callable[[np.ndarray], np.ndarray],
                  threshold: float, objects: ObjectScoring = ObjectScoring()
                  ) -> dict[str, float]:
  """`instances.totals` over this process's `batches` (with 'instances', one
  id per true object) and over processes, scored by `objects` on the host
  with scipy and scikit-image."""
  per_image = []
  for batch in batches:
    predicted = np.asarray(metrics.predict_classes(
        apply_fn(np.asarray(preprocess(batch['image']))), threshold))
    per_image += [objects(batch['instances'][i], batch['mask'][i], predicted[i])
                  for i in np.flatnonzero(batch['valid'])]
  return _process_sum(instances.totals(per_image))


# --- evaluation of a training state: batched, whole images, objects ---

def eval_logits(state: state_lib.TrainState, images: jax.Array, *,
                mirror: bool = False, per_pixel: bool = True) -> jax.Array:
  """The state's logits of a batch of uint8 images; with `mirror` averaged
  over their flips (`sliding_window.mirrored`)."""
  variables = state_lib.variables(state)
  apply = lambda x: state.apply_fn(variables, x, train=False)
  pixels = state_lib.preprocess(images)
  return (sliding_window.mirrored(apply, pixels, first_axis=1,
                                  per_pixel=per_pixel)
          if mirror else apply(pixels))


def eval_step(state: state_lib.TrainState, batch: dict[str, jax.Array], *,
              loss_fn: losses.LossFn, axis_name: str | None = None,
              mirror: bool = False, **metric_options) -> metrics.Stats:
  """`metrics.batch_statistics` (with `metric_options`) and the summed
  per-image loss over the valid examples (summed over devices under pmap)."""
  logits = eval_logits(state, batch['image'], mirror=mirror)
  labels = batch['mask'].astype(jnp.int32)
  roi = batch.get('roi', jnp.ones_like(labels)).astype(bool)  # pixels to score
  per_image_loss = jax.vmap(
      lambda lo, la, m: loss_fn(lo[None], la[None], mask=m[None]))(
          logits, labels, roi)
  stats = metrics.batch_statistics(logits, labels, batch['valid'], mask=roi,
                                   **metric_options)
  stats['loss_sum'] = jnp.sum(jnp.where(batch['valid'], per_image_loss, 0.0))
  if axis_name is not None:
    stats = jax.lax.psum(stats, axis_name)
  return stats


def classification_eval_step(state: state_lib.TrainState,
                             batch: dict[str, jax.Array], *,
                             loss_fn: losses.LossFn,
                             axis_name: str | None = None,
                             mirror: bool = False) -> metrics.Stats:
  """`classification_metrics.batch_statistics`, the summed per-image loss
  and the image count, over the valid examples (summed over devices under
  pmap)."""
  logits = eval_logits(state, batch['image'], mirror=mirror, per_pixel=False)
  labels = batch['label'].astype(jnp.int32)
  per_image_loss = jax.vmap(lambda lo, la: loss_fn(lo[None], la[None]))(
      logits, labels)
  stats = classification_metrics.batch_statistics(logits, labels, batch['valid'])
  stats['loss_sum'] = jnp.sum(jnp.where(batch['valid'], per_image_loss, 0.0))
  stats['images'] = jnp.sum(batch['valid'].astype(jnp.int32))
  if axis_name is not None:
    stats = jax.lax.psum(stats, axis_name)
  return stats


# (state as laid out by the strategy, split name) -> metrics of that split.
Evaluator = Callable[[state_lib.TrainState, str], dict[str, float]]

# The eval step and the summary of its summed statistics, by task.
EVAL_STEPS = {tasks.SEGMENTATION: eval_step,
              tasks.CLASSIFICATION: classification_eval_step}
SUMMARIES = {tasks.SEGMENTATION: metrics.summarize,
             tasks.CLASSIFICATION: classification_metrics.summarize}


def summary(total: metrics.Stats, info: pipeline.DatasetInfo) -> dict[str, float]:
  result = SUMMARIES[info.task](total, info.class_names)
  result['loss'] = float(total['loss_sum'] / total['images'])
  return result


def evaluate(eval_step_fn: Callable, state: state_lib.TrainState,
             config: ml_collections.ConfigDict, split: str,
             info: pipeline.DatasetInfo, strategy: parallel.Strategy,
             totals: dict[str, metrics.Stats] | None = None) -> dict[str, float]:
  """Metrics of `state` on one pass over `split`; the summed statistics
  they come from go to totals[split] (e.g. for figures)."""
  batches = pipeline.eval_batches(config.dataset, split, parallel.host_batch_size(
      eval_batch_size(config.eval_batch_size, info.split_sizes.get(split))))
  total = None
  for batch in strategy.prefetch(batches):
    total = metrics.merge(total, strategy.fetch(eval_step_fn(state, batch)))
  if totals is not None:
    totals[split] = total
  return summary(total, info)


def evaluate_whole_images(state: state_lib.TrainState, split: str, *, model: nn.Module,
                          loss_fn: losses.LossFn,
                          config: ml_collections.ConfigDict,
                          info: pipeline.DatasetInfo,
                          strategy: parallel.Strategy) -> dict[str, float]:
  """Metrics of `state` on `split`, every image predicted at its own size by
  a sliding window of the training patch (`whole_image_statistics`); with
  instances, the object metrics of the same predictions too."""
  apply_fn, n_devices = local_apply_fn(
      model, strategy.host_state(state_lib.variables(state)))
  total, objects = whole_image_statistics(
      apply_fn, pipeline.examples(config.dataset, split),
      lambda image: np.asarray(state_lib.preprocess(image)),
      window=pipeline.patch_sampling(config.dataset).size,
      overlap=config.dataset.eval_overlap,
      batch_size=parallel.host_batch_size(config.eval_batch_size),
      batch_multiple=n_devices, loss_fn=loss_fn,
      metric_options=config.metrics.to_dict(),
      objects=object_scoring(info), mirror=config.eval_mirror)
  scores = summary(total, info)
  return scores if objects is None else {
      **scores, **instances.summarize_totals(objects, info.class_names)}


def object_scoring(info: pipeline.DatasetInfo) -> ObjectScoring | None:
  """How a dataset's objects are scored; None without instances."""
  if not info.has_instances:
    return None
  return ObjectScoring(info.objects, len(info.class_names))


def make_evaluator(config: ml_collections.ConfigDict, info: pipeline.DatasetInfo,
                   strategy: parallel.Strategy, model: nn.Module,
                   loss_fn: losses.LossFn,
                   totals: dict[str, metrics.Stats] | None = None) -> Evaluator:
  """Whole-image evaluation for runs trained on patches, batched evaluation
  of the stored images otherwise (keeping each split's last summed
  statistics in `totals`)."""
  if pipeline.patch_sampling(config.dataset) is not None:
    return functools.partial(evaluate_whole_images, model=model,
                             loss_fn=loss_fn, config=config, info=info,
                             strategy=strategy)
  options = config.metrics.to_dict() if info.task == tasks.SEGMENTATION else {}
  step = strategy.compile(functools.partial(
      EVAL_STEPS[info.task], loss_fn=loss_fn, mirror=config.eval_mirror,
      **options))
  evaluator = lambda state, split: evaluate(step, state, config, split, info,
                                           strategy, totals=totals)
  if not info.has_instances:
    return evaluator
  return lambda state, split: {
      **evaluator(state, split),
      **evaluate_objects(state, split, model=model, config=config,
                         strategy=strategy, info=info)}


def evaluate_objects(state: state_lib.TrainState, split: str, *,
                     model: nn.Module, config: ml_collections.ConfigDict,
                     strategy: parallel.Strategy,
                     info: pipeline.DatasetInfo) -> dict[str, float]:
  """Object metrics of `state` on `split` of a dataset with instances
  (`object_totals`, `instances.summarize_totals`)."""
  apply_fn, _ = local_apply_fn(
      model, strategy.host_state(state_lib.variables(state)))
  if config.eval_mirror:
    apply_fn = functools.partial(sliding_window.mirrored, apply_fn, first_axis=1)
  batches = pipeline.eval_batches(config.dataset, split, parallel.host_batch_size(
      config.eval_batch_size))
  return instances.summarize_totals(object_totals(
      apply_fn, batches, state_lib.preprocess, config.metrics.threshold,
      object_scoring(info)), info.class_names)


def eval_batch_size(batch_size: int, split_size: int | None) -> int:
  """`batch_size`, capped at the split's size rounded up to a multiple of the
  devices: a larger batch would only be padding (and memory)."""
  if not split_size:
    return batch_size
  n_devices = jax.device_count()
  return min(batch_size, math.ceil(split_size / n_devices) * n_devices)


def predict_test_examples(config: ml_collections.ConfigDict,
                          best_state: state_lib.TrainState, n_examples: int
                          ) -> tuple[list[Any], list[Any], list[Any]]:
  """The first `n_examples` test images, their labels and the state's
  predicted classes, as the run's figures show them: batched at the stored
  size, or each whole image through the sliding window of a run trained on
  patches."""
  # The model as built from the config: sync batch norm only differs in
  # training, and this state is one host copy.
  model = models.get_model(config.model, config.dtype, config.param_dtype)
  # One replica on this host (the state may be replicated over all hosts).
  state = jax.tree.map(lambda x: np.asarray(x.addressable_data(0))
                       if isinstance(x, jax.Array) else x, best_state)
  variables = state_lib.variables(state)
  sampling = pipeline.patch_sampling(config.dataset)
  threshold = config.metrics.threshold
  if sampling is None:
    batches = pipeline.eval_batches(config.dataset, 'test', n_examples)
    batch = next(batches)
    batches.close()
    valid = batch['valid']
    images, labels = batch['image'][valid], batch['mask'][valid]
    # Compiled unoptimised, as initialisation is: it runs once.
    apply = jax.jit(functools.partial(model.apply, train=False),
                    compiler_options=models.init_compiler_options())
    logits_of = functools.partial(apply, variables)
    pixels = state_lib.preprocess(images)
    logits = (sliding_window.mirrored(logits_of, pixels, first_axis=1)
              if config.eval_mirror else logits_of(pixels))
    predictions = np.asarray(metrics.predict_classes(logits, threshold))
  else:  # whole images of their own sizes, one at a time
    apply_fn, n_devices = local_apply_fn(model, variables)
    examples = list(itertools.islice(
        pipeline.examples(config.dataset, 'test'), n_examples))
    images = [ex['image'] for ex in examples]
    labels = [ex['mask'] for ex in examples]
    logits_of = lambda pixels: sliding_window.sliding_window_logits(
        apply_fn, pixels, sampling.size, config.dataset.eval_overlap,
        batch_size=n_devices, batch_multiple=n_devices)
    if config.eval_mirror:
      logits_of = functools.partial(sliding_window.mirrored, logits_of)
    predictions = [np.asarray(metrics.predict_classes(
        logits_of(np.asarray(state_lib.preprocess(image)))[None], threshold))[0]
                   for image in images]
  return images, labels, predictions
