"""The workdir: one writer at a time (its lock), storage errors as one line."""

import errno
import os
import socket

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
