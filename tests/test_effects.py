"""Tests of :mod:`vcclib.effects` (per-perturbation effect calls).

Synthetic data with a known truth: Poisson counts (log1p) for 40 genes; 3 perturbations carry a real effect
(``G0`` knocks its own gene down 8-fold and shifts G10–G14; ``G1+G2`` and ``UP`` triple the rate of 8 genes) and 2
(``NULL_A``, ``NULL_B``) are drawn from the control distribution. The rule must call exactly the 2 null ones.
On the real Papalexi ECCITE-seq data the IFN-γ pathway knockouts STAT1 and JAK2 knock down their own target and are
called "effect" even with small settings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

from vcclib.effects import EFFECT_CALL, NULL_CALL, adjust_pvalues, perturbation_effects


def _synthetic(seed: int = 0) -> AnnData:
    rng = np.random.default_rng(seed)
    n_genes = 40
    base = rng.uniform(0.5, 4.0, n_genes)
    groups = {"control": 300, "G0": 120, "G1+G2": 120, "UP": 120, "NULL_A": 120, "NULL_B": 120}
    blocks, labels = [], []
    for name, n in groups.items():
        rate = base.copy()
        if name == "G0":
            rate[0] /= 8
            rate[10:15] *= 3
        elif name == "G1+G2":
            rate[20:28] *= 3
        elif name == "UP":
            rate[30:38] *= 3
        blocks.append(np.log1p(rng.poisson(rate, size=(n, n_genes)).astype(np.float32)))
        labels += [name] * n
    obs = pd.DataFrame({"perturbation": labels}, index=[f"c{i}" for i in range(len(labels))])
    adata = AnnData(sp.csr_matrix(np.vstack(blocks)), obs=obs)
    adata.var_names = [f"G{i}" for i in range(n_genes)]
    adata.uns["vcc"] = {"control_label": "control"}
    return adata


@pytest.fixture(scope="module")
def synthetic_calls() -> pd.DataFrame:
    return perturbation_effects(_synthetic(), n_pcs=10, n_permutations=200, max_control_cells=200, seed=0)


def test_synthetic_calls_find_exactly_the_null_perturbations(synthetic_calls):
    calls = synthetic_calls["call"]
    assert set(calls.index) == {"G0", "G1+G2", "UP", "NULL_A", "NULL_B"}
    assert set(calls[calls == NULL_CALL].index) == {"NULL_A", "NULL_B"}
    assert set(calls[calls == EFFECT_CALL].index) == {"G0", "G1+G2", "UP"}
    effect = synthetic_calls.loc[["G0", "G1+G2", "UP"]]
    assert (effect["evidence"] == "both").all() and (effect["n_de_genes"] >= 5).all()
    null = synthetic_calls.loc[["NULL_A", "NULL_B"]]
    assert (null["n_de_genes"] == 0).all() and (null["etest_p_adj"] >= 0.05).all()
    assert null["edistance"].max() < effect["edistance"].min()


def test_synthetic_target_fold_change_and_bookkeeping(synthetic_calls):
    df = synthetic_calls
    assert df.loc["G0", "target_measured"] and df.loc["G0", "target_log2fc"] < -1.5
    assert df.loc["G0", "target_fdr"] < 1e-6
    assert df.loc["G0", "n_de_other"] == df.loc["G0", "n_de_genes"] - 1
    assert not df.loc["G1+G2", "target_measured"] and np.isnan(df.loc["G1+G2", "target_log2fc"])
    assert not df.loc["UP", "target_measured"] and np.isnan(df.loc["UP", "target_fdr"])
    assert (df["n_cells"] == 120).all() and df.attrs["n_control_cells_etest"] == 200
    assert df.attrs["n_control_cells_de"] == 300 and df.attrs["n_pcs"] == 10
    assert list(df["edistance"]) == sorted(df["edistance"], reverse=True)


def test_adjust_pvalues():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.5])
    bh = adjust_pvalues(p, "bh")
    np.testing.assert_allclose(bh[[0, 1, 2, 4]], [0.04, 0.0533333, 0.0533333, 0.5], rtol=1e-5)
    assert np.isnan(bh[3])
    hs = adjust_pvalues(p, "holm-sidak")
    expected = [1 - 0.99**4, 1 - (1 - 0.03) ** 3, 1 - (1 - 0.03) ** 3, np.nan, 0.5]
    expected[1] = max(expected[1], 1 - 0.96**2)
    np.testing.assert_allclose(hs, expected, rtol=1e-9)
    with pytest.raises(ValueError):
        adjust_pvalues(p, "bonferroni")


@pytest.mark.mirror
def test_papalexi_ifng_pathway_knockouts_have_an_effect():
    from vcclib.data import load

    adata = load("papalexi2021_eccite_lowmoi")
    df = perturbation_effects(adata, n_pcs=20, n_permutations=100, max_control_cells=500,
                              max_cells_per_perturbation=200, seed=0)
    assert len(df) == 25
    for gene in ("STAT1", "JAK2"):
        row = df.loc[gene]
        assert row["call"] == EFFECT_CALL and row["evidence"] == "both"
        assert row["target_log2fc"] < -2 and row["target_fdr"] < 1e-10 and row["n_de_other"] >= 20
    # the four IFN-γ pathway knockouts are among the five largest E-distances
    assert {"STAT1", "JAK2", "IFNGR1", "IFNGR2"} <= set(df.index[:5])
