"""Libraries of optional features, imported where the feature starts.

The core (training, evaluation, prediction) needs only `[project.dependencies]`;
a feature that needs more names the pyproject extra that installs it, so a bare
`pip install -e .` stops that feature with one line instead of a traceback.
"""

import importlib
import importlib.util
import types

from unetjax.errors import UserInputError


class MissingExtraError(UserInputError):
  """An optional feature's library is not installed."""


def require(module: str, extra: str, feature: str) -> types.ModuleType:
  """`module` imported, or MissingExtraError naming the extra to install."""
  try:
    return importlib.import_module(module)
  except ImportError as e:
    raise MissingExtraError(_message(feature, extra, e.name or module)) from e


def check(module: str, extra: str, feature: str) -> None:
  """MissingExtraError when `module` cannot be found; imports nothing, so a
  config check stays cheap."""
  top = module.split('.')[0]
  if importlib.util.find_spec(top) is None:
    raise MissingExtraError(_message(feature, extra, top))


def _message(feature: str, extra: str, missing: str) -> str:
  return (f"{feature} needs the {extra!r} extra (no module named {missing!r}): "
          f"install it with pip install -e '.[{extra}]'")
