"""The documentation's commands and links: every command in README.md and
docs/*.md that runs one of unetjax's programs (`python -m unetjax...`,
`python -m benchmarks...`, `python -m experiments...`,
`python experiments/...py`, `bash ...sh`) uses
flags that program defines, config files that exist and config fields that
the config has; every relative link points at a file and heading that
exist."""

import concurrent.futures
import dataclasses
import difflib
import functools
import glob
import os
import re
import shlex
import subprocess
import sys

import pytest
from absl import flags
from ml_collections import config_flags

# ml_collections loads config files with importlib's load_module().
pytestmark = pytest.mark.filterwarnings(
    'ignore:the load_module\\(\\) method is deprecated:DeprecationWarning')

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ['README.md'] + sorted(
    os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, 'docs', '*.md')))
NOT_SHELL = {'python', 'py', 'pycon', 'json', 'toml', 'yaml'}  # fenced languages
SEPARATORS = {'&&', '||', ';', '|', '&', '(', ')', ';;'}
REDIRECTS = {'>', '>>', '<', '>&', '&>', '2>'}
PLACEHOLDER = re.compile(r'\u2039[^\u203a]*\u203a|\$|\.\.\.')  # configs/<model>.py, $OUT, ...


@dataclasses.dataclass(frozen=True)
class Command:
  """One invocation of a program, as quoted at doc:line."""
  doc: str
  line: int
  program: str  # a module ('unetjax.main') or a file ('experiments/study_long.sh')
  args: tuple[str, ...]

  def __str__(self) -> str:
    return f'{self.doc}:{self.line}'


@dataclasses.dataclass(frozen=True)
class Flags:
  """The flags a program accepts; `negatable` are absl booleans (--noX)."""
  names: frozenset[str]
  negatable: frozenset[str] = frozenset()


# Where commands are quoted.

def _fences(text: str):
  """(first line, language, lines) of each fenced code block; line numbers
  from 1."""
  lines, i = text.split('\n'), 0
  while i < len(lines):
    m = re.match(r'^\s*(`{3,}|~{3,})\s*([\w+-]*)', lines[i])
    if not m:
      i += 1
      continue
    fence, start, body = m.group(1), i + 2, []
    i += 1
    while i < len(lines) and not lines[i].strip().startswith(fence):
      body.append(lines[i])
      i += 1
    yield start, m.group(2).lower(), body
    i += 1


def _without_fences(text: str) -> str:
  """`text` with the fenced blocks blanked (line numbers kept)."""
  lines = text.split('\n')
  for start, _, body in _fences(text):
    for j in range(start - 2, start + len(body)):
      lines[j] = ''
  return '\n'.join(lines)


def shell_lines(text: str):
  """(line, shell text) of each logical line of the fenced shell blocks (`\\`
  continuations joined, a `$ ` prompt dropped) and of each inline code span."""
  for start, language, body in _fences(text):
    if language in NOT_SHELL:
      continue
    pending, first = '', start
    for offset, line in enumerate(body):
      if not pending:
        first = start + offset
      if line.rstrip().endswith('\\'):
        pending += line.rstrip()[:-1] + ' '
        continue
      logical = (pending + line).strip()
      pending = ''
      yield first, logical[2:] if logical.startswith('$ ') else logical
  prose = _without_fences(text)
  for m in re.finditer(r'(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)', prose, re.S):
    yield prose.count('\n', 0, m.start()) + 1, ' '.join(m.group(2).split())


def _tokens(shell: str) -> list[str]:
  # <name> is a placeholder, not a redirection: kept as \u2039name\u203a.
  shell = re.sub(r'<([\w.-]+)>', '\u2039\\1\u203a', shell)
  lexer = shlex.shlex(shell, posix=True, punctuation_chars=True)
  lexer.whitespace_split = True
  tokens = []
  for token in lexer:
    if re.search(r'\s', token) and re.search(r'\b(python3?|bash)\s', token):
      tokens += [';'] + _tokens(token) + [';']  # a quoted command: sh -c "..."
    else:
      tokens.append(token)
  return tokens


