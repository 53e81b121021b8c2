"""``vcc run NOTEBOOK [-p NAME VALUE]... [-f params.yaml]``: execute a chapter into a new run folder."""

from __future__ import annotations

import argparse
import sys
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
    parser.add_argument("--runs-dir", help="where run folders go (default: runs/ in the project)")
    parser.add_argument("--list-parameters", action="store_true", help="print the notebook's parameters and exit")
    parser.set_defaults(func=run)


def resolve_notebook(name: str) -> Path:
    """A notebook path from a path or a chapter name."""
    from vcclib import config

    path = Path(name)
    if path.is_file():
        return path
    candidate = config.project_root() / "notebooks" / f"{Path(name).stem}.ipynb"
    if candidate.is_file():
        return candidate
    available = sorted(p.stem for p in (config.project_root() / "notebooks").glob("*.ipynb"))
    raise FileNotFoundError(f"no notebook {name!r}; chapters: {available}")


def run(args: argparse.Namespace) -> int:
    from vcclib.pipeline.notebooks import (
        NotebookRunError,
        ParameterError,
        load_parameter_file,
        read_parameters,
        run_notebook,
    )

    try:
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
    except (FileNotFoundError, ParameterError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except NotebookRunError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{notebook.stem}: ok in {record.seconds:.1f} s -> {record.run_dir}")
    return 0
