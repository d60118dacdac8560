"""Every error a user can cause and fix, in one family: ``UserError`` and its kinds.

The scripts' ``run_main`` (utils/cli.py) turns a ``UserError`` into one ``error: ...`` line on stderr and exit
status 2; any other exception is a bug and keeps its traceback.  The kinds also derive from the built-in type
callers would expect (a bad config value is a ``ValueError``, an unknown registry name a ``KeyError``, ...), so
code that catches those keeps working.

This module imports nothing: every layer of the project (networks, data, engine, deployment) may raise these.
"""


class UserError(RuntimeError):
    """Bad input from the user, reported in one line."""


class ConfigError(UserError, ValueError):
    """A run config, an override or a command-line value that the code cannot use."""


class UnknownNameError(ConfigError, KeyError):
    """A registry was asked for a name it does not hold (a network, dataset, loss, schedule or optimizer)."""

    __str__ = Exception.__str__  # KeyError would quote the message


class UnknownArgumentError(ConfigError, TypeError):
    """A registered class was given a keyword argument it does not take."""


class WeightsError(UserError, ValueError):
    """An unreadable weights file, or one that does not fit the network."""


class DeviceError(UserError):
    """A device this Paddle build or this machine does not have."""


class EngineError(UserError):
    """An inference engine that is not installed here, or that cannot run this exported model; the automatic
    engine choice (``--backend auto``) then moves on to the next engine."""


class ImageError(UserError, ValueError):
    """An unreadable, unsupported or mismatched image; the message names the file."""


class DatasetError(UserError, ValueError):
    """A data set that is missing, empty, unmatched or unreadable; the message names the place."""


class PathError(UserError, OSError):
    """An output path that cannot be used: it would replace an input, it is a file where a folder is expected
    (or the reverse), or it cannot be written (read-only, no permission, no space)."""
