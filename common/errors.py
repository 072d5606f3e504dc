"""Errors a user can cause or a solver can report; a command line turns a :class:`UserError` into one
line ``error: ...`` and a non-zero exit status, without a traceback (:mod:`common.cli`)."""


class UserError(Exception):
    """Bad input (flag, setting, file): printed as one line, exit status 2, no traceback."""


class ConfigError(UserError):
    """An unknown setting or an invalid value; the message names the key."""


class DatasetError(UserError):
    """A file that is missing, not a dataset of this schema, or made with another configuration."""


class SolverFailure(Exception):
    """A sample whose solve did not converge; its row gets status 2 and generation continues."""
