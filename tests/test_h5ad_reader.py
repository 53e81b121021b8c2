"""The light h5ad reader's direct array read: the same arrays as h5py for every storage layout."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from conftest import MIRROR

from vcclib.metrics.h5ad import _raw_extents, read_array

RNG = np.random.default_rng(7)
VALUES = RNG.standard_normal(10_007).astype(np.float32)  # not a multiple of any chunk size below

#: name -> (h5py create_dataset keywords, whether the bytes are read directly rather than by h5py)
LAYOUTS = {
    "chunked": (dict(data=VALUES, chunks=(1_000,)), True),
    "one_partial_chunk": (dict(data=VALUES, chunks=(20_000,), maxshape=(None,)), True),
    "contiguous": (dict(data=VALUES), True),
    "dense_2d_contiguous": (dict(data=VALUES[:10_000].reshape(100, 100)), True),
    "dense_2d_chunked": (dict(data=VALUES[:10_000].reshape(100, 100), chunks=(10, 100)), False),
    "gzip": (dict(data=VALUES, chunks=(1_000,), compression="gzip"), False),
    "checksum": (dict(data=VALUES, chunks=(1_000,), fletcher32=True), False),
    "big_endian": (dict(data=VALUES.astype(">f4"), chunks=(1_000,)), False),
    "int64": (dict(data=np.arange(10_007, dtype=np.int64) * 3, chunks=(999,)), True),
    "empty": (dict(data=np.zeros(0, np.float32)), False),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_read_array_equals_h5py(tmp_path, layout):
    keywords, direct = LAYOUTS[layout]
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("x", **keywords)
    with h5py.File(tmp_path / "x.h5", "r") as f:
        expected, got = f["x"][()], read_array(f["x"])
        assert (_raw_extents(f["x"]) is not None) == direct
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.array_equal(got, expected)


def test_unwritten_chunks_read_as_the_fill_value(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        x = f.create_dataset("x", shape=(5_000,), dtype=np.float32, chunks=(1_000,), fillvalue=-1.0)
        x[2_000:2_500] = 3.0  # chunks 0, 1, 3 and 4 are never written
    with h5py.File(tmp_path / "x.h5", "r") as f:
        assert _raw_extents(f["x"]) is None
        got = read_array(f["x"])
    assert np.array_equal(got, np.where((np.arange(5_000) >= 2_000) & (np.arange(5_000) < 2_500), 3.0, -1.0))


@pytest.mark.mirror
@pytest.mark.parametrize("name", ["kang2018_ifnb_pbmc/valid.h5ad", "norman2019_mcfaline2024_devel/devel.h5ad"])
def test_read_array_on_the_mirror(tmp_path, name):
    """The mirror's files (gzip, read by h5py) and an uncompressed copy (read directly) give h5py's arrays."""
    import anndata as ad

    from vcclib.metrics.h5ad import read_cells

    source = MIRROR / name
    ad.read_h5ad(source).write_h5ad(tmp_path / "plain.h5ad")  # anndata's default: chunked, no compression
    for path in (source, tmp_path / "plain.h5ad"):
        with h5py.File(path, "r") as f:
            for key in ("data", "indices", "indptr"):
                assert np.array_equal(read_array(f["X"][key]), f["X"][key][()])
    with h5py.File(tmp_path / "plain.h5ad", "r") as f:
        assert _raw_extents(f["X"]["data"]) is not None
    light, full = read_cells(tmp_path / "plain.h5ad"), ad.read_h5ad(source)
    assert (light.X != full.X).nnz == 0
