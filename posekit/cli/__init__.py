"""The ``posekit`` command line: one module per command (``posekit/cli/<command>.py``), each with
``add_parser(subparsers)`` and ``run(args) -> exit code`` calling the library. Errors reach the user as one
line (``posekit COMMAND: error: ...``), never as a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from posekit.cli.train import train_config_from_args
from posekit.optional import MissingExtra

__all__ = ["main", "build_parser", "train_config_from_args", "COMMANDS", "USER_ERRORS"]

#: the commands, in the order ``posekit --help`` lists them
COMMANDS = ("synth", "train", "eval", "predict", "demo", "info", "zoo", "export", "robustness", "adapt", "cache")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="posekit", description="Fast, robust and adaptable 2D human pose estimation.",
                                epilog="Data specs: coco:ANN.json | lsp:DIR[@train|@val] | mpii:ANN.json | folder:DIR")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        importlib.import_module(f"posekit.cli.{command}").add_parser(sub)
    return p


#: what a user can cause and fix, raised as one of these anywhere below (bad data and checkpoints are
#: DataError / CheckpointError, both ValueErrors; a used run folder is FileExistsError, an OSError; a diverging
#: run is FloatingPointError; a missing optional package is MissingExtra, an ImportError). Anything else is a
#: bug in posekit and keeps its traceback.
USER_ERRORS = (ValueError, OSError, FloatingPointError, MissingExtra)


def one_line(err: BaseException) -> str:
    """The error's message on one line (a library's multi-line text joined), or its type if it has none."""
    text = " ".join(part.strip() for part in str(err).splitlines() if part.strip())
    return text or type(err).__name__


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except USER_ERRORS as err:
        if args.verbose:  # -v: the traceback too, for a bug report
            raise
        print(f"posekit {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"posekit {args.command}: interrupted", file=sys.stderr)
        return 130
