"""Notebook pipeline: source notebooks, `vcc run` (parameters, run folders, failures), chapter smoke runs."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from conftest import PROJECT, run_vcc

from vcclib.pipeline.book import book_chapters, toc_files
from vcclib.pipeline.notebooks import SHARED_PARAMETERS, has_outputs, parameters_cell, read_parameters

NOTEBOOKS = sorted((PROJECT / "notebooks").glob("*.ipynb"))


def _write_notebook(path: Path, body: str) -> Path:
    notebook = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell('label = "hello"\nrepeat = 2\nscale = 1.5\noutput_dir = ""')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [nbformat.v4.new_markdown_cell("# Tiny"), parameters, nbformat.v4.new_code_cell(body)]
    nbformat.write(notebook, path)
    return path


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_source_notebooks_have_no_outputs_and_a_parameters_cell(notebook):
    assert not has_outputs(notebook), f"{notebook.name} carries outputs: strip them before committing"
    nb = nbformat.read(notebook, as_version=4)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert first_code is parameters_cell(nb), "the first code cell must be the one tagged 'parameters'"
    assert set(SHARED_PARAMETERS) <= set(read_parameters(notebook))


def test_every_chapter_in_the_toc_has_a_notebook_and_every_page_exists():
    for chapter in book_chapters():
        assert (PROJECT / "notebooks" / f"{chapter}.ipynb").is_file(), chapter
    for entry in toc_files():
        if not entry.startswith("book/chapters/"):
            assert (PROJECT / f"{entry}.md").is_file() or (PROJECT / f"{entry}.ipynb").is_file(), entry


def test_unknown_parameter_and_wrong_type_are_refused_before_running(isolated_env, tmp_path):
    notebook = _write_notebook(tmp_path / "tiny.ipynb", "raise SystemExit('must not run')")
    unknown = run_vcc(["run", str(notebook), "-p", "colour", "red"], isolated_env)
    assert unknown.returncode == 2 and "unknown parameter(s) ['colour']" in unknown.stderr
    assert "label" in unknown.stderr  # lists the parameters the notebook takes
    wrong = run_vcc(["run", str(notebook), "-p", "repeat", "many"], isolated_env)
    assert wrong.returncode == 2 and "'repeat' expects int" in wrong.stderr
    assert not (tmp_path / "runs").exists()


def test_a_missing_path_parameter_is_refused_before_the_kernel_starts(isolated_env, tmp_path):
    notebook = _write_notebook(tmp_path / "tiny.ipynb", "raise SystemExit('must not run')")
    cell = nbformat.read(notebook, as_version=4)
    cell.cells[1].source += "\nh5ad_path = ''"
    nbformat.write(cell, notebook)
    completed = run_vcc(["run", str(notebook), "-p", "h5ad_path", "/missing.h5ad"], isolated_env)
    assert completed.returncode == 2
    assert completed.stderr.strip() == (
        "vcc: error: parameter 'h5ad_path': no file or folder at /missing.h5ad (looked for /missing.h5ad)"
    )
    assert not (tmp_path / "runs").exists()  # nothing ran, no run folder
    chapter = run_vcc(["run", "data_catalog", "-p", "h5ad_path", "missing.h5ad"], isolated_env)
    assert chapter.returncode == 2 and "parameter 'h5ad_path': no file or folder at missing.h5ad" in chapter.stderr


def test_relative_paths_are_resolved_against_the_callers_folder(tmp_path):
    from vcclib.pipeline.notebooks import check_paths

    (tmp_path / "my.h5ad").write_bytes(b"")
    checked = check_paths({"h5ad_path": "my.h5ad", "seed": 0, "other_path": ""}, base=tmp_path)
    assert checked == {"h5ad_path": str(tmp_path / "my.h5ad"), "seed": 0, "other_path": ""}


def test_two_runs_land_in_two_folders_with_their_parameters(isolated_env, tmp_path):
    body = (
        "from vcclib.results import Results\nimport pandas as pd\n"
        "r = Results(output_dir, chapter='tiny')\n"
        "r.table('echo', pd.DataFrame({'label': [label] * repeat, 'scale': [scale] * repeat}))"
    )
    notebook = _write_notebook(tmp_path / "tiny.ipynb", body)
    params = tmp_path / "p.yaml"
    params.write_text("label: from-file\nscale: 3\n")
    first = run_vcc(["run", str(notebook), "-p", "repeat", "3"], isolated_env)
    second = run_vcc(["run", str(notebook), "-f", str(params)], isolated_env)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    runs = sorted((tmp_path / "runs" / "tiny").iterdir())
    assert len(runs) == 2
    tables = [(run / "tables" / "echo.csv").read_text().splitlines() for run in runs]
    contents = sorted(tables, key=len)
    assert contents[0] == ["label,scale", "from-file,3.0", "from-file,3.0"]
    assert contents[1] == ["label,scale", "hello,1.5", "hello,1.5", "hello,1.5"]
    for run in runs:
        assert (run / "tiny.ipynb").is_file() and (run / "parameters.yaml").is_file()
        assert json.loads((run / "run.json").read_text())["status"] == "ok"


def test_a_failing_notebook_exits_nonzero_keeps_partial_notebook_and_shows_the_error(isolated_env, tmp_path):
    notebook = _write_notebook(tmp_path / "broken.ipynb", "x = 1\nraise ValueError('the control label is missing')")
    completed = run_vcc(["run", str(notebook)], isolated_env)
    assert completed.returncode == 1
    assert "ValueError: the control label is missing" in completed.stderr
    assert "raise ValueError" in completed.stderr  # the failing cell's source
    (run,) = (tmp_path / "runs" / "broken").iterdir()
    record = json.loads((run / "run.json").read_text())
    # code cells of the executed notebook: parameters, papermill's injected parameters, then the failing cell
    assert record["status"] == "failed" and record["failed_cell"] == 3
    assert (run / "broken.ipynb").is_file()


@pytest.mark.mirror
@pytest.mark.parametrize("chapter", book_chapters())
def test_chapter_smoke_run(chapter, isolated_env, tmp_path):
    params = PROJECT / "notebooks" / "params" / f"{chapter}.smoke.yaml"
    args = ["run", chapter] + (["-f", str(params)] if params.exists() else [])
    completed = run_vcc(args, isolated_env, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    (run,) = (tmp_path / "runs" / chapter).iterdir()
    index = json.loads((run / "index.json").read_text())
    assert index["tables"], "a chapter writes its numbers as tables"
    for entry in index["figures"].values():
        assert (run / entry["path"]).stat().st_size > 1000
