"""``vcc run NOTEBOOK [-p NAME VALUE]... [-f params.yaml] [-o DIR]``: execute a chapter into a new run folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    """Add ``vcc run``."""
    parser = subparsers.add_parser(
        "run",
        help="execute a notebook with papermill into a new run folder",
        description="Execute a notebook with its parameters into runs/<notebook>/<run id>/ (never overwriting).",
    )
    parser.add_argument("notebook", help="a notebook path, or a chapter name in notebooks/ (e.g. data_catalog)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    parser.add_argument("-f", "--parameters-file", action="append", default=[], help="YAML file of parameters")
    parser.add_argument(
        "-o",
        "--output",
        "--runs-dir",
        dest="runs_dir",
        metavar="DIR",
        help="where run folders go (default: VCC_RUNS_DIR or runs/ in the project)",
    )
    parser.add_argument("--list-parameters", action="store_true", help="print the notebook's parameters and exit")
    parser.set_defaults(func=run)


def resolve_notebook(name: str) -> Path:
    """Find the notebook named by a path or by a chapter name in ``notebooks/``.

    Raises
    ------
    PathNotFoundError
        For a path (``*.ipynb`` or with a folder) that does not exist.
    UnknownNameError
        For a chapter name that is not in ``notebooks/``, listing the chapters.
    """
    from vcclib import config
    from vcclib.errors import PathNotFoundError, UnknownNameError

    path = Path(name)
    if path.is_file():
        return path
    if path.suffix == ".ipynb" or len(path.parts) > 1:
        raise PathNotFoundError(f"no notebook at {name}")
    folder = config.project_root() / "notebooks"
    candidate = folder / f"{path.stem}.ipynb"
    if candidate.is_file():
        return candidate
    available = ", ".join(sorted(p.stem for p in folder.glob("*.ipynb")))
    raise UnknownNameError(f"no chapter {name!r}; chapters: {available}")


def run(args: argparse.Namespace) -> int:
    """Run one notebook (or list its parameters); errors are reported by :func:`vcclib.cli.main`."""
    from vcclib.pipeline.notebooks import load_parameter_file, read_parameters, run_notebook

    notebook = resolve_notebook(args.notebook)
    if args.list_parameters:
        for name, default in read_parameters(notebook).items():
            print(f"{name} = {default!r}  ({type(default).__name__})")
        return 0
    parameters: dict = {}
    for path in args.parameters_file:
        parameters.update(load_parameter_file(path))
    parameters.update(dict(args.parameter))
    record = run_notebook(notebook, parameters, runs_root=args.runs_dir)
    print(f"{notebook.stem}: ok in {record.seconds:.1f} s -> {record.run_dir}")
    return 0
