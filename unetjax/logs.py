"""Run logs in the workdir: `metrics.jsonl` (one JSON object per event) and
TensorBoard event files. Only process 0 writes.

Every line has `event` ('train', 'eval', 'resume', 'final') and `step`. A
resumed run repeats the steps after its checkpoint and logs them again;
`read_metrics` keeps the last record for each (event, split, step).
"""

import asyncio
import json
import logging
import math
import os
import sys
import time
from typing import Any

import jax
import numpy as np

from unetjax import metrics
from unetjax import plots


def _import_summary_writer() -> type:
  """tensorboardX's SummaryWriter, imported without PyTorch: tensorboardX
  imports torch whenever it is installed (2 s of every process's start)
  only to accept torch tensors, which unetjax never logs."""
  if 'torch' in sys.modules or 'tensorboardX' in sys.modules:
    from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
    return SummaryWriter
  sys.modules['torch'] = None  # `import torch` raises ImportError
  try:
    from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
  finally:
    del sys.modules['torch']
  return SummaryWriter


SummaryWriter = _import_summary_writer()

METRICS_FILE = 'metrics.jsonl'


def json_safe(value: Any) -> Any:
  """`value` as JSON can hold it: NaN and infinities as null (JSON has
  none), tuples as lists, numpy scalars as Python numbers."""
  if isinstance(value, float) and not math.isfinite(value):
    return None
  if isinstance(value, dict):
    return {k: json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [json_safe(v) for v in value]
  if isinstance(value, (np.floating, np.integer)):
    return json_safe(value.item())
  return value


def quiet_orbax_errors() -> None:
  """Drops orbax's log records. Orbax logs an error with its traceback from
  each thread it passes through (dozens for one full disk) and then raises
  it, and the command reports what it raises; --verbosity=0 keeps them.

  Also drops the callbacks that TensorStore's threads still send, after a
  failed write, to the event loop orbax closed: each printed a traceback."""
  marker = f'{os.sep}orbax{os.sep}'
  logging.getLogger('absl').addFilter(
      lambda record: marker not in record.pathname)
  call_soon_threadsafe = asyncio.BaseEventLoop.call_soon_threadsafe

  def call_unless_closed(loop, *args, **kwargs):
    if not loop.is_closed():
      return call_soon_threadsafe(loop, *args, **kwargs)
  asyncio.BaseEventLoop.call_soon_threadsafe = call_unless_closed


def repair_partial_line(path: str) -> None:
  """Cuts a last line without its newline (a write cut short by a kill or a
  full disk), so the next record starts on a line of its own; the cut bytes
  are appended to `<path>.cut` first, never lost."""
  try:
    with open(path, 'rb+') as f:
      data = f.read()
      if data and not data.endswith(b'\n'):
        keep = data.rfind(b'\n') + 1
        with open(path + '.cut', 'ab') as cut:
          cut.write(data[keep:] + b'\n')
        f.truncate(keep)
  except FileNotFoundError:
    pass


class MetricLogger:
  """Writes one event to the JSON log and its scalars to TensorBoard."""

  def __init__(self, workdir: str, resumed_at: int = 0):
    """`resumed_at`: the step of the checkpoint a run resumes from. TensorBoard
    then drops the points after it from the earlier event files (purge_step),
    so the steps this run repeats are drawn once."""
    self._enabled = jax.process_index() == 0
    if not self._enabled:
      return
    self._path = os.path.join(workdir, METRICS_FILE)
    repair_partial_line(self._path)
    self._tensorboard = SummaryWriter(os.path.join(workdir, 'tensorboard'),
                                      purge_step=resumed_at + 1 if resumed_at
                                      else None)

  def write(self, event: str, step: int, **fields: Any) -> None:
    if not self._enabled:
      return
    record = {'event': event, 'step': int(step), 'time': time.time(), **fields}
    with open(self._path, 'a') as f:
      f.write(json.dumps(json_safe(record)) + '\n')
    prefix = f'{event}/{fields["split"]}' if 'split' in fields else event
    for name, value in fields.items():
      if isinstance(value, (int, float)) and not isinstance(value, bool):
        self._tensorboard.add_scalar(f'{prefix}/{name}', value, step)
    self._tensorboard.flush()

  def close(self) -> None:
    if self._enabled:
      self._tensorboard.close()


# (path, line number) of the lines of metrics.jsonl already reported as not
# JSON: each is said once per process, however often the file is read.
_REPORTED_LINES: set[tuple[str, int]] = set()


def _parse_lines(path: str) -> list[dict[str, Any]]:
  """The records of the JSON lines file `path`. A line that is not a JSON
  record is skipped (the file is left as it is) and reported once with its
  number; a last line without its newline (a write cut short, which the next
  writer cuts off) is skipped silently."""
  with open(path, 'rb') as f:
    data = f.read()
  lines = data.split(b'\n')
  records = []
  for number, line in enumerate(lines, 1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
      if isinstance(record, dict) and 'event' in record and 'step' in record:
        records.append(record)
        continue
    except ValueError:
      pass
    if number == len(lines) or (path, number) in _REPORTED_LINES:
      continue
    _REPORTED_LINES.add((path, number))
    if jax.process_index() == 0:
      print(f'{path} line {number} is not a complete record (cut or damaged); '
            f'skipped it: {line[:60].decode(errors="replace")!r}',
            file=sys.stderr, flush=True)
  return records


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  """The records of `metrics.jsonl`, with re-logged steps of resumed runs
  deduplicated (the later record wins), in file order. Lines that do not
  parse are skipped (`_parse_lines`)."""
  records = _parse_lines(os.path.join(workdir, METRICS_FILE))
  latest = {}
  for index, record in enumerate(records):
    latest[(record['event'], record.get('split'), record['step'])] = index
  keep = sorted(latest.values())
  return [records[i] for i in keep]


def validation_scores(workdir: str, metric: str) -> dict[int, float]:
  """step -> the finite validation `metric` of each `eval` record of the run
  in `workdir` ({} without a metrics.jsonl): which checkpoint scored what."""
  if not os.path.exists(os.path.join(workdir, METRICS_FILE)):
    return {}
  steps, values = plots.curve(read_metrics(workdir), 'eval', metric,
                              'validation')
  return {int(step): float(value) for step, value in zip(steps, values)}


def format_summary(final: dict[str, Any], best_metric: str) -> str:
  """The final record of a run as the table a run prints: its main metrics
  (`metrics.METRICS` order) on validation and test, and its wall time."""
  validation, test = final['validation'], final['test']
  keys = metrics.main_metrics(validation)
  width = max(map(len, keys))
  lines = [_best_line(final, best_metric),
           f'{"metric":<{width}}  validation    test']
  lines += [f'{k:<{width}}  {validation[k]:10.4f}  {test[k]:6.4f}' for k in keys]
  lines.append(f'Wall time: {final["wall_time_s"]:.0f} s.')
  return '\n'.join(lines)


def best_lost(final: dict[str, Any]) -> bool:
  """Whether a `final` record's scores come from a checkpoint other than
  its best step's (the best checkpoint was damaged)."""
  source = final.get('best_restored_from')
  return bool(source) and source.get('step') != final.get('best_step')


def _best_line(final: dict[str, Any], best_metric: str) -> str:
  """Which checkpoint the final scores are of, and whether it is the best."""
  best = final['best_step']
  if best is None:
    return 'No checkpoints (a model fitted without steps).'
  source = final.get('best_restored_from') or {'checkpoint': f'best/{best}',
                                               'step': best}
  if best_lost(final):
    return (f'Best checkpoint: step {best} (by validation {best_metric}) was '
            f'lost; the scores below are of {source["checkpoint"]} (step '
            f'{source["step"]}), the best intact one kept.')
  where = ('' if source['checkpoint'] == f'best/{best}'
           else f', read from {source["checkpoint"]}')
  return f'Best checkpoint: step {best} (by validation {best_metric}{where}).'
