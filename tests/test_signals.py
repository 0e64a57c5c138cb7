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


@pytest.mark.parametrize('command', ['main', 'ablation', 'plan'])
def test_ctrl_c_while_a_command_starts_is_one_line(tmp_path, command):
  """Its imports take seconds; a Ctrl-C then once printed a traceback, or
  was swallowed by a garbage-collection callback and the run went on."""
  import subprocess
  import sys
  import time
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  workdir = tmp_path / 'run'
  flags = {'main': ['--config=configs/default.py', f'--workdir={workdir}',
                    '--config.num_train_steps=1'],
           'ablation': ['--sweep=experiments/smoke.py', f'--out={workdir}'],
           'plan': ['--config=configs/default.py', '--budget=10m',
                    f'--out={workdir}.py']}[command]
  process = subprocess.Popen(
      [sys.executable, '-m', f'unetjax.{command}', *flags],
      cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  time.sleep(1.0)  # importing
  process.send_signal(signal.SIGINT)
  _, stderr = process.communicate(timeout=120)
  assert stderr == 'Interrupted while starting; nothing was written.\n'
  assert process.returncode == 128 + signal.SIGINT
  assert not workdir.exists() and not os.path.exists(f'{workdir}.py')
