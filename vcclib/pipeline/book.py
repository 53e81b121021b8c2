"""Build the book: run every chapter notebook with its book parameters, then render with Jupyter Book 1.x.

The table of contents (``_toc.yml``) is the list of chapters: every entry ``book/chapters/<name>`` is produced by
executing ``notebooks/<name>.ipynb`` with ``notebooks/params/<name>.yaml`` (``<name>.smoke.yaml`` in smoke mode)
into a fresh run folder, and copying the executed notebook to ``book/chapters/<name>.ipynb``. Jupyter Book only
renders (``execute_notebooks: off``). The build fails when a notebook failed, shows an error output, or draws a
figure whose numbers are not written as a table.

Preparing a chapter for the book (:func:`prepare_chapter`): every code cell is folded behind a toggle (tag
``hide-input``), stderr outputs are removed (and counted in the build log; chapters write warnings to their run
folder instead), and a *Downloads* section links the executed notebook and the run's tables. References come from
one bibliography, ``book/references.bib``, generated from the dataset manifests and the hand-kept
``book/methods.yaml`` (:func:`write_bibliography`).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import nbformat
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
from vcclib.results import figures_without_table

CHAPTER_PREFIX = "book/chapters/"
#: tags that already decide how a code cell shows; every other code cell gets ``hide-input``
VISIBILITY_TAGS = {"hide-input", "hide-cell", "remove-input", "remove-cell", "hide-output"}
DOWNLOADS = "downloads"
BIBLIOGRAPHY = "book/references.bib"
METHODS = "book/methods.yaml"
#: each chapter's measured seconds at book settings, kept with the book to schedule a fresh build longest first
CHAPTER_SECONDS = "book/chapter_seconds.csv"


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


def default_jobs() -> int:
    """How many chapters run at once: ``VCC_BOOK_JOBS``, else the machine's cores, at most 2.

    Chapters are mostly single-threaded Python, so two at a time use a 2-core machine twice as well; more would
    only share the same cores (and add the memory of another kernel).
    """
    configured = os.environ.get("VCC_BOOK_JOBS")
    if configured:
        try:
            jobs = int(configured)
        except ValueError:
            raise BookBuildError(f"VCC_BOOK_JOBS={configured!r} is not a whole number of chapters") from None
        if jobs < 1:
            raise BookBuildError(f"VCC_BOOK_JOBS={configured!r}: at least one chapter must run at a time")
        return jobs
    return max(1, min(2, os.cpu_count() or 1))


#: the thread pools of the numeric libraries a chapter may use (OpenMP: torch, scikit-learn; BLAS; numba)
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)


def threads_per_chapter(jobs: int) -> int:
    """Threads each chapter gets when ``jobs`` run at once: the machine's cores shared out, at least one."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def share_cores(threads: int) -> None:
    """Cap the numeric libraries' thread pools of this process and of the kernels it starts at ``threads``.

    Run in each worker of a parallel build before any chapter starts. Without it two chapters on two cores each
    start a pool of two threads: torch's OpenMP operators then wait on a thread the other chapter has pre-empted,
    and small-tensor training (GEARS, biolord) ran up to eight times slower than alone. A variable the user has
    set is left as it is.
    """
    for name in THREAD_VARIABLES:
        if not os.environ.get(name):
            os.environ[name] = str(threads)


def expected_seconds(chapters: list[str], smoke: bool = False) -> dict[str, float]:
    """Each chapter's seconds in the newest earlier build (``runs/book/*/timings.csv``), else ``book/chapter_seconds.csv``.

    Only builds of the same kind (smoke or book settings) count; chapters never timed get 0.

    Used only to start the longest chapters first when several run at once.
    """
    root = config.project_root()
    seconds: dict[str, float] = {}
    builds = [
        timings
        for timings in sorted((config.runs_dir() / "book").glob("*/timings.csv"), reverse=True)
        if ("-smoke-" in timings.parent.name) == smoke
    ]
    for source in [*builds, *([] if smoke else [root / CHAPTER_SECONDS])]:
        if not source.is_file():
            continue
        table = pd.read_csv(source)
        for row in table.itertuples():
            if row.chapter in chapters and row.chapter not in seconds and getattr(row, "status", "ok") == "ok":
                seconds[str(row.chapter)] = float(row.seconds)
    return {name: seconds.get(name, 0.0) for name in chapters}


