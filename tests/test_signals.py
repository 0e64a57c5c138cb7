import os
import signal

import pytest

from unetjax import signals


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])
def test_a_signal_requests_a_stop_instead_of_killing(sig):
  before = signal.getsignal(sig)
  with signals.StopRequests() as stop:
    assert not stop.requested(collective=False)
    os.kill(os.getpid(), sig)
    assert stop.requested(collective=False)
    assert stop.signal_name == signal.Signals(sig).name
  assert signal.getsignal(sig) == before  # handlers restored


def test_a_second_ctrl_c_interrupts_at_once():
  with signals.StopRequests():
    os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)
