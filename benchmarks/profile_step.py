"""Where a train step's time goes: XLA's ops of one step, by time.

XLA_FLAGS=--xla_cpu_multi_thread_eigen=false taskset -c 0 \
    python -m benchmarks.profile_step --preset=cpu --batch_sizes=4

Traces --steps steps (default 3) of the preset's first model, dtype and
batch size with `jax.profiler` (the same compiled step as
train_throughput.py, on one device) and matches each traced op to the
optimised HLO of that compiled step. One JSON line per kind of op (e.g.
'convolution' for XLA's own convolutions, 'ynn_fusion:convolution' for a
convolution XLA handed to YNNPACK, 'fusion:copy' for a transposing copy)
with its milliseconds per step, then one line for each of the TOP_OPS most
expensive ops with its shape, its convolution window and the layer it comes
from. The first example above profiles one core's share of the 2-device
layout. With --config, the network is that config file's model (a plan of
`unetjax.plan`, say) at its batch size, on --shape inputs:

XLA_FLAGS=--xla_cpu_multi_thread_eigen=false taskset -c 0 \
    python -m benchmarks.profile_step --config=PLAN.py --shape=256x240x3
"""

import collections
import dataclasses
import glob
import gzip
import json
import os
import re
import tempfile
from typing import Any


import jax

from benchmarks import common
from benchmarks import train_throughput
from unetjax import command_line, models

TOP_OPS = 30
_INSTRUCTION = re.compile(r'^\s*(?:ROOT )?%([\w.\-]+) = (\S+) ([\w\-]+)\(')
_COMPUTATION = re.compile(r'^(?:ENTRY )?%([\w.\-]+) .*\{$')


def hlo_ops(hlo_text: str) -> dict[str, dict[str, str]]:
  """Instruction name -> its kind, shape, window and source layer, for every
  instruction of optimised HLO text. A fusion's kind is 'fusion' (or
  'ynn_fusion' for one YNNPACK runs) and the opcode of its fused root."""
  roots, computation = {}, None
  for line in hlo_text.splitlines():
    if match := _COMPUTATION.match(line):
      computation = match.group(1)
    elif 'ROOT ' in line and computation:
      roots[computation] = line
  ops = {}
  for line in hlo_text.splitlines():
    if not (match := _INSTRUCTION.match(line)):
      continue
    name, shape, opcode = match.groups()
    described = line
    if called := re.search(r'calls=%([\w.\-]+)', line):
      described = roots.get(called.group(1), '')
      root = _INSTRUCTION.match(described)
      kind = 'ynn_fusion' if '__ynn_fusion' in line else opcode
      opcode = f'{kind}:{root.group(3) if root else "?"}'
    window = re.search(r'window=\{([^}]*)\}', described)
    source = re.search(r'op_name="([^"]*)"', described)
    ops[name] = {'kind': opcode, 'shape': shape.split('{')[0],
                 'window': window.group(1) if window else '',
                 'source': source.group(1) if source else ''}
  return ops


def traced_op_ms(trace_dir: str, steps: int) -> dict[str, float]:
  """Total milliseconds per step of each traced event name."""
  (path,) = glob.glob(os.path.join(trace_dir, '**', 'perfetto_trace.json.gz'),
                      recursive=True)
  with gzip.open(path) as f:
    trace = json.load(f)
  events = trace['traceEvents'] if isinstance(trace, dict) else trace
  totals: collections.Counter = collections.Counter()
  for event in events:
    if event.get('ph') == 'X':
      totals[event['name']] += event.get('dur', 0) / 1e3 / steps
  return totals


def profile(preset: common.Preset, steps: int,
            model_config=None) -> tuple[float, list[dict[str, Any]]]:
  """(median step ms, traced ops) of the preset's first case, or of
  `model_config`'s network at the preset's shape, dtype and batch."""
  name, dtype, batch_size = preset.models[0], preset.dtypes[0], preset.batch_sizes[0]
  model = models.get_model(model_config or train_throughput.model_config(name, preset),
                           dtype=dtype)
  step, state, batch = train_throughput.compiled_step(model, preset.shape, batch_size)
  compiled = step.lower(state, batch).compile()
  ops = hlo_ops(compiled.as_text())
  state, _ = train_throughput.timed_steps(compiled, state, batch, 2)  # warm up
  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      state, times = train_throughput.timed_steps(compiled, state, batch, steps)
    totals = traced_op_ms(trace_dir, steps)
  traced = [{'op': op, 'ms_per_step': round(ms, 3), **ops[op]}
            for op, ms in totals.items() if op in ops]
  return common.median(times) * 1e3, sorted(traced, key=lambda r: -r['ms_per_step'])


def from_config(preset: common.Preset, path: str):
  """The preset at the batch size of the config file `path`, and that
  config's model section."""
  config = command_line.load_config(path)
  if isinstance(config, str):
    raise SystemExit(config)
  return (dataclasses.replace(preset, batch_sizes=(config.batch_size,)),
          config.model)


def main() -> None:
  args = common.parse_args(__doc__, config_file=True)
  preset = common.PRESETS[args.preset].override(args)
  model_config = None
  if args.config:
    preset, model_config = from_config(preset, args.config)
  steps = args.steps or 3
  step_ms, traced = profile(preset, steps, model_config)
  case = {'model': args.config or preset.models[0], 'dtype': preset.dtypes[0],
          'image_shape': list(preset.shape), 'batch_size': preset.batch_sizes[0],
          'traced_step_ms': round(step_ms, 1),
          **common.machine(train_throughput.device_name(),
                           {'jax': jax.__version__,
                            'xla_flags': os.environ.get('XLA_FLAGS', '')})}
  by_kind: collections.defaultdict = collections.defaultdict(lambda: [0.0, 0])
  for op in traced:
    by_kind[op['kind']][0] += op['ms_per_step']
    by_kind[op['kind']][1] += 1
  for kind, (ms, count) in sorted(by_kind.items(), key=lambda item: -item[1][0]):
    common.emit({'benchmark': 'step_profile_kind', 'kind': kind, 'ops': count,
                 'ms_per_step': round(ms, 2), **case})
  for op in traced[:TOP_OPS]:
    common.emit({'benchmark': 'step_profile_op', **op, **case})


if __name__ == '__main__':
  main()