def _run_chapter(name: str, smoke: bool, build_dir: Path, target_dir: Path, progress: bool):
    """Run one chapter into ``build_dir/name`` and copy it into the book; returns (timing, failures, messages)."""
    notebook = config.project_root() / "notebooks" / f"{name}.ipynb"
    start = time.perf_counter()
    failures, messages = [], []
    try:
        record = run_notebook(notebook, chapter_parameters(name, smoke), run_dir=build_dir / name, progress=progress)
        errors = error_outputs(record.executed_notebook)
        status = "ok" if not errors else "error output"
        if errors:
            failures.append(f"{name}: error outputs: {errors}")
        missing = figures_without_table(record.run_dir)
        if missing:
            status = "figure without table"
            failures.append(
                f"{name}: figures {missing} name no table of their numbers (Results.figure(..., table=NAME))"
            )
        report = prepare_chapter(record.executed_notebook, record.run_dir, target_dir / f"{name}.ipynb")
        if report["stderr_removed"] or report["warnings"]:
            messages.append(
                f"[book] {name}: {report['stderr_removed']} stderr output(s) removed, {report['warnings']} "
                f"warning line(s) kept in {Path(record.run_dir) / 'warnings.log'}"
            )
    except NotebookRunError as error:
        status = "failed"
        failures.append(str(error))
    seconds = round(time.perf_counter() - start, 1)
    return ChapterTiming(name, seconds, status, str(build_dir / name)), failures, messages


def run_chapters(
    chapters: list[str] | None = None, *, smoke: bool = False, progress: bool = True, jobs: int | None = None
) -> list[ChapterTiming]:
    """Execute the chapters into ``runs/book/<build id>/`` and copy the executed notebooks into ``book/chapters``.

    Parameters
    ----------
    chapters
        Chapter names (default: every chapter of ``_toc.yml``).
    smoke
        Use each chapter's ``.smoke.yaml`` parameters.
    progress
        Show papermill's progress bar (when one chapter runs at a time; with several, one line per start and end).
    jobs
        Chapters run at once, each in its own process and kernel (default :func:`default_jobs`). With more than
        one, the chapters that took longest before start first (:func:`expected_seconds`), and each chapter's
        numeric thread pools get its share of the cores (:func:`share_cores`). Chapters share nothing but
        caches, which are written atomically.

    Returns
    -------
    list of ChapterTiming
        In table-of-contents order; also written to ``timings.csv`` in the build folder.

    Raises
    ------
    BookBuildError
        Naming every chapter that failed or shows an error output (the others are still run and copied).
    """
    root = config.project_root()
    chapters = chapters or book_chapters()
    jobs = default_jobs() if jobs is None else jobs
    build_dir = new_run_dir("book", label="smoke" if smoke else "")
    target_dir = root / "book" / "chapters"
    target_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, tuple] = {}

    def report(name: str, result) -> None:
        results[name] = result
        timing, _, messages = result
        for message in messages:
            print(message, flush=True)
        print(f"[book] {name}: {timing.status} in {timing.seconds:.1f} s", flush=True)

    if jobs <= 1 or len(chapters) <= 1:
        for name in chapters:
            print(f"[book] running {name} ...", flush=True)
            report(name, _run_chapter(name, smoke, build_dir, target_dir, progress))
    else:
        expected = expected_seconds(chapters, smoke)
        order = sorted(chapters, key=lambda name: -expected[name])
        threads = threads_per_chapter(jobs)
        print(
            f"[book] running {len(chapters)} chapters, {jobs} at a time (longest first), {threads} thread(s) each",
            flush=True,
        )
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=jobs, mp_context=context, initializer=share_cores, initargs=(threads,)
        ) as pool:
            futures = {}
            for name in order:
                futures[pool.submit(_run_chapter, name, smoke, build_dir, target_dir, False)] = name
            for future in as_completed(futures):
                report(futures[future], future.result())
    timings = [results[name][0] for name in chapters]
    failures = [failure for name in chapters for failure in results[name][1]]
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


