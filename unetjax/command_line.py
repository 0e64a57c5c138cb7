"""The shell of every command line (unetjax.main, predict, ablation, plan,
augment_grid, experiments.isbi_challenge): its start, its flag parsing, and
how it ends. A mistake in the flags (a misspelt --config.<field>, a missing
config file, a config file that fails to load), in the input, or in the
storage is one `error:` line, not a traceback; a stop request or Ctrl-C one
line saying how to go on. A command is its `run()` and its flags:

  def run():
    ...  # raises UserInputError for what the user can fix

  if __name__ == '__main__':
    command_line.main(run, resume='Re-run the same command to resume.')

A command (`python -m unetjax.<name>`) imports this module first: a Ctrl-C
from then until `start` (imports take seconds; nothing is written yet) ends
it at once with one line, not a traceback, nor a KeyboardInterrupt that a
library's garbage-collection callback swallows and prints.
"""

import os
import signal
import sys


def _exit_interrupted(signum, frame) -> None:
  del signum, frame
  sys.stderr.write('Interrupted while starting; nothing was written.\n')
  sys.stderr.flush()
  os._exit(128 + signal.SIGINT)  # the shell's status for Ctrl-C


def _running_a_command() -> bool:
  """Whether this process is `python -m unetjax...` (not a test or a notebook
  importing the module)."""
  spec = getattr(sys.modules.get('__main__'), '__spec__', None)
  return spec is not None and spec.name.startswith('unetjax.')


if _running_a_command():
  signal.signal(signal.SIGINT, _exit_interrupted)

# pylint: disable=wrong-import-position (the handler first, then the slow imports)
import difflib  # noqa: E402
import importlib.util  # noqa: E402
from typing import Any, Callable, Sequence  # noqa: E402

import ml_collections  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from unetjax import logs  # noqa: E402
from unetjax import parallel  # noqa: E402
from unetjax.errors import Stopped, UserInputError  # noqa: E402
from unetjax.errors import storage_error, storage_message  # noqa: E402


def define_cpu_devices() -> None:
  """The --cpu_devices flag, for commands that compute on the devices."""
  flags.DEFINE_integer('cpu_devices', None, parallel.CPU_DEVICES_HELP,
                       lower_bound=1)


def define_seeds_layout() -> None:
  """The --seeds_layout flag, for commands that train seeds at once."""
  flags.DEFINE_string(
      'seeds_layout', 'auto', 'How seeds trained at once sit on the devices, '
      f'one of {", ".join(parallel.SEEDS_LAYOUTS)} (unetjax/parallel.py says '
      'what each is; auto: vmap on GPU/TPU, unrolled on CPU).')


def main(run: Callable[[], None], *, resume: str = '',
         storage_path: Callable[[], str | None] = lambda: None) -> None:
  """Parses the flags and runs the command `run` in the shell (`shell`)."""
  app.run(lambda argv: shell(run, argv, resume=resume,
                             storage_path=storage_path()),
          flags_parser=parse_flags)


def shell(run: Callable[[], None], argv: Sequence[str], *, resume: str = '',
          storage_path: str | None = None) -> None:
  """`start`, then `run()`, ending in one line and the exit status for what
  the user can fix or do:
  - UserInputError: `error: <message>`, status 1;
  - a stop request (Stopped, raised after a checkpoint): its message; Ctrl-C:
    'Interrupted.' and `resume`; both with status 128 + the signal, the
    shell's code for death by that signal;
  - a full disk or unwritable folder: `error:` naming the file (else
    `storage_path`), status 1.
  Anything else is a bug and keeps its traceback."""
  start(argv, flags.FLAGS['cpu_devices'].value
        if 'cpu_devices' in flags.FLAGS else None)
  try:
    run()
  except UserInputError as e:
    _exit(str(e))
  except (Stopped, KeyboardInterrupt) as e:
    message = str(e) if isinstance(e, Stopped) else f'Interrupted. {resume}'
    print(message.strip(), file=sys.stderr)
    name = getattr(e, 'signal_name', None) or 'SIGINT'
    sys.exit(128 + getattr(signal, name, signal.SIGINT))
  except Exception as e:  # noqa: BLE001 - storage errors as one line
    exit_on_storage_error(e, storage_path or '')
    raise


def start(argv: Sequence[str], cpu_devices: int | None = None) -> None:
  """What every command does first: lets Ctrl-C raise KeyboardInterrupt
  again (for the command to handle), refuses positional arguments, logs at
  WARNING unless --verbosity is given (TFDS and orbax log every file and
  step at INFO), and splits the CPU into `cpu_devices` devices (before
  anything uses a device)."""
  if signal.getsignal(signal.SIGINT) is _exit_interrupted:
    signal.signal(signal.SIGINT, signal.default_int_handler)
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
    logs.quiet_orbax_errors()
  parallel.use_cpu_devices(cpu_devices)


