"""Build the book: run every chapter notebook with its book parameters, then render with Jupyter Book 1.x.

The table of contents (``_toc.yml``) is the list of chapters: every entry ``book/chapters/<name>`` is produced by
executing ``notebooks/<name>.ipynb`` with ``notebooks/params/<name>.yaml`` (``<name>.smoke.yaml`` in smoke mode)
into a fresh run folder, and copying the executed notebook to ``book/chapters/<name>.ipynb``. Jupyter Book only
renders (``execute_notebooks: off``). The build fails when a notebook failed or shows an error output.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from vcclib import config
from vcclib.errors import VccError
from vcclib.pipeline.notebooks import (
    NotebookRunError,
    contain_tool_state,
    error_outputs,
    load_parameter_file,
    new_run_dir,
    run_notebook,
)

CHAPTER_PREFIX = "book/chapters/"


class BookBuildError(VccError, RuntimeError):
    """A chapter failed, showed an error output, or Jupyter Book failed."""

    exit_code = 1  # a failed run, not bad input


@dataclass
class ChapterTiming:
    chapter: str
    seconds: float
    status: str
    run_dir: str


def toc_files(toc_path: Path | None = None) -> list[str]:
    """Every file named in ``_toc.yml``, in order."""
    toc_path = toc_path or config.project_root() / "_toc.yml"
    toc = yaml.safe_load(toc_path.read_text())
    found = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                found.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return found


def book_chapters(toc_path: Path | None = None) -> list[str]:
    """Names of the notebook chapters listed in the table of contents (``book/chapters/<name>``)."""
    return [Path(f).name for f in toc_files(toc_path) if f.startswith(CHAPTER_PREFIX)]


def chapter_parameters(name: str, smoke: bool = False) -> dict:
    """The parameters a chapter runs with in the book (or in the smoke test)."""
    folder = config.project_root() / "notebooks" / "params"
    path = folder / f"{name}.smoke.yaml" if smoke else folder / f"{name}.yaml"
    if smoke and not path.exists():
        path = folder / f"{name}.yaml"
    return load_parameter_file(path) if path.exists() else {}


def run_chapters(chapters: list[str] | None = None, *, smoke: bool = False, progress: bool = True) -> list[ChapterTiming]:
    """Execute the chapters into ``runs/book/<build id>/`` and copy the executed notebooks into ``book/chapters``.

    Raises
    ------
    BookBuildError
        Naming every chapter that failed or shows an error output (the others are still run and copied).
    """
    root = config.project_root()
    chapters = chapters or book_chapters()
    build_dir = new_run_dir("book", label="smoke" if smoke else "")
    target_dir = root / "book" / "chapters"
    target_dir.mkdir(parents=True, exist_ok=True)
    timings, failures = [], []
    for name in chapters:
        notebook = root / "notebooks" / f"{name}.ipynb"
        print(f"[book] running {name} ...", flush=True)
        start = time.perf_counter()
        try:
            record = run_notebook(notebook, chapter_parameters(name, smoke), run_dir=build_dir / name, progress=progress)
            errors = error_outputs(record.executed_notebook)
            status = "ok" if not errors else "error output"
            if errors:
                failures.append(f"{name}: error outputs: {errors}")
            shutil.copyfile(record.executed_notebook, target_dir / f"{name}.ipynb")
        except NotebookRunError as error:
            status = "failed"
            failures.append(str(error))
        seconds = round(time.perf_counter() - start, 1)
        timings.append(ChapterTiming(name, seconds, status, str(build_dir / name)))
        print(f"[book] {name}: {status} in {seconds:.1f} s", flush=True)
    pd.DataFrame([t.__dict__ for t in timings]).to_csv(build_dir / "timings.csv", index=False)
    if failures:
        raise BookBuildError("chapters failed:\n" + "\n".join(failures))
    return timings


def render(builder: str = "html") -> Path:
    """Run ``jupyter-book build`` on the project root; returns the output folder (``_build/html``)."""
    root = config.project_root()
    executable = Path(sys.executable).with_name("jupyter-book")
    command = [str(executable), "build", str(root), "--builder", builder]
    print(f"[book] {' '.join(command)}", flush=True)
    completed = subprocess.run(command, cwd=root)
    if completed.returncode != 0:
        raise BookBuildError(f"jupyter-book build exited with {completed.returncode}")
    return root / "_build" / builder


def build_book(chapters: list[str] | None = None, *, smoke: bool = False, render_only: bool = False) -> Path:
    """Run every chapter and render the book; prints each step's time. Returns the HTML folder."""
    contain_tool_state()
    start = time.perf_counter()
    timings = [] if render_only else run_chapters(chapters, smoke=smoke)
    render_start = time.perf_counter()
    html = render()
    render_seconds = time.perf_counter() - render_start
    print("\n[book] timings (2-core machine budget: 15 minutes for the whole book)")
    for timing in timings:
        print(f"  {timing.chapter:32} {timing.seconds:8.1f} s  {timing.status}")
    print(f"  {'jupyter-book build':32} {render_seconds:8.1f} s")
    print(f"  {'total':32} {time.perf_counter() - start:8.1f} s")
    print(f"[book] HTML: {html / 'index.html'}")
    return html
