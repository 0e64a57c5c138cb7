"""The workdir: one writer at a time (its lock), storage errors as one line,
and what a run and predict do with damaged checkpoints and logs."""

import errno
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from unetjax import workdir as workdir_lib
from unetjax.errors import WorkdirError, WorkdirInUseError


def test_a_held_workdir_refuses_a_second_writer_until_released(tmp_path):
  workdir = str(tmp_path / 'run')
  with workdir_lib.hold(workdir):
    # flock locks belong to an open file, so a second open conflicts even in
    # this process, as a second process would.
    with pytest.raises(WorkdirInUseError,
                       match=rf'is in use by process {os.getpid()} on '
                             rf'{socket.gethostname()}'):
      with workdir_lib.hold(workdir):
        pass
  with workdir_lib.hold(workdir):  # released: the next run takes it
    pass
  assert os.listdir(workdir) == [workdir_lib.LOCK_FILE]


def test_a_workdir_that_is_a_file_or_not_writable_is_one_message(tmp_path,
                                                                  monkeypatch):
  path = tmp_path / 'file'
  path.write_text('keep me')
  with pytest.raises(WorkdirError, match=r'--workdir=.*file is a file, not a '
                     'folder'):
    with workdir_lib.hold(str(path)):
      pass
  assert path.read_text() == 'keep me'

  def read_only(*args, **kwargs):
    raise OSError(errno.EROFS, os.strerror(errno.EROFS), args[0])

  monkeypatch.setattr(os, 'open', read_only)  # root ignores file modes
  with pytest.raises(WorkdirError, match=r'Cannot use .*run: the file system '
                     'is read-only: use a writable folder'):
    with workdir_lib.hold(str(tmp_path / 'run')):
      pass


def test_a_cut_config_json_is_one_message_and_stays(tmp_path):
  from configs import default
  workdir = tmp_path / 'run'
  workdir.mkdir()
  (workdir / 'config.json').write_text('{"batch_size": 8, "mod')
  with pytest.raises(WorkdirError, match=r'config.json is damaged \(.*\), so '
                     "the run's config is unknown"):
    workdir_lib.record_config(str(workdir), default.get_config())
  assert (workdir / 'config.json').read_text() == '{"batch_size": 8, "mod'


def test_a_partial_last_metrics_line_is_skipped_and_repaired(tmp_path):
  from unetjax import logs
  path = tmp_path / logs.METRICS_FILE
  path.write_text('{"event": "train", "step": 2, "loss": 1.0}\n{"event": "ev')
  assert logs.read_metrics(str(tmp_path)) == [
      {'event': 'train', 'step': 2, 'loss': 1.0}]
  logger = logs.MetricLogger(str(tmp_path))
  logger.write('train', 4, loss=0.5)
  logger.close()
  assert [r['step'] for r in logs.read_metrics(str(tmp_path))] == [2, 4]
  assert path.read_text().count('\n') == 2


# Recovery of a trained run (issue 33): one tiny run, copied for each case.

def tiny_config(tfds_dir, **overrides):
  from configs import default
  config = default.get_config()
  config.dataset.data_dir = tfds_dir
  config.model.base_filters = 4
  config.model.depth = 2
  config.model.dropout_rates = (0.0,) * 3
  config.batch_size = config.eval_batch_size = 8
  config.num_train_steps = 8
  config.log_every_steps = config.eval_every_steps = 2
  config.checkpoint_every_steps = 2
  config.max_checkpoints_to_keep = 10  # every step's state, to choose from
  config.progress_bar = False
  config.metrics.surface_metrics = False
  config.update_from_flattened_dict(overrides)
  return config


@pytest.fixture(scope='module')
def trained(tfds_dir, tmp_path_factory):
  """(workdir, {step: validation dice}) of a finished tiny run."""
  from unetjax import logs, train
  workdir = tmp_path_factory.mktemp('trained') / 'run'
  train.train_and_evaluate(tiny_config(tfds_dir), str(workdir))
  return workdir, {r['step']: r['dice'] for r in logs.read_metrics(str(workdir))
                   if r['event'] == 'eval'}


