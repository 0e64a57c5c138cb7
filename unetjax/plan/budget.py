"""Width, steps and evaluation interval from a time budget.

A probe run of each candidate network (20 steps, two evaluations, the
final scoring) on this machine's devices measures what a run of it costs:
the start (dataset, model, compilation), a training step, the first and a
later validation, and the final evaluation. The plan then spends the
budget on steps, keeping evaluation under EVAL_SHARE of it.
"""

import contextlib
import dataclasses
import io
import math
import re
import tempfile
import time
from typing import Any, Callable, Sequence

import ml_collections

from unetjax.errors import ConfigError
from unetjax.plan.rules import Decision


@dataclasses.dataclass(frozen=True)
class Network:
  """A candidate network: its base width and its channel plan, doubling per
  level or slim (MONAI BasicUNet's (w, w, 2w, 4w, 8w): every level below the
  first costs a quarter of the doubling's)."""
  width: int
  slim: bool = False

  def level_filters(self, depth: int) -> tuple[int, ...]:
    return (tuple(self.width * 2**max(level - 1, 0) for level in range(depth + 1))
            if self.slim else ())

  def __str__(self):
    return f'{self.width} slim' if self.slim else str(self.width)


# Candidates, narrowest first.
NETWORKS = (Network(8), Network(16), Network(32))
# Where even the narrowest sees each image fewer than SLIM_EPOCHS times, the
# slim network: more passes beat capacity there. In 10 CPU minutes on
# Kvasir-SEG (3.5 epochs at width 8) it trained 546 steps to 347 and scored
# 0.608 against 0.596 (seed 0, width 8 from an earlier run). Nearer 30
# epochs capacity led: on DRIVE (27 epochs at width 8 on a host without
# AVX-512, counted in pixels: rules.inputs_per_epoch) width 8's 590 steps
# scored 0.8067 and 0.8047 where the slim plan's 733 scored 0.7966 and 0.8020
# (seeds 0 and 1: both ahead, +0.006 on the mean, too few seeds for a
# paired test to tell, p = 0.33), and at equal steps slim trails width 8 by 0.028
# (docs/experiments.md: the factor table, three datasets at one budget, the
# same plans on a host without AVX-512).
SLIM = Network(8, slim=True)
SLIM_EPOCHS = 10  # between Kvasir-SEG's 3.5 epochs (slim led) and DRIVE's 27 (slim trailed)
# Epochs a run needs before width pays: on Kvasir-SEG in one CPU hour, width
# 8 over 32 epochs reached test Dice 0.789 where width 16 over 15 epochs was
# still underfitting (docs/experiments.md, the long study).
MIN_EPOCHS = 30
# ... and steps: that width-16 run had 1500 steps, the width-8 one 3200. On a
# small dataset 30 epochs are a few hundred steps (DRIVE: 16 images, covered
# by 86 patches of 256x240, 4 per batch: 650 steps), too few for any width to
# converge.
MIN_STEPS = 3000
# Validations pick the best checkpoint. Scored on the weights' moving average
# (rules: optimizer.ema_decay), DRIVE's last validation was its best in both
# seeds, where the last weights' curve fell by 0.005-0.007 over the last 59
# of 590 steps.
EVAL_SHARE = 0.05  # at most this share of the budget goes to validation
MAX_EVALS = 5
PROBE_STEPS = 5  # steps per probe interval (two intervals)

_UNITS = {'s': 1, 'm': 60, 'min': 60, 'h': 3600}


@dataclasses.dataclass(frozen=True)
class Budget:
  seconds: float | None = None  # wall time of the whole command
  steps: int | None = None  # or a fixed number of steps

  def __str__(self):
    return f'{self.steps} steps' if self.steps else _duration(self.seconds)


def _duration(seconds: float) -> str:
  return (f'{seconds / 3600:g} h' if seconds >= 3600 and seconds % 3600 == 0
          else f'{seconds / 60:g} min')


