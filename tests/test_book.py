"""Preparing executed chapters for the book, and the one bibliography (no book build needed).

A tiny executed notebook stands in for a chapter (two code cells, one with a stderr output, one already tagged);
the bibliography is generated from the real manifests and ``book/methods.yaml`` and parsed by pybtex, the parser
sphinxcontrib-bibtex uses.
"""

from __future__ import annotations

import json
import re
import zipfile

import nbformat
import pandas as pd
import pytest
from conftest import PROJECT

from vcclib.data.manifest import all_manifests
from vcclib.pipeline.book import (
    BIBLIOGRAPHY,
    _authors,
    bibtex,
    fold_code,
    prepare_chapter,
    references,
    remove_stderr,
)
from vcclib.results import Results, figures_without_table


def _executed(tmp_path):
    nb = nbformat.v4.new_notebook()
    first = nbformat.v4.new_code_cell("print('x')")
    first.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="Warning: careful\nmore\n"),
        nbformat.v4.new_output("stream", name="stdout", text="x\n"),
    ]
    kept = nbformat.v4.new_code_cell("y = 1", metadata={"tags": ["remove-input"]})
    nb.cells = [nbformat.v4.new_markdown_cell("# Tiny"), first, kept]
    path = tmp_path / "run" / "tiny.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    return path


def test_fold_and_remove_stderr(tmp_path):
    nb = nbformat.read(_executed(tmp_path), as_version=4)
    assert fold_code(nb) == 1
    assert nb.cells[1].metadata["tags"] == ["hide-input"] and nb.cells[2].metadata["tags"] == ["remove-input"]
    assert remove_stderr(nb) == ["Warning: careful"]
    assert [o["name"] for o in nb.cells[1].outputs] == ["stdout"]


def test_prepare_chapter_links_notebook_and_tables(tmp_path):
    import pandas as pd

    executed = _executed(tmp_path)
    results = Results(executed.parent, chapter="tiny")
    results.table("scores", pd.DataFrame({"a": [1, 2]}), "two scores")
    results.record("summary", {"n": 2})
    (executed.parent / "warnings.log").write_text("w1\nw2\n")
    target = tmp_path / "book" / "tiny.ipynb"
    target.parent.mkdir()
    report = prepare_chapter(executed, executed.parent, target)
    assert report == {"folded": 1, "stderr_removed": 1, "stderr_lines": ["Warning: careful"], "warnings": 2}
    book = nbformat.read(target, as_version=4)
    downloads = book.cells[-1].source
    assert downloads.startswith("## Downloads") and "{download}`The executed notebook <tiny.ipynb>`" in downloads
    assert "{download}`scores.csv <downloads/tiny/tables/scores.csv>`: two scores" in downloads
    folder = tmp_path / "book" / "downloads" / "tiny"
    assert (folder / "tables" / "scores.csv").read_text().startswith("a\n1")
    with zipfile.ZipFile(folder / "tiny_results.zip") as archive:
        assert sorted(archive.namelist()) == ["tiny/records/summary.json", "tiny/tables/scores.csv"]


def test_a_figure_must_name_a_written_table(tmp_path):
    from matplotlib.figure import Figure

    results = Results(tmp_path / "run", chapter="tiny")
    fig = Figure()
    fig.subplots().plot([1, 2])
    with pytest.raises(ValueError, match="not written"):
        results.figure("line", fig, table="missing")
    results.figure("orphan", fig)
    assert figures_without_table(results.root) == ["orphan"]
    assert json.loads((results.root / "index.json").read_text())["figures"]["orphan"]["table"] is None


def test_author_parsing():
    assert _authors("Papalexi E, Mimitou EP, et al") == "Papalexi, E. and Mimitou, E. P. and others"
    assert _authors("Viñas Torné R, Brbić M") == "Viñas Torné, R. and Brbić, M."
    assert _authors("ENCODE Project Consortium") == "{ENCODE Project Consortium}"
    assert _authors("DepMap, Broad Institute") == "{DepMap, Broad Institute}"


