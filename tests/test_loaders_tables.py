"""Bulk, imaging, screen and reference loaders on the real mirror files."""

from __future__ import annotations

import numpy as np
import pytest

import vcclib.data as vd
from vcclib.data.loaders.references import load_trrust
from vcclib.data.schema import validate

pytestmark = pytest.mark.mirror  # reads the real-data mirror (skipped where there is none)


def test_encode_eif4g1_knockdown():
    adata = vd.load("encode_eif4g1_shrna_hepg2")
    validate(adata)
    assert adata.shape == (4, 15082)
    assert adata.obs["perturbation"].tolist() == ["EIF4G1", "EIF4G1", "control", "control"]
    assert set(adata.obs["cell_line"]) == {"HepG2"}
    assert "counts" in adata.layers and adata.uns["vcc"]["x_scale"] == "log1p"
    eif = adata[:, "EIF4G1"].X.ravel()
    is_control = adata.obs["is_control"].to_numpy(dtype=bool)
    knockdown, control = eif[~is_control], eif[is_control]
    assert knockdown.max() < control.min()
    np.testing.assert_allclose(np.expm1(adata.X).sum(axis=1), 1e6, rtol=1e-3)


def test_periscope():
    table = vd.load("periscope_a549")
    assert table.shape == (1339, 6) and table.index.name == "gene"
    assert list(table.columns) == ["Mito", "ConA", "WGA", "DAPI", "Phalloidin", "Sum"]
    assert (table >= 0).all().all()


def test_biodiscoveryagent():
    screens = vd.load("screens_biodiscoveryagent")
    assert len(screens["Horlbeck"]) == 100576
    assert list(screens["Horlbeck"].columns) == ["gene_a", "gene_b", "score"]
    il2 = screens["IL2"]
    assert list(il2.columns) == ["gene", "score"] and len(il2) > 18000
    # Schmidt 2022: TCR-signalling genes (VAV1, LCP2) are top hits whose loss lowers IL-2
    assert il2.set_index("gene").loc[["VAV1", "LCP2"], "score"].lt(-1).all()
    assert screens["schmidt_ifng_d1"].iloc[0]["id"] in {"LCP2", "CD3G", "CD28", "ZAP70"}


def test_mageckflute():
    tables = vd.load("screens_mageckflute_pan2018")
    assert set(tables) == {"rra_gene", "mle_gene", "sgrna", "countsummary"}
    rra = tables["rra_gene"]
    assert len(rra) == 19326 and rra.iloc[0]["id"] == "Cd274"  # PD-L1 loss: B16 cells lose to T cells
    assert len(tables["countsummary"]) == 4


def test_norman2019_gi():
    tables = vd.load("norman2019_gi")
    fits = tables["regr_fits"]
    assert len(fits) == 125 and {"gene_a", "gene_b"} <= set(fits.columns)
    emap = tables["processed_emap"]
    assert emap.shape == (112, 112)
    np.testing.assert_allclose(emap.to_numpy(), emap.to_numpy().T, atol=1e-8)
    assert len(tables["guides"]) == 105


def test_trrust_with_and_without_header(tmp_path):
    table = vd.load("grn_trrust_v2")
    assert table.shape == (9396, 4) and table["tf"].nunique() == 795
    assert set(table["mode"]) == {"Activation", "Repression", "Unknown"}
    raw = tmp_path / "trrust.tsv"
    raw.write_text("AATF\tBAX\tRepression\t22909821\nTP53\tMDM2\tActivation\t1\n")
    assert len(load_trrust({"trrust.tsv": raw}, None)) == 2
    assert ("TP53", "MDM2") in set(zip(table["tf"], table["target"]))


def test_dorothea():
    table = vd.load("grn_dorothea")
    assert table.shape == (454504, 4)
    assert set(table["confidence"]) == set("ABCDE")
    assert set(table["mor"].unique()) <= {-1.0, 1.0}


def test_lambert_and_gmt():
    tfs = vd.load("tf_lambert2018")
    assert list(tfs.columns) == ["gene"] and len(tfs) == 1639 and tfs["gene"].is_unique
    assert {"TP53", "MYC", "SPI1"} <= set(tfs["gene"])
    sets = vd.load("msigdb_hallmark_v7")
    assert len(sets) == 50 and len(sets["HALLMARK_HYPOXIA"]) == 200
    assert "VEGFA" in sets["HALLMARK_HYPOXIA"]
    long = vd.load("msigdb_hallmark_v7", as_frame=True)
    assert long["gene_set"].nunique() == 50


