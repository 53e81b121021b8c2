"""A user's own h5ad: unassigned cells excluded and counted, a library-size column for targeted panels.

Every file here is a real mirror dataset (Papalexi 2021 ECCITE-seq, raw UMIs over a 299-gene panel) written to
tmp_path the way a user would have it, with some labels blanked or the gene panel cut down.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from vcclib.data import validate
from vcclib.data.loaders.perturbseq import UNASSIGNED_LABEL, load_user_h5ad, unassigned_cells
from vcclib.data.schema import SchemaError

pytestmark = pytest.mark.mirror


def _user_file(papalexi, path, *, blank: dict[str, int] | None = None, genes=None, extra_obs=None):
    """Papalexi's raw counts as a user's h5ad: obs 'gene' (the target), some labels blanked as asked."""
    counts = papalexi.layers["counts"]
    obs = pd.DataFrame({"gene": papalexi.obs["perturbation"].astype(str).to_numpy()}, index=papalexi.obs_names)
    obs["gene"] = obs["gene"].astype(object)
    rng = np.random.default_rng(0)
    chosen = rng.choice(papalexi.n_obs, sum((blank or {}).values()), replace=False)
    start = 0
    for value, n in (blank or {}).items():
        rows = chosen[start : start + n]
        obs.iloc[rows, 0] = np.nan if value == "NaN" else value
        start += n
    for name, values in (extra_obs or {}).items():
        obs[name] = values
    user = ad.AnnData(X=counts.copy(), obs=obs, var=pd.DataFrame(index=papalexi.var_names.copy()))
    if genes is not None:
        user = user[:, genes].copy()
    user.write_h5ad(path)
    return path, chosen


def test_unassigned_cells_recognises_every_missing_form():
    labels = pd.Series(["STAT1", np.nan, "nan", "", " ", "NaN", "None", "non-targeting", None], dtype=object)
    assert unassigned_cells(labels).tolist() == [False, True, True, True, True, True, True, False, True]


def test_missing_labels_are_excluded_counted_and_never_a_perturbation(papalexi, tmp_path):
    blank = {"NaN": 120, "nan": 60, "": 40}
    path, chosen = _user_file(papalexi, tmp_path / "crop.h5ad", blank=blank)
    with pytest.warns(UserWarning, match="220 of 20,729 cells have no label"):
        adata = load_user_h5ad(path, perturbation_column="gene", control_label="non-targeting")
    validate(adata)
    assert adata.n_obs == papalexi.n_obs - 220
    assert adata.uns["vcc"]["n_unassigned_excluded"] == 220 and adata.uns["vcc"]["n_unassigned_kept"] == 0
    labels = set(adata.obs["perturbation"])
    assert not labels & {"nan", "", UNASSIGNED_LABEL}
    assert labels == set(papalexi.obs["perturbation"])  # every real perturbation keeps its cells
    excluded = set(papalexi.obs_names[chosen])
    assert not excluded & set(adata.obs_names)


def test_keep_unassigned_is_explicit_and_flags_them(papalexi, tmp_path):
    path, chosen = _user_file(papalexi, tmp_path / "crop.h5ad", blank={"NaN": 30, "nan": 20})
    adata = load_user_h5ad(path, perturbation_column="gene", control_label="non-targeting", keep_unassigned=True)
    assert adata.n_obs == papalexi.n_obs
    assert adata.uns["vcc"]["n_unassigned_kept"] == 50 and adata.uns["vcc"]["n_unassigned_excluded"] == 0
    flagged = adata.obs["is_unassigned"].to_numpy()
    assert flagged.sum() == 50
    assert (adata.obs.loc[flagged, "perturbation"] == UNASSIGNED_LABEL).all()
    assert not adata.obs.loc[flagged, "is_control"].any()
    assert "nan" not in set(adata.obs["perturbation"])


def test_a_panel_normalised_by_a_library_size_column(papalexi, tmp_path):
    """Known truth: Papalexi's loader normalises by the 299-gene total. Cut the file to a 50-gene panel and give
    that total as the library size column: the panel's values must equal the loader's exactly."""
    panel = list(papalexi.var_names[:50])
    total = np.asarray(papalexi.layers["counts"].sum(axis=1)).ravel()
    path, _ = _user_file(papalexi, tmp_path / "panel.h5ad", genes=panel, extra_obs={"umi_total": total})
    by_library = load_user_h5ad(path, perturbation_column="gene", control_label="non-targeting",
                                library_size_column="umi_total")  # fmt: skip
    expected = papalexi[:, panel].X.toarray()
    np.testing.assert_allclose(by_library.X.toarray(), expected, rtol=1e-5, atol=1e-6)
    assert by_library.uns["vcc"]["library_size"] == "obs['umi_total']"
    assert by_library.uns["vcc"]["target_sum"] == 1e4
    assert "obs['umi_total']" in by_library.uns["vcc"]["normalisation"]
    np.testing.assert_array_equal(by_library.layers["counts"].toarray(), papalexi[:, panel].layers["counts"].toarray())
    by_panel = load_user_h5ad(path, perturbation_column="gene", control_label="non-targeting")
    assert by_panel.uns["vcc"]["library_size"] == "the total over the 50 genes in the file"
    assert not np.allclose(by_panel.X.toarray(), expected)  # the panel's own total gives other values


def test_a_library_size_smaller_than_the_panel_total_is_refused(papalexi, tmp_path):
    panel = list(papalexi.var_names[:50])
    path, _ = _user_file(papalexi, tmp_path / "panel.h5ad", genes=panel, extra_obs={"wrong": np.ones(papalexi.n_obs)})
    with pytest.raises(SchemaError, match="smaller than the counts over the measured genes"):
        load_user_h5ad(path, perturbation_column="gene", control_label="non-targeting", library_size_column="wrong")
    with pytest.raises(SchemaError, match="library size column 'absent' is not in obs"):
        load_user_h5ad(path, perturbation_column="gene", control_label="non-targeting", library_size_column="absent")