def test_bibliography_holds_every_dataset_and_every_cited_key_and_is_up_to_date():
    import pybtex.database

    refs = references()
    assert set(all_manifests()) <= set(refs)
    text = bibtex(refs)
    database = pybtex.database.parse_string(text, "bibtex")
    assert set(database.entries) == set(refs)
    assert database.entries["papalexi2021_eccite_lowmoi"].fields["year"] == "2021"
    assert (PROJECT / BIBLIOGRAPHY).read_text() == text, "book/references.bib is stale: run write_bibliography()"
    cited = set()
    for path in [*(PROJECT / "notebooks").glob("*.ipynb"), *(PROJECT / "book").rglob("*.md")]:
        for keys in re.findall(r"\{cite(?::[pt])?\}`([^`]+)`", path.read_text()):
            cited |= {k.strip() for k in keys.split(",")}
    assert cited and cited <= set(refs), sorted(cited - set(refs))


def test_answer_first_moves_the_takeaways_cell_above_every_other_output():
    import nbformat

    from vcclib.pipeline.book import answer_first

    nb = nbformat.v4.new_notebook()
    box = {"text/markdown": ":::{admonition} Key takeaways\n:class: key-takeaways\n- a point\n:::"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output("stream", name="stdout", text="1")]),
        nbformat.v4.new_code_cell("show", outputs=[nbformat.v4.new_output("display_data", data=box)]),
    ]
    assert answer_first(nb)
    assert [c.source for c in nb.cells] == ["# Title", "show", "x"]
    assert not answer_first(nb)  # already first: nothing moves


def test_chapters_run_two_at_a_time_by_default_and_the_setting_is_checked(monkeypatch):
    from vcclib.pipeline.book import BookBuildError, default_jobs

    monkeypatch.delenv("VCC_BOOK_JOBS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert default_jobs() == 2
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert default_jobs() == 1
    monkeypatch.setenv("VCC_BOOK_JOBS", "3")
    assert default_jobs() == 3
    for bad in ("two", "0"):
        monkeypatch.setenv("VCC_BOOK_JOBS", bad)
        with pytest.raises(BookBuildError, match="VCC_BOOK_JOBS"):
            default_jobs()


def test_longest_chapters_are_known_from_the_newest_build_of_the_same_kind(tmp_path, monkeypatch):
    from vcclib.pipeline.book import CHAPTER_SECONDS, book_chapters, expected_seconds

    kept = pd.read_csv(PROJECT / CHAPTER_SECONDS)
    assert sorted(kept["chapter"]) == sorted(book_chapters()), "book/chapter_seconds.csv must list every chapter"
    monkeypatch.setenv("VCC_RUNS_DIR", str(tmp_path))
    assert expected_seconds(["grn"]) == {"grn": float(kept.set_index("chapter").loc["grn", "seconds"])}
    for build, seconds in (("20260101T000000Z-aaaaaa", 5.0), ("20260102T000000Z-bbbbbb", 7.0)):
        (tmp_path / "book" / build).mkdir(parents=True)
        pd.DataFrame({"chapter": ["grn"], "seconds": [seconds], "status": ["ok"]}).to_csv(
            tmp_path / "book" / build / "timings.csv", index=False
        )
    smoke = tmp_path / "book" / "20260103T000000Z-smoke-cccccc"
    smoke.mkdir()
    pd.DataFrame({"chapter": ["grn", "guides"], "seconds": [1.0, 2.0], "status": ["ok", "ok"]}).to_csv(
        smoke / "timings.csv", index=False
    )
    assert expected_seconds(["grn", "unknown"]) == {"grn": 7.0, "unknown": 0.0}
    assert expected_seconds(["grn", "guides"], smoke=True) == {"grn": 1.0, "guides": 2.0}


def test_parallel_chapters_share_the_cores_and_keep_the_users_thread_settings(monkeypatch):
    from vcclib.pipeline import book

    monkeypatch.setattr(book.os, "cpu_count", lambda: 2)
    assert book.threads_per_chapter(2) == 1 and book.threads_per_chapter(1) == 2 and book.threads_per_chapter(4) == 1
    for name in book.THREAD_VARIABLES:
        monkeypatch.setenv(name, "")  # unset for share_cores, and restored after the test
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's choice
    book.share_cores(1)
    assert book.os.environ["OMP_NUM_THREADS"] == "3"
    assert all(book.os.environ[name] == "1" for name in book.THREAD_VARIABLES if name != "OMP_NUM_THREADS")