def test_go_human():
    tables = vd.load("go_human_bioc_3_16")
    assert len(tables["gene2go"]) == 348116 and tables["gene2go"]["symbol"].nunique() == 20728
    assert len(tables["go_parents"]) == 85716 and len(tables["id_map"]) == 40102
    tp53 = tables["gene2go"].query("symbol == 'TP53'")
    assert "GO:0006915" in set(tp53["go_id"]) or "apoptotic" in " ".join(tp53["go_term"])


def test_dann2025():
    table = vd.load("dann2025_cd4_vs_k562")
    assert table.shape == (5640, 13)
    assert table["target_contrast_gene_name"].nunique() == 1880
    # real effects transfer better than random pairs
    assert table["logfc_pearson_r"].median() > table["random_r1"].abs().median()


@pytest.mark.parametrize("dataset", ["periscope_a549", "grn_trrust_v2"])
def test_loaders_fail_clearly_on_wrong_files(dataset, tmp_path):
    from vcclib.data.loaders import get_loader

    manifest = vd.get_manifest(dataset)
    bad = tmp_path / manifest.files[0].name
    bad.write_text("a\tb\n1\t2\n")
    with pytest.raises((ValueError, KeyError)):
        get_loader(manifest.loader)({manifest.files[0].name: bad}, manifest)


def test_tian_crisprbrain_screens():
    screens = vd.load("tian2019_crisprbrain_screens")
    assert screens["tian2019_survival"].shape == (2555, 7) and screens["tian2020_survival"].shape == (20485, 7)
    t2020 = screens["tian2020_survival"]
    assert set(t2020["hit_class"]) == {"Negative Hit", "Positive Hit", "Non-Hit"}
    assert (t2020.loc[t2020["hit_class"] == "Negative Hit", "phenotype"] < 0).all()
    from vcclib.data.targets import table_targets

    assert "SOD2" in table_targets("tian2019_crisprbrain_screens", screens)


@pytest.fixture(scope="module")
def replogle_tables():
    return vd.load("replogle2022_tables", tables=["statistics", "gene_clusters", "perturbation_clusters"])


def test_replogle2022_statistics_tidy(replogle_tables):
    stats = replogle_tables["statistics"]
    counts = stats["screen"].value_counts().to_dict()
    assert counts == {"K562_genome_wide_day8": 11258, "K562_essential_day6": 2285, "RPE1_essential_day7": 2680}
    first = stats.iloc[0]
    assert (first["target"], first["transcripts"], first["ensembl_id"]) == ("A1BG", "P1", "ENSG00000121410")
    assert stats.loc[stats["is_control"], "ensembl_id"].isna().all() and stats["is_control"].sum() > 500
    assert set(stats.attrs["units"]) >= {"energy_test_p", "n_degs_anderson_darling", "mito_fraction"}
    assert all(c == c.lower() and " " not in c for c in stats.columns)
    # knockdown works: most targeted perturbations lower their target
    targeted = stats[~stats["is_control"]]
    assert (targeted["percent_knockdown"] < 0).mean() > 0.9


def test_replogle2022_clusters(replogle_tables):
    genes, perts = replogle_tables["gene_clusters"], replogle_tables["perturbation_clusters"]
    assert genes["cluster_id"].nunique() == 38 and perts["cluster_id"].nunique() == 64
    assert {"cluster_id", "gene", "cluster_label"} <= set(perts.columns)
    assert set(perts.loc[perts["cluster_id"] == 4, "gene"]) >= {"METTL3", "METTL14"}  # m6A writer complex


@pytest.mark.slow
def test_replogle2022_sgrna_libraries():
    libraries = vd.load("replogle2022_tables", tables=["sgrna_libraries"])["sgrna_libraries"]
    assert libraries["screen"].value_counts().to_dict() == {
        "K562_genome_wide_day8": 11294,
        "RPE1_essential_day7": 2688,
        "K562_essential_day6": 2291,
    }
    assert {"perturbation_id", "gene", "ensembl_id", "targeting_sequence_a", "targeting_sequence_b"} <= set(
        libraries.columns
    )


def test_replogle2022_unknown_table_refused():
    with pytest.raises(vd.SchemaError, match="unknown tables"):
        vd.load("replogle2022_tables", tables=["figures"])
