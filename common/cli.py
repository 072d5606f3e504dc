"""The command-line helpers of both CLIs (``python -m pde_data``, ``python -m problems``): an argparse
parser whose mistakes are :class:`~common.errors.UserError` (one line, no usage dump), and the one way
an error reaches the user."""
from __future__ import annotations

import argparse
import sys

from common.errors import UserError


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises UserError (one line) instead of printing usage and exiting."""

    def error(self, message):
        raise UserError(message)


def subcommands(parser: argparse.ArgumentParser):
    """The required sub-command group of ``parser`` (``args.command``), whose parsers raise UserError."""
    return parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)


def report(error: BaseException) -> None:
    """Print ``error: <message>`` on stderr: the one line a user sees for a mistake."""
    print(f"error: {error}", file=sys.stderr, flush=True)
