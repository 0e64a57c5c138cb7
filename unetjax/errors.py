"""Errors caused by what the user passed in (config, data, image sizes).

`unetjax.main` prints these as one message without a traceback; anything
else is a bug and keeps its traceback.
"""


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
