"""Gasperini 2019 high-MOI: every gRNA above the threshold is kept; multi-guide cells are refused where needed."""

from __future__ import annotations

import numpy as np
import pytest

import vcclib.data as vd
from vcclib.data.loaders._rda import read_rda
from vcclib.data.loaders.highmoi import _triplet, assign_threshold, grna_table
from vcclib.data.schema import SchemaError, require_single_perturbation, target_indicator, validate

pytestmark = pytest.mark.mirror


@pytest.fixture(scope="module")
def grna_parts():
    files = vd.fetch("gasperini2019_highmoi")
    grna = read_rda(files["gRNA_matrix_highmoi.rda"])["grna_matrix_highmoi"]
    groups = grna_table(read_rda(files["grna_group_data_frame_highmoi.rda"])["grna_group_data_frame_highmoi"])
    ids = [str(g) for g in grna.Dimnames[0]]
    return _triplet(grna, "grna").T.tocsr(), groups.set_index("grna_id").loc[ids].reset_index()


def test_grna_groups(grna_parts):
    _, groups = grna_parts
    assert len(groups) == 75
    kinds = groups.drop_duplicates("grna_group")["target_kind"].value_counts().to_dict()
    assert kinds == {"candidate enhancer": 15, "TSS positive control": 10, "non-targeting": 1}
    assert (groups["target_kind"] == "non-targeting").sum() == 25
    assert set(groups.loc[groups["target_kind"] == "TSS positive control", "target"]) >= {"COX4I1", "DIMT1"}


def test_threshold_assignment_keeps_every_grna(grna_parts):
    counts, groups = grna_parts
    assert counts.shape == (40000, 75)
    assigned, labels = assign_threshold(counts, groups, threshold=5)
    np.testing.assert_array_equal(assigned.toarray(), counts.toarray() >= 5)
    assert (labels["n_grnas"] > 1).sum() == 858  # cells carrying more than one gRNA
    assert (labels["n_perturbations"] > 1).sum() == 370
    several = labels[labels["n_perturbations"] > 1]["perturbation"]
    assert several.str.contains("+", regex=False).all()
    assert (labels["perturbation"] == "unassigned").sum() == 32473
    # a lower threshold assigns more, never fewer
    _, loose = assign_threshold(counts, groups, threshold=1)
    assert (loose["n_grnas"] >= labels["n_grnas"]).all()


@pytest.mark.slow
def test_gasperini_anndata_in_the_schema():
    adata = vd.load("gasperini2019_highmoi")
    validate(adata)
    assert adata.shape == (40000, 341)  # 355 source rows: one per discovery pair, 14 genes twice
    assert adata.uns["vcc"]["moi"] == "high" and adata.uns["vcc"]["grna_threshold"] == 5
    assert adata.obsm["grna_counts"].shape == (40000, 75) and len(adata.uns["grnas"]) == 75
    assert (adata.obs["n_grnas"] > 1).sum() == 858
    assert {"gene_n_umis", "grna_n_umis", "p_mito", "batch"} <= set(adata.obs.columns)
    assert set(adata.obs["batch"]) == {"prep_batch_1", "prep_batch_2"}
    assert "COX4I1" in adata.var_names and adata.var["ensembl_id"].str.startswith("ENSG").all()
    assert len(adata.uns["discovery_pairs"]) == 355
    indicator = target_indicator(adata)
    assert indicator.shape == (40000, 26) and indicator["COX4I1"].sum() == 161
    # TSS positive control: CRISPRi of the COX4I1 promoter lowers COX4I1 in the cells that carry it
    cox = np.asarray(adata[:, "COX4I1"].layers["counts"].sum(axis=1)).ravel() / adata.obs["gene_n_umis"].to_numpy()
    assert cox[indicator["COX4I1"].to_numpy()].mean() < 0.5 * cox[~indicator["COX4I1"].to_numpy()].mean()
    with pytest.raises(SchemaError, match=r"370 of 40,000 cells .* carry several"):
        require_single_perturbation(adata, what="splits.make_split")
    single = adata[adata.obs["n_perturbations"] <= 1]
    assert require_single_perturbation(single, what="x") is single
