"""A minimal reader of the parts of an ``.h5ad`` file that evaluation reads: X, obs columns, names, uns['vcc'].

``import anndata`` pulls in zarr and dask.array (seconds of a command's start-up on a busy machine); h5py
reads the same bytes (X through :mod:`vcclib.h5read`, straight from the file's offsets). :func:`read_cells`
returns :class:`Cells`, which offers the AnnData attributes the metrics engine uses (``X``, ``obs``, ``var``,
``var_names``, ``obs_names``, ``uns``, ``n_obs``, ``n_vars``, row selection, ``copy``). A file using an
encoding this reader does not know (a CSC X, nullable or non-string obs columns other than numbers, ...) is
read with anndata instead, so nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from vcclib.h5read import StoredX, UnsupportedEncoding, read_x


class AnnDataLike:
    """The AnnData attributes evaluation reads besides X, from ``obs``, ``var`` and ``shape``.

    Shared by :class:`Cells` (X in memory) and :class:`vcclib.metrics.chunked.OnDiskCells` (X on disk).
    """

    obs: pd.DataFrame
    var: pd.DataFrame
    shape: tuple

    @property
    def var_names(self) -> pd.Index:
        return self.var.index

    @property
    def obs_names(self) -> pd.Index:
        return self.obs.index

    @property
    def n_obs(self) -> int:
        return int(self.shape[0])

    @property
    def n_vars(self) -> int:
        return int(self.shape[1])


@dataclass
class Cells(AnnDataLike):
    """Cells × genes matrix with obs/var tables: the subset of AnnData's interface evaluation uses."""

    X: object
    obs: pd.DataFrame
    var: pd.DataFrame
    uns: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple:
        return self.X.shape

    def __getitem__(self, rows):
        rows = np.asarray(rows)
        index = np.flatnonzero(rows) if rows.dtype == bool else rows
        return Cells(self.X[index], self.obs.iloc[index], self.var, self.uns)

    def copy(self) -> Cells:
        return Cells(self.X.copy(), self.obs.copy(), self.var.copy(), dict(self.uns))


def _text(values) -> np.ndarray:
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)


def _column(node) -> np.ndarray | pd.Categorical:
    import h5py

    kind = node.attrs.get("encoding-type", "")
    if isinstance(node, h5py.Group) and kind == "categorical":
        categories = _text(node["categories"][()])
        return pd.Categorical.from_codes(node["codes"][()], categories=categories)
    if isinstance(node, h5py.Dataset):
        values = node[()]
        return _text(values) if values.dtype.kind in "OSU" else values
    raise UnsupportedEncoding(f"obs column encoding {kind!r}")


def _frame(group, columns=None) -> pd.DataFrame:
    index_key = group.attrs.get("_index", "_index")
    index = pd.Index(_text(group[index_key][()]))
    names = [c for c in group.keys() if c != index_key and c != "__categories"]
    if columns is not None:
        names = [c for c in names if c in columns]
    return pd.DataFrame({c: _column(group[c]) for c in names}, index=index)


def _matrix(stored: StoredX):
    if stored.encoding == "array":
        return stored.arrays[0]
    X = sp.csr_matrix(stored.arrays, shape=stored.shape)
    if not X.has_canonical_format:  # the arrays are this reader's own: sorted in place, not copied
        X.sum_duplicates()
    return X


def read_head(f) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """obs, var (index only) and ``uns['vcc']`` of an open h5py file of an h5ad."""
    import h5py

    obs, var = _frame(f["obs"]), _frame(f["var"], columns=())
    uns = {}
    if "uns" in f and "vcc" in f["uns"]:
        uns["vcc"] = {
            k: (v[()].decode() if isinstance(v[()], bytes) else v[()])
            for k, v in f["uns"]["vcc"].items()
            if isinstance(v, h5py.Dataset)
        }
    return obs, var, uns


def read_cells(path, stored: StoredX | None = None) -> Cells:
    """X, obs, var and uns['vcc'] of an h5ad file (raises :class:`UnsupportedEncoding` for other encodings).

    ``stored``: the file's X as already read (by :func:`vcclib.h5read.read_ahead`); otherwise X is read here.
    """
    import h5py

    with h5py.File(path, "r") as f:
        X = _matrix(read_x(f["X"]) if stored is None else stored)
        obs, var, uns = read_head(f)
    return Cells(X, obs, var, uns)
