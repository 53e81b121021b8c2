"""Safe model files: a fitted model's state as JSON (labels, settings) plus one ``.npz`` of numeric arrays.

Nothing is pickled: :func:`pack` turns a nested state (dicts of arrays, DataFrames, Series, Indexes, numbers,
strings, None) into a JSON-able tree whose arrays are replaced by keys into a flat ``{key: ndarray}`` table, and
:func:`unpack` rebuilds it. Arrays are written with :func:`numpy.savez` and read with
``numpy.load(allow_pickle=False)``, so an object array (the only way to smuggle code into an ``.npz``) is refused
on writing and on reading. Labels (gene names, perturbations, covariates) are stored in the JSON, so they come
back as the same Python strings and numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vcclib.errors import VccError

FORMAT = "vcclib-model"
VERSION = 1
STATE_FILE = "model.json"
ARRAYS_FILE = "arrays.npz"


class ModelFileError(VccError):
    """A model directory that is missing, incomplete, of another format, or would be overwritten."""


def _label(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [_label(v) for v in value]
    return value


def _index(index: pd.Index) -> dict[str, Any]:
    if isinstance(index, pd.MultiIndex):
        return {
            "levels": [[_label(v) for v in index.get_level_values(i)] for i in range(index.nlevels)],
            "names": list(index.names),
        }
    return {"labels": [_label(v) for v in index], "name": index.name}


def _unindex(node: dict[str, Any]) -> pd.Index:
    if "levels" in node:
        return pd.MultiIndex.from_arrays(node["levels"], names=node["names"])
    return pd.Index(node["labels"], name=node["name"], dtype=object if not node["labels"] else None)


def _array(value: np.ndarray, arrays: dict[str, np.ndarray]) -> str:
    value = np.asarray(value)
    if value.dtype.hasobject:
        raise TypeError("object arrays cannot be stored safely; convert them to labels or numbers")
    key = f"a{len(arrays)}"
    arrays[key] = value
    return key


def pack(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """``value`` as a JSON-able tree; numeric arrays are moved into ``arrays`` (key → ndarray)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float | np.generic):
        number = _label(value)
        if isinstance(number, float) and not np.isfinite(number):
            return {"__float__": repr(number)}
        return number
    if isinstance(value, np.ndarray):
        return {"__array__": _array(value, arrays)}
    if isinstance(value, pd.DataFrame):
        return {
            "__frame__": _array(value.to_numpy(), arrays),
            "index": _index(value.index),
            "columns": _index(value.columns),
        }
    if isinstance(value, pd.Series):
        return {"__series__": _array(value.to_numpy(), arrays), "index": _index(value.index), "name": value.name}
    if isinstance(value, pd.Index):
        return {"__index__": _index(value)}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return {"__items__": [[pack(k, arrays), pack(v, arrays)] for k, v in value.items()]}
        return {"__dict__": {k: pack(v, arrays) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"__list__": [pack(v, arrays) for v in value], "tuple": isinstance(value, tuple)}
    raise TypeError(f"cannot store a {type(value).__name__} safely")


def unpack(node: Any, arrays: dict[str, np.ndarray]) -> Any:
    """The value :func:`pack` stored as ``node``."""
    if not isinstance(node, dict):
        return node
    if "__float__" in node:
        return float(node["__float__"])
    if "__array__" in node:
        return arrays[node["__array__"]]
    if "__frame__" in node:
        return pd.DataFrame(arrays[node["__frame__"]], index=_unindex(node["index"]), columns=_unindex(node["columns"]))
    if "__series__" in node:
        return pd.Series(arrays[node["__series__"]], index=_unindex(node["index"]), name=node["name"])
    if "__index__" in node:
        return _unindex(node["__index__"])
    if "__dict__" in node:
        return {k: unpack(v, arrays) for k, v in node["__dict__"].items()}
    if "__items__" in node:
        return {_key(unpack(k, arrays)): unpack(v, arrays) for k, v in node["__items__"]}
    if "__list__" in node:
        items = [unpack(v, arrays) for v in node["__list__"]]
        return tuple(items) if node["tuple"] else items
    raise ModelFileError(f"unknown node in a model file: {sorted(node)}")


def _key(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def write(directory: str | Path, header: dict[str, Any], state: dict[str, Any]) -> Path:
    """Write ``header`` (JSON-able) and ``state`` (see :func:`pack`) into a new model directory."""
    directory = Path(directory)
    if (directory / STATE_FILE).exists():
        raise ModelFileError(f"{directory} already holds a model; choose a new directory")
    arrays: dict[str, np.ndarray] = {}
    tree = pack(state, arrays)
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(directory / ARRAYS_FILE, **arrays)
    document = {"format": FORMAT, "version": VERSION, **header, "state": tree}
    (directory / STATE_FILE).write_text(json.dumps(document, indent=1, allow_nan=False))
    return directory


def read(directory: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and the state of a model directory written by :func:`write`."""
    directory = Path(directory)
    path = directory / STATE_FILE
    if not path.is_file():
        raise ModelFileError(f"{directory} holds no model ({STATE_FILE} missing); train one with `vcc train`")
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ModelFileError(f"{path} is not valid JSON: {error}") from None
    if document.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a vcclib model file")
    if document.get("version") != VERSION:
        raise ModelFileError(f"{path} has format version {document.get('version')}; this vcclib reads {VERSION}")
    try:
        with np.load(directory / ARRAYS_FILE, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise ModelFileError(f"{directory} lacks {ARRAYS_FILE}") from None
    except ValueError as error:  # an object array: refused without unpickling
        raise ModelFileError(f"{directory / ARRAYS_FILE} holds data that cannot be read safely ({error})") from None
    state = unpack(document.pop("state"), arrays)
    return document, state
