"""Device strategy: data parallelism with `jax.jit` over a one-axis Mesh.

The train state is replicated on every device; each batch is split along its
first axis over the 'data' mesh axis, and XLA inserts the gradient all-reduce
(and the cross-device batch-norm reductions), so the numbers are those of one
device with the global batch. With several processes, each passes its own
slice of the global batch.
"""

import collections
from typing import Any, Iterator

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from unetjax.errors import ConfigError

DATA_AXIS = 'data'


def data_mesh() -> Mesh:
  return Mesh(np.asarray(jax.devices()), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_size(batch_size: int, field: str) -> None:
  """The global batch must split evenly over devices (and so over processes)."""
  n_devices = jax.device_count()
  if batch_size <= 0 or batch_size % n_devices:
    raise ConfigError(
        f'{field}={batch_size} must be a positive multiple of the number of '
        f'devices ({n_devices}), so every device gets the same share; e.g. '
        f'{field}={max(1, round(batch_size / n_devices)) * n_devices}.')


def host_batch_size(batch_size: int) -> int:
  """The share of the global batch that this process reads."""
  return batch_size // jax.process_count()


def to_device(host_batch: dict[str, np.ndarray],
              sharding: NamedSharding) -> dict[str, jax.Array]:
  """This process's slice of a batch -> global arrays sharded over the mesh."""
  return {k: jax.make_array_from_process_local_data(sharding, v)
          for k, v in host_batch.items()}


def prefetch_to_device(batches: Iterator[dict[str, np.ndarray]],
                       sharding: NamedSharding,
                       size: int = 2) -> Iterator[dict[str, jax.Array]]:
  """Keeps `size` batches in flight so host-to-device copies overlap compute."""
  queue: collections.deque[Any] = collections.deque()
  for batch in batches:
    queue.append(to_device(batch, sharding))
    if len(queue) > size:
      yield queue.popleft()
  while queue:
    yield queue.popleft()
