"""Where a sweep's runs train: N worker processes on this host, each on its
share of the devices, or a SLURM job array through submitit.

Workers and jobs all run `ablation.execute` on the same output folder; each
run is claimed with a lock in its folder (`ablation.CLAIM_FILE`) before it
trains, so two never train the same run, and a finished run (result.json)
is never trained again.
"""

import dataclasses
import glob
import json
import os
import subprocess
import sys
import time
from typing import Any, Sequence

from unetjax.errors import ConfigError

WORKER_ENV = 'UNETJAX_SWEEP_WORKER'  # set in the processes of --workers
SUBMITTED_FILE = 'submitted.json'  # run name -> SLURM job id, in <out>/slurm/
_ACTIVE = ('PENDING', 'RUNNING', 'REQUEUED', 'RESIZING', 'SUSPENDED', 'CONFIGURING',
           'COMPLETING', 'UNKNOWN')


@dataclasses.dataclass(frozen=True)
class Share:
  """One worker's devices: CPU cores it may run on, or the environment
  that shows it its GPUs."""
  cores: tuple[int, ...] = ()
  env: tuple[tuple[str, str], ...] = ()

  def describe(self) -> str:
    return (f'cores {",".join(map(str, self.cores))}' if self.cores
            else ' '.join(f'{k}={v}' for k, v in self.env))


def visible_gpus() -> list[str]:
  """The ids of the NVIDIA GPUs this process may use (none without
  nvidia-smi); read without starting JAX, which would take their memory."""
  visible = os.environ.get('CUDA_VISIBLE_DEVICES')
  if visible is not None:
    return [g.strip() for g in visible.split(',') if g.strip()]
  try:
    listing = subprocess.run(['nvidia-smi', '-L'], capture_output=True, text=True,
                             timeout=30, check=False).stdout
  except (OSError, subprocess.TimeoutExpired):
    return []
  return [str(i) for i, line in enumerate(l for l in listing.splitlines()
                                          if l.startswith('GPU '))]


def shares(workers: int) -> list[Share]:
  """`workers` equal shares of this host's GPUs, else of its CPU cores;
  ConfigError when there are fewer than workers."""
  gpus = visible_gpus()
  if gpus:
    if workers > len(gpus):
      raise ConfigError(f'--workers={workers}: this host shows {len(gpus)} '
                        f'GPU(s) ({",".join(gpus)}); give at most {len(gpus)}.')
    per = len(gpus) // workers
    return [Share(env=(('CUDA_VISIBLE_DEVICES', ','.join(gpus[i * per:(i + 1) * per])),))
            for i in range(workers)]
  if glob.glob('/dev/accel*') or glob.glob('/dev/vfio/[0-9]*'):
    raise ConfigError('--workers on a TPU host: train one sweep per host '
                      "with the chips data parallel (config.parallel='pmap').")
  cores = sorted(os.sched_getaffinity(0))
  if workers > len(cores):
    raise ConfigError(f'--workers={workers}: this process may use {len(cores)} '
                      f'CPU core(s); give at most {len(cores)}.')
  return [Share(cores=tuple(part)) for part in _split(cores, workers)]


def _split(items: Sequence[int], parts: int) -> list[list[int]]:
  size, extra = divmod(len(items), parts)
  out, start = [], 0
  for i in range(parts):
    end = start + size + (i < extra)
    out.append(list(items[start:end]))
    start = end
  return out


def worker_command(argv: Sequence[str]) -> list[str]:
  """This command's own flags for one worker: the same sweep, without
  --workers and --executor."""
  kept, skip = [], False
  for arg in argv[1:]:
    if skip:  # the value of '--workers N'
      skip = False
    elif arg.startswith(('--workers', '--executor')):
      skip = '=' not in arg
    else:
      kept.append(arg)
  return [sys.executable, '-m', 'unetjax.ablation', *kept, '--workers=1']


