"""Whole HDF5 datasets read straight from their file offsets, and an h5ad's X read ahead in a thread.

Only numpy, h5py and the standard library are imported here (not ``vcclib.metrics``, whose package imports
pandas), so a command can start reading its input files before it imports the rest of its stack:
``os.preadv`` releases the GIL, so the read runs on a second core while the main thread imports (pandas, numba's
target) — see :func:`read_ahead` and ``vcc eval``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def read_array(dataset) -> np.ndarray:
    """The whole of an h5py dataset as a numpy array, read straight from the file where HDF5 adds nothing.

    An unfiltered dataset (no compression, no checksum: how anndata writes by default) is stored as raw bytes,
    contiguous or in chunks at known file offsets. Those bytes are read with ``os.preadv`` into one array, one
    call per run of chunks that lie one after another in the file (a few dozen calls per array, not one per
    chunk, so a read in a background thread seldom waits for the GIL); HDF5's own path copies every chunk
    through its chunk cache first, which costs a command about 0.2 s per 140 MB array on the 2-core machine.
    Anything else (filters, a dense chunked matrix, a non-native byte order, unwritten chunks, a file not on
    the default driver) is read by h5py, so the result is the same array either way (tested against h5py).
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
    extents = []
    for info in sorted(pieces, key=lambda info: info.chunk_offset[0]):
        start = info.chunk_offset[0] * dataset.dtype.itemsize
        last = extents[-1] if extents else None
        if last is not None and last[1] == start and last[2] + (last[1] - last[0]) == info.byte_offset:
            extents[-1] = (last[0], start + span, last[2])  # the next chunk follows in the file too: one read
        else:
            extents.append((start, start + span, info.byte_offset))
    return extents


@dataclass(frozen=True)
class StoredX:
    """An h5ad's X as stored.

    ``encoding`` is ``"array"`` (``arrays`` holds the dense matrix alone) or ``"csr_matrix"`` (``arrays`` is
    ``(data, indices, indptr)``); ``shape`` is the matrix's.
    """

    encoding: str
    arrays: tuple
    shape: tuple


class UnsupportedEncoding(Exception):
    """The file uses an encoding the light reader does not read (the caller falls back to anndata).

    A CSC or other non-CSR sparse X, a nullable obs column, ...
    """


def _encoding(node) -> str:
    """``"array"`` for a dense dataset, else the group's ``encoding-type`` (``"csr_matrix"``, ...)."""
    import h5py

    return "array" if isinstance(node, h5py.Dataset) else str(node.attrs.get("encoding-type", ""))


def read_x(node) -> StoredX:
    """The X of an open h5ad (``node`` is ``file["X"]``) as stored, every array read by :func:`read_array`."""
    kind = _encoding(node)
    if kind == "array":
        return StoredX("array", (read_array(node),), tuple(node.shape))
    if kind != "csr_matrix":
        raise UnsupportedEncoding(f"X encoding {kind!r}")
    arrays = tuple(read_array(node[key]) for key in ("data", "indices", "indptr"))
    return StoredX("csr_matrix", arrays, tuple(int(n) for n in node.attrs["shape"]))


def stored_encoding(path) -> str | None:
    """How an h5ad stores X (see :func:`_encoding`).

    None where the file cannot be opened as HDF5 (the caller's own read then reports why).
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return _encoding(f["X"])
    except Exception:  # noqa: BLE001 - anything: the caller's own read reports it
        return None


def read_ahead(paths) -> dict:
    """Start reading the X of each existing ``.h5ad`` of ``paths``, in order, in one background thread.

    Returns ``{path: Future}``; a future's result is the file's :class:`StoredX`, or ``None`` where the file
    could not be read this way (the caller then reads it itself and reports any error as it would have).
    """
    from concurrent.futures import ThreadPoolExecutor

    wanted = [p for p in paths if Path(p).suffix == ".h5ad" and Path(p).is_file()]
    if not wanted:
        return {}
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vcc-read-ahead")
    futures = {str(p): pool.submit(_read_x_or_none, p) for p in wanted}
    pool.shutdown(wait=False)  # returns now; the thread still runs the queued reads, then ends
    return futures


def _read_x_or_none(path):
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return read_x(f["X"])
    except Exception:  # noqa: BLE001 - anything: the caller's own read then reports it
        return None