def parse(text: str) -> Budget:
  """'60m', '90min', '2h', '1.5h', '3600s' or '3200steps'."""
  match = re.fullmatch(r'\s*([0-9]*\.?[0-9]+)\s*(s|m|min|h|steps?)\s*', text)
  if not match:
    raise ConfigError(f'--budget={text!r}: give a time such as 60m, 2h or '
                      '5400s, or a number of steps such as 3200steps.')
  number, unit = float(match.group(1)), match.group(2)
  if unit.startswith('step'):
    if number < 1 or number != int(number):
      raise ConfigError(f'--budget={text!r}: a whole number of steps, >= 1.')
    return Budget(steps=int(number))
  if number <= 0:
    raise ConfigError(f'--budget={text!r} must be positive.')
  return Budget(seconds=number * _UNITS[unit])


@dataclasses.dataclass(frozen=True)
class Timing:
  """What a run of one width costs on this machine, in seconds."""
  start: float  # process start to the first step: imports, data, compile
  step: float
  first_eval: float  # includes compiling the evaluation
  eval: float
  final: float  # best checkpoint on validation and test, figures

  def predict(self, steps: int, evals: int) -> float:
    return (self.start + steps * self.step + self.final
            + (self.first_eval + (evals - 1) * self.eval if evals else 0.0))


def timing_from_records(records: Sequence[dict[str, Any]], start: float,
                        end: float, import_s: float) -> Timing:
  """The Timing of a probe run from its metrics.jsonl records: 4 *
  PROBE_STEPS steps, logged every PROBE_STEPS, validated every 2 *
  PROBE_STEPS. Step time comes from the two intervals that follow a logged
  step, not a validation: during a validation the input pipeline reads
  ahead, so the steps right after one wait for no data and look faster."""
  times = {(r['event'], r['step']): r['time'] for r in records}
  p = PROBE_STEPS
  train = [times[('train', k * p)] for k in range(1, 5)]
  eval1, eval2 = times[('eval', 2 * p)], times[('eval', 4 * p)]
  step = ((train[1] - train[0]) + (train[3] - train[2])) / (2 * p)
  return Timing(start=import_s + train[0] - start - p * step, step=step,
                first_eval=eval1 - train[1], eval=eval2 - train[3],
                final=end - eval2)


def probe_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  probe = ml_collections.ConfigDict(config.to_dict())
  probe.num_train_steps = 4 * PROBE_STEPS
  probe.log_every_steps = PROBE_STEPS
  probe.eval_every_steps = probe.checkpoint_every_steps = 2 * PROBE_STEPS
  probe.progress_bar = False
  return probe


def probe(config: ml_collections.ConfigDict, import_s: float) -> Timing:
  """Times a short run of `config` in a scratch workdir."""
  from unetjax import logs, train  # pylint: disable=import-outside-toplevel
  with tempfile.TemporaryDirectory(prefix='unetjax-plan-') as workdir:
    start = time.time()
    with contextlib.redirect_stdout(io.StringIO()):  # its scores mean nothing
      train.train_and_evaluate(probe_config(config), workdir)
    end = time.time()
    return timing_from_records(logs.read_metrics(workdir), start, end, import_s)


@dataclasses.dataclass(frozen=True)
class Choice:
  network: Network
  steps: int
  evals: int
  epochs: float
  predicted_s: float
  timings: dict[Network, Timing]

  @property
  def width(self) -> int:
    return self.network.width


def steps_for(timing: Timing, seconds: float) -> tuple[int, int]:
  """(steps, evaluations) that fill `seconds`, evaluation kept under
  EVAL_SHARE of it and at most MAX_EVALS."""
  evals = max(1, min(MAX_EVALS, int(EVAL_SHARE * seconds / max(timing.eval, 1e-9))))
  while True:
    steps = int((seconds - timing.predict(0, evals)) / timing.step)
    if steps >= evals or evals == 1:
      return max(steps, 0), evals
    evals -= 1


def retimed(choice: Choice, timing: Timing, budget: Budget,
            samples_per_epoch: float, batch: int) -> Choice:
  """`choice` with its network timed again (`timing`: e.g. with the
  augmentation its epochs call for) and its steps refilled to the budget."""
  steps, evals = ((choice.steps, choice.evals) if budget.steps
                  else steps_for(timing, budget.seconds))
  return dataclasses.replace(
      choice, steps=steps, evals=evals, epochs=steps * batch / samples_per_epoch,
      predicted_s=timing.predict(steps, evals),
      timings={**choice.timings, choice.network: timing})


