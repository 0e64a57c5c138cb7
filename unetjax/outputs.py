"""Output folders that never overwrite inputs.

A command that writes files (predictions, figures) refuses an output folder
that is, or holds, one of its input folders, and writes only files that do
not exist yet or that unetjax wrote there before: those are listed in the
folder's MANIFEST, so re-running a command replaces its own outputs and
nothing else.
"""

import json
import os
from typing import Iterable

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


def _read_manifest(folder: str) -> set[str]:
  path = os.path.join(folder, MANIFEST)
  try:
    with open(path) as f:
      return set(json.load(f)['files'])
  except FileNotFoundError:
    return set()
  except (OSError, ValueError, KeyError, TypeError):
    return set()  # unreadable: trust no existing file


def claim(folder: str, relative_paths: Iterable[str], out_flag: str = 'out') -> None:
  """Records `relative_paths` (to be written in `folder`) in its manifest,
  after checking that none of them is a file unetjax did not write there.
  Raises UserInputError, before anything is written, otherwise."""
  relative_paths = sorted(set(relative_paths))
  written = _read_manifest(folder)
  foreign = [p for p in relative_paths
             if os.path.lexists(os.path.join(folder, p)) and p not in written]
  if foreign:
    more = f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''
    raise UserInputError(
        f'{os.path.join(folder, foreign[0])}{more} already exists and unetjax '
        'did not write it; it never replaces files it did not write. Choose '
        f'another --{out_flag}, or move those files away.')
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, MANIFEST)
  with open(path + '.tmp', 'w') as f:
    json.dump({'files': sorted(written | set(relative_paths))}, f, indent=1)
  os.replace(path + '.tmp', path)
