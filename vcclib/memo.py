"""Derived tables kept on disk between chapter runs, keyed by everything that determines them.

A chapter's expensive, deterministic steps (resampled p-values, network inference, every baseline on a task) give
the same tables whenever their inputs, settings, code and libraries are the same. :func:`memo` computes such a
step once and keeps its result under ``<cache>/memo/<name>/<key>/``; the key is a sha256 of

* the inputs: AnnData content (:func:`adata_token`: X, obs, var names, obsm, uns) or any other token the caller
  passes, and the settings (JSON);
* the source of the code that computes the step (:func:`code_token`: every ``.py`` file of the whole ``vcclib``
  package, plus the named modules or packages when they live outside it), so any edit to the library recomputes
  (a narrower key would reuse a result after an edit to a helper the step calls indirectly);
* the versions of the numerical libraries (:data:`LIBRARIES`).

Results are stored without pickles: DataFrames as parquet (``attrs`` included), tuples, lists and dicts of them,
and JSON values. ``VCC_NO_MEMO=1`` switches the store off (everything is recomputed, nothing written).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from functools import lru_cache
from importlib import metadata, util
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vcclib import config

#: distributions whose versions enter every key
LIBRARIES = (
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "anndata",
    "scanpy",
    "pertpy",
    "arboreto",
    "regdiffusion",
    "torch",
    "statsmodels",
    "numba",
    "sentence-transformers",
    "transformers",
)
ENV_OFF = "VCC_NO_MEMO"


def enabled() -> bool:
    """False when ``VCC_NO_MEMO`` is set to a true value."""
    return os.environ.get(ENV_OFF, "").strip().lower() not in ("1", "true", "yes")


def memo_dir() -> Path:
    """Root of the store: ``<cache>/memo``."""
    return config.cache_dir() / "memo"


@lru_cache(maxsize=1)
def library_versions() -> tuple[tuple[str, str], ...]:
    """Installed versions of :data:`LIBRARIES` (missing ones as ``-``)."""
    out = []
    for name in LIBRARIES:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            out.append((name, "-"))
    return tuple(out)


@lru_cache(maxsize=64)
def code_token(modules: tuple[str, ...]) -> str:
    """sha256 of the source of the named modules (a package: every ``.py`` file below it)."""
    digest = hashlib.sha256()
    for module in sorted(modules):
        spec = util.find_spec(module)
        if spec is None or spec.origin is None:
            raise ValueError(f"no module {module!r}")
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        for path in files:
            digest.update(f"{module}:{path.relative_to(origin.parent)}".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _update_with(digest, value) -> None:
    """Feed a value (arrays, sparse matrices, frames, containers, scalars) into a hash, content not identity."""
    import scipy.sparse as sp

    if sp.issparse(value):
        value = value.tocsr()
        digest.update(f"csr{value.shape}{value.dtype}".encode())
        for part in (value.data, value.indices, value.indptr):
            digest.update(np.ascontiguousarray(part).tobytes())
    elif isinstance(value, np.ndarray):
        digest.update(f"nd{value.shape}{value.dtype}".encode())
        if value.dtype.hasobject:
            digest.update(pd.util.hash_array(value.ravel().astype(str)).tobytes())
        else:
            digest.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (pd.DataFrame, pd.Series)):
        names = value.columns if isinstance(value, pd.DataFrame) else [value.name]
        digest.update(f"pd{value.shape}{list(map(str, names))}".encode())
        digest.update(pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes())
    elif isinstance(value, pd.Index):
        digest.update(pd.util.hash_array(value.astype(str).to_numpy()).tobytes())
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            digest.update(f"k{key}".encode())
            _update_with(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"l{len(value)}".encode())
        for item in value:
            _update_with(digest, item)
    else:
        digest.update(repr(value).encode())


def adata_token(adata) -> str:
    """sha256 of an AnnData's content: X, obs, var names, obsm and uns."""
    digest = hashlib.sha256()
    _update_with(digest, adata.X)
    _update_with(digest, adata.obs)
    _update_with(digest, adata.var_names)
    _update_with(digest, {key: adata.obsm[key] for key in adata.obsm})
    _update_with(digest, dict(adata.uns))
    return digest.hexdigest()


def token(value) -> str:
    """sha256 of any value :func:`memo` keys accept (an AnnData is hashed with :func:`adata_token`)."""
    from anndata import AnnData

    if isinstance(value, AnnData):
        return adata_token(value)
    digest = hashlib.sha256()
    _update_with(digest, value)
    return digest.hexdigest()


