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
import re
import shutil
import subprocess
import sys
import time
import zipfile
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


def run_chapters(
    chapters: list[str] | None = None, *, smoke: bool = False, progress: bool = True
) -> list[ChapterTiming]:
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
            record = run_notebook(
                notebook, chapter_parameters(name, smoke), run_dir=build_dir / name, progress=progress
            )
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
                print(
                    f"[book] {name}: {report['stderr_removed']} stderr output(s) removed, {report['warnings']} "
                    f"warning line(s) kept in {Path(record.run_dir) / 'warnings.log'}",
                    flush=True,
                )
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
    write_bibliography()
    render_start = time.perf_counter()
    html = render()
    render_seconds = time.perf_counter() - render_start
    print("\n[book] timings (2-core machine budget: 20 minutes for the whole book)")
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
