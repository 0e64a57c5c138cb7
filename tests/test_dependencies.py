"""The package imports only what `pip install -e .` installs: every import a
module of unetjax/ runs when it is imported names the standard library,
unetjax itself or a distribution of `[project.dependencies]`; optional
libraries are imported inside the function that needs them."""

import ast
import importlib.metadata
import pathlib
import re
import subprocess
import sys
import tomllib

import pytest

from unetjax import extras

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / 'unetjax'


def _normalise(name: str) -> str:
  """PEP 503's normalised distribution name."""
  return re.sub(r'[-_.]+', '-', name).lower()


def declared_distributions() -> set[str]:
  with open(ROOT / 'pyproject.toml', 'rb') as f:
    project = tomllib.load(f)['project']
  return {_normalise(re.split(r'[\s<>=!~;\[]', spec, maxsplit=1)[0])
          for spec in project['dependencies']}


def import_time_modules(source: str) -> list[tuple[int, str]]:
  """(line, top-level module) of every import that runs when the module is
  imported: everything outside function bodies (class bodies and module-level
  if/try blocks run at import)."""
  found = []

  def visit(node, in_function):
    for child in ast.iter_child_nodes(node):
      inside = in_function or isinstance(
          child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
      if not inside and isinstance(child, ast.Import):
        found.extend((child.lineno, a.name.split('.')[0]) for a in child.names)
      elif (not inside and isinstance(child, ast.ImportFrom)
            and child.level == 0):
        found.append((child.lineno, child.module.split('.')[0]))
      visit(child, inside)

  visit(ast.parse(source), False)
  return found


def undeclared_imports(source: str, declared: set[str],
                       distributions: dict[str, list[str]]) -> list[str]:
  """The import-time imports of `source` that the bare install lacks."""
  problems = []
  for line, module in import_time_modules(source):
    if module in sys.stdlib_module_names or module == 'unetjax':
      continue
    owners = {_normalise(d) for d in distributions.get(module, [])}
    if not owners & declared:
      problems.append(f'line {line}: import {module} '
                      f'(distribution {sorted(owners) or "not installed"})')
  return problems


def test_every_module_imports_only_declared_dependencies():
  declared = declared_distributions()
  distributions = importlib.metadata.packages_distributions()
  files = sorted(PACKAGE.rglob('*.py'))
  assert len(files) > 30
  problems = {}
  for path in files:
    found = undeclared_imports(path.read_text(), declared, distributions)
    if found:
      problems[str(path.relative_to(ROOT))] = found
  assert not problems, (
      'imports that `pip install -e .` does not install; add the distribution '
      'to [project.dependencies] or import it inside the function that needs '
      f'it (unetjax.extras.require): {problems}')


def test_the_checker_catches_an_optional_import_at_module_level():
  declared = declared_distributions()
  distributions = {'sklearn': ['scikit-learn'], 'numpy': ['numpy'],
                   'skimage': ['scikit-image']}
  at_top = 'import numpy as np\nfrom sklearn import ensemble\n'
  in_function = 'import numpy\ndef fit():\n  from sklearn import ensemble\n'
  in_class = 'class Forest:\n  import sklearn\n'
  guarded = 'try:\n  import sklearn\nexcept ImportError:\n  sklearn = None\n'
  assert undeclared_imports(at_top, declared, distributions) == [
      "line 2: import sklearn (distribution ['scikit-learn'])"]
  assert undeclared_imports(in_function, declared, distributions) == []
  assert len(undeclared_imports(in_class, declared, distributions)) == 1
  assert len(undeclared_imports(guarded, declared, distributions)) == 1
  assert undeclared_imports('import torch\n', declared, {}) == [
      "line 1: import torch (distribution not installed)"]
  # scikit-image is a core dependency: object metrics and boundaries need it.
  assert undeclared_imports('from skimage import feature\n', declared,
                            distributions) == []


def test_a_missing_extra_is_one_message_naming_it():
  with pytest.raises(extras.MissingExtraError,
                     match=r"pip install -e '\.\[experiments\]'") as raised:
    extras.require('no_such_library_xyz.sub', 'experiments', 'The feature')
  assert '\n' not in str(raised.value)
  assert str(raised.value).startswith(
      "The feature needs the 'experiments' extra (no module named "
      "'no_such_library_xyz')")
  with pytest.raises(extras.MissingExtraError, match=r"'\.\[peers\]'"):
    extras.check('no_such_library_xyz', 'peers', 'The peer')
  assert extras.require('json', 'experiments', 'x').dumps([1]) == '[1]'
  extras.check('numpy', 'experiments', 'x')


def test_every_module_imports_in_one_process():
  """As .ci/bare_install does: no module defines flags or state at import
  that clashes with another's (e.g. two commands' --config)."""
  code = ('import importlib, pkgutil, unetjax\n'
          'names = [m.name for m in pkgutil.walk_packages(unetjax.__path__, '
          "'unetjax.')]\n"
          'for name in names: importlib.import_module(name)\n'
          'print(len(names))\n')
  result = subprocess.run([sys.executable, '-c', code], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  # Every file but unetjax/__init__.py, which the walk starts from.
  assert int(result.stdout.split()[-1]) == len(list(PACKAGE.rglob('*.py'))) - 1
