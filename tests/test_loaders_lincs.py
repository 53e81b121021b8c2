"""LINCS loaders on the real mirror files (read through vcclib.data.load / fetch)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import vcclib.data as vd
from vcclib.data.loaders.lincs import load_lincs_table, read_gct
from vcclib.data.schema import SchemaError, validate

pytestmark = pytest.mark.mirror  # reads the real-data mirror (skipped where there is none)


@pytest.fixture(scope="module")
def example_path():
    return vd.fetch("lincs_cmappy_example")["test_l1000.gctx"]


def test_read_gct_text_matches_cmappy(example_path):
    from cmapPy.pandasGEXpress import parse_gct

    ours = read_gct(example_path)  # GCT 1.3 text despite the .gctx name
    theirs = parse_gct.parse(str(example_path))
    assert ours.shape == (377, 978)
    assert ours.uns["gct"]["format"] == "gct"
    np.testing.assert_allclose(ours.X, theirs.data_df.T.to_numpy(), rtol=1e-6)
    assert list(ours.obs_names) == list(theirs.data_df.columns)
    cols = theirs.col_metadata_df
    pd.testing.assert_frame_equal(cols, ours.obs[cols.columns], check_dtype=False, check_names=False)
    rows = theirs.row_metadata_df
    pd.testing.assert_frame_equal(rows, ours.var[rows.columns], check_dtype=False, check_names=False)


def test_read_gctx_selection_matches_cmappy(example_path, tmp_path, monkeypatch):
    from cmapPy.pandasGEXpress import parse_gct, parse_gctx, write_gctx

    monkeypatch.setattr(np, "string_", np.bytes_, raising=False)  # cmapPy's writer predates numpy 2
    full = parse_gct.parse(str(example_path))
    gctx = tmp_path / "example.gctx"
    write_gctx.write(full, str(gctx))
    rows = list(full.row_metadata_df.index[[5, 1, 900]])
    cols = list(full.col_metadata_df.index[[10, 3, 200]])
    ours = read_gct(gctx, rows=rows, columns=cols)
    theirs = parse_gctx.parse(str(gctx), rid=rows, cid=cols)
    assert ours.uns["gct"]["format"] == "gctx"
    assert list(ours.obs_names) == cols and list(ours.var_names) == rows
    np.testing.assert_allclose(ours.X, theirs.data_df.loc[rows, cols].T.to_numpy())
    meta = theirs.col_metadata_df.loc[cols]
    pd.testing.assert_frame_equal(meta, ours.obs[meta.columns], check_dtype=False, check_names=False)
    whole = read_gct(gctx)
    np.testing.assert_allclose(whole.X, full.data_df.T.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(read_gct(gctx, rows=rows).X, whole[:, rows].X)
    with pytest.raises(KeyError, match="not in"):
        read_gct(gctx, columns=["no-such-signature"])


def test_read_gct_rejects_non_gct(tmp_path):
    bad = tmp_path / "bad.gct"
    bad.write_text("hello\tworld\n1\t2\n")
    with pytest.raises(SchemaError):
        read_gct(bad)


def test_gct_from_manifest(example_path):
    adata = vd.load("lincs_cmappy_example", columns=["LJP005_A375_24H_X1_B19:A03"])
    assert adata.shape == (1, 978)
    assert set(adata.obs["cell_id"]) == {"A375"}
    assert (adata.var["pr_is_lmark"] == 1).all()  # every row a landmark


def test_cmapr_kd_plate():
    adata = vd.load("lincs_cmapr_kd_plate")
    validate(adata)
    assert adata.shape == (374, 976)
    assert adata.uns["vcc"]["x_scale"] == "zscore"
    assert adata.obs["pert_type"].value_counts().to_dict() == {
        "trt_sh": 334,
        "ctl_vector": 32,
        "ctl_untrt": 8,
    }
    assert int(adata.obs["is_control"].sum()) == 40
    assert set(adata.obs["perturbation_type"]) == {"shRNA"}
    treated = adata[~adata.obs["is_control"].to_numpy()]
    assert treated.obs["perturbation"].nunique() == 85  # 88 pert ids minus 3 control entries
    own = np.array([treated.X[i, treated.var_names.get_loc(t)] for i, t in enumerate(treated.obs["perturbation"])])
    assert -7.0 < np.median(own) < -5.0  # the knockdown is visible in the target's own z-score
    assert np.median(own) < np.median(adata.X) - 5


def test_ctrap_kd_consensus():
    adata = vd.load("lincs_ctrap_kd_consensus")
    validate(adata)
    assert adata.shape == (26, 12328)
    assert int(adata.var["landmark"].sum()) == 978
    assert set(adata.obs["cell_line"]) == {"HepG2"}
    # the landmark flag (position in the LINCS row order) agrees with dhimmel's measured genes
    genes = vd.load("lincs_dhimmel")["genes"]
    measured = set(genes.loc[genes["status"] == "measured", "symbol"])
    landmark = adata.var_names[adata.var["landmark"].to_numpy()]
    assert sum(g in measured for g in landmark) >= 970
    assert not any(g in measured for g in adata.var_names[~adata.var["landmark"].to_numpy()])


def test_dhimmel_tables():
    tables = vd.load("lincs_dhimmel")
    assert set(tables) == {"geneinfo", "cellinfo", "overexpression", "knockdown_summary", "genes"}
    assert tables["geneinfo"]["landmark"].dtype == bool
    assert tables["geneinfo"]["landmark"].sum() == 1171
    assert len(tables["overexpression"]) == 40642
    assert (tables["genes"]["status"] == "measured").sum() == 978
    assert {"up", "down"} == set(tables["overexpression"]["direction"])


def test_lincs_table_on_mirror_files():
    files = vd.fetch("lincs_dhimmel")
    manifest = vd.get_manifest("lincs_dhimmel")
    cells = load_lincs_table(files, manifest, file="cellinfo.tsv.gz")
    assert "cell_id" in cells and len(cells) == 2541
    with pytest.raises(ValueError, match="pass file"):
        load_lincs_table(files, manifest)