def key_of(name: str, inputs: dict[str, Any], code: Sequence[str]) -> str:
    """The store key of step ``name`` with ``inputs`` (tokens and settings) computed by modules ``code``."""
    digest = hashlib.sha256(name.encode())
    _update_with(digest, inputs)
    digest.update(code_token(tuple(sorted({"vcclib", *code}))).encode())
    digest.update(repr(library_versions()).encode())
    return digest.hexdigest()[:24]


# --- storage without pickles ----------------------------------------------------------------------------------
def _write(value, folder: Path, counter: list[int]):
    if isinstance(value, pd.DataFrame):
        counter[0] += 1
        name = f"{counter[0]}.parquet"
        if not all(isinstance(c, str) for c in value.columns):
            raise TypeError("memo stores frames with string column names only")
        value.to_parquet(folder / name)
        return {"frame": name}
    if isinstance(value, tuple):
        return {"tuple": [_write(v, folder, counter) for v in value]}
    if isinstance(value, list) and any(isinstance(v, pd.DataFrame) for v in value):
        return {"list": [_write(v, folder, counter) for v in value]}
    if isinstance(value, dict) and any(isinstance(v, (pd.DataFrame, tuple, dict)) for v in value.values()):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("memo stores dicts with string keys only")
        return {"dict": {k: _write(v, folder, counter) for k, v in value.items()}}
    json.dumps(value)  # raises TypeError for what JSON cannot hold
    return {"json": value}


def _read(entry, folder: Path):
    if "frame" in entry:
        return pd.read_parquet(folder / entry["frame"])
    if "tuple" in entry:
        return tuple(_read(v, folder) for v in entry["tuple"])
    if "list" in entry:
        return [_read(v, folder) for v in entry["list"]]
    if "dict" in entry:
        return {k: _read(v, folder) for k, v in entry["dict"].items()}
    return entry["json"]


def stored(name: str, *, inputs: dict[str, Any], code: Sequence[str]) -> bool:
    """Whether :func:`memo` would read ``name`` with these inputs from the store (rather than compute it)."""
    return enabled() and (memo_dir() / name / key_of(name, inputs, code) / "index.json").is_file()


def memo(name: str, compute: Callable[[], Any], *, inputs: dict[str, Any], code: Sequence[str]) -> Any:
    """``compute()``, or its stored result when ``name`` ran before with the same inputs, code and libraries.

    Parameters
    ----------
    name
        The step (a folder name under the store), e.g. ``guides.highmoi_guide_table``.
    compute
        Computes the result: a DataFrame, a tuple/list/dict of them, or JSON values.
    inputs
        Everything the result depends on besides code and libraries: data tokens (:func:`token`) and settings.
    code
        Modules or packages whose source the result depends on.
    """
    if not enabled():
        return compute()
    folder = memo_dir() / name / key_of(name, inputs, code)
    index = folder / "index.json"
    if index.is_file():
        return _read(json.loads(index.read_text()), folder)
    value = compute()
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    try:
        entry = _write(value, staging, [0])
        (staging / "index.json").write_text(json.dumps(entry))
        try:
            staging.rename(folder)
        except OSError:  # another run stored it meanwhile: keep that one
            pass
    except (TypeError, ValueError, ImportError):
        return value  # a result the store cannot hold without pickles is simply not kept
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    # what was stored, read back: the first run hands on exactly what every later run will
    return _read(json.loads(index.read_text()), folder)


def memoised(name: str, code: Sequence[str]):
    """Decorator: :func:`memo` of a function keyed by its bound arguments (AnnData and frames by content).

    The function must be deterministic in its arguments (seeded) and return what :func:`memo` stores.
    """
    import functools
    import inspect

    def wrap(func):
        signature = inspect.signature(func)

        @functools.wraps(func)
        def inner(*args, **kwargs):
            if not enabled():
                return func(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            inputs = {key: token(value) for key, value in bound.arguments.items()}
            return memo(name, lambda: func(*args, **kwargs), inputs=inputs, code=code)

        return inner

    return wrap


def data_token() -> str:
    """sha256 of every dataset manifest's loader and files (name, size, sha256) and of the loaders' source.

    For steps that load registered datasets themselves: any change to a dataset's files or to a loader changes it.
    """
    from vcclib.data.manifest import all_manifests

    digest = hashlib.sha256(code_token(("vcclib.data",)).encode())
    for dataset_id, manifest in sorted(all_manifests().items()):
        digest.update(f"{dataset_id}:{manifest.loader}".encode())
        for data_file in manifest.files:
            digest.update(f"{data_file.name}:{data_file.size}:{data_file.sha256}".encode())
    return digest.hexdigest()
