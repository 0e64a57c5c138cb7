"""`python -m unetjax.main` end to end, in subprocesses, as a user runs it."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from unetjax import logs

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main_command(workdir, tfds_dir, *overrides):
  return [sys.executable, '-m', 'unetjax.main', '--config=configs/default.py',
          f'--workdir={workdir}', f'--config.dataset.data_dir={tfds_dir}',
          '--config.progress_bar=False', *overrides]


def run_main(workdir, tfds_dir, *overrides):
  return subprocess.run(main_command(workdir, tfds_dir, *overrides), cwd=REPO,
                        capture_output=True, text=True, timeout=600)


def test_one_step_run_writes_everything_a_user_looks_for(tfds_dir, tmp_path):
  workdir = tmp_path / 'run'
  result = run_main(workdir, tfds_dir, '--config.num_train_steps=1',
                    '--config.model.base_filters=8')
  assert result.returncode == 0, result.stderr
  assert 'Best checkpoint: step 1' in result.stdout
  assert 'Wall time:' in result.stdout
  records = logs.read_metrics(str(workdir))
  assert [r['event'] for r in records] == ['train', 'eval', 'final']
  final = records[-1]
  for split in ('validation', 'test'):
    assert 0 <= final[split]['dice'] <= 1 and 0 <= final[split]['iou'] <= 1
  assert final['wall_time_s'] > 0
  saved = json.loads((workdir / 'config.json').read_text())
  assert saved['num_train_steps'] == 1 and saved['model']['base_filters'] == 8
  assert os.listdir(workdir / 'checkpoints') == ['1']
  assert os.listdir(workdir / 'best') == ['1']
  assert any(name.startswith('events.out.tfevents')
             for name in os.listdir(workdir / 'tensorboard'))


@pytest.mark.parametrize('overrides, message', [
    (['--config.model.name=unett'], "Unknown model 'unett'"),
    (['--config.model.depth=7', '--config.model.dropout_rates=(0.,0.,0.,0.,0.,0.,0.,0.)'],
     'Image size 64x64 cannot go through a model of depth 7'),
    (['--config.num_train_steps=1', '--config.batch_size=3'],
     'config.batch_size=3 must be a positive multiple'),
])
def test_bad_input_is_one_clear_message_and_the_workdir_is_untouched(
    tfds_dir, tmp_path, overrides, message):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  (workdir / 'notes.txt').write_text('keep me')
  result = run_main(workdir, tfds_dir, *overrides)
  assert result.returncode == 1
  assert message in result.stderr
  assert 'Traceback' not in result.stderr
  assert os.listdir(workdir) == ['notes.txt']


def test_missing_config_field_in_a_config_file(tfds_dir, tmp_path):
  config_file = tmp_path / 'broken.py'
  config_file.write_text(
      'from configs import default\n'
      'def get_config():\n'
      '  config = default.get_config()\n'
      '  del config.optimizer["learning_rate"]\n'
      '  return config\n')
  command = main_command(tmp_path / 'run', tfds_dir)
  command[3] = f'--config={config_file}'
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
  assert result.returncode == 1
  assert 'config.optimizer.learning_rate is missing' in result.stderr
  assert 'Traceback' not in result.stderr


# A U-Net of depth 2 (with dropout: its random masks must resume too).
SHALLOW = ('--config.model.depth=2', '--config.model.dropout_rates=(0.1,0.2,0.3)')
RESUME_OVERRIDES = ('--config.model.base_filters=8', *SHALLOW,
                    '--config.num_train_steps=20', '--config.checkpoint_every_steps=5',
                    '--config.eval_every_steps=10', '--config.log_every_steps=5')


def final_state(workdir):
  return ocp.StandardCheckpointer().restore(
      os.path.join(workdir, 'checkpoints', '20', 'state'))


@pytest.fixture(scope='module')
def uninterrupted_run(tfds_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp('uninterrupted')
  result = run_main(workdir, tfds_dir, *RESUME_OVERRIDES)
  assert result.returncode == 0, result.stderr
  return workdir


# SIGINT takes SIGTERM's path (tests/test_signals.py), so one of them runs here.
@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGTERM])
def test_interrupted_run_resumes_to_the_same_result(tfds_dir, tmp_path, sig,
                                                    uninterrupted_run):
  workdir = tmp_path / 'run'
  process = subprocess.Popen(main_command(workdir, tfds_dir, *RESUME_OVERRIDES),
                             cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 300
  while not (workdir / 'checkpoints' / '10').exists():
    assert process.poll() is None, process.communicate()
    assert time.time() < deadline
    time.sleep(0.05)
  process.send_signal(sig)
  _, stderr = process.communicate(timeout=120)
  if sig == signal.SIGKILL:
    assert process.returncode == -signal.SIGKILL
  else:  # checkpointed the step it stopped at, then exited as killed by sig
    assert process.returncode == 128 + sig, stderr
    assert f'Stopped by {signal.Signals(sig).name} at step' in stderr
    assert 'Re-run the same command to resume' in stderr
    stopped_at = int(stderr.split(' at step ')[1].split(',')[0])
    saved = sorted(int(s) for s in os.listdir(workdir / 'checkpoints'))
    assert saved[-1] == stopped_at

  result = run_main(workdir, tfds_dir, *RESUME_OVERRIDES)
  assert result.returncode == 0, result.stderr
  assert 'Resuming from step' in result.stdout
  records = logs.read_metrics(str(workdir))
  resumed_at = [r['step'] for r in records if r['event'] == 'resume']
  assert len(resumed_at) == 1 and 10 <= resumed_at[0] < 20

  expected = logs.read_metrics(str(uninterrupted_run))
  assert strip_volatile(records) == strip_volatile(expected)
  reference = final_state(uninterrupted_run)
  resumed = final_state(workdir)
  assert jax.tree.structure(reference) == jax.tree.structure(resumed)
  for a, b in zip(jax.tree.leaves(reference), jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(a, b)


def free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def test_two_processes_train_like_one(tfds_dir, tmp_path):
  """2 processes x 4 devices (jax.distributed on localhost) = 1 process x 2
  devices (--cpu_devices=2). One process on all 8 devices against one device
  is tests/test_parallel.py's."""
  overrides = ('--config.num_train_steps=4', '--config.eval_every_steps=2',
               '--config.log_every_steps=2', '--config.checkpoint_every_steps=2',
               '--config.model.base_filters=4', *SHALLOW)
  two_devices = run_main(tmp_path / 'two_devices', tfds_dir, *overrides,
                         '--cpu_devices=2')  # the host split in 2, not 8
  assert two_devices.returncode == 0, two_devices.stderr
  assert 'devices: [CpuDevice(id=0), CpuDevice(id=1)]' in two_devices.stdout
  port = free_port()
  env = {**os.environ, 'XLA_FLAGS': os.environ['XLA_FLAGS'].replace(
      'device_count=8', 'device_count=4')}
  processes = [subprocess.Popen(
      main_command(tmp_path / 'multi', tfds_dir, *overrides,
                   f'--coordinator_address=localhost:{port}',
                   '--num_processes=2', f'--process_id={i}'),
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True) for i in range(2)]
  outputs = [p.communicate(timeout=600) for p in processes]
  for process, (_, stderr) in zip(processes, outputs):
    assert process.returncode == 0, stderr
  assert 'process 1 of 2' in outputs[0][0] and 'Best checkpoint' in outputs[0][0]
  assert 'Best checkpoint' not in outputs[1][0]  # only process 0 reports
  expected = logs.read_metrics(str(tmp_path / 'two_devices'))
  records = logs.read_metrics(str(tmp_path / 'multi'))
  assert [r['event'] for r in records] == [r['event'] for r in expected]
  for ours, reference in zip(records, expected):
    for key in ('loss', 'dice', 'iou', 'hd95'):
      if key in reference:
        np.testing.assert_allclose(ours[key], reference[key], rtol=1e-3,
                                   err_msg=key)
  assert sorted(os.listdir(tmp_path / 'multi' / 'checkpoints')) == ['2', '4']