def commands_in(shell: str, doc: str = '<text>', line: int = 0) -> list[Command]:
  """The program invocations in one line of shell text."""
  if not re.search(r'\b(python3?|bash|sh)\s', shell):
    return []
  tokens, segments, segment = _tokens(shell), [], []
  skip = False
  for token in tokens:
    if skip:
      skip = False
    elif token in SEPARATORS:
      segments.append(segment)
      segment = []
    elif token in REDIRECTS:
      skip = True  # and the file name after it
    else:
      segment.append(token)
  segments.append(segment)
  found = []
  for segment in segments:
    for i, token in enumerate(segment):
      if os.path.basename(token) in ('python', 'python3') and i + 1 < len(segment):
        rest = segment[i + 1:]
        if (rest[0] == '-m' and len(rest) > 1
            and rest[1].split('.')[0] in ('unetjax', 'benchmarks', 'experiments')):
          program, args = rest[1], rest[2:]
        elif rest[0].endswith('.py') and not rest[0].startswith('-'):
          program, args = rest[0], rest[1:]
        else:
          break  # python -m pytest, python -m venv, python -c ...
      elif token in ('bash', 'sh') and i + 1 < len(segment) and segment[i + 1].endswith('.sh'):
        program, args = segment[i + 1], segment[i + 2:]
      else:
        continue
      # [--flag] marks an optional flag in a synopsis.
      args = tuple(a[1:-1] if a.startswith('[') and a.endswith(']') else a
                   for a in args)
      found.append(Command(doc, line, program, args))
      break
  return found


def doc_commands() -> tuple[list[Command], list[str]]:
  """Every program invocation quoted in README.md and docs/*.md, and the
  lines that do not parse as shell."""
  found, unparsable = [], []
  for doc in DOCS:
    with open(os.path.join(REPO, doc), encoding='utf-8') as f:
      text = f.read()
    for line, shell in shell_lines(text):
      try:
        found += commands_in(shell, doc, line)
      except ValueError as e:  # shlex: an unclosed quote
        unparsable.append(f'{doc}:{line}: {e}: {shell}')
  return found, unparsable


# What the programs accept.

def program_file(program: str) -> str:
  """The file that `program` (a module or a path) runs."""
  if program.endswith(('.py', '.sh')):
    return os.path.join(REPO, program)
  path = os.path.join(REPO, *program.split('.'))
  return path + '.py' if os.path.isfile(path + '.py') else os.path.join(path, '__main__.py')


