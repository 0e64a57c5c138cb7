"""Seeds at once: K seeds of one config trained by one compiled program.

The K runs' train states (parameters, optimizer state, batch-norm
statistics) are stacked along a leading member axis and `train.train_step`
is `jax.vmap`ped over it, over each member's batch and over its dropout and
augmentation keys; the device strategy (jit or pmap) then lays the stacked
state out as it lays out one. Member k draws its data, patches and keys
from its own seed, so it is the run `config.seed = k` would have been, up to
the float reordering of batched convolutions. Each member keeps its own
workdir (checkpoints, metrics.jsonl, best checkpoint by its own validation,
figures), so every member is an ordinary run directory.

  python -m unetjax.main --config=configs/default.py --workdir=runs/d --seeds=0-2

trains runs/d/seed_0, seed_1 and seed_2 together; `unetjax.ablation
--seeds_at_once=K` trains a sweep's seeds K at a time.
"""

import contextlib
import functools
import os
import time
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from unetjax import parallel
from unetjax import train
from unetjax import workdir as workdir_lib
from unetjax.data import pipeline
from unetjax.errors import ConfigError

# Fields that may differ between the members of one program.
PER_MEMBER_FIELDS = ('seed',)


def member_workdir(workdir: str, seed: int) -> str:
  """Where `unetjax.main --seeds` puts seed `seed`'s run."""
  return os.path.join(workdir, f'seed_{seed}')


def check_stackable(configs: Sequence[ml_collections.ConfigDict]) -> None:
  """ConfigError unless the configs differ in their seeds alone (different
  architectures or settings are not one program)."""
  if not configs:
    raise ConfigError('Seeds at once needs at least one run.')
  flat = [workdir_lib.flat({k: v for k, v in c.to_dict().items()
                            if k not in PER_MEMBER_FIELDS}) for c in configs]
  differ = sorted({key for f in flat[1:] for key in set(f) | set(flat[0])
                   if f.get(key) != flat[0].get(key)})
  if differ:
    raise ConfigError(
        'Seeds at once trains one config with several seeds; these runs also '
        f'differ in {", ".join("config." + k for k in differ[:5])}'
        f'{" and more" if len(differ) > 5 else ""}. Train them one after '
        'another (without --seeds_at_once).')
  seeds = [c.seed for c in configs]
  if len(set(seeds)) != len(seeds):
    raise ConfigError(f'Seeds at once needs distinct seeds, not {seeds}.')


class LastCopy:
  """`copy(tree)` of the last tree it was given, made once: the K members'
  views read the same stacked state and step outputs, which would otherwise
  be copied to the host K times over."""

  def __init__(self, copy: Callable[[Any], Any]):
    self._copy, self._tree, self._copied = copy, None, None

  def __call__(self, tree: Any) -> Any:
    if tree is not self._tree:
      self._tree, self._copied = tree, self._copy(tree)
    return self._copied


class MemberView(parallel.Strategy):
  """The stacked state and step outputs as member `index`'s loop sees them:
  host copies and fetched outputs are that member's slice (of one copy
  shared by the members' views)."""

  def __init__(self, base: parallel.Strategy, index: int,
               host_state: LastCopy, fetch: LastCopy):
    self.base, self.index = base, index
    self._host_state, self._fetch = host_state, fetch

  @property
  def init_sharding(self):
    return self.base.init_sharding

  def place_state(self, state):
    return self.base.place_state(state)

  def host_state(self, state):
    return jax.tree.map(lambda x: x[self.index], self._host_state(state))

  def place_batch(self, host_batch):
    raise NotImplementedError('members share the stacked batches')

  def compile(self, step, donate_state=False):
    raise NotImplementedError('members share one compiled step')

  def fetch(self, tree):
    return jax.tree.map(lambda x: x[self.index], self._fetch(tree))


