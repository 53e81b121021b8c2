"""The ``vcc`` command: ``vcc data``, ``vcc run``, ``vcc book``, ``vcc eval``, ``vcc predict``.

Each subcommand lives in its own module exposing ``register(subparsers)``; modules are imported when the parser
is built, and heavy libraries only inside the command that needs them.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

SUBCOMMAND_MODULES = (
    "vcclib.cli.data_cmd",
    "vcclib.cli.run_cmd",
    "vcclib.cli.book_cmd",
    "vcclib.cli.eval_cmd",
    "vcclib.cli.predict_cmd",
    "vcclib.cli.train_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    """The ``vcc`` argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="vcc", description="Perturbation response prediction: data, notebooks, book, evaluation, baselines."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vcc`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
