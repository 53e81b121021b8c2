"""DepMap loaders on the real mirror files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import vcclib.data as vd
from vcclib.data.loaders.depmap import load_matrix_csv, split_gene_label
from vcclib.data.schema import SchemaError

pytestmark = pytest.mark.mirror  # reads the real-data mirror (skipped where there is none)


@pytest.fixture(scope="module")
def chronos():
    return vd.load("depmap_chronos_sample")


def test_split_gene_label():
    parts = split_gene_label(["KRAS (3845)", "HLA-A (3105)", "weird"])
    assert parts["symbol"].tolist() == ["KRAS", "HLA-A", "weird"]
    assert parts["entrez_id"].tolist() == ["3845", "3105", ""]


def test_chronos_sample_shapes(chronos):
    assert chronos["avana_readcounts"].shape == (95, 3474)
    assert chronos["ky_readcounts"].shape == (65, 4084)
    assert chronos["gene_effect"].shape == (58, 887)
    assert len(chronos["guide_efficacy"]) == 7558
    assert chronos["gene_effect"].obs_names.str.startswith("ACH-").all()
    assert chronos["gene_effect"].var["entrez_id"].str.fullmatch(r"\d+").all()
    assert "cell_line_name" in chronos["avana_readcounts"].obs
    assert chronos["avana_guide_map"]["sgrna"].isin(chronos["avana_readcounts"].var_names).mean() > 0.99


def test_chronos_gene_effect_biology(chronos):
    effect = chronos["gene_effect"]
    essential = effect.var_names.isin(chronos["common_essentials"]["symbol"])
    nonessential = effect.var_names.isin(chronos["nonessentials"]["symbol"])
    assert essential.sum() > 20 and nonessential.sum() > 20
    mean = np.nanmean(effect.X, axis=0)
    # common-essential genes are depleted far below non-essentials (this fit is not rescaled, so no fixed zero)
    assert np.median(mean[essential]) < -0.5
    assert np.median(mean[nonessential]) - np.median(mean[essential]) > 1.0


def test_achilles_19q2():
    tables = vd.load("depmap_achilles_19q2")
    assert len(tables["guide_efficacy"]) == 70907
    guide_map = tables["guide_map"]
    assert len(guide_map) == 71143
    counted = guide_map.groupby("sgrna")["gene"].nunique()
    assert (guide_map["n_genes"].to_numpy() == guide_map["sgrna"].map(counted).fillna(0).to_numpy()).all()
    assert (guide_map["n_genes"] > 1).any()  # multi-targeting guides are kept
    assert len(tables["common_essentials"]) == 212 and len(tables["nonessentials"]) == 781
    assert tables["sample_info"]["DepMap_ID"].is_unique
    # efficacy is a probability-like weight; 994 guides have none (NaN) in the source
    efficacy = tables["guide_efficacy"]["efficacy"]
    assert efficacy.dropna().between(0, 1).all() and int(efficacy.isna().sum()) == 994


def test_model_table():
    model = vd.load("depmap_24q2_model")
    assert model.index.name == "ModelID" and model.shape == (1959, 42)
    assert model.loc["ACH-000001", "CellLineName"] == "NIH:OVCAR-3"


def test_coessentiality():
    edges = vd.load("depmap_coessentiality_19q3")
    assert len(edges) == 11475
    assert list(edges.columns) == ["gene_a", "gene_b", "correlation", "width"]
    assert edges["correlation"].notna().all() and edges["correlation"].between(-1, 1).all()


def test_matrix_csv_roundtrip(chronos, tmp_path):
    effect = chronos["gene_effect"]
    frame = pd.DataFrame(effect.X[:5, :7], index=effect.obs_names[:5], columns=effect.var["depmap_label"][:7])
    frame.index.name = "ModelID"
    frame.to_csv(tmp_path / "CRISPRGeneEffect.csv")
    manifest = vd.get_manifest("depmap_chronos_sample")
    adata = load_matrix_csv({"CRISPRGeneEffect.csv": tmp_path / "CRISPRGeneEffect.csv"}, manifest)
    assert adata.shape == (5, 7)
    assert list(adata.var_names) == list(effect.var_names[:7])
    np.testing.assert_allclose(adata.X, effect.X[:5, :7], rtol=1e-6)
    (tmp_path / "bad.csv").write_text("ModelID,a,b\nACH-1,1,2\n")
    with pytest.raises(SchemaError):
        load_matrix_csv({"bad.csv": tmp_path / "bad.csv"}, manifest)


@pytest.mark.slow
def test_dependency_calls_crispr_and_rnai():
    from vcclib.data.loaders.depmap import dependency_frame

    calls = vd.load("depmap_22q1_dependency_calls")
    assert calls["crispr"].shape == (1067, 17386) and calls["rnai"].shape == (712, 17023)
    rates = calls["model_mapping"].set_index("screen")["rate"]
    assert rates["crispr"] > 0.95 and rates["rnai"] > 0.95
    assert 0.2 < (calls["rnai"].X == -1).mean() < 0.3  # ~24 % missing in RNAi
    frame = dependency_frame(calls["crispr"][:5, :50])
    assert list(frame.dtypes.iloc[0].categories) == ["weak_dependency", "dependency", "strong_dependency"]


@pytest.mark.slow  # ~30 s: 12 M call strings to read
def test_dependency_calls_rnai_mapped_to_model_ids():
    calls = vd.load("depmap_22q1_dependency_calls", screens=["rnai"])
    rnai = calls["rnai"]
    assert rnai.shape == (712, 17023) and set(calls) == {"rnai", "model_mapping"}
    mapping = calls["model_mapping"].iloc[0]
    assert mapping["n_mapped"] == 704 and mapping["n_lines"] == 712
    assert rnai.obs.loc[rnai.obs["mapped"], "model_id"].str.startswith("ACH-").all()
    assert set(np.unique(rnai.X)) == {-1, 0, 1, 2}
    with pytest.raises(vd.SchemaError, match="unknown screens"):
        vd.load("depmap_22q1_dependency_calls", screens=["shRNA"])