def available_bytes(device: jax.Device) -> int | None:
  """What `device` can still allocate: its allocator's limit less what it
  holds (GPU, TPU); for a CPU device, the host's MemAvailable."""
  stats = device.memory_stats() or {}
  if 'bytes_limit' in stats:
    return int(stats['bytes_limit'] - stats.get('bytes_in_use', 0))
  if device.platform != 'cpu':
    return None
  try:
    with open('/proc/meminfo') as meminfo:
      for line in meminfo:
        if line.startswith('MemAvailable:'):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')


def check_memory(stats: Any, n_members: int, free: int | None,
                 devices: int = 1) -> None:
  """Stops a program of `n_members` whose step would not fit in memory,
  before it runs, with the estimate: `stats` is XLA's memory analysis of
  the compiled step (per device; None where the backend gives none),
  `free` what the device can still allocate, `devices` how many devices
  share that memory (CPU devices share the host's)."""
  if stats is None or free is None:
    return
  held = devices * stats.argument_size_in_bytes  # state and batch, in place
  new = devices * (stats.temp_size_in_bytes + stats.output_size_in_bytes
                   - stats.alias_size_in_bytes)
  if new <= free:
    return
  per_member = (held + new) / n_members
  fit = int((held + free) // per_member)
  gib = lambda n: f'{n / 2**30:.2f} GiB'
  advice = (f'train at most {fit} at once (unetjax.main: {fit} seeds per '
            f'--seeds; unetjax.ablation: --seeds_at_once={fit})' if fit
            else 'not even one member fits: lower config.batch_size or the '
            'patch size')
  raise ConfigError(
      f'{n_members} seeds at once need about {gib(held + new)} '
      f'({gib(per_member)} per member: state, batch, activations and '
      f'gradients, from XLA\'s memory analysis of the compiled step), and '
      f'{gib(held + free)} is there: {advice}.')


def memory_checked(step_fn: Callable, n_members: int) -> Callable:
  """`step_fn`, compiled ahead of its first call from that call's arguments
  so that a program too large for the device stops with `check_memory`'s
  estimate instead of an out-of-memory error from inside XLA."""
  compiled = None

  def step(state, batch):
    nonlocal compiled
    if compiled is None:
      compiled = step_fn.lower(state, batch).compile()
      device = jax.local_devices()[0]
      check_memory(compiled.memory_analysis(), n_members,
                   available_bytes(device),
                   jax.local_device_count() if device.platform == 'cpu' else 1)
    return compiled(state, batch)

  return step


def stack(trees: Sequence[Any]) -> Any:
  """Host copies of `trees`, stacked along a new leading member axis."""
  return jax.tree.map(lambda *xs: np.stack([np.asarray(jax.device_get(x))
                                            for x in xs]), *trees)


def stacked_batches(iterators: Sequence[Iterator[dict[str, np.ndarray]]]
                    ) -> Iterator[dict[str, np.ndarray]]:
  """Each member's batch, stacked along axis 1: the batch axis stays first,
  so the device strategy splits the examples over devices as for one run."""
  for batches in zip(*iterators):
    yield {key: np.stack([b[key] for b in batches], axis=1)
           for key in batches[0]}


def members_step(state, batch, *, dropout_rngs, augment_rngs, axis_name,
                 layout, members_axis=None, **step_options):
  """`train.train_step` of every member held here: state along axis 0, the
  batch along axis 1; the keys (of all members) sliced to those held here
  (under 'devices', device d holds members [d * local, (d + 1) * local))."""
  local = jax.tree.leaves(state)[0].shape[0]
  offset = 0 if members_axis is None else jax.lax.axis_index(members_axis) * local
  dropout = jax.lax.dynamic_slice_in_dim(dropout_rngs, offset, local)
  augment = jax.lax.dynamic_slice_in_dim(augment_rngs, offset, local)
  step = lambda s, b, d, a: train.train_step(
      s, b, dropout_rng=d, augment_rng=a, axis_name=axis_name, **step_options)
  if layout == 'vmap':
    return jax.vmap(step, in_axes=(0, 1, 0, 0))(state, batch, dropout, augment)
  outputs = [step(jax.tree.map(lambda x: x[i], state),
                  jax.tree.map(lambda x: x[:, i], batch), dropout[i], augment[i])
             for i in range(local)]
  return jax.tree.map(lambda *xs: jnp.stack(xs), *outputs)


def common_restore(ckpts: Sequence[Any], templates: Sequence[Any]
                   ) -> list[tuple[Any, dict[str, Any], int] | None]:
  """Each member's newest intact checkpoint at one step that all have (a
  kill between the members' saves leaves some a save ahead: they go back
  to the step the others reached), or None for all (a fresh start)."""
  restored = [c.restore_latest(t) for c, t in zip(ckpts, templates)]
  while True:
    steps = [r[2] if r else 0 for r in restored]
    target = min(steps)
    if target == 0:
      return [None] * len(restored)
    if len(set(steps)) == 1:
      return restored
    restored = [r if r[2] == target else c.restore_latest(t, at_most=target)
                for r, c, t in zip(restored, ckpts, templates)]


def train_seeds(configs: Sequence[ml_collections.ConfigDict],
                workdirs: Sequence[str], allow_config_change: bool = False,
                layout: str = 'auto') -> list[dict[str, Any] | Exception]:
  """Trains (or resumes) the runs of `configs` (one config, K seeds) in
  their `workdirs` as one program, then evaluates each member's best
  checkpoint. Returns each member's final record, or the DivergenceError
  that stopped it (the other members train on)."""
  check_stackable(configs)
  layout = parallel.choose_seeds_layout(layout, len(configs))  # before any write
  invocation_start = time.time()
  config = configs[0]
  model, loss_fn, info, input_shape, pretrained = train._fit_for_training(config)
  with contextlib.ExitStack() as held:
    for workdir in workdirs:  # one run writes to a workdir
      held.enter_context(workdir_lib.hold(workdir))
    for member_config, workdir in zip(configs, workdirs):
      if allow_config_change:
        train.check_checkpoint_fits(member_config, model, input_shape, workdir)
      workdir_lib.record_config(workdir, member_config, allow_config_change,
                                info.build)
    trainer = train.Trainer.build(config, info, model, loss_fn)
    states = [train.new_state(trainer, c, input_shape, pretrained)
              for c in configs]
    ckpts = [train.open_checkpoints(c, w) for c, w in zip(configs, workdirs)]
    runs = [train.start_run(trainer, c, w, k, s, r, invocation_start,
                            info.task, label=f'[seed {c.seed}] ',
                            show_progress=index == 0)
            for index, (c, w, k, s, r) in enumerate(zip(
                configs, workdirs, ckpts, states,
                common_restore(ckpts, states)))]
    base = (parallel.MembersOverDevices() if layout == 'devices'
            else trainer.strategy)
    host_state, fetch = LastCopy(base.host_state), LastCopy(base.fetch)
    for index, run in enumerate(runs):
      run.loop.strategy = view = MemberView(base, index, host_state, fetch)
      run.loop.evaluate_split = _member_evaluator(trainer, view)
    step_fn = base.compile(functools.partial(
        members_step, dropout_rngs=jnp.stack([r.dropout_rng for r in runs]),
        augment_rngs=jnp.stack([r.augment_rng for r in runs]),
        layout=layout, **trainer.step_options), donate_state=True)
    step_fn = memory_checked(step_fn, len(configs))
    host_batch = parallel.host_batch_size(config.batch_size)
    start = runs[0].progress.step
    batches = base.prefetch(stacked_batches([
        pipeline.train_batches(c.dataset, host_batch, c.seed, start_step=start)
        for c in configs]))
    train.run_loop(runs, base.place_state(stack([r.state for r in runs])),
                   step_fn, batches)
    return [_failed(run) if run.failure else train.finish_run(trainer, run, info)
            for run in runs]


def _failed(run: train.Run) -> Exception:
  run.loop.logger.close()
  run.loop.ckpts.close(raise_errors=False)
  return run.failure


def _member_evaluator(trainer: train.Trainer, view: MemberView):
  """The evaluator of a member: its slice of the stacked state, placed as
  one run's state is."""
  return lambda state, split: trainer.evaluate_split(
      trainer.strategy.place_state(view.host_state(state)), split)