def choose(budget: Budget, samples_per_epoch: float, batch: int,
           time_network: Callable[[Network], Timing],
           networks: Sequence[Network] = NETWORKS,
           slim: Network | None = SLIM) -> Choice:
  """The widest network that trains MIN_EPOCHS and MIN_STEPS within the
  budget, else the narrowest (more training beats more width when a run
  underfits), or `slim` where the narrowest trains fewer than SLIM_EPOCHS
  epochs. Networks are timed narrowest first; wider ones only while the last
  one reached both."""
  timings, best = {}, None
  for network in networks:
    timings[network] = timing = time_network(network)
    if budget.steps:
      steps = budget.steps
      evals = min(MAX_EVALS, max(1, steps // max(1, samples_per_epoch // batch)))
    else:
      steps, evals = steps_for(timing, budget.seconds)
    epochs = steps * batch / samples_per_epoch
    enough = epochs >= MIN_EPOCHS and steps >= MIN_STEPS
    if best is None or enough:
      best = Choice(network, steps, evals, epochs, timing.predict(steps, evals),
                    timings)  # every network timed, filled in as the loop goes
    if not enough or budget.steps:
      break
  if slim is not None and not budget.steps and best.epochs < SLIM_EPOCHS:
    timings[slim] = timing = time_network(slim)
    steps, evals = steps_for(timing, budget.seconds)
    if steps > best.steps:
      best = Choice(slim, steps, evals, steps * batch / samples_per_epoch,
                    timing.predict(steps, evals), timings)
  if not budget.steps and best.steps * batch < samples_per_epoch:
    raise ConfigError(
        f'--budget={budget}: it holds {best.steps} steps of batch {batch} at '
        f'width {best.network} ({timings[best.network].step:.2f} s per step, '
        f'{timings[best.network].predict(0, 1):.0f} s of start and evaluation), '
        f'less than one epoch of the training images ({samples_per_epoch:.0f} '
        'inputs); '
        f'give at least {_duration(60 * math.ceil(timings[best.network].predict(math.ceil(samples_per_epoch / batch), 1) / 60))}.')
  return best


def network_decisions(network: Network, depth: int,
                      reason: str = '') -> list[Decision]:
  width = [Decision('model.base_filters', network.width, reason)]
  if not network.slim:
    return width
  return width + [Decision('model.level_filters', network.level_filters(depth),
                           "slim (BasicUNet's channel plan): under "
                           f'{SLIM_EPOCHS} epochs, more steps beat capacity')]


def _steps_in(timing: Timing, budget: Budget) -> int:
  """The steps a network timed at `timing` trains in `budget`."""
  return budget.steps or steps_for(timing, budget.seconds)[0]


def decisions(choice: Choice, batch: int, budget: Budget,
              depth: int) -> list[Decision]:
  """The config values of `choice`, with their reasons."""
  timing = choice.timings[choice.network]
  every = max(1, math.ceil(choice.steps / max(choice.evals, 1)))
  epochs_per_step = choice.epochs / max(choice.steps, 1)
  tried = ', '.join(
      f'{n}: {t.step:.2f} s/step ({_steps_in(t, budget) * epochs_per_step:.0f} epochs)'
      for n, t in choice.timings.items())
  return network_decisions(
      choice.network, depth,
      f'{choice.epochs:.0f} epochs in {budget} (timed widths {tried}); '
      f'largest reaching {MIN_EPOCHS} epochs and {MIN_STEPS} steps, else '
      'cheapest') + [
      Decision('num_train_steps', choice.steps,
               f'{budget} = start {timing.start:.0f} s + steps x '
               f'{timing.step:.3f} s + {choice.evals} validations '
               f'(~{timing.eval:.0f} s) + final {timing.final:.0f} s'),
      Decision('eval_every_steps', every,
               f'{choice.evals} validations, <= {EVAL_SHARE:.0%} of the budget'),
      Decision('checkpoint_every_steps', every, 'with each validation'),
      Decision('log_every_steps', max(1, min(50, every // 4)), 'a few per validation'),
  ]
