"""Execute a chapter notebook with papermill into a run folder of its own.

A run folder ``runs/<notebook>/<run id>/`` holds the executed notebook, ``parameters.yaml`` (what was used),
``run.json`` (status, timings, the failing cell if any) and whatever the notebook wrote through
:class:`vcclib.results.Results` (tables, records, figures). A run never overwrites an earlier one.
"""

from __future__ import annotations

import ast
import json
import os
import secrets
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat
import yaml

from vcclib import config
from vcclib.errors import PathNotFoundError, VccError

KERNEL_NAME = "vcc"
SHARED_PARAMETERS = (
    "dataset",
    "h5ad_path",
    "perturbation_column",
    "control_label",
    "seed",
    "device",
    "output_dir",
)


class ParameterError(VccError, ValueError):
    """A parameter is unknown to the notebook, or its value has the wrong type."""


class NotebookRunError(VccError, RuntimeError):
    """A notebook raised; carries the run record with the failing cell."""

    exit_code = 1  # a failed run, not bad input

    def __init__(self, message: str, record: RunRecord):
        super().__init__(message)
        self.record = record


@dataclass
class RunRecord:
    """What a run did: where, with which parameters, how long, and how it ended."""

    notebook: str
    run_dir: str
    executed_notebook: str
    parameters: dict
    status: str = "running"
    started: str = ""
    seconds: float = 0.0
    failed_cell: int | None = None
    failed_source: str = ""
    error: str = ""
    kernel: str = KERNEL_NAME
    extra: dict = field(default_factory=dict)


