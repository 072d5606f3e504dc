"""One logging setup for every command line: the project's own progress lines, library noise silenced.

The project's modules log through ``logging.getLogger(__name__)`` (loggers under ``pde_data``,
``problems`` and ``growth``). A command line calls :func:`setup` with the packages whose progress it
shows: their records of level ``level`` and above go, as the bare message, to one stream (``"stdout"``
for ``python -m problems``, ``"stderr"`` for ``python -m pde_data``, looked up when a line is written,
so redirections made after the call are honoured); everything else, the root logger included, shows
only warnings. FFCx's ``logging.basicConfig()`` and the INFO level setuptools gives the root logger while
compiling forms would otherwise print every compiler command. (Optuna configures its own logger
when first used, so :mod:`problems.methods.nas` lowers it to WARNING there.) ``growth`` keeps WARNING
unless ``verbose``: its per-stage lines would otherwise flood a sweep of many runs.
"""
from __future__ import annotations

import logging
import sys

QUIET = ("matplotlib", "PIL", "h5py", "ffcx", "UFL", "ufl", "dolfinx")


class _Stream(logging.StreamHandler):
    """A handler writing to ``sys.<name>`` as it is when the line is written."""

    def __init__(self, name: str):
        super().__init__(getattr(sys, name))
        self.name_of_stream = name

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = getattr(sys, self.name_of_stream)  # not setStream: it flushes the old one
        super().emit(record)


def setup(packages: tuple[str, ...], stream: str, level: int = logging.INFO, verbose: bool = False) -> None:
    """Configure logging for a command line showing ``packages``' progress on ``stream`` (a second call
    replaces the handlers of the packages it names)."""
    root_handler = _Stream("stderr")
    root_handler.setLevel(logging.WARNING)
    logging.basicConfig(handlers=[root_handler], force=True)
    handler = _Stream(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in packages:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(level if name != "growth" or verbose else logging.WARNING)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
