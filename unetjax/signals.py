"""Stop requests: SIGTERM (how Colab and cluster schedulers preempt a job)
and Ctrl-C ask the training loop to checkpoint and exit at the next step.
A second Ctrl-C interrupts at once."""

import signal
import threading

import numpy as np
import jax
from jax.experimental import multihost_utils


class StopRequests:
  """Context manager catching SIGTERM and SIGINT while the loop runs."""

  def __init__(self):
    self.signal_name: str | None = None
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if signum == signal.SIGINT and self.signal_name == 'SIGINT':
      raise KeyboardInterrupt  # second Ctrl-C: stop now
    self.signal_name = signal.Signals(signum).name

  def __enter__(self) -> 'StopRequests':
    if threading.current_thread() is threading.main_thread():
      for signum in (signal.SIGTERM, signal.SIGINT):
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)

  def requested(self, collective: bool) -> bool:
    """Whether to stop now. With several processes all must stop at the same
    step, so the flag is combined over processes where `collective`
    (every process must call it at the same steps) and ignored elsewhere."""
    if jax.process_count() == 1:
      return self.signal_name is not None
    if not collective:
      return False
    flags = multihost_utils.process_allgather(np.int32(self.signal_name is not None))
    return bool(np.any(flags))