def build_book(
    chapters: list[str] | None = None, *, smoke: bool = False, render_only: bool = False, jobs: int | None = None
) -> Path:
    """Run every chapter (``jobs`` at a time, see :func:`run_chapters`) and render the book; returns the HTML folder.

    Prints each step's time and the whole build's (chapters run at once each take longer than alone).
    """
    contain_tool_state()
    start = time.perf_counter()
    timings = [] if render_only else run_chapters(chapters, smoke=smoke, jobs=jobs)
    write_bibliography()
    render_start = time.perf_counter()
    html = render()
    render_seconds = time.perf_counter() - render_start
    print(f"\n[book] timings ({jobs or default_jobs()} chapter(s) at a time; 2-core budget: 20 minutes in all)")
    for timing in timings:
        print(f"  {timing.chapter:32} {timing.seconds:8.1f} s  {timing.status}")
    print(f"  {'jupyter-book build':32} {render_seconds:8.1f} s")
    print(f"  {'total':32} {time.perf_counter() - start:8.1f} s")
    print(f"[book] HTML: {html / 'index.html'}")
    return html


# --- preparing an executed chapter for the book ---------------------------------------------------------------


def fold_code(notebook: nbformat.NotebookNode) -> int:
    """Tag every code cell ``hide-input`` (folded behind a toggle) unless a visibility tag is set; returns the count."""
    folded = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if not VISIBILITY_TAGS & set(tags):
            tags.append("hide-input")
            folded += 1
    return folded


def remove_stderr(notebook: nbformat.NotebookNode) -> list[str]:
    """Remove every stderr stream output; returns the first line of each removed one."""
    removed = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                text = "".join(output.get("text", ""))
                removed.append(text.strip().splitlines()[0] if text.strip() else "")
            else:
                kept.append(output)
        cell.outputs = kept
    return removed


def answer_first(notebook: nbformat.NotebookNode) -> bool:
    """Move the cell that shows the key-takeaways box to right after the title cell; True when it moved.

    A chapter may compute its records as it goes and display the box at the end; the book still opens each chapter
    with its answer, before any other output.
    """

    def shows_takeaways(cell) -> bool:
        return cell.cell_type == "code" and any(
            "key-takeaways" in "".join(output.get("data", {}).get("text/markdown", ""))
            for output in cell.get("outputs", [])
        )

    def has_output(cell) -> bool:
        return cell.cell_type == "code" and bool(cell.get("outputs"))

    index = next((i for i, cell in enumerate(notebook.cells) if shows_takeaways(cell)), None)
    if index is None or not any(has_output(cell) for cell in notebook.cells[:index]):
        return False
    cell = notebook.cells.pop(index)
    title = next((i for i, c in enumerate(notebook.cells) if c.cell_type == "markdown"), -1)
    notebook.cells.insert(title + 1, cell)
    return True


def downloads_cell(name: str, run_dir: str | Path, folder: str) -> nbformat.NotebookNode:
    """A Markdown cell linking the executed notebook, a zip of the run's tables and records, and each table."""
    index = json.loads((Path(run_dir) / "index.json").read_text())
    lines = [
        "## Downloads",
        "",
        f"- {{download}}`The executed notebook <{name}.ipynb>` (this page with its outputs; rerun it with "
        f"`vcc run {name}`)",
        f"- {{download}}`Every table and record of this run (zip) <{folder}/{name}_results.zip>`",
    ]
    for table, entry in sorted(index["tables"].items()):
        description = re.sub(r"\s+", " ", entry.get("description", "")).strip()
        lines.append(
            f"- {{download}}`{table}.csv <{folder}/tables/{table}.csv>`" + (f": {description}" if description else "")
        )
    return nbformat.v4.new_markdown_cell("\n".join(lines))


def prepare_chapter(executed: str | Path, run_dir: str | Path, target: str | Path) -> dict:
    """Copy an executed chapter into the book: folded code, no stderr, a Downloads section with its tables.

    The run's ``tables/`` and ``records/`` are copied to ``<target folder>/downloads/<name>/`` (and zipped there),
    which the Downloads links point at.

    Returns
    -------
    dict
        ``folded`` (code cells), ``stderr_removed``, ``stderr_lines`` and ``warnings`` (lines in the run's
        ``warnings.log``).
    """
    executed, run_dir, target = Path(executed), Path(run_dir), Path(target)
    name = target.stem
    notebook = nbformat.read(executed, as_version=4)
    folded = fold_code(notebook)
    removed = remove_stderr(notebook)
    answer_first(notebook)
    folder = target.parent / DOWNLOADS / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / f"{name}_results.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for kind in ("tables", "records"):
            source = run_dir / kind
            if not source.is_dir():
                continue
            shutil.copytree(source, folder / kind)
            for path in sorted(source.iterdir()):
                archive.write(path, f"{name}/{kind}/{path.name}")
    notebook.cells.append(downloads_cell(name, run_dir, f"{DOWNLOADS}/{name}"))
    nbformat.write(notebook, target)
    log = run_dir / "warnings.log"
    n_warnings = len(log.read_text().splitlines()) if log.exists() else 0
    return {"folded": folded, "stderr_removed": len(removed), "stderr_lines": removed, "warnings": n_warnings}


