"""``vcc config``: every setting, its value and where the value came from."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add ``vcc config``."""
    parser = subparsers.add_parser(
        "config",
        help="print every setting (mirrors, cache, manifests, catalog, runs, device) and where it came from",
        description="Print every setting with its value and its source (an environment variable or the default). "
        "Reading the settings creates nothing.",
    )
    parser.add_argument("--no-device", action="store_true", help="do not resolve the device (skips importing torch)")
    parser.set_defaults(func=show)


def show(args: argparse.Namespace) -> int:
    """Print the settings as an aligned table: name, value, source."""
    from vcclib.config import settings

    found = settings(resolve_device=not args.no_device)
    width = max(len(s.name) for s in found)
    value_width = min(max(len(s.value) for s in found), 70)
    for setting in found:
        print(f"{setting.name:{width}}  {setting.value:{value_width}}  [{setting.source}]")
    return 0
