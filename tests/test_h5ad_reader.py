"""The light h5ad reader's direct array read: the same arrays as h5py for every storage layout."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from conftest import MIRROR

from vcclib.h5read import _raw_extents, read_array

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


def test_chunks_that_follow_in_the_file_are_read_in_one_call(tmp_path):
    """A read-ahead thread re-acquires the GIL after every ``preadv``: chunks stored one after another are
    merged into one extent (HDF5 writes index nodes between runs of chunks, so a few runs remain)."""
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("x", data=VALUES, chunks=(100,))
    with h5py.File(tmp_path / "x.h5", "r") as f:
        extents = _raw_extents(f["x"])
        n_chunks = f["x"].id.get_num_chunks()
        got = read_array(f["x"])
    assert len(extents) < n_chunks / 5
    assert extents[0][0] == 0 and all(a[1] == b[0] for a, b in zip(extents, extents[1:]))  # the whole array
    assert np.array_equal(got, VALUES)


def test_read_ahead_gives_each_files_x_or_leaves_it_to_the_caller(tmp_path):
    import anndata as ad
    import scipy.sparse as sp

    from vcclib.h5read import StoredX, read_ahead
    from vcclib.metrics.evaluate import read_cells

    X = sp.random(40, 30, density=0.2, format="csr", dtype=np.float32, random_state=1)
    ad.AnnData(X).write_h5ad(tmp_path / "csr.h5ad")
    ad.AnnData(X.tocsc()).write_h5ad(tmp_path / "csc.h5ad")  # an encoding read_x leaves to anndata
    (tmp_path / "broken.h5ad").write_bytes(b"not an HDF5 file")
    paths = [tmp_path / n for n in ("csr.h5ad", "csc.h5ad", "broken.h5ad", "missing.h5ad")]
    ahead = read_ahead(paths)
    assert sorted(ahead) == sorted(str(p) for p in paths[:3])  # a missing file is not read ahead
    stored = ahead[str(paths[0])].result()
    assert isinstance(stored, StoredX) and stored.encoding == "csr_matrix" and stored.shape == (40, 30)
    assert ahead[str(paths[1])].result() is None and ahead[str(paths[2])].result() is None
    light = read_cells(paths[0], ahead[str(paths[0])])
    assert (light.X != X).nnz == 0
    assert (read_cells(paths[1], ahead[str(paths[1])]).X != X).nnz == 0  # read by anndata instead
