"""The metric reference in ``docs/metrics.md``, generated from :data:`~vcclib.metrics.METRICS` and the profiles.

The file keeps hand-written prose around two generated blocks, each between marker comments::

    <!-- BEGIN generated: profiles ... -->   ...   <!-- END generated: profiles -->
    <!-- BEGIN generated: metric-table ... --> ... <!-- END generated: metric-table -->

``python -m vcclib.metrics.docs`` rewrites the blocks from the registry; ``--check`` exits 1 when the file is out
of date (``tests/test_registry.py`` runs the same check).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

#: The docs page, relative to the repository root.
DOCS_PATH = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
COMMAND = "python -m vcclib.metrics.docs"
#: A profile with at most this many metrics is listed by name, a longer one by count.
LIST_AT_MOST = 10


def _cell(text: object) -> str:
    """A Markdown table cell: pipes escaped, newlines flattened."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def metric_table_markdown() -> str:
    """One row per registered metric: name, family, best value, minimum perturbations, gene space, reference,
    source."""
    from vcclib.metrics import METRICS

    lines = ["| name | family | best | min perts | gene space | reference | source |", "|---|---|---|---|---|---|---|"]
    for spec in METRICS.specs():
        best = "—" if not spec.scored else f"{float(spec.best_value):g}"
        cells = [
            f"`{spec.name}`",
            spec.family,
            best,
            spec.min_perturbations,
            spec.conventions.get("gene_space", ""),
            spec.conventions.get("reference", ""),
            spec.source,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def profiles_markdown() -> str:
    """One bullet per profile: its metrics by name (up to :data:`LIST_AT_MOST`) or their number."""
    from vcclib.metrics import PROFILES, resolve

    lines = []
    for profile in PROFILES:
        names = resolve(profile)
        listed = ", ".join(names) if len(names) <= LIST_AT_MOST else f"{len(names)} metrics"
        lines.append(f"- `{profile}`: {listed}")
    return "\n".join(lines)


BLOCKS = {"profiles": profiles_markdown, "metric-table": metric_table_markdown}


def _pattern(block: str) -> re.Pattern:
    return re.compile(
        rf"(<!-- BEGIN generated: {re.escape(block)}[^>]*-->\n)(.*?)(\n<!-- END generated: "
        rf"{re.escape(block)} -->)",
        re.S,
    )


def render(text: str) -> str:
    """``text`` (the docs page) with every generated block rewritten from the registry."""
    for block, make in BLOCKS.items():
        pattern = _pattern(block)
        if not pattern.search(text):
            raise ValueError(f"docs page lacks the generated block {block!r} (its BEGIN/END marker comments)")
        text = pattern.sub(lambda m, make=make: m.group(1) + make() + m.group(3), text)
    return text


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with ``--check`` verify) the generated blocks of ``docs/metrics.md``."""
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is out of date; write nothing")
    parser.add_argument("--path", type=Path, default=DOCS_PATH, help="the docs page (default: docs/metrics.md)")
    args = parser.parse_args(argv)
    text = args.path.read_text()
    updated = render(text)
    if args.check:
        if updated != text:
            print(f"{args.path} is out of date with the metric registry: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    if updated != text:
        args.path.write_text(updated)
        print(f"updated {args.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
