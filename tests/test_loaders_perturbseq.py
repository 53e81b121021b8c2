"""Perturb-seq loaders on the real mirror data, and the user-h5ad path with its bad-input errors."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from vcclib.data import load, validate
from vcclib.data.loaders.perturbseq import assign_dominant_grna, from_anndata, load_user_h5ad
from vcclib.data.schema import SchemaError

pytestmark = pytest.mark.mirror


def test_papalexi_shape_labels_and_schema(papalexi):
    assert papalexi.shape == (20729, 299)
    validate(papalexi)
    assert papalexi.uns["vcc"]["control_label"] == "non-targeting"
    assert len(papalexi.uns["library_targets"]) == 26  # 26 targets in the gRNA library, plus non-targeting
    labels = set(papalexi.obs["perturbation"])
    assert "non-targeting" in labels
    # CD274's gRNAs are never a cell's dominant gRNA: 25 targets have cells
    assert labels - {"non-targeting"} == set(papalexi.uns["library_targets"]) - {"CD274"}
    assert set(papalexi.obs["replicate"]) == {"rep_1", "rep_2", "rep_3"}
    assert papalexi.obs["guide"].notna().all()
    assert np.allclose(papalexi.layers["counts"].data, np.round(papalexi.layers["counts"].data))
    frac = papalexi.obs["assignment_fraction"]
    assert ((frac > 0) & (frac <= 1)).all()
    assert 0.75 < papalexi.obs["assignment_confident"].mean() < 0.8


@pytest.mark.parametrize("target", ["STAT1", "JAK2"])
def test_papalexi_knockout_lowers_its_own_target(papalexi, target):
    knocked_out = papalexi[papalexi.obs["perturbation"] == target, target].X
    control = papalexi[papalexi.obs["is_control"], target].X
    mean_ko = np.asarray(knocked_out.mean()).item()
    mean_ctrl = np.asarray(control.mean()).item()
    assert mean_ko < mean_ctrl - 0.5, (target, mean_ko, mean_ctrl)


def test_dominant_grna_assignment_rule():
    # gRNAs x cells: cell0 clear winner, cell1 tie, cell2 weak majority
    counts = sp.csr_matrix(np.array([[9, 3, 2], [1, 3, 1], [0, 0, 2]]))
    table = assign_dominant_grna(counts, np.array(["g1", "g2", "g3"]))
    assert list(table["guide"]) == ["g1", "g1", "g1"]
    assert list(table["assignment_tied"]) == [False, True, True]
    assert table["assignment_fraction"].round(3).tolist() == [0.9, 0.5, 0.4]
    assert list(table["assignment_confident"]) == [True, False, False]


def test_papalexi_confidence_filter_option():
    strict = load("papalexi2021_eccite_lowmoi", min_assignment_fraction=0.8)
    assert strict.n_obs < 20729 and (strict.obs["assignment_fraction"] >= 0.8).all()


def test_perturbench_devel_two_studies():
    adata = load("norman2019_mcfaline2024_devel")
    assert adata.shape == (5961, 500)
    validate(adata)
    assert set(adata.obs["study"]) == {"norman19", "mcfaline23"}
    assert set(adata.obs["cell_line"]) == {"K562", "A172", "T98G", "U87MG"}
    norman = load("norman2019_mcfaline2024_devel", study="norman19")
    assert norman.n_obs == 3375 and set(norman.obs["perturbation_type"]) == {"CRISPRa"}
    doubles = {p for p in norman.obs["perturbation"].unique() if "+" in p}
    assert len(doubles) == 15 and "KLF1+MAP2K6" in doubles
    with pytest.raises(ValueError, match="norman19"):
        load("norman2019_mcfaline2024_devel", study="replogle")


def test_kang_cytokine_by_cell_type():
    adata = load("kang2018_ifnb_pbmc")
    assert adata.shape == (1975, 6998)
    validate(adata)
    assert set(adata.obs["perturbation"]) == {"IFNB", "control"}
    assert adata.obs["cell_type"].nunique() == 7
    # interferon-stimulated genes go up on stimulation
    stimulated = adata[adata.obs["perturbation"] == "IFNB", "ISG15"].X.mean()
    control = adata[adata.obs["is_control"], "ISG15"].X.mean()
    assert stimulated > control + 1


def _toy_counts(n_cells=60, n_genes=20, seed=0) -> ad.AnnData:
    """Synthetic counts (only to exercise the input checks)."""
    rng = np.random.default_rng(seed)
    obs = pd.DataFrame({"gene": np.repeat(["NT", "A", "B"], n_cells // 3)}, index=[f"c{i}" for i in range(n_cells)])
    return ad.AnnData(rng.poisson(2, (n_cells, n_genes)).astype(np.float32), obs=obs,
                      var=pd.DataFrame(index=[f"G{i}" for i in range(n_genes)]))  # fmt: skip


def test_user_h5ad_roundtrip(tmp_path):
    path = tmp_path / "mine.h5ad"
    _toy_counts().write_h5ad(path)
    adata = load_user_h5ad(path, perturbation_column="gene", control_label="NT")
    validate(adata)
    assert adata.uns["vcc"]["x_scale"] == "log1p" and "counts" in adata.layers
    assert adata.obs["is_control"].sum() == 20 and adata.obs["dataset"].iloc[0] == "mine"


@pytest.mark.parametrize(
    "column, control, message",
    [
        ("guide_target", "NT", "perturbation column 'guide_target' is not in obs"),
        ("gene", "non-targeting", r"control label 'non-targeting' is absent .* 'NT' \(20\)"),
    ],
)
def test_user_h5ad_bad_input(column, control, message):
    with pytest.raises(SchemaError, match=message):
        from_anndata(_toy_counts(), perturbation_column=column, control_label=control)


def test_duplicated_genes_refused():
    adata = _toy_counts()
    adata.var_names = ["G0", "G0"] + [f"G{i}" for i in range(2, 20)]
    with pytest.raises(SchemaError, match="duplicated gene names.*G0"):
        from_anndata(adata, perturbation_column="gene", control_label="NT")


@pytest.mark.parametrize("bad_value, message", [(np.nan, "non-finite"), (np.inf, "non-finite"), (-1.0, "negative")])
def test_non_finite_or_negative_refused(bad_value, message):
    adata = _toy_counts()
    adata.X[3, 4] = bad_value
    with pytest.raises(SchemaError, match=message):
        from_anndata(adata, perturbation_column="gene", control_label="NT")
