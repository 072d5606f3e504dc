"""common/: the CLI parser turns argparse's mistakes into one UserError; the logging setup shows the
project's progress lines on the chosen stream and keeps library INFO records (FFCx's compiler
commands) off it."""
import logging

import pytest

from common.cli import ArgumentParser, subcommands
from common.errors import ConfigError, UserError
from common.logs import setup as setup_logging


def test_parser_mistakes_are_user_errors():
    parser = ArgumentParser(prog="x")
    sub = subcommands(parser)
    sub.add_parser("go").add_argument("--n", type=int)
    with pytest.raises(UserError, match="invalid int value"):
        parser.parse_args(["go", "--n", "seven"])
    with pytest.raises(UserError, match="required"):
        parser.parse_args([])
    assert issubclass(ConfigError, UserError)


def test_progress_lines_on_the_chosen_stream_library_noise_silenced(capsys):
    setup_logging(("problems",), "stdout")
    logging.getLogger("problems.sweep").info("[1/2] heat baseline seed 0: done before")
    logging.getLogger().setLevel(logging.INFO)  # what setuptools does while FFCx compiles a form
    logging.getLogger("compilers.C.base").info("gcc -O2 ...")
    logging.getLogger("ffcx").info("compiling")
    captured = capsys.readouterr()
    assert captured.out == "[1/2] heat baseline seed 0: done before\n"
    assert captured.err == ""
    logging.getLogger().warning("a real warning")
    assert "a real warning" in capsys.readouterr().err
