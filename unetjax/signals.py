"""Stop requests: SIGTERM (how Colab and cluster schedulers preempt a job)
and Ctrl-C ask the training loop to checkpoint and exit at the next step.
A second Ctrl-C interrupts at once: the process exits with one line saying
what was saved (see `StopRequests`)."""

import os
import signal
import sys
import threading
from typing import Callable

import numpy as np
import jax
from jax.experimental import multihost_utils


class StopRequests:
  """Context manager catching SIGTERM and SIGINT while the loop runs."""

  def __init__(self, exit_message: Callable[[], str] | None = None):
    """With `exit_message`, a second Ctrl-C prints what it returns and ends
    the process at once (no clean-up that could hang or print tracebacks;
    files being written are left as a kill leaves them); without it, it
    raises KeyboardInterrupt."""
    self.signal_name: str | None = None
    self._previous = {}
    self._exit_message = exit_message

  def _handle(self, signum, frame):
    del frame
    if signum == signal.SIGINT and self.signal_name == 'SIGINT':
      if self._exit_message is None:
        raise KeyboardInterrupt  # second Ctrl-C: stop now
      try:
        message = self._exit_message()
      except Exception as e:  # noqa: BLE001 - exiting matters more
        message = f'Interrupted again ({e}).'
      print(f'\n{message}', file=sys.stderr, flush=True)
      sys.stdout.flush()
      os._exit(128 + signal.SIGINT)
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
