"""A minimal reader of the parts of an ``.h5ad`` file that evaluation reads: X, obs columns, names, uns['vcc'].

``import anndata`` pulls in zarr and dask.array (seconds of a command's start-up on a busy machine); h5py
reads the same bytes. :func:`read_cells` returns :class:`Cells`, which offers the AnnData attributes the
metrics engine uses (``X``, ``obs``, ``var``, ``var_names``, ``obs_names``, ``uns``, ``n_obs``, ``n_vars``,
row selection, ``copy``). A file using an encoding this reader does not know (a CSC X, nullable or
non-string obs columns other than numbers, ...) is read with anndata instead, so nothing is lost.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp


class UnsupportedEncoding(Exception):
    """The file uses an encoding this reader does not read (the caller falls back to anndata)."""


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


def read_array(dataset) -> np.ndarray:
    """The whole of an h5py dataset as a numpy array, read straight from the file where HDF5 adds nothing.

    An unfiltered dataset (no compression, no checksum: how anndata writes by default) is stored as raw bytes,
    contiguous or in chunks at known file offsets. Those bytes are read with ``os.preadv`` into one array, one
    call per extent; HDF5's own path copies every chunk through its chunk cache first, which costs a command
    about 0.2 s per 140 MB array on the 2-core machine. Anything else (filters, a dense chunked matrix, a
    non-native byte order, unwritten chunks, a file not on the default driver) is read by h5py, so the result
    is the same array either way (tested against h5py).
    """
    extents = _raw_extents(dataset)
    if extents is None:
        return dataset[()]
    array = np.empty(dataset.shape, dataset.dtype)
    flat = array.reshape(-1).view(np.uint8)
    fd = os.open(dataset.file.filename, os.O_RDONLY)
    try:
        for start, stop, byte_offset in extents:
            part = flat[start : min(stop, flat.size)]
            if os.preadv(fd, [part], byte_offset) != part.size:
                return dataset[()]
    finally:
        os.close(fd)
    return array


def _raw_extents(dataset) -> list[tuple[int, int, int]] | None:
    """(first byte, end byte in the array, file offset) of every stored piece, or None where h5py must read."""
    dsid = dataset.id
    plain = dataset.dtype.isnative and dataset.dtype.kind in "biuf" and dataset.file.driver == "sec2"
    if not plain or dataset.size == 0 or dsid.get_create_plist().get_nfilters() != 0:
        return None
    offset = dsid.get_offset()  # a contiguous dataset's file offset; None when chunked or not allocated
    if offset is not None:
        return [(0, dataset.nbytes, offset)]
    if dataset.chunks is None or dataset.ndim != 1 or not hasattr(dsid, "chunk_iter"):  # chunk_iter: HDF5 1.12.3
        return None
    pieces = []
    dsid.chunk_iter(pieces.append)
    if len(pieces) != -(-dataset.shape[0] // dataset.chunks[0]) or any(info.filter_mask for info in pieces):
        return None  # unwritten chunks read as the fill value, which h5py supplies
    span = dataset.chunks[0] * dataset.dtype.itemsize
    starts = [info.chunk_offset[0] * dataset.dtype.itemsize for info in pieces]
    return [(start, start + span, info.byte_offset) for start, info in zip(starts, pieces)]


def _matrix(node):
    import h5py

    if isinstance(node, h5py.Dataset):
        return read_array(node)
    kind = node.attrs.get("encoding-type", "")
    if kind != "csr_matrix":
        raise UnsupportedEncoding(f"X encoding {kind!r}")
    shape = tuple(node.attrs["shape"])
    arrays = (read_array(node["data"]), read_array(node["indices"]), read_array(node["indptr"]))
    X = sp.csr_matrix(arrays, shape=shape)
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


def read_cells(path) -> Cells:
    """X, obs, var and uns['vcc'] of an h5ad file (raises :class:`UnsupportedEncoding` for other encodings)."""
    import h5py

    with h5py.File(path, "r") as f:
        X = _matrix(f["X"])
        obs, var, uns = read_head(f)
    return Cells(X, obs, var, uns)
