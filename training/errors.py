"""Errors that are the user's to fix. main.py prints their one-line message and exits with status 2."""


class UserError(Exception):
    """A bad flag, config value, path or file: reported as one line, exit status 2, nothing written."""


class NumericalError(RuntimeError):
    """The loss became NaN or Inf; the last good checkpoint is kept as it was."""