def parameters_cell(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The code cell tagged ``parameters`` (the first one)."""
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell
    raise ParameterError("the notebook has no code cell tagged 'parameters'")


def read_parameters(notebook_path: str | Path) -> dict[str, Any]:
    """The notebook's declared parameters and their defaults, read from its ``parameters`` cell.

    Only simple assignments of literals (``name = 3``, ``name = "x"``) count as parameters.
    """
    notebook = nbformat.read(notebook_path, as_version=4)
    tree = ast.parse(parameters_cell(notebook).source)
    declared: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            declared[node.targets[0].id] = ast.literal_eval(node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            declared[node.target.id] = ast.literal_eval(node.value)
    return declared


def _coerce(name: str, value: Any, default: Any) -> Any:
    expected = type(default)
    if default is None or isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if expected is bool:
                lowered = text.lower()
                if lowered in ("true", "yes", "1"):
                    return True
                if lowered in ("false", "no", "0"):
                    return False
                raise ValueError
            if expected is int:
                return int(text)
            if expected is float:
                return float(text)
            if expected in (list, dict):
                parsed = yaml.safe_load(text)
                if isinstance(parsed, expected):
                    return parsed
                raise ValueError
        except ValueError:
            pass
    elif expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise ParameterError(
        f"parameter {name!r} expects {expected.__name__} (default {default!r}); got {value!r} ({type(value).__name__})"
    )


def validate_parameters(declared: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """Check given parameters against the declared ones and convert command-line strings to their types.

    Raises
    ------
    ParameterError
        For an unknown name (listing the known ones) or a value of the wrong type.
    """
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {unknown}; this notebook takes: {sorted(declared)}")
    return {name: _coerce(name, value, declared[name]) for name, value in given.items()}


def check_paths(values: dict[str, Any], base: str | Path | None = None) -> dict[str, Any]:
    """Check every given ``*_path`` parameter names an existing file or folder; make it absolute.

    A notebook runs with its run folder as working directory, so a relative path is resolved against ``base``
    (the caller's working directory) first.

    Raises
    ------
    PathNotFoundError
        For the first given path that does not exist, before anything runs.
    """
    checked = dict(values)
    base = Path(base) if base is not None else Path.cwd()
    for name, value in values.items():
        if not name.endswith("_path") or not isinstance(value, str | Path) or not str(value):
            continue
        path = (base / Path(value).expanduser()).resolve()
        if not path.exists():
            raise PathNotFoundError(f"parameter {name!r}: no file or folder at {value} (looked for {path})")
        checked[name] = str(path)
    return checked


def contain_tool_state() -> dict[str, str]:
    """Point the tools' own state folders (Jupyter, IPython, matplotlib, lamindb, numba) into the cache.

    Sets each environment variable of :func:`vcclib.config.tool_state_dirs` only when it is unset, so a user's
    explicit choice wins, and creates the folder. Called by the notebook runner and the book builder so that
    nothing is written to the home directory.

    Returns
    -------
    dict
        The variables this call set.
    """
    changed = {}
    for name, path in config.tool_state_dirs().items():
        if not os.environ.get(name):
            path.mkdir(parents=True, exist_ok=True)
            os.environ[name] = str(path)
            changed[name] = str(path)
    return changed


def ensure_kernel() -> str:
    """Install the project's kernelspec (``vcc``: this environment's Python) inside the environment."""
    from jupyter_client.kernelspec import KernelSpecManager

    manager = KernelSpecManager()
    specs = manager.get_all_specs()
    if KERNEL_NAME in specs and Path(specs[KERNEL_NAME]["spec"]["argv"][0]).resolve() == Path(sys.executable).resolve():
        return KERNEL_NAME
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name="Python (vcc)", prefix=sys.prefix)
    return KERNEL_NAME


def new_run_dir(notebook_name: str, runs_root: Path | None = None, label: str = "") -> Path:
    """Create and return a fresh ``<runs>/<notebook>/<UTC time>-<random>`` folder (never an existing one)."""
    root = Path(runs_root) if runs_root else config.runs_dir()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for _ in range(20):
        run_id = f"{stamp}-{label + '-' if label else ''}{secrets.token_hex(3)}"
        path = root / notebook_name / run_id
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder under {root / notebook_name}")


def _first_error(notebook_path: Path) -> tuple[int | None, str, str]:
    notebook = nbformat.read(notebook_path, as_version=4)
    code_index = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        code_index += 1
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                message = f"{output.get('ename')}: {output.get('evalue')}"
                return code_index, cell.source, message
    return None, "", ""


def error_outputs(notebook_path: str | Path) -> list[str]:
    """Every error output in an executed notebook, as ``'cell N: Name: message'``."""
    notebook = nbformat.read(notebook_path, as_version=4)
    found = []
    for index, cell in enumerate(c for c in notebook.cells if c.cell_type == "code"):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append(f"cell {index + 1}: {output.get('ename')}: {output.get('evalue')}")
    return found


def run_notebook(
    notebook_path: str | Path,
    parameters: dict[str, Any] | None = None,
    *,
    runs_root: str | Path | None = None,
    run_dir: str | Path | None = None,
    label: str = "",
    progress: bool = True,
    timeout: int | None = None,
) -> RunRecord:
    """Execute a notebook with papermill into a new run folder.

    Parameters
    ----------
    notebook_path
        The source notebook (outputs stripped).
    parameters
        Values for the notebook's parameters; validated first (unknown names, wrong types and ``*_path`` values
        that do not exist are refused before anything runs; relative paths are made absolute). ``output_dir``
        defaults to the run folder.
    runs_root
        Where run folders go (default ``runs/`` in the project, or ``VCC_RUNS_DIR``).
    run_dir
        An explicit, not yet existing folder for this run.
    timeout
        Seconds a single cell may take (None: no limit).

    Returns
    -------
    RunRecord
        With ``status == "ok"``.

    Raises
    ------
    ParameterError
        Before anything runs.
    PathNotFoundError
        Before anything runs, for a given ``*_path`` parameter that does not exist.
    NotebookRunError
        When a cell raised; the partial notebook and ``run.json`` are kept in the run folder.
    """
    import papermill

    notebook_path = Path(notebook_path)
    if not notebook_path.is_file():
        raise PathNotFoundError(f"no notebook at {notebook_path}")
    declared = read_parameters(notebook_path)
    values = check_paths(validate_parameters(declared, dict(parameters or {})))
    contain_tool_state()
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # the kernel's debugger warns about frozen modules
    name = notebook_path.stem
    if run_dir is not None:
        target = Path(run_dir)
        target.mkdir(parents=True, exist_ok=False)
    else:
        target = new_run_dir(name, Path(runs_root) if runs_root else None, label)
    if "output_dir" in declared and not values.get("output_dir"):
        values["output_dir"] = str(target.resolve())
    executed = target / f"{name}.ipynb"
    record = RunRecord(
        notebook=str(notebook_path),
        run_dir=str(target),
        executed_notebook=str(executed),
        parameters=values,
        started=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    (target / "parameters.yaml").write_text(yaml.safe_dump({**declared, **values}, sort_keys=False))
    kernel = ensure_kernel()
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(notebook_path),
            str(executed),
            parameters=values,
            kernel_name=kernel,
            language="python",
            cwd=str(target),
            progress_bar=progress,
            execution_timeout=timeout,
            report_mode=False,
        )
        record.status = "ok"
    except papermill.PapermillExecutionError as error:
        record.status = "failed"
        record.failed_cell, record.failed_source, record.error = _first_error(executed)
        if not record.error:
            record.error = f"{error.ename}: {error.evalue}"
    finally:
        record.seconds = round(time.perf_counter() - start, 2)
        (target / "run.json").write_text(json.dumps(asdict(record), indent=2, default=str))
    if record.status != "ok":
        raise NotebookRunError(
            f"{name} failed in code cell {record.failed_cell}: {record.error}\n--- failing cell ---\n"
            f"{record.failed_source}\n--- partial notebook: {executed}",
            record,
        )
    return record


def strip_outputs(notebook_path: str | Path) -> bool:
    """Remove outputs and execution counts from a source notebook in place; True when it changed."""
    notebook = nbformat.read(notebook_path, as_version=4)
    changed = False
    for cell in notebook.cells:
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            cell.outputs, cell.execution_count = [], None
            changed = True
    if changed:
        nbformat.write(notebook, notebook_path)
    return changed


def has_outputs(notebook_path: str | Path) -> bool:
    """True when any code cell of the notebook carries outputs or an execution count."""
    notebook = nbformat.read(notebook_path, as_version=4)
    return any(c.cell_type == "code" and (c.outputs or c.execution_count is not None) for c in notebook.cells)


def load_parameter_file(path: str | Path) -> dict[str, Any]:
    """Parameters from a YAML file (an empty file means no parameters)."""
    path = Path(path)
    if not path.is_file():
        raise PathNotFoundError(f"no parameters file at {path}")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ParameterError(f"{path} is not valid YAML: {' '.join(str(error).split())}") from error
    if not isinstance(loaded, dict):
        raise ParameterError(f"{path}: a parameters file holds a mapping of name: value")
    return loaded


def _check_no_outputs(paths: list[str]) -> int:
    """Exit status for the pre-commit hook: 1 (naming them) when any of the notebooks carries outputs."""
    dirty = [path for path in paths if has_outputs(path)]
    for path in dirty:
        print(f"{path}: carries outputs; strip them with vcclib.pipeline.notebooks.strip_outputs", file=sys.stderr)
    return 1 if dirty else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--check-no-outputs"]:
        sys.exit(_check_no_outputs(sys.argv[2:]))
    sys.exit("usage: python -m vcclib.pipeline.notebooks --check-no-outputs NOTEBOOK...")
