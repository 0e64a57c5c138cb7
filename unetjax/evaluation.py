"""Whole-image evaluation: every image scored at its own size.

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
from typing import Any, Callable, Iterable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from unetjax import instances
from unetjax import losses
from unetjax import metrics
from unetjax import parallel
from unetjax import sliding_window


@functools.partial(jax.jit, static_argnums=0)
def forward(model: nn.Module, variables: dict[str, Any],
            images: jax.Array) -> jax.Array:
  """float32 logits of `model` in evaluation mode, compiled per model and
  window batch shape."""
  return model.apply(variables, images, train=False).astype(jnp.float32)


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
    return np.asarray(forward(model, placed, local.place_batch(
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
                           objects: ObjectScoring | None = None
                           ) -> tuple[metrics.Stats, dict[str, float] | None]:
  """Sums of `image_statistics` over `examples` (this process's) and over
  processes, each image predicted whole by a sliding window; with `objects`
  (examples with 'instances'), also the `instances.totals` of the objects
  it scores in the same predictions."""
  options = tuple(sorted(metric_options.items()))
  total, per_image = None, []
  for example in examples:
    image = np.asarray(preprocess(example['image']))
    logits = sliding_window.sliding_window_logits(
        apply_fn, image, window, overlap, batch_size=batch_size,
        batch_multiple=batch_multiple)
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
