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

__all__ = ["main", "build_parser", "train_config_from_args", "COMMANDS"]

#: the commands, in the order ``posekit --help`` lists them
COMMANDS = ("synth", "train", "eval", "predict", "demo", "info", "zoo", "export", "robustness", "adapt")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="posekit", description="Fast, robust and adaptable 2D human pose estimation.",
                                epilog="Data specs: coco:ANN.json | lsp:DIR[@train|@val] | mpii:ANN.json | folder:DIR")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        importlib.import_module(f"posekit.cli.{command}").add_parser(sub)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from posekit.data.sample import DataError
    try:
        return args.func(args)
    except (DataError, FileNotFoundError, PermissionError, ValueError) as err:
        print(f"posekit {args.command}: error: {err}", file=sys.stderr)
        return 2
