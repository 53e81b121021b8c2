"""A chapter's answer, written from its records: the key-takeaways box and the number formats it uses.

Each chapter module (``vcclib.analyses.<chapter>``) has one ``conclusions(records) -> Takeaways``. The records are
the JSON the chapter writes through :class:`vcclib.results.Results`, so the box can be rebuilt from a run folder
alone, and every number in it is formatted from a record, never typed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

#: CSS class of the box; the browser test looks for it on every chapter page.
TAKEAWAYS_CLASS = "key-takeaways"


def number(value, digits: int = 2, missing: str = "n/a") -> str:
    """``value`` with ``digits`` decimals and thousands separators; ``missing`` for None or NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    if isinstance(value, int) or (isinstance(value, float) and digits == 0):
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def share(value, digits: int = 0, missing: str = "n/a") -> str:
    """A fraction in [0, 1] as a percentage (``0.25`` → ``25%``)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    return f"{100 * value:.{digits}f}%"


def names(items: Iterable, empty: str = "none", limit: int | None = None) -> str:
    """Comma-separated names (``empty`` when there are none); with ``limit``, the rest are counted."""
    items = [str(i) for i in items]
    if not items:
        return empty
    if limit is not None and len(items) > limit:
        return ", ".join(items[:limit]) + f" and {len(items) - limit} more"
    return ", ".join(items)


def plural(n: int, singular: str, plural_form: str | None = None) -> str:
    """``3 perturbations`` / ``1 perturbation``."""
    return f"{n:,} {singular if n == 1 else (plural_form or singular + 's')}"


@dataclass(frozen=True)
class Takeaways:
    """The answer a chapter opens with: a few sentences, each computed from the chapter's records.

    Parameters
    ----------
    points
        One sentence (MyST Markdown) per takeaway.
    conventions
        Lines stating the conventions the numbers depend on (device, gene space, fold-change convention, ...).
    title
        Title of the box.
    """

    points: Sequence[str]
    conventions: Sequence[str] = field(default_factory=tuple)
    title: str = "Key takeaways"

    def to_markdown(self) -> str:
        """A MyST ``admonition`` (class ``key-takeaways``), rendered as a box by Jupyter Book."""
        body = "\n".join(f"- {p}" for p in self.points)
        if self.conventions:
            body += "\n\n*Conventions:* " + "; ".join(self.conventions) + "."
        return f"```{{admonition}} {self.title}\n:class: tip {TAKEAWAYS_CLASS}\n\n{body}\n```\n"

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def to_record(self) -> dict:
        """JSON-serialisable form, for ``Results.record``."""
        return {"title": self.title, "points": list(self.points), "conventions": list(self.conventions)}

    def __str__(self) -> str:
        return "\n".join(self.points)
