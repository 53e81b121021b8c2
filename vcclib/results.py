"""One way for every chapter to write what it computed: tables (CSV), records (JSON) and figures (PNG).

A notebook creates ``Results(output_dir)`` once; ``vcc run`` passes a fresh run folder as ``output_dir``. Each
table and figure is listed in ``index.json`` with its description, so readers and tests find them by name.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from vcclib import config

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _json_default(value: Any):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


class Results:
    """Writes a chapter's tables, records and figures under one folder.

    Parameters
    ----------
    output_dir
        Folder to write into. Empty: a new folder ``runs/<chapter>/interactive-<UTC time>`` is made, so an
        interactive session never overwrites an earlier one.
    chapter
        The chapter's name, used for that default folder.

    Notes
    -----
    Layout: ``tables/<name>.csv``, ``records/<name>.json``, ``figures/<name>.png`` and ``index.json``. Writing a
    name twice in one run is an error: a chapter's results never silently overwrite each other. Each figure names
    the table holding its numbers (``table=``).
    """

    def __init__(self, output_dir: str | Path = "", chapter: str = "chapter"):
        if not output_dir:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            output_dir = config.runs_dir() / chapter / f"interactive-{stamp}"
        self.root = Path(output_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.chapter = chapter
        self._index_path = self.root / "index.json"
        self.index: dict[str, dict] = {"tables": {}, "records": {}, "figures": {}}

    def _target(self, kind: str, name: str, suffix: str) -> Path:
        if not NAME_PATTERN.match(name):
            raise ValueError(f"result name {name!r}: use letters, digits, '_', '-', '.'")
        if name in self.index[kind]:
            raise ValueError(f"{kind[:-1]} {name!r} was already written in this run")
        folder = self.root / kind
        folder.mkdir(exist_ok=True)
        return folder / f"{name}{suffix}"

    def _record(self, kind: str, name: str, path: Path, description: str, **extra) -> None:
        self.index[kind][name] = {"path": str(path.relative_to(self.root)), "description": description, **extra}
        self._index_path.write_text(json.dumps(self.index, indent=2, default=_json_default))

    def keep_warnings(self) -> Path:
        """Write Python warnings to ``warnings.log`` in the run folder from now on, instead of the notebook's stderr.

        A chapter's output then carries no warning blocks, and no warning is lost: the log stays with the run
        (the book build reports how many each chapter had).
        """
        import warnings

        path = self.root / "warnings.log"

        def show(message, category, filename, lineno, file=None, line=None):
            with path.open("a") as handle:
                handle.write(warnings.formatwarning(message, category, filename, lineno, line))

        warnings.showwarning = show
        return path

    def table(self, name: str, frame: pd.DataFrame, description: str = "", index: bool = False) -> Path:
        """Write ``frame`` as ``tables/<name>.csv``; returns the path."""
        path = self._target("tables", name, ".csv")
        frame.to_csv(path, index=index)
        self._record("tables", name, path, description, rows=int(len(frame)), columns=[str(c) for c in frame.columns])
        return path

    def record(self, name: str, value: Any, description: str = "") -> Path:
        """Write a JSON-serialisable ``value`` (numbers, conclusions, settings) as ``records/<name>.json``."""
        path = self._target("records", name, ".json")
        path.write_text(json.dumps(value, indent=2, default=_json_default))
        self._record("records", name, path, description)
        return path

    def figure(self, name: str, figure, description: str = "", dpi: int = 120, *, table: str | None = None) -> Path:
        """Save a matplotlib figure as ``figures/<name>.png``.

        Parameters
        ----------
        table
            The table (already written in this run) that holds the figure's numbers; the book build refuses a
            chapter figure without one, so every plotted number can be reused.
        """
        if table is not None and table not in self.index["tables"]:
            raise ValueError(f"figure {name!r}: table {table!r} is not written in this run; write it first")
        path = self._target("figures", name, ".png")
        figure.savefig(path, dpi=dpi, bbox_inches="tight")
        self._record("figures", name, path, description, table=table)
        return path


def read_index(run_dir: str | Path) -> dict:
    """The ``index.json`` of a run folder."""
    return json.loads((Path(run_dir) / "index.json").read_text())


def figures_without_table(run_dir: str | Path) -> list[str]:
    """Figures of a run whose numbers are not written as a table (``Results.figure(..., table=...)``)."""
    index = read_index(run_dir)
    return [name for name, entry in index["figures"].items() if entry.get("table") not in index["tables"]]
