"""Device strategies: how the train state, batches and steps are laid out on
the devices. `config.parallel` picks one; both are data parallel over all
devices of all processes and give the same numbers for the same global batch.

- 'jit' (default): a one-axis `Mesh` over all devices; the state is
  replicated, each batch is split along its first axis over the 'data' axis,
  and XLA inserts the gradient all-reduce and the cross-device batch-norm
  reductions.
- 'pmap': the state carries a leading axis of one replica per local device,
  batches are reshaped to (local devices, per-device batch, ...), gradients
  are averaged with `lax.pmean` and metrics summed with `lax.psum`.

With several processes (`jax.distributed`), each process passes its own
slice of the global batch, as `unetjax.data.pipeline` reads it.
"""

import abc
import collections
import functools
from typing import Any, Callable, Iterator

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from unetjax.errors import ConfigError
from unetjax.models.layers import DEVICE_AXIS

STRATEGIES = ('jit', 'pmap')
AXIS_NAME = DEVICE_AXIS


CPU_DEVICES_HELP = (
    'Split the host CPU into this many JAX devices and train data parallel '
    'over them, as over GPUs. One device per core trains faster than one '
    'device on all cores (1.2-1.3x on 2 cores); the batch sizes must divide '
    'by it.')


def use_cpu_devices(n_devices: int | None) -> None:
  """Splits the host CPU into `n_devices` JAX devices (None: JAX's default).

  XLA runs the devices' computations side by side, each on about one core.
  Must run before anything uses a device.
  """
  if n_devices:
    jax.config.update('jax_num_cpu_devices', n_devices)


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


def _first_replica(x: Any) -> Any:
  return np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else x


