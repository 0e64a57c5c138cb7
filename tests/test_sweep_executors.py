"""Sweeps in parallel: --workers processes on shares of the host's devices
give the results a sequential sweep gives, never training a run twice; the
submitit local executor runs the same jobs a SLURM array would and a re-run
submits only what is missing; too many workers is one message."""

import json
import os
import subprocess
import sys

import pytest

from unetjax import ablation, executors
from unetjax.errors import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_sweep(tmp_path, tfds_dir, seeds=(0, 1)):
  """The smoke sweep's tiny runs: two models x two seeds."""
  path = tmp_path / 'sweep.py'
  path.write_text(
      'import sys\n'
      f'sys.path.insert(0, {REPO!r})\n'
      'from experiments import smoke\n\n'
      'def get_sweep():\n'
      '  sweep = smoke.get_sweep()\n'
      "  sweep['axes'].pop('aug')\n"
      f"  sweep['fixed']['config.dataset.data_dir'] = {tfds_dir!r}\n"
      f"  sweep['seeds'] = {list(seeds)!r}\n"
      "  sweep['slurm'] = {'time_min': 10, 'cpus_per_run': 1}\n"
      '  return sweep\n')
  return str(path)


def sweep_command(sweep_file, out, *extra):
  return subprocess.run(
      [sys.executable, '-m', 'unetjax.ablation', f'--sweep={sweep_file}',
       f'--out={out}', *extra], cwd=REPO, capture_output=True, text=True,
      timeout=900)


def results(out):
  found = {}
  for name in sorted(os.listdir(out)):
    path = os.path.join(out, name, ablation.RESULT_FILE)
    if os.path.exists(path):
      with open(path) as f:
        record = json.load(f)
      found[name] = (record['best_step'], record['validation'], record['test'])
  return found


def finals(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return sum(json.loads(line)['event'] == 'final' for line in f if line.strip())


@pytest.mark.slow
def test_two_workers_give_the_sequential_results_and_train_each_run_once(
    tfds_dir, tmp_path):
  sweep_file = write_sweep(tmp_path, tfds_dir)
  sequential = sweep_command(sweep_file, tmp_path / 'sequential')
  assert sequential.returncode == 0, sequential.stderr[-3000:]
  parallel = sweep_command(sweep_file, tmp_path / 'parallel', '--workers=2')
  assert parallel.returncode == 0, parallel.stderr[-3000:]
  assert 'worker 0: cores' in parallel.stdout and 'worker 1: cores' in parallel.stdout
  expected, found = results(tmp_path / 'sequential'), results(tmp_path / 'parallel')
  assert len(expected) == 4 and found == expected
  logs = [(tmp_path / 'parallel' / 'workers' / f'{i}.log').read_text() for i in (0, 1)]
  trained = [log.count(': training.') for log in logs]
  assert sum(trained) == 4 and min(trained) >= 1  # both worked, none twice
  assert all(finals(tmp_path / 'parallel' / name) == 1 for name in found)
  assert (tmp_path / 'parallel' / 'results.md').exists()


def test_workers_beyond_the_devices_are_one_message(monkeypatch):
  monkeypatch.setattr(executors, 'visible_gpus', lambda: [])
  monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0, 1})
  assert [s.cores for s in executors.shares(2)] == [(0,), (1,)]
  with pytest.raises(ConfigError, match=r'--workers=3: this process may use 2 '
                     r'CPU core\(s\); give at most 2'):
    executors.shares(3)
  monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '2,5,7,9')
  monkeypatch.setattr(executors, 'visible_gpus', lambda: ['2', '5', '7', '9'])
  assert [dict(s.env) for s in executors.shares(2)] == [
      {'CUDA_VISIBLE_DEVICES': '2,5'}, {'CUDA_VISIBLE_DEVICES': '7,9'}]
  with pytest.raises(ConfigError, match=r'shows 4 GPU\(s\) \(2,5,7,9\); give at most 4'):
    executors.shares(5)


def test_a_claimed_run_is_skipped_by_a_worker(tfds_dir, tmp_path, capsys):
  from unetjax import locks
  sweep = ablation.load_sweep(write_sweep(tmp_path, tfds_dir, seeds=(0,)))
  held = tmp_path / 'out' / 'model=unet,seed=0'
  held.mkdir(parents=True)
  claim = locks.FileLock(str(held / ablation.CLAIM_FILE))
  claim.acquire()
  trained = []

  def fake_train(config, workdir):
    trained.append(os.path.basename(workdir))
    return {'best_step': 1, 'wall_time_s': 1.0, 'validation': {}, 'test': {}}

  ablation.execute(sweep, str(tmp_path / 'out'), train_fn=fake_train, skip_claimed=True)
  assert trained == ['model=resunet,seed=0']
  assert f'trained by process {os.getpid()}' in capsys.readouterr().out
  from unetjax.errors import WorkdirInUseError
  with pytest.raises(WorkdirInUseError, match='is in use by process'):
    ablation.execute(sweep, str(tmp_path / 'out'), train_fn=fake_train)
  claim.release()


@pytest.mark.slow
def test_submitit_local_executor_runs_the_jobs_and_a_rerun_submits_only_the_missing(
    tfds_dir, tmp_path):
  pytest.importorskip('submitit')
  sweep_file = write_sweep(tmp_path, tfds_dir, seeds=(0,))
  out = tmp_path / 'out'
  first = sweep_command(sweep_file, out, '--executor=local', '--wait')
  assert first.returncode == 0, first.stderr[-3000:]
  assert '2 run(s) submitted (local), 0 still queued, 0 finished.' in first.stdout
  assert len(results(out)) == 2 and (out / 'results.md').exists()
  submitted = json.loads((out / 'slurm' / executors.SUBMITTED_FILE).read_text())
  assert sorted(submitted) == ['model=resunet,seed=0', 'model=unet,seed=0']
  os.remove(out / 'model=unet,seed=0' / ablation.RESULT_FILE)  # as if preempted
  again = sweep_command(sweep_file, out, '--executor=local', '--wait', '--seeds=0,1')
  assert again.returncode == 0, again.stderr[-3000:]
  assert '3 run(s) submitted (local), 0 still queued, 1 finished.' in again.stdout
  assert len(results(out)) == 4


def test_a_worker_runs_the_same_command_without_the_parallel_flags():
  argv = ['ablation.py', '--sweep=s.py', '--workers', '2', '--out=o',
          '--executor=inline', '--seeds=0-3']
  assert executors.worker_command(argv)[1:] == [
      '-m', 'unetjax.ablation', '--sweep=s.py', '--out=o', '--seeds=0-3', '--workers=1']
