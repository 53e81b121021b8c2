"""``vcc book``: run every chapter with its book parameters and build the Jupyter Book."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add ``vcc book``."""
    parser = subparsers.add_parser("book", help="run every chapter and build the book (HTML in _build/html)")
    parser.add_argument("chapters", nargs="*", help="only these chapters (default: every chapter in _toc.yml)")
    parser.add_argument("--smoke", action="store_true", help="use each chapter's small smoke parameters")
    parser.add_argument("--render-only", action="store_true", help="only render the executed notebooks in book/")
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=None,
        help="chapters run at once, each in its own kernel (default: VCC_BOOK_JOBS, else the cores, at most 2)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the book; a failed chapter raises :class:`~vcclib.pipeline.book.BookBuildError` (exit 1)."""
    from vcclib.pipeline.book import build_book

    build_book(args.chapters or None, smoke=args.smoke, render_only=args.render_only, jobs=args.jobs)
    return 0