def best_of(scores):
  """The step training keeps as the best (mode 'max'): the earliest of ties."""
  return max(scores, key=lambda step: (scores[step], -step))


def copy_of(trained, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(trained[0], workdir)
  return workdir


def cut_largest_file(step_dir):
  """Truncates the largest file of a checkpoint's state to 100 bytes."""
  files = [p for p in (step_dir / 'state').rglob('*') if p.is_file()]
  largest = max(files, key=lambda p: p.stat().st_size)
  largest.write_bytes(largest.read_bytes()[:100])


def cut_data_files(step_dir):
  """Truncates every data file of a checkpoint's state to 100 bytes: the
  model's variables too, which predict reads alone (the largest file may
  hold only the optimizer's state)."""
  for data in (step_dir / 'state').rglob('d/*'):
    data.write_bytes(data.read_bytes()[:100])


def files_of(workdir):
  return {str(p): p.read_bytes() for p in workdir.rglob('*') if p.is_file()}


@pytest.mark.slow
@pytest.mark.parametrize('copy_kept', [True, False])
def test_a_damaged_best_is_replaced_by_the_best_recorded_intact_checkpoint(
    tfds_dir, trained, tmp_path, capfd, copy_kept):
  """The best is not the latest. Its own state from checkpoints/ if kept;
  otherwise the best of the others by their recorded score, and one line
  says that the best was lost."""
  from unetjax import train
  workdir, scores = copy_of(trained, tmp_path), trained[1]
  best = best_of(scores)
  assert os.listdir(workdir / 'best') == [str(best)] and best != max(scores)
  cut_largest_file(workdir / 'best' / str(best))
  if not copy_kept:
    shutil.rmtree(workdir / 'checkpoints' / str(best))
  kept = {s: v for s, v in scores.items() if copy_kept or s != best}
  used = best_of(kept)
  assert used != max(scores)  # not what the latest-first fallback gives
  capfd.readouterr()
  final = train.train_and_evaluate(tiny_config(tfds_dir), str(workdir))
  out, err = capfd.readouterr()
  assert final['best_step'] == best
  assert final['best_restored_from'] == {'checkpoint': f'checkpoints/{used}',
                                         'step': used}
  assert final['validation']['dice'] == pytest.approx(scores[used], abs=1e-6)
  assert len(err.splitlines()) == 1, err
  assert f'Checkpoint step {best} ' in err and 'is damaged' in err
  if copy_kept:
    assert f'Using its copy checkpoints/{best} (step {best}, ' in err
    assert f'Best checkpoint: step {best} (by validation dice, read from ' \
           f'checkpoints/{best}).' in out
  else:
    assert (f'The best checkpoint (step {best}, validation dice '
            f'{scores[best]:.4g}) is lost; using checkpoints/{used} (step '
            f'{used}, validation dice {scores[used]:.4g})') in err
    assert f'Best checkpoint: step {best} (by validation dice) was lost; the ' \
           f'scores below are of checkpoints/{used} (step {used})' in out
  assert os.listdir(workdir / 'damaged') == [f'best-{best}']


@pytest.mark.slow
def test_a_resumed_run_refills_an_emptied_best(tfds_dir, trained, tmp_path):
  """best/ set aside (or removed) after its best was lost: the score to beat
  is no longer the lost best's (here an unbeatable 1.0) but the best kept
  one's (none is recorded: no metrics.jsonl), so the next evaluation is
  saved as the best."""
  import json
  from unetjax import logs, train
  workdir = copy_of(trained, tmp_path)
  shutil.rmtree(workdir / 'best')
  os.remove(workdir / logs.METRICS_FILE)
  latest = max(int(step) for step in os.listdir(workdir / 'checkpoints'))
  meta_file = workdir / 'checkpoints' / str(latest) / 'meta' / 'metadata'
  meta = json.loads(meta_file.read_text())
  meta_file.write_text(json.dumps({**meta, 'best_score': 1.0}))
  final = train.train_and_evaluate(
      tiny_config(tfds_dir, num_train_steps=latest + 2), str(workdir),
      allow_config_change=True)
  assert os.listdir(workdir / 'best') == [str(latest + 2)]
  assert final['best_restored_from'] == {'checkpoint': f'best/{latest + 2}',
                                         'step': latest + 2}


@pytest.mark.parametrize('mode, expected', [('max', 4), ('min', 2)])
def test_the_best_step_is_the_earliest_of_the_best_scores(mode, expected):
  from unetjax import checkpoints
  scores = {2: 0.1, 4: 0.7, 6: 0.7, 8: float('nan'), 10: 0.1}
  assert checkpoints.best_step(scores, mode) == expected
  assert checkpoints.best_step({2: float('nan')}, mode) is None


@pytest.mark.parametrize('mode, expected', [
    ('max', [4, 6, 2, 10, 14, 12, 8]), ('min', [2, 10, 4, 6, 14, 12, 8])])
def test_checkpoints_rank_by_score_then_earliest_then_unscored_newest(
    mode, expected):
  """One order for training's best, restore_best's fallback and best_step:
  better first, the earliest of ties, then unscored (None, NaN, inf) newest
  first."""
  from unetjax import checkpoints
  scores = {2: 0.1, 4: 0.7, 6: 0.7, 8: None, 10: 0.1, 12: float('nan'),
            14: float('inf')}
  assert sorted(scores, key=lambda step: checkpoints.rank_key(
      step, scores[step], mode)) == expected
  finite = {s: v for s, v in scores.items() if v is not None}
  assert checkpoints.best_step(finite, mode) == expected[0]
  assert checkpoints.best_step({12: float('inf'), 8: float('-inf')}, mode) is None


@pytest.mark.slow
def test_allow_config_change_reads_the_best_when_no_latest_checkpoint_is_left(
    tfds_dir, trained, tmp_path):
  from unetjax import train
  workdir = copy_of(trained, tmp_path)
  for step in os.listdir(workdir / 'checkpoints'):
    shutil.rmtree(workdir / 'checkpoints' / step)
  before = files_of(workdir)
  config = tiny_config(tfds_dir, **{'model.depth': 3,
                                    'model.dropout_rates': (0.0,) * 4})
  with pytest.raises(WorkdirError, match=r'--allow_config_change: a checkpoint '
                     r'in .* does not fit the new config \(best/\d+: .* there, '
                     r'.* in the new config\); nothing was changed'):
    train.train_and_evaluate(config, str(workdir), allow_config_change=True)
  assert files_of(workdir) == before


@pytest.mark.slow
def test_a_cut_line_inside_metrics_jsonl_is_reported_once_and_skipped(
    tfds_dir, trained, tmp_path, capfd):
  from unetjax import logs, train
  workdir = copy_of(trained, tmp_path)
  path = workdir / logs.METRICS_FILE
  lines = path.read_text().splitlines(keepends=True)
  lines[2] = lines[2][:15] + '\n'  # a record cut short, not the last
  path.write_text(''.join(lines))
  capfd.readouterr()
  records = logs.read_metrics(str(workdir))
  assert len(records) == len(lines) - 1  # all but the cut one
  logs.read_metrics(str(workdir))
  err = capfd.readouterr().err
  assert err.count('\n') == 1 and f'{path} line 3 is not a complete record' in err
  final = train.train_and_evaluate(tiny_config(tfds_dir), str(workdir))
  out, err = capfd.readouterr()
  assert 'Best checkpoint: step' in out and err == ''
  assert final['best_step'] == logs.read_metrics(str(workdir))[-1]['best_step']
  assert path.read_text().splitlines(keepends=True)[2] == lines[2]  # kept


def leaky_restore(self, manager, step, template, variables_only=False):
  """Fails as orbax's asynchronous reads of a cut file can: one read raises,
  its siblings are left pending in a closed event loop, a task's exception
  is never retrieved."""
  import asyncio
  del self, manager, step, template, variables_only

  async def read(index):
    if index == 0:
      raise OSError('a cut file')
    try:
      await asyncio.sleep(3600)
    finally:
      await asyncio.sleep(0)  # needs the loop, which is closed by then

  async def unretrieved():
    raise OSError('read ahead')

  async def restore():
    asyncio.ensure_future(unretrieved())
    await asyncio.sleep(0)
    await asyncio.gather(*(read(i) for i in range(3)))
  loop = asyncio.new_event_loop()
  try:
    loop.run_until_complete(restore())
  finally:
    loop.close()


@pytest.mark.slow
@pytest.mark.filterwarnings('error::pytest.PytestUnraisableExceptionWarning')
@pytest.mark.parametrize('copy_kept', [True, False])
def test_predict_with_a_damaged_best_says_so_in_one_line(
    trained, tmp_path, capfd, caplog, monkeypatch, copy_kept):
  """In process: asyncio's debris would reach pytest's log handler and its
  unraisable hook (both checked here), not stderr."""
  import gc
  from unetjax import checkpoints
  from unetjax import state as state_lib
  workdir, scores = copy_of(trained, tmp_path), trained[1]
  best = best_of(scores)
  if not copy_kept:
    shutil.rmtree(workdir / 'checkpoints' / str(best))
  used = best_of({s: v for s, v in scores.items() if copy_kept or s != best})
  restore = checkpoints.Checkpoints._restore

  def damaged_best(self, manager, step, *args, **kwargs):
    if manager.directory.name == 'best':
      return leaky_restore(self, manager, step, *args, **kwargs)
    return restore(self, manager, step, *args, **kwargs)
  monkeypatch.setattr(checkpoints.Checkpoints, '_restore', damaged_best)
  before = files_of(workdir)
  capfd.readouterr()
  run = state_lib.load_run(str(workdir))
  gc.collect()  # what is left unfinished is collected here at the latest
  err = capfd.readouterr().err
  assert (run.checkpoint, run.step) == (
      ('best', best) if copy_kept else ('next best', used))
  assert err.splitlines() == [err.strip()], err
  assert err.startswith(f'Checkpoint step {best} ({workdir}/best/{best}) is '
                        'damaged: does not load (OSError: a cut file).')
  assert files_of(workdir) == before  # prediction only reads
  assert not [r.getMessage() for r in caplog.records if r.name == 'asyncio']


@pytest.mark.slow
@pytest.mark.parametrize('copy_kept', [True, False])
@pytest.mark.filterwarnings('error::pytest.PytestUnraisableExceptionWarning')
def test_without_scores_the_best_steps_own_copy_comes_first(
    trained, tmp_path, capfd, copy_kept):
  """No metrics.jsonl: the best step (and its score) comes from the
  checkpoints' meta, so its intact copy is used; without it, the newest
  intact one, whose score is unknown."""
  from unetjax import logs
  from unetjax import state as state_lib
  workdir, scores = copy_of(trained, tmp_path), trained[1]
  best = best_of(scores)
  cut_data_files(workdir / 'best' / str(best))
  os.remove(workdir / logs.METRICS_FILE)
  if not copy_kept:
    shutil.rmtree(workdir / 'checkpoints' / str(best))
  capfd.readouterr()
  run = state_lib.load_run(str(workdir))
  err = capfd.readouterr().err
  assert len(err.splitlines()) == 1, err
  if copy_kept:
    assert (run.checkpoint, run.step) == ('best', best)
    assert (f'Using its copy checkpoints/{best} (step {best}, validation dice '
            f'{scores[best]:.4g}), the same state.') in err
  else:
    assert (run.checkpoint, run.step) == ('next best', max(scores))
    assert (f'The best checkpoint (step {best}, validation dice '
            f'{scores[best]:.4g}) is lost; using checkpoints/{max(scores)} '
            f'(step {max(scores)}, no recorded validation score), the newest '
            'intact one; its score is unknown.') in err


@pytest.mark.slow
@pytest.mark.filterwarnings('error::pytest.PytestUnraisableExceptionWarning')
def test_damage_is_reported_in_the_order_it_is_found(trained, tmp_path, capfd):
  """best/ first, then each damaged copy tried instead, then what is used."""
  from unetjax import state as state_lib
  workdir, scores = copy_of(trained, tmp_path), trained[1]
  best = best_of(scores)
  used = best_of({s: v for s, v in scores.items() if s != best})
  cut_data_files(workdir / 'best' / str(best))
  cut_data_files(workdir / 'checkpoints' / str(best))
  capfd.readouterr()
  run = state_lib.load_run(str(workdir))
  lines = capfd.readouterr().err.splitlines()
  assert (run.checkpoint, run.step) == ('next best', used)
  assert len(lines) == 3, lines
  assert lines[0].startswith(f'Checkpoint step {best} ({workdir}/best/{best})')
  assert lines[1].startswith(f'Checkpoint step {best} ({workdir}/checkpoints/'
                             f'{best})')
  assert lines[1].endswith('; using the next best intact checkpoint.')
  assert lines[2].startswith(f'The best checkpoint (step {best}, ')


def images_folder(tmp_path):
  from PIL import Image
  import numpy as np
  folder = tmp_path / 'images'
  folder.mkdir()
  for i in range(3):
    Image.fromarray(np.full((64, 64), 40 * i, np.uint8)).save(folder / f'{i}.png')
  return folder


def full_disk_after(n_files):
  """PIL's Image.save that fills the disk on its file number n_files + 1,
  leaving that file partly written."""
  from PIL import Image
  save, saved = Image.Image.save, []

  def save_until_full(image, path, *args, **kwargs):
    if len(saved) == n_files:
      with open(path, 'wb') as f:
        f.write(b'\x89PNG partial')
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    saved.append(os.path.basename(os.path.dirname(path)) + '/' +
                 os.path.basename(path))
    return save(image, path, *args, **kwargs)
  return save_until_full, saved


def refusing(errno_code, under):
  """os.makedirs that fails with `errno_code` for folders under `under`."""
  makedirs = os.makedirs

  def refuse(path, *args, **kwargs):
    if str(path).startswith(str(under)):
      raise OSError(errno_code, os.strerror(errno_code), str(path))
    return makedirs(path, *args, **kwargs)
  return refuse


@pytest.mark.slow
@pytest.mark.parametrize('how, message', [
    ('full disk', 'the disk is full: free some space'),
    ('read-only', 'the file system is read-only: use a writable folder'),
    ('immutable', 'permission denied: make it writable, or use another folder'),
])
def test_predict_storage_errors_are_one_line_and_list_only_written_files(
    trained, tmp_path, capfd, monkeypatch, how, message):
  import json
  from PIL import Image
  from unetjax import command_line, outputs, predict
  out = tmp_path / 'out'
  images = images_folder(tmp_path)
  if how == 'full disk':
    save, saved = full_disk_after(3)
    monkeypatch.setattr(Image.Image, 'save', save)
  else:
    saved = []
    code = errno.EROFS if how == 'read-only' else errno.EPERM
    monkeypatch.setattr(os, 'makedirs', refusing(code, out))
  with pytest.raises(OSError) as error:
    predict.predict_folder(str(trained[0]), str(images), str(out))
  manifest = out / outputs.MANIFEST
  listed = json.loads(manifest.read_text())['files'] if manifest.exists() else []
  assert listed == sorted(saved)  # no file that was not written
  on_disk = sorted(os.path.relpath(os.path.join(d, f), out)
                   for d, _, files in os.walk(out) for f in files)
  assert on_disk == sorted(saved + ([outputs.MANIFEST] if saved else []))
  monkeypatch.setattr(os, '_exit', sys.exit)
  capfd.readouterr()
  with pytest.raises(SystemExit) as exited:
    command_line.exit_on_storage_error(error.value, str(out))
  err = capfd.readouterr().err
  assert exited.value.code == 1
  assert err.splitlines() == [err.strip()] and err.startswith('error: Cannot use ')
  assert message in err and str(out) in err


@pytest.mark.slow
@pytest.mark.parametrize('where', ['file', 'inside a file'])
def test_predict_out_naming_a_file_is_one_line(trained, tmp_path, where):
  file = tmp_path / 'notes.txt'
  file.write_text('keep me')
  out = file if where == 'file' else file / 'predictions'
  result = subprocess.run(
      [sys.executable, '-m', 'unetjax.predict', f'--workdir={trained[0]}',
       f'--images={images_folder(tmp_path)}', f'--out={out}'],
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 1, result.stderr
  assert 'Traceback' not in result.stderr, result.stderr
  assert result.stderr.strip().splitlines() == [
      f'error: --out={out}: {file} is a file, not a folder; pass the path of '
      'a folder (a new one is created).']
  assert file.read_text() == 'keep me'



# Run as `python -m unetjax.predict`, optionally with the best checkpoint's
# read failing as leaky_restore does: what reaches stderr is what a user sees
# (under pytest, asyncio's log records and unraisable coroutines go to
# pytest's own handlers instead).
PREDICT_WITH_LEAKY_BEST = """
import sys
sys.path.insert(0, 'tests')
from unetjax import checkpoints, predict
import test_workdir
restore = checkpoints.Checkpoints._restore
def damaged_best(self, manager, step, *args, **kwargs):
  if manager.directory.name == 'best':
    return test_workdir.leaky_restore(self, manager, step, *args, **kwargs)
  return restore(self, manager, step, *args, **kwargs)
checkpoints.Checkpoints._restore = damaged_best
predict.main()
"""


@pytest.mark.slow
@pytest.mark.parametrize('damage', ['cut file', 'unfinished reads'])
def test_predict_with_a_damaged_best_prints_one_line_to_stderr(
    trained, tmp_path, damage):
  """A truncated file, and reads that fail leaving others unfinished, in a
  process of their own: one line, no traceback of asyncio's debris."""
  workdir, scores = copy_of(trained, tmp_path), trained[1]
  best = best_of(scores)
  flags = [f'--workdir={workdir}', f'--images={images_folder(tmp_path)}',
           f'--out={tmp_path / "out"}']
  if damage == 'cut file':
    cut_data_files(workdir / 'best' / str(best))
    command = ['-m', 'unetjax.predict']
  else:
    command = ['-c', PREDICT_WITH_LEAKY_BEST]
  result = subprocess.run(
      [sys.executable, *command, *flags],
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr
  assert lines[0].startswith(f'Checkpoint step {best} ({workdir}/best/{best}) '
                             'is damaged: does not load (')
  assert f'Using its copy checkpoints/{best} (step {best}, ' in lines[0]
  assert f'with the best checkpoint (step {best})' in result.stdout


def test_a_run_recorded_before_a_field_was_added_resumes_unchanged():
  """config.json of a run made before config.model.level_filters,
  activation and kernel_init (and the other fields the schema gives an
  `absent_means`) existed equals today's default config, but not a config
  that sets the field."""
  from configs import default  # pylint: disable=import-outside-toplevel
  current = workdir_lib.config_to_dict(default.get_config())
  saved = json.loads(json.dumps(current))
  for field in workdir_lib.ADDED_FIELDS:  # 'section.leaf' or a top-level 'leaf'
    *sections, leaf = field.split('.')
    node = saved
    for section in sections:
      node = node[section]
    del node[leaf]
  assert workdir_lib.config_differences(saved, current) == []
  config = default.get_config()
  config.model.level_filters = (16, 16, 32, 64, 128)
  assert workdir_lib.config_differences(
      saved, workdir_lib.config_to_dict(config)) == [
          "model.level_filters: '<absent>' -> [16, 16, 32, 64, 128]"]
  config = default.get_config()
  config.model.activation = 'leaky_relu'
  config.model.kernel_init = 'kaiming_normal'
  assert workdir_lib.config_differences(
      saved, workdir_lib.config_to_dict(config)) == [
          "model.activation: '<absent>' -> 'leaky_relu'",
          "model.kernel_init: '<absent>' -> 'kaiming_normal'"]