def wait_for(path, process, timeout=300):
  deadline = time.time() + timeout
  while not path.exists():
    assert process.poll() is None, process.communicate()
    assert time.time() < deadline
    time.sleep(0.05)


def strip_volatile(records):
  return [{k: v for k, v in r.items()
           if k not in ('time', 'images_per_s', 'wall_time_s')}
          for r in records if r['event'] != 'resume']


def assert_refused(process, holder_pid):
  _, stderr = process.communicate(timeout=300)
  assert process.returncode == 1, stderr
  assert 'Traceback' not in stderr
  assert stderr.strip().splitlines()[-1].startswith(
      'error: --workdir=') and f'is in use by process {holder_pid} on ' \
      f'{socket.gethostname()}' in stderr, stderr


def test_one_run_per_workdir_and_predict_beside_it(tfds_dir, tmp_path,
                                                   uninterrupted_run):
  """Two runs started together: one trains, the other stops with one line,
  as does a third started later; predict reads the training workdir in a
  loop meanwhile; the run that trained ends as an uninterrupted run."""
  from PIL import Image
  from unetjax.data import synthetic
  workdir = tmp_path / 'run'
  command = main_command(workdir, tfds_dir, *RESUME_OVERRIDES)
  started = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
  deadline = time.time() + 300
  while all(p.poll() is None for p in started):
    assert time.time() < deadline
    time.sleep(0.05)
  loser = next(p for p in started if p.poll() is not None)
  winner = next(p for p in started if p is not loser)
  assert_refused(loser, winner.pid)
  late = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  assert_refused(late, winner.pid)

  wait_for(workdir / 'checkpoints' / '5', winner)

  images = tmp_path / 'images'
  images.mkdir()
  image, _ = synthetic.render_cells(np.random.default_rng(0), 64, 1, False)
  Image.fromarray(image[..., 0]).save(images / 'cells.png')
  predictions = 0
  while winner.poll() is None:
    result = subprocess.run(
        [sys.executable, '-m', 'unetjax.predict', f'--workdir={workdir}',
         f'--images={images}', f'--out={tmp_path / "out"}'],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and 'Traceback' not in result.stderr, \
        result.stderr
    predictions += 1
  assert predictions >= 1
  _, stderr = winner.communicate()
  assert winner.returncode == 0, stderr
  assert (strip_volatile(logs.read_metrics(str(workdir))) ==
          strip_volatile(logs.read_metrics(str(uninterrupted_run))))


# Runs unetjax.main with checkpoint saves held open once `hold` exists: each
# save then creates `saving` and waits, so a signal can be sent while one is
# certainly in progress.
HOLD_SAVES = """
import os, runpy, sys, time
from unetjax import checkpoints
hold, saving = sys.argv.pop(1), sys.argv.pop(1)
save_latest = checkpoints.Checkpoints.save_latest
def held(self, *args, **kwargs):
  if os.path.exists(hold):
    open(saving, 'w').close()
    time.sleep(120)
  return save_latest(self, *args, **kwargs)
checkpoints.Checkpoints.save_latest = held
sys.argv[0] = 'unetjax.main'
runpy.run_module('unetjax.main', run_name='__main__')
"""


def test_a_second_ctrl_c_during_the_stopping_save_exits_at_once(tfds_dir,
                                                                 tmp_path):
  workdir, hold, saving = tmp_path / 'run', tmp_path / 'hold', tmp_path / 'saving'
  command = main_command(workdir, tfds_dir, '--config.model.base_filters=4',
                         '--config.num_train_steps=100000',
                         '--config.checkpoint_every_steps=2',
                         '--config.eval_every_steps=100000')
  process = subprocess.Popen(
      [sys.executable, '-c', HOLD_SAVES, str(hold), str(saving), *command[3:]],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  wait_for(workdir / 'checkpoints' / '4', process)
  hold.touch()
  process.send_signal(signal.SIGINT)  # the loop stops and saves: held
  wait_for(saving, process)
  second = time.time()
  process.send_signal(signal.SIGINT)
  _, stderr = process.communicate(timeout=60)
  assert time.time() - second < 5
  assert process.returncode == 128 + signal.SIGINT
  assert 'Traceback' not in stderr
  last = stderr.strip().splitlines()[-1]
  assert last.startswith('Interrupted again: exited at once; the newest '
                         'complete checkpoint is step '), stderr
  step = int(last.split(' is step ')[1].split(' ')[0])
  assert step >= 4 and str(step) in os.listdir(workdir / 'checkpoints')


def test_a_full_disk_is_one_line_and_the_saved_checkpoints_stay(tfds_dir,
                                                               tmp_path):
  disk = tmp_path / 'small_disk'
  disk.mkdir()
  if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=600k', 'tmpfs',
                     str(disk)], capture_output=True).returncode != 0:
    pytest.skip('mounting a small tmpfs needs root')
  try:
    workdir = disk / 'run'
    overrides = ('--config.model.base_filters=4', '--config.model.depth=2',
                 '--config.model.dropout_rates=(0.,0.,0.)',
                 '--config.num_train_steps=20', '--config.eval_every_steps=6',
                 '--config.checkpoint_every_steps=2',
                 '--config.log_every_steps=2')
    for attempt in range(2):  # the re-run finds the disk still full
      result = run_main(workdir, tfds_dir, *overrides)
      assert result.returncode == 1
      assert result.stderr.strip().splitlines() == [
          f'error: Cannot use {workdir}: the disk is full: free some space (or '
          'use a folder on another disk), then re-run the same command.'], \
          result.stderr
      assert {'2', '4'} <= set(os.listdir(workdir / 'checkpoints'))
      assert [r['step'] for r in logs.read_metrics(str(workdir))
              if r['event'] == 'train'][:2] == [2, 4]
  finally:
    subprocess.run(['umount', str(disk)], check=True)
