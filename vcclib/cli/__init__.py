"""The ``vcc`` command: ``vcc data``, ``vcc run``, ``vcc book``, ``vcc eval``, ``vcc predict``, ``vcc config``.

Each subcommand lives in its own module exposing ``register(subparsers)``; modules are imported when the parser
is built, and heavy libraries only inside the command that needs them.

Exit codes
----------
0
    Success.
2
    Bad input: a bad argument (argparse), or a :class:`vcclib.errors.VccError` (printed as one line
    ``vcc: error: …``).
1
    A run that started and failed (a notebook raised, the book build failed), or any unexpected exception:
    one summary line; the traceback only with ``--debug`` or ``VCC_DEBUG=1``.
130
    Interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from importlib import import_module

from vcclib import __version__
from vcclib.errors import VccError

SUBCOMMAND_MODULES = (
    "vcclib.cli.data_cmd",
    "vcclib.cli.run_cmd",
    "vcclib.cli.book_cmd",
    "vcclib.cli.eval_cmd",
    "vcclib.cli.predict_cmd",
    "vcclib.cli.train_cmd",
    "vcclib.cli.config_cmd",
)
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    """Build the ``vcc`` argument parser with every subcommand registered.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
        prog="vcc",
        description="Perturbation response prediction: data, notebooks, book, evaluation, baselines.",
    )
    parser.add_argument("--version", action="version", version=f"vcc {__version__}")
    parser.add_argument("--debug", action="store_true", help="print the traceback of a failure (or VCC_DEBUG=1)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        import_module(module_name).register(subparsers)
    for sub in subparsers.choices.values():  # `vcc run X --debug` works too
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def debug_enabled(args: argparse.Namespace | None = None) -> bool:
    """True with ``--debug`` or a ``VCC_DEBUG`` other than empty or ``0``."""
    return bool(getattr(args, "debug", False)) or os.environ.get("VCC_DEBUG", "").strip() not in ("", "0")


def one_line(text: object) -> str:
    """``text`` with its whitespace (newlines included) collapsed to single spaces."""
    return " ".join(str(text).split())


def report(error: BaseException) -> int:
    """Print ``error`` the way ``vcc`` does and return the exit code for it.

    A :class:`~vcclib.errors.VccError` of bad input (exit 2) is one line. A failed run (exit 1) is a summary
    line, followed by the error's further lines when it has them (e.g. the failing notebook cell). Any other
    exception is a one-line summary with its type (exit 1).
    """
    if isinstance(error, VccError):
        code = getattr(error, "exit_code", EXIT_BAD_INPUT)
        lines = str(error).strip().splitlines() or [type(error).__name__]
        if code == EXIT_BAD_INPUT:
            print(f"vcc: error: {one_line(str(error)) or type(error).__name__}", file=sys.stderr)
        else:
            print(f"vcc: error: {lines[0]}", file=sys.stderr)
            for line in lines[1:]:
                print(line, file=sys.stderr)
        return code
    print(
        f"vcc: error: {type(error).__name__}: {one_line(error)} (the run failed; --debug or VCC_DEBUG=1 shows the traceback)",
        file=sys.stderr,
    )
    return EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    """Run the ``vcc`` console script and return its exit code.

    Parameters
    ----------
    argv
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 on bad input, 1 on a failed run, 130 when interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on a bad argument, with argparse's one-line message
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return int(args.func(args) or EXIT_OK)
    except KeyboardInterrupt:
        print("vcc: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 - every failure ends as one line and an exit code
        if debug_enabled(args):
            traceback.print_exc()
        return report(error)


if __name__ == "__main__":
    sys.exit(main())
