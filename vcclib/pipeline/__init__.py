"""Running parameterised notebooks (papermill) into run folders, and building the book (Jupyter Book)."""

from vcclib.pipeline.notebooks import (
    NotebookRunError,
    ParameterError,
    RunRecord,
    read_parameters,
    run_notebook,
    validate_parameters,
)

__all__ = [
    "NotebookRunError",
    "ParameterError",
    "RunRecord",
    "read_parameters",
    "run_notebook",
    "validate_parameters",
]