def read_flags(program: str) -> Flags | str:
  """The flags of `program` from its --helpfull (absl) or --help (argparse)
  text, or what went wrong."""
  path = program_file(program)
  if not os.path.isfile(path):
    return f'{program}: no such program ({os.path.relpath(path, REPO)} does not exist)'
  if program.endswith('.sh'):
    return Flags(frozenset())  # shell scripts take positional arguments
  with open(path, encoding='utf-8') as f:
    if not re.search(r'app\.run|parse_args|argparse|absl import flags', f.read()):
      return Flags(frozenset())  # reads sys.argv itself (benchmarks.summarize)
  command = ([sys.executable, program] if program.endswith('.py')
             else [sys.executable, '-m', program])
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [REPO] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
  # absl exits at --helpfull; argparse ignores it and exits at --help.
  result = subprocess.run(command + ['--helpfull', '--help'], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
  text = result.stdout + result.stderr
  if '--[no]helpfull' in text:
    text = text.rpartition('\nflags:\n')[2]
    found = re.findall(r'^\s+(?:-\S+,)?--(\[no\])?([\w.-]+):', text, re.M)
    return Flags(frozenset(name for _, name in found),
                 frozenset(name for no, name in found if no))
  if 'usage:' in text and re.search(r'\n(options|optional arguments):\n', text):
    options = re.split(r'\n(?:options|optional arguments):\n', text, maxsplit=1)[1]
    names = set()
    for line in options.split('\n'):
      if re.match(r'^\s{1,4}-', line):
        names.update(re.findall(r'--([\w-]+)', re.split(r'\s{2,}', line.strip())[0]))
    return Flags(frozenset(names))
  return (f'{program}: could not read its flags from `{" ".join(command[1:])} '
          f'--helpfull --help` (exit {result.returncode}): {text[-500:]}')


_FLAGS: dict[str, Flags | str] = {}


def flags_of(program: str) -> Flags | str:
  if program not in _FLAGS:
    _FLAGS[program] = read_flags(program)
  return _FLAGS[program]


# The checks.

def _value(args: tuple[str, ...], i: int) -> str | None:
  """The value of the flag args[i]: after its `=`, or the next argument."""
  if '=' in args[i]:
    return args[i].split('=', 1)[1]
  if i + 1 < len(args) and not args[i + 1].startswith('-'):
    return args[i + 1]
  return None


def check_config(where: str, path: str, overrides: list[tuple[str, str | None]]) -> list[str]:
  """Problems with --config=`path` and the --config.<field>=value `overrides`."""
  if PLACEHOLDER.search(path):
    file_pattern = PLACEHOLDER.sub('*', path.partition(':')[0])
    if not glob.glob(os.path.join(REPO, file_pattern)):
      return [f'{where}: --config={path}: no file matches {file_pattern}']
    return []  # a placeholder for any config: its fields are not checked
  file = path.partition(':')[0]
  if not os.path.isfile(os.path.join(REPO, file)):
    return [f'{where}: --config={path}: no such file']
  config = _load_config(path)
  if isinstance(config, str):
    return [f'{where}: --config={path}: {config}']
  problems, parseable = [], []
  for name, value in overrides:
    node, walked = config, []
    for key in name.split('.'):
      if not hasattr(node, 'keys') or key not in node:
        section = 'config.' + '.'.join(walked) if walked else 'the config'
        fields = ', '.join(sorted(node.keys())) if hasattr(node, 'keys') else 'no fields'
        problems.append(f'{where}: --config.{name}: no such field in {file} '
                        f'({section} has {fields})')
        break
      node, walked = node[key], walked + [key]
    else:
      if value is not None and not PLACEHOLDER.search(value):
        parseable.append(f'--config.{name}={value}')
  if parseable and not problems:
    # The overrides' values, parsed as ml_collections does for the programs.
    argv = ['doc', f'--config={os.path.join(REPO, path)}'] + parseable
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file('config', None, flag_values=flag_values,
                                    sys_argv=argv)
    try:
      flag_values(argv)
      flag_values['config'].value  # noqa: B018 (loads and overrides)
    except Exception as e:  # noqa: BLE001 (reported with the doc's line)
      problems.append(f'{where}: {" ".join(parseable)}: {" ".join(str(e).split())}')
  return problems


@functools.lru_cache(maxsize=None)
def _load_config(path: str):
  """get_config() of the config file `path` (`path:argument` passes the
  argument), or what went wrong."""
  file, _, argument = path.partition(':')
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file('config', None, flag_values=flag_values,
                                  sys_argv=['doc'])
  try:
    flag_values(['doc', f'--config={os.path.join(REPO, file)}'
                 + (f':{argument}' if argument else '')])
    return flag_values['config'].value
  except Exception as e:  # noqa: BLE001
    return f'loading it failed: {type(e).__name__}: {" ".join(str(e).split())}'


def check(command: Command, flags_of=flags_of) -> list[str]:
  """What is wrong with `command`: unknown flags, missing files, config
  fields the config lacks; one line each, naming the doc and line."""
  return [p.replace('\u2039', '<').replace('\u203a', '>')
          for p in _problems(command, flags_of)]


def _problems(command: Command, flags_of) -> list[str]:
  where = f'{command}: {command.program}'
  accepted = flags_of(command.program)
  if isinstance(accepted, str):
    return [f'{command}: {accepted}']
  problems, overrides, config = [], [], None
  for i, arg in enumerate(command.args):
    if (arg.endswith(('.py', '.sh', '.ipynb')) and not PLACEHOLDER.search(arg)
        and not arg.startswith(('--config=',  # checked with its overrides
                                '--out='))):  # written by the command
      path = arg.split('=', 1)[-1].partition(':')[0]
      if not os.path.exists(os.path.join(REPO, path)):
        problems.append(f'{where}: {arg}: no such file {path}')
    if not arg.startswith('-') or arg in ('-', '--'):
      continue
    name = arg.lstrip('-').split('=', 1)[0]
    if name.startswith('config.') and 'config' in accepted.names:
      overrides.append((name[len('config.'):], _value(command.args, i)))
    elif name == 'config' and 'config' in accepted.names:
      config = _value(command.args, i)
    elif name not in accepted.names and not (
        name.startswith('no') and name[2:] in accepted.negatable):
      close = sorted(accepted.names, key=lambda n: -_similarity(n, name))[:1]
      hint = f'; did you mean --{close[0]}?' if close and _similarity(close[0], name) > 0.7 else ''
      problems.append(f'{where}: --{name}: no such flag{hint} (flags: '
                      f'{", ".join("--" + n for n in sorted(accepted.names)) or "none"})')
  if overrides and config is None:
    problems.append(f'{where}: --config.{overrides[0][0]} without --config=FILE')
  if config is not None:
    problems += check_config(where, config, overrides)
  return problems


def _similarity(a: str, b: str) -> float:
  return difflib.SequenceMatcher(None, a, b).ratio()


COMMANDS, UNPARSABLE = doc_commands()


@pytest.fixture(scope='module')
def programs():
  """Reads every quoted program's flags once, several programs at a time."""
  todo = sorted({c.program for c in COMMANDS} - set(_FLAGS))
  with concurrent.futures.ThreadPoolExecutor(min(8, max(2, os.cpu_count() or 1))) as pool:
    _FLAGS.update(zip(todo, pool.map(read_flags, todo)))
  return flags_of


@pytest.mark.parametrize('command', COMMANDS, ids=str)
def test_doc_command(command, programs):
  problems = check(command, programs)
  assert not problems, '\n'.join(problems)


def test_commands_parse():
  assert not UNPARSABLE, '\n'.join(UNPARSABLE)


def test_docs_quote_the_programs():
  """The search finds the commands the docs are about (so an empty search
  cannot pass), and every docs page opens with a command."""
  quoted = {c.program for c in COMMANDS}
  for program in ('unetjax.main', 'unetjax.predict', 'unetjax.ablation',
                  'unetjax.augment_grid', 'unetjax.models'):
    assert program in quoted, f'no doc quotes python -m {program}'
  assert any(p.startswith('benchmarks.') for p in quoted)
  assert any(p.startswith('experiments/') for p in quoted)
  for doc in DOCS[1:]:
    with open(os.path.join(REPO, doc), encoding='utf-8') as f:
      first = next(_fences(f.read()), None)
    assert first and first[1] in ('bash', 'sh', 'shell'), f'{doc}: no opening command'


def test_check_finds_mistakes(programs):
  """A made-up flag, config field, config file or program is reported with
  the doc's name and line."""
  bad = commands_in(
      'python -m unetjax.main --config=configs/default.py --workdir=runs/x '
      '--no_such_flag=1 --config.batch_sise=32 --config.batch_size=many', 'doc.md', 7)
  problems = '\n'.join(check(bad[0], programs))
  assert 'doc.md:7: unetjax.main: --no_such_flag: no such flag' in problems
  assert '--config.batch_sise: no such field in configs/default.py' in problems
  good = commands_in('python -m unetjax.main --config=configs/default.py '
                     '--config.batch_size=many', 'doc.md', 8)
  assert 'invalid literal' in '\n'.join(check(good[0], programs))
  missing = commands_in('python -m unetjax.main --config=configs/no_such.py '
                        '--workdir=x', 'doc.md', 9)
  assert check(missing[0], programs) == [
      'doc.md:9: unetjax.main: --config=configs/no_such.py: no such file']
  assert 'no such program' in check(
      commands_in('python -m benchmarks.no_such', 'doc.md', 1)[0], programs)[0]
  assert check(commands_in(
      'python -m unetjax.main --config=configs/default.py --workdir=x '
      '--config.model.depth=3 --cpu_devices=2 --noallow_config_change')[0], programs) == []
  assert check(commands_in(  # an output need not exist yet
      'python -m unetjax.plan --config=configs/folder.py --budget=10m '
      '--out=runs/not_yet/plan.py')[0], programs) == []


def test_command_extraction():
  """Continuations, comments, prompts, optional [--flags], environment
  prefixes and quoted sub-commands."""
  text = '\n'.join([
      'Run `UNETJAX_X=1 python -m unetjax.ablation',
      '--sweep=experiments/smoke.py --out=o` or:',
      '```bash',
      '$ python -m unetjax.predict --workdir=w \\',
      '  [--tta] --out=o   # a comment --bad',
      'pip install -e . && python -m unetjax.main --config=c.py > log.txt',
      'ssh h --command "cd x && python -m benchmarks.inference --torch"',
      'python -m pytest -q; bash experiments/study_cpu.sh runs/s',
      '```',
      '```python',
      'python -m unetjax.main --not_shell',
      '```',
  ])
  found = [c for line, shell in shell_lines(text) for c in commands_in(shell, 'd', line)]
  assert [(c.line, c.program, c.args) for c in found] == [
      (4, 'unetjax.predict', ('--workdir=w', '--tta', '--out=o')),
      (6, 'unetjax.main', ('--config=c.py',)),
      (7, 'benchmarks.inference', ('--torch',)),
      (8, 'experiments/study_cpu.sh', ('runs/s',)),
      (1, 'unetjax.ablation', ('--sweep=experiments/smoke.py', '--out=o')),
  ]


# Links.

def _slug(heading: str) -> str:
  """GitHub's anchor of a heading."""
  text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
  return text.replace(' ', '-')


def _anchors(path: str) -> set[str]:
  with open(path, encoding='utf-8') as f:
    prose = _without_fences(f.read())
  anchors, seen = set(), {}
  for heading in re.findall(r'^#{1,6}\s+(.+?)\s*#*$', prose, re.M):
    slug = _slug(heading)
    anchors.add(slug if slug not in seen else f'{slug}-{seen[slug]}')
    seen[slug] = seen.get(slug, 0) + 1
  return anchors


def link_problems(doc: str) -> list[str]:
  """Relative links of `doc` whose file or heading does not exist."""
  with open(os.path.join(REPO, doc), encoding='utf-8') as f:
    prose = _without_fences(f.read())
  prose = re.sub(r'(`+)(?!`).+?\1', lambda m: re.sub(r'[^\n]', ' ', m.group()), prose,
                 flags=re.S)
  problems = []
  for m in re.finditer(r'\]\(([^)\s]+)\)', prose):
    target = m.group(1)
    if re.match(r'^[a-z]+:', target):
      continue  # https:, mailto:
    line = prose.count('\n', 0, m.start()) + 1
    path, _, anchor = target.partition('#')
    full = os.path.normpath(os.path.join(REPO, os.path.dirname(doc), path) if path
                            else os.path.join(REPO, doc))
    if not os.path.exists(full):
      problems.append(f'{doc}:{line}: {target}: no such file {os.path.relpath(full, REPO)}')
    elif anchor and full.endswith('.md') and anchor not in _anchors(full):
      problems.append(f'{doc}:{line}: {target}: no heading #{anchor} in '
                      f'{os.path.relpath(full, REPO)}')
  return problems


@pytest.mark.parametrize('doc', DOCS)
def test_links(doc):
  problems = link_problems(doc)
  assert not problems, '\n'.join(problems)
