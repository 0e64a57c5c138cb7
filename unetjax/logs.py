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
  full disk), so the next record starts on a line of its own."""
  try:
    with open(path, 'rb+') as f:
      data = f.read()
      if data and not data.endswith(b'\n'):
        f.truncate(data.rfind(b'\n') + 1)
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


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  """The records of `metrics.jsonl`, with re-logged steps of resumed runs
  deduplicated (the later record wins), in file order."""
  with open(os.path.join(workdir, METRICS_FILE)) as f:
    lines = [line for line in f if line.strip()]
  records = [json.loads(line) for line in lines[:-1]]
  if lines:
    try:
      records.append(json.loads(lines[-1]))
    except ValueError:
      pass  # cut short by a kill or a full disk; the writer cuts it off
  latest = {}
  for index, record in enumerate(records):
    latest[(record['event'], record.get('split'), record['step'])] = index
  keep = sorted(latest.values())
  return [records[i] for i in keep]


def format_summary(final: dict[str, Any], best_metric: str) -> str:
  """The final record of a run as the table a run prints: its main metrics
  (`metrics.METRICS` order) on validation and test, and its wall time."""
  validation, test = final['validation'], final['test']
  keys = metrics.main_metrics(validation)
  width = max(map(len, keys))
  lines = [f'Best checkpoint: step {final["best_step"]} '
           f'(by validation {best_metric}).' if final['best_step'] is not None
           else 'No checkpoints (a model fitted without steps).',
           f'{"metric":<{width}}  validation    test']
  lines += [f'{k:<{width}}  {validation[k]:10.4f}  {test[k]:6.4f}' for k in keys]
  lines.append(f'Wall time: {final["wall_time_s"]:.0f} s.')
  return '\n'.join(lines)