# --- one bibliography ---------------------------------------------------------------------------------------------

_YEAR = re.compile(r"^(?P<authors>.+?)[.,]?\s+\(?(?P<year>(?:19|20)\d{2})\)?[.:]\s+(?P<rest>.+)$", re.S)
_PERSON = re.compile(r"^(?P<last>[^\W\d][\w'\- ]*?)\s+(?P<initials>[A-Z][A-Za-z\-]{0,3})$")


def _bibtex_text(value) -> str:
    text = re.sub(r"\s+", " ", str(value)).strip()
    text = text.replace("\\", "").replace("&", r"\&").replace("%", r"\%").replace("#", r"\#")
    if text.count("{") != text.count("}"):
        text = text.replace("{", "").replace("}", "")
    return text


def _authors(text: str) -> str:
    """Manifest author text (``Papalexi E, Mimitou EP, et al``) as BibTeX names; an organisation stays one name."""
    parts = [p.strip() for p in re.split(r",\s*", text.strip().rstrip(".")) if p.strip()]
    names = []
    for part in parts:
        if part.lower().startswith("et al"):
            names.append("others")
            continue
        match = _PERSON.match(part)
        if match is None:
            return "{" + text.strip().rstrip(".") + "}"
        initials = " ".join(f"{c}." for c in re.findall(r"[A-Z]", match["initials"]))
        names.append(f"{match['last']}, {initials}")
    return " and ".join(names)


def manifest_reference(manifest) -> dict:
    """BibTeX fields of a dataset, parsed from its manifest's citation (authors, year, title, where published)."""
    first = manifest.citation.split("; ")[0]
    fields = {"type": "misc", "title": manifest.title}
    match = _YEAR.match(first)
    if match:
        rest = re.sub(r"\s*doi:\s*\S+", "", match["rest"]).strip()
        title, _, where = rest.partition(". ")
        fields.update(author=_authors(match["authors"]), year=match["year"], title=title.rstrip("."))
        if where.strip():
            fields["howpublished"] = where.strip().rstrip(".")
    if manifest.doi:
        fields["doi"] = manifest.doi
    if manifest.homepage:
        fields["url"] = manifest.homepage
    others = manifest.citation.split("; ")[1:]
    note = f"Dataset {manifest.id} of this book: {manifest.title}."
    if not match:
        note += f" Citation: {manifest.citation}"
    elif others:
        note += " Also cite: " + "; ".join(others)
    fields["note"] = note
    return fields


def bibtex(references: dict[str, dict]) -> str:
    """BibTeX text of ``{key: {type, field: value, ...}}``, keys in the given order."""
    entries = []
    for key, fields in references.items():
        kind = fields.get("type", "misc")
        body = ",\n".join(
            f"  {field} = {{{_bibtex_text(value)}}}" for field, value in fields.items() if field != "type"
        )
        entries.append(f"@{kind}{{{key},\n{body}\n}}")
    return (
        "% Generated by vcclib.pipeline.book.write_bibliography from data_manifests/ and book/methods.yaml:\n"
        "% edit those, not this file.\n\n" + "\n\n".join(entries) + "\n"
    )


def references() -> dict[str, dict]:
    """Every reference of the book: the methods list (``book/methods.yaml``), then one entry per dataset manifest."""
    from vcclib.data.manifest import all_manifests

    methods = yaml.safe_load((config.project_root() / METHODS).read_text()) or {}
    datasets = {m.id: manifest_reference(m) for m in sorted(all_manifests().values(), key=lambda m: m.id)}
    clash = sorted(set(methods) & set(datasets))
    if clash:
        raise BookBuildError(f"{METHODS}: keys {clash} are dataset ids; rename them")
    return {**methods, **datasets}


def write_bibliography(path: str | Path | None = None) -> Path:
    """Write ``book/references.bib`` (or ``path``) from the manifests and the methods list; returns the path."""
    path = Path(path) if path else config.project_root() / BIBLIOGRAPHY
    text = bibtex(references())
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path