def exit_on_storage_error(error: BaseException, path: str) -> None:
  """For a full disk, read-only or unwritable folder behind `error`: prints one
  `error:` line naming the file (else `path`) and the fix, and ends the
  process with status 1; returns for any other error, to be raised."""
  found = storage_error(error)
  if found is None:
    return
  print(f'error: {storage_message(found, found.filename or path)}',
        file=sys.stderr)
  # Not sys.exit: interpreter shutdown wakes the failed writes' callbacks
  # into closed event loops, each printing a traceback.
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(1)


def parse_flags(argv: Sequence[str]) -> list[str]:
  """absl's flag parsing; on failure prints one `error:` line and exits 1."""
  try:
    remaining = flags.FLAGS(list(argv))
  except Exception as e:  # the config file runs here: its errors are the user's
    _exit(explain(argv, e))
  config = flags.FLAGS['config'].value if 'config' in flags.FLAGS else None
  if config is not None and not isinstance(config, ml_collections.ConfigDict):
    # ml_collections defers some errors (a missing file) to the first use.
    problem = load_config(_flag_value(argv, 'config') or '')
    _exit(problem if isinstance(problem, str) else
          f'--config: {type(config).__name__} is not a config')
  return remaining


def _exit(message: str) -> None:
  sys.stderr.write(f'error: {message}\n')
  sys.exit(1)


def explain(argv: Sequence[str], error: Exception) -> str:
  """One line saying which flag is wrong and how, for `error` raised while
  parsing `argv`."""
  path = _flag_value(argv, 'config')
  if path is not None:
    config = load_config(path)
    if isinstance(config, str):
      return config
    for name in _overrides(argv):
      problem = unknown_field(config, name)
      if problem:
        return problem
  return ' '.join(str(error).split())


def load_config(path: str) -> ml_collections.ConfigDict | str:
  """The ConfigDict of the config file `path` (an ml_collections
  `path:argument` passes the argument to get_config), or what is wrong."""
  file, _, argument = path.partition(':')
  if not os.path.isfile(file):
    return f'--config={path}: no such file (e.g. --config=configs/default.py).'
  try:
    module = import_file(file, 'unetjax_user_config')
    get_config = getattr(module, 'get_config', None)
    if get_config is None:
      return (f'--config={path}: the file defines no get_config() function '
              'returning the config (see configs/default.py).')
    config = get_config(argument) if argument else get_config()
  except Exception as e:  # noqa: BLE001 (the user's file, reported in one line)
    where = (f' (line {e.lineno})' if isinstance(e, SyntaxError) and e.lineno
             else '')
    return (f'--config={path}: loading it failed{where}: '
            f'{type(e).__name__}: {" ".join(str(e).split())}')
  if not isinstance(config, ml_collections.ConfigDict):
    return (f'--config={path}: get_config() returned a {type(config).__name__}, '
            'not an ml_collections.ConfigDict (see configs/default.py).')
  return config


def import_file(path: str, module_name: str):
  """The Python file `path` run as the module `module_name` (config and
  sweep files, which need not be on the import path)."""
  spec = importlib.util.spec_from_file_location(module_name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def unknown_field(config: ml_collections.ConfigDict, name: str) -> str | None:
  """What is wrong with the override --config.`name`, or None if `config`
  has that field; suggests the closest field name."""
  node: Any = config
  for i, key in enumerate(name.split('.')):
    if isinstance(node, ml_collections.ConfigDict) and key in node:
      node = node[key]
      continue
    if not isinstance(node, ml_collections.ConfigDict):
      parent = '.'.join(name.split('.')[:i])
      return (f'--config.{name}: config.{parent} is a value, not a section '
              'with fields.')
    section = '.'.join(name.split('.')[:i])
    close = [f'{section}.{k}' if section else k for k in
             difflib.get_close_matches(key, list(node.keys()), n=1, cutoff=0.75)]
    close = close or difflib.get_close_matches(name, _paths(config), n=1,
                                               cutoff=0.8)
    if close:
      return f'--config.{name}: no such config field; did you mean --config.{close[0]}?'

    where = f'config.{section}' if section else 'the config'
    return (f'--config.{name}: no such config field; {where} has: '
            f'{", ".join(sorted(node.keys()))}.')
  return None


def _paths(config: ml_collections.ConfigDict, prefix: str = '') -> list[str]:
  paths = []
  for key, value in config.items():
    paths.append(prefix + key)
    if isinstance(value, ml_collections.ConfigDict):
      paths += _paths(value, f'{prefix}{key}.')
  return paths


def _flag_value(argv: Sequence[str], name: str) -> str | None:
  for i, arg in enumerate(argv):
    for dashes in ('--', '-'):
      if arg.startswith(f'{dashes}{name}='):
        return arg.split('=', 1)[1]
      if arg == f'{dashes}{name}' and i + 1 < len(argv):
        return argv[i + 1]
  return None


def _overrides(argv: Sequence[str]) -> list[str]:
  """The field names of the --config.<field>[=value] arguments."""
  return [arg.lstrip('-').split('=', 1)[0][len('config.'):] for arg in argv
          if arg.lstrip('-').startswith('config.')]