class Strategy(abc.ABC):
  """Places states and batches and compiles step functions for one layout.

  Step functions are pure functions `step(state, batch, axis_name=...)`;
  `axis_name` is the name of the mapped device axis under 'pmap', None under
  'jit' (where collectives are implicit).
  """

  @abc.abstractmethod
  def place_state(self, state: Any) -> Any:
    """A state as initialised or restored (one copy) -> this layout."""

  @abc.abstractmethod
  def host_state(self, state: Any) -> Any:
    """This layout -> one copy as numpy arrays (for checkpoints)."""

  @abc.abstractmethod
  def place_batch(self, host_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """This process's slice of a global batch -> device arrays."""

  @abc.abstractmethod
  def compile(self, step: Callable, donate_state: bool = False) -> Callable:
    """`step(state, batch, axis_name=...)` compiled for this layout."""

  @abc.abstractmethod
  def fetch(self, tree: Any) -> Any:
    """Step outputs (the same on every device) -> numpy, one copy."""

  @property
  @abc.abstractmethod
  def init_sharding(self) -> NamedSharding | None:
    """Where `init` puts the single copy of a new state."""

  def prefetch(self, batches: Iterator[dict[str, np.ndarray]],
               size: int = 2) -> Iterator[dict[str, jax.Array]]:
    """Keeps `size` batches in flight so host-to-device copies overlap compute."""
    queue: collections.deque[Any] = collections.deque()
    for batch in batches:
      queue.append(self.place_batch(batch))
      if len(queue) > size:
        yield queue.popleft()
    while queue:
      yield queue.popleft()


class JitStrategy(Strategy):
  """Replicated state, batch sharded over a Mesh of all devices."""

  def __init__(self, devices: list[jax.Device] | None = None):
    self.mesh = Mesh(np.asarray(devices or jax.devices()), (AXIS_NAME,))
    self._replicated = NamedSharding(self.mesh, PartitionSpec())
    self._batch = NamedSharding(self.mesh, PartitionSpec(AXIS_NAME))

  @property
  def init_sharding(self) -> NamedSharding:
    return self._replicated

  def place_state(self, state: Any) -> Any:
    return jax.device_put(state, self._replicated)

  def host_state(self, state: Any) -> Any:
    return jax.tree.map(_first_replica, state)

  def place_batch(self, host_batch):
    return {k: jax.make_array_from_process_local_data(self._batch, v)
            for k, v in host_batch.items()}

  def compile(self, step, donate_state=False):
    return jax.jit(functools.partial(step, axis_name=None),
                   donate_argnums=(0,) if donate_state else ())

  def fetch(self, tree):
    return jax.tree.map(_first_replica, tree)


class PmapStrategy(Strategy):
  """One state replica per local device, batches with a leading device axis."""

  def __init__(self, devices: list[jax.Device] | None = None):
    self._devices = devices or jax.local_devices()
    self.mesh = Mesh(np.asarray(self._devices), ('devices',))
    self._stacked = NamedSharding(self.mesh, PartitionSpec('devices'))
    self._n = len(self._devices)

  @property
  def init_sharding(self) -> None:
    return None

  def place_state(self, state):
    return jax.tree.map(
        lambda x: jax.device_put(np.broadcast_to(np.asarray(x), (self._n,) + x.shape),
                                 self._stacked), state)

  def host_state(self, state):
    return jax.tree.map(lambda x: _first_replica(x)[0], state)

  def place_batch(self, host_batch):
    return {k: jax.device_put(v.reshape((self._n, -1) + v.shape[1:]), self._stacked)
            for k, v in host_batch.items()}

  def compile(self, step, donate_state=False):
    return jax.pmap(functools.partial(step, axis_name=AXIS_NAME),
                    axis_name=AXIS_NAME, devices=self._devices,
                    donate_argnums=(0,) if donate_state else ())

  def fetch(self, tree):
    return jax.tree.map(lambda x: _first_replica(x)[0], tree)


# How the members of seeds trained at once (`unetjax.seeds_at_once`) sit
# on the devices:
# - 'vmap': every device holds every member (the batch split over devices as
#   for one run, jit or pmap) and `jax.vmap` trains them as one batched
#   program: the accelerators' layout, where a batched convolution fills
#   the device that one small network leaves idle.
# - 'loop': the same, the members unrolled one after another in the program:
#   XLA's CPU backend runs the grouped convolutions vmap makes of per-member
#   kernels about 10x slower than K plain ones.
# - 'devices': each device trains its own members (K a multiple of the
#   device count) on their whole batches, no data parallelism: one member
#   per core is what a small network trains fastest with on a CPU.
# - 'auto': 'vmap' on GPU/TPU, 'loop' on CPU (on 2 cores, 'loop' was
#   ahead of 'devices' in 3 of 4 cases: benchmarks/results/cpu).
SEEDS_LAYOUTS = ('auto', 'vmap', 'loop', 'devices')
MEMBERS_AXIS = 'members'


def choose_seeds_layout(layout: str, n_members: int) -> str:
  """The layout `layout` names ('auto': chosen here) for `n_members` seeds."""
  if layout not in SEEDS_LAYOUTS:
    raise ConfigError(f'--seeds_layout={layout!r}: choose one of '
                      f'{", ".join(SEEDS_LAYOUTS)}.')
  n_devices = jax.device_count()
  if layout == 'devices' and jax.process_count() > 1:
    raise ConfigError('--seeds_layout=devices runs in one process; with '
                      'several, use vmap or loop.')
  if layout == 'devices' and n_members % n_devices:
    raise ConfigError(
        f'--seeds_layout=devices puts the members on the {n_devices} devices '
        f'evenly: train a multiple of {n_devices} seeds, not {n_members}.')
  if layout != 'auto':
    return layout
  return 'vmap' if jax.default_backend() != 'cpu' else 'loop'


class MembersOverDevices(Strategy):
  """Layout 'devices': the stacked state and the member axis of the batches
  split over all devices; each device trains its members alone."""

  def __init__(self, devices: list[jax.Device] | None = None):
    self.mesh = Mesh(np.asarray(devices or jax.devices()), (MEMBERS_AXIS,))
    self._members = NamedSharding(self.mesh, PartitionSpec(MEMBERS_AXIS))
    self._batch = NamedSharding(self.mesh, PartitionSpec(None, MEMBERS_AXIS))

  @property
  def init_sharding(self):
    return None

  def place_state(self, state):
    return jax.device_put(state, self._members)

  def host_state(self, state):
    return jax.device_get(state)

  def place_batch(self, host_batch):
    return jax.device_put(host_batch, self._batch)

  def compile(self, step, donate_state=False):
    members = PartitionSpec(MEMBERS_AXIS)
    return jax.jit(jax.shard_map(
        functools.partial(step, axis_name=None, members_axis=MEMBERS_AXIS),
        mesh=self.mesh, in_specs=(members, PartitionSpec(None, MEMBERS_AXIS)),
        out_specs=members), donate_argnums=(0,) if donate_state else ())

  def fetch(self, tree):
    return jax.device_get(tree)


def get_strategy(name: str) -> Strategy:
  if name == 'jit':
    return JitStrategy()
  if name == 'pmap':
    return PmapStrategy()
  raise ConfigError(f'Unknown config.parallel={name!r}; choose one of: '
                    f'{", ".join(STRATEGIES)}.')
