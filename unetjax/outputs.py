"""Output folders that never overwrite inputs.

A command that writes files (predictions, figures) refuses an output folder
that is, or holds, one of its input folders, and writes only files that do
not exist yet or that unetjax wrote there before: those are listed in the
folder's MANIFEST (as pending before each is written, as written after), so
re-running a command replaces its own outputs and nothing else, even after
a failure between writing a file and listing it.
"""

import contextlib
import json
import os
from typing import Callable, Iterable

from unetjax.errors import UserInputError

MANIFEST = '.unetjax-outputs.json'


def _within(path: str, folder: str) -> bool:
  return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_separate(out_flag: str, out: str, inputs: dict[str, str | None]) -> None:
  """UserInputError if the output folder `out` is, or holds, one of the
  `inputs` ({flag: folder}), whose files it could overwrite."""
  out_real = os.path.realpath(out)
  for flag, folder in inputs.items():
    if folder is not None and _within(os.path.realpath(folder), out_real):
      where = 'is' if os.path.realpath(folder) == out_real else 'holds'
      raise UserInputError(
          f'--{out_flag}={out} {where} the --{flag} folder {folder}; writing '
          f'there could replace those files. Pass an --{out_flag} folder '
          'outside the input folders.')


def _read_manifest(folder: str) -> tuple[set[str], set[str]]:
  """(files written, files pending: claimed, maybe written in part) as the
  folder's manifest lists them."""
  path = os.path.join(folder, MANIFEST)
  try:
    with open(path) as f:
      manifest = json.load(f)
    return set(manifest['files']), set(manifest.get('pending', []))
  except FileNotFoundError:
    return set(), set()
  except (OSError, ValueError, KeyError, TypeError, AttributeError):
    return set(), set()  # unreadable: trust no existing file


class Claim:
  """The files a command may write into a folder (see `claim`). The
  manifest lists each as pending before it is written and as written once it
  is (`save`): it never lists as written a file that a failure (a full disk)
  left unwritten, and a file unetjax wrote is its own even if the manifest's
  update after it failed or was cut short."""

  def __init__(self, folder: str, written: set[str], pending: set[str]):
    self.folder, self._written, self._pending = folder, written, pending

  def save(self, relative_path: str, write: Callable[[str], None]) -> None:
    """Writes the file with `write(path)`, listed as pending meanwhile. A
    file that the failure of `write` leaves partly written is removed, unless
    an earlier run wrote it (then the next run replaces it)."""
    path = os.path.join(self.folder, relative_path)
    new = relative_path not in self._written | self._pending
    if new:
      self._pending.add(relative_path)
      self._write_manifest()
    try:
      write(path)
    except BaseException:
      if new and os.path.lexists(path):
        with contextlib.suppress(OSError):  # the original error matters
          os.remove(path)
      raise
    if relative_path in self._pending:
      self._pending.remove(relative_path)
      self._written.add(relative_path)
      self._write_manifest()

  def _write_manifest(self) -> None:
    path = os.path.join(self.folder, MANIFEST)
    with open(path + '.tmp', 'w') as f:
      json.dump({'files': sorted(self._written),
                 'pending': sorted(self._pending)}, f, indent=1)
    os.replace(path + '.tmp', path)


def check_folder(out_flag: str, out: str) -> None:
  """UserInputError if the output folder `out` is a file, or lies in one."""
  path = os.path.abspath(out)
  while not os.path.exists(path) and os.path.dirname(path) != path:
    path = os.path.dirname(path)
  if not os.path.isdir(path):
    raise UserInputError(
        f'--{out_flag}={out}: {path} is a file, not a folder; pass the path '
        'of a folder (a new one is created).')


def claim(folder: str, relative_paths: Iterable[str], out_flag: str = 'out'
          ) -> Claim:
  """Checks that none of `relative_paths` (to be written in `folder`) is a
  file unetjax did not write there, and creates the folder: returns the
  Claim that writes them. Raises UserInputError, before anything is
  written, otherwise."""
  check_folder(out_flag, folder)
  relative_paths = sorted(set(relative_paths))
  written, pending = _read_manifest(folder)
  foreign = [p for p in relative_paths if os.path.lexists(os.path.join(folder, p))
             and p not in written | pending]
  if foreign:
    more = f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''
    raise UserInputError(
        f'{os.path.join(folder, foreign[0])}{more} already exists and unetjax '
        'did not write it; it never replaces files it did not write. Choose '
        f'another --{out_flag}, or move those files away.')
  os.makedirs(folder, exist_ok=True)
  return Claim(folder, written, pending)