def run_workers(argv: Sequence[str], workers: int, out: str) -> list[int]:
  """Starts `workers` copies of this sweep command, each on its share of
  the devices and logging to <out>/workers/<i>.log; waits for them and
  returns their exit codes."""
  planned = shares(workers)  # too many workers: refused before any file
  os.makedirs(os.path.join(out, 'workers'), exist_ok=True)
  processes = []
  for index, share in enumerate(planned):
    log_path = os.path.join(out, 'workers', f'{index}.log')
    print(f'worker {index}: {share.describe()}, log {log_path}', flush=True)
    with open(log_path, 'a') as log:
      processes.append(subprocess.Popen(
          worker_command(argv), stdout=log, stderr=subprocess.STDOUT,
          env={**os.environ, **dict(share.env), WORKER_ENV: str(index)},
          preexec_fn=(lambda c=share.cores: os.sched_setaffinity(0, c))
          if share.cores else None))
  try:
    return [p.wait() for p in processes]
  except KeyboardInterrupt:  # the workers got the same Ctrl-C; let them stop
    for p in processes:
      p.wait()
    raise


def train_one(sweep_path: str, seeds: Sequence[int] | None, out: str,
              run_name: str, cpu_devices: int | None) -> str:
  """One run of a sweep, as a submitit job: the same `ablation.execute` as
  a local sweep, restricted to `run_name`."""
  import re  # pylint: disable=import-outside-toplevel
  from unetjax import ablation, parallel  # pylint: disable=import-outside-toplevel
  parallel.use_cpu_devices(cpu_devices)
  sweep = ablation.load_sweep(sweep_path)
  if seeds:
    sweep['seeds'] = list(seeds)
  failures = ablation.execute(sweep, out, only=f'^{re.escape(run_name)}$')
  if failures:
    raise RuntimeError(failures[0][1])
  return run_name


def _submitted(out: str) -> dict[str, str]:
  path = os.path.join(out, 'slurm', SUBMITTED_FILE)
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def _still_queued(submitit, out: str, job_id: str) -> bool:
  try:
    state = submitit.SlurmJob(os.path.join(out, 'slurm'), job_id).state
  except Exception:  # noqa: BLE001 - sacct unreachable: assume it ended
    return False
  return state.split()[0] in _ACTIVE


def submit(executor_name: str, sweep_path: str, seeds: Sequence[int] | None,
           out: str, run_names: Sequence[str], parameters: dict[str, Any],
           cpu_devices: int | None, wait: bool) -> list[str]:
  """Submits the runs in `run_names` not already queued as one job array
  (`executor_name` 'slurm', or 'local' for submitit's local executor, which
  runs the same jobs as subprocesses); with `wait`, returns when they end.
  Returns the names submitted."""
  from unetjax import extras  # pylint: disable=import-outside-toplevel
  submitit = extras.require('submitit', 'experiments', f'--executor={executor_name}')
  folder = os.path.join(out, 'slurm')
  queued = {name: job for name, job in _submitted(out).items()
            if executor_name == 'slurm' and _still_queued(submitit, out, job)}
  names = [n for n in run_names if n not in queued]
  if not names:
    return []
  executor = submitit.AutoExecutor(folder=folder, cluster=executor_name)
  executor.update_parameters(**parameters)
  jobs = executor.map_array(train_one, [sweep_path] * len(names),
                            [seeds] * len(names), [out] * len(names), names,
                            [cpu_devices] * len(names))
  record = {**_submitted(out), **{n: j.job_id for n, j in zip(names, jobs)}}
  with open(os.path.join(folder, SUBMITTED_FILE) + '.tmp', 'w') as f:
    json.dump(record, f, indent=2)
  os.replace(os.path.join(folder, SUBMITTED_FILE) + '.tmp',
             os.path.join(folder, SUBMITTED_FILE))
  if wait:
    while not all(job.done() for job in jobs):
      time.sleep(2)
  return names
