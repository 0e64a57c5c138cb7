"""Locks between processes: `fcntl.flock` on a file, which the kernel
releases when the process ends, however it ends (kill -9 leaves no stale
lock). The file stays; it records the holder (PID and host) for the message
that others get."""

import fcntl
import json
import os
import socket


class FileLock:
  """An exclusive lock on `path` (created if missing)."""

  def __init__(self, path: str):
    self.path = path
    self._fd: int | None = None

  def acquire(self, blocking: bool = True) -> bool:
    """Takes the lock (waiting for it if `blocking`); False if another process
    holds it. OSError if the file cannot be created."""
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
      os.close(fd)
      return False
    except BaseException:
      os.close(fd)
      raise
    self._fd = fd
    try:  # who holds it, for the others' message; the lock works without
      os.ftruncate(fd, 0)
      os.pwrite(fd, json.dumps({'pid': os.getpid(),
                                'host': socket.gethostname()}).encode(), 0)
    except OSError:
      pass
    return True

  def holder(self) -> str:
    """'process <pid> on <host>' as recorded by the holder."""
    try:
      with open(self.path) as f:
        record = json.load(f)
      return f'process {record["pid"]} on {record["host"]}'
    except (OSError, ValueError, KeyError, TypeError):
      return 'another process'

  def release(self) -> None:
    if self._fd is not None:
      os.close(self._fd)  # closing the last descriptor releases the lock
      self._fd = None

  def __enter__(self) -> 'FileLock':
    self.acquire()
    return self

  def __exit__(self, *exc) -> None:
    self.release()
