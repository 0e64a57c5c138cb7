"""Errors caused by what the user passed in (config, data, image sizes) or
by the storage (a full disk, a read-only folder).

`unetjax.main` prints these as one message without a traceback; anything
else is a bug and keeps its traceback.
"""

import errno


class UserInputError(ValueError):
  """Something the user controls is wrong; the message says how to fix it."""


class ConfigError(UserInputError):
  """A config field is missing, has the wrong type or an unsupported value."""


class DataError(UserInputError):
  """A dataset is missing, malformed or does not match the config."""


class InputShapeError(UserInputError):
  """Images have a shape the model cannot take."""


class WorkdirError(UserInputError):
  """The workdir holds a run that the current command must not overwrite."""


class DivergenceError(UserInputError):
  """The training loss became NaN or infinite (usually a too-high learning rate)."""


class WorkdirInUseError(WorkdirError):
  """Another process holds the workdir's lock."""


class Stopped(Exception):
  """Work stopped early on request (SIGTERM, Ctrl-C) after checkpointing; the
  message says what was saved and how to go on."""

  def __init__(self, message: str, signal_name: str | None):
    super().__init__(message)
    self.signal_name = signal_name


STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES,
                  errno.EPERM)


def storage_error(exc: BaseException) -> OSError | None:
  """The full-disk, read-only or permission error behind `exc` (its causes
  included, as libraries wrap it), or None."""
  seen = set()
  while exc is not None and id(exc) not in seen:
    seen.add(id(exc))
    if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
      return exc
    if 'No space left on device' in str(exc):  # TensorStore's errors
      return OSError(errno.ENOSPC, 'No space left on device')
    exc = exc.__cause__ or exc.__context__
  return None


def storage_message(error: OSError, path: str | None = None) -> str:
  """One line for a failed file operation: where, and the fix."""
  path = path or error.filename or 'a file'
  fixes = {
      errno.ENOSPC: 'the disk is full: free some space (or use a folder on '
                    'another disk), then re-run the same command',
      errno.EDQUOT: 'the disk quota is exhausted: free some space, then re-run '
                    'the same command',
      errno.EROFS: 'the file system is read-only: use a writable folder',
      errno.EACCES: 'permission denied: make it writable, or use another folder',
      errno.EPERM: 'permission denied: make it writable, or use another folder',
      errno.ENOTDIR: 'a part of the path is a file, not a folder: pass a '
                     'folder path',
      errno.EISDIR: 'it is a folder where a file was expected',
      errno.ENOENT: 'no such file or folder',
  }
  fix = fixes.get(error.errno, error.strerror or str(error))
  return f'Cannot use {path}: {fix}.'
