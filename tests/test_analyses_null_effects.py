"""Tests of :mod:`vcclib.analyses.null_effects` (per-perturbation effect calls, the chapter's rules and answer).

Synthetic data with a known truth: Poisson counts (log1p) for 40 genes; 3 perturbations carry a real effect
(``G0`` knocks its own gene down 8-fold and shifts G10–G14; ``G1+G2`` and ``UP`` triple the rate of 8 genes) and 2
(``NULL_A``, ``NULL_B``) are drawn from the control distribution. The rule must call exactly the 2 null ones.
On the real Papalexi ECCITE-seq data the IFN-γ pathway knockouts STAT1 and JAK2 knock down their own target and are
called "effect" even with small settings.

The chapter's rules (one test only, knockdown only) are checked on a hand-made call table whose answer is known
by construction, and the conclusions on records built from the synthetic calls. The zero-expression test knocks a
target out completely (rate 0 in its own cells): its fold change must be the DE engine's bound, not −inf.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

from vcclib.analyses.null_effects import (
    EFFECT_CALL,
    NULL_CALL,
    adjust_pvalues,
    chapter_records,
    conclusions,
    dataset_record,
    knockdown_only,
    one_test_only,
    perturbation_effects,
    stability,
    target_log2_fold_change,
    weak_points,
)
from vcclib.analyses.takeaways import TAKEAWAYS_CLASS
from vcclib.metrics.de import FC_CLIP


def _synthetic(seed: int = 0, knockout: bool = False) -> AnnData:
    rng = np.random.default_rng(seed)
    n_genes = 40
    base = rng.uniform(0.5, 4.0, n_genes)
    groups = {"control": 300, "G0": 120, "G1+G2": 120, "UP": 120, "NULL_A": 120, "NULL_B": 120}
    blocks, labels = [], []
    for name, n in groups.items():
        rate = base.copy()
        if name == "G0":
            rate[0] = 0.0 if knockout else rate[0] / 8
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
    df = perturbation_effects(
        adata, n_pcs=20, n_permutations=100, max_control_cells=500, max_cells_per_perturbation=200, seed=0
    )
    assert len(df) == 25
    for gene in ("STAT1", "JAK2"):
        row = df.loc[gene]
        assert row["call"] == EFFECT_CALL and row["evidence"] == "both"
        assert row["target_log2fc"] < -2 and row["target_fdr"] < 1e-10 and row["n_de_other"] >= 20
    # the four IFN-γ pathway knockouts are among the five largest E-distances
    assert {"STAT1", "JAK2", "IFNGR1", "IFNGR2"} <= set(df.index[:5])


def test_target_log2_fold_change_is_finite_with_the_engine_bound():
    bound = np.log2(FC_CLIP)
    got = target_log2_fold_change([0.0, 0.0, 5.0, 2.0, 1.0], [2.0, 0.0, 0.0, 1.0, 40.0])
    np.testing.assert_allclose(got, [-bound, 0.0, bound, 1.0, -bound])


def test_a_target_with_zero_expression_in_its_own_cells_gets_the_bound_not_minus_inf():
    df = perturbation_effects(_synthetic(knockout=True), n_pcs=10, n_permutations=50, max_control_cells=200, seed=0)
    lfc = df.loc["G0", "target_log2fc"]
    assert np.isfinite(lfc) and lfc == pytest.approx(-np.log2(FC_CLIP))
    assert df.loc["G0", "target_fdr"] < 1e-6 and df.loc["G0", "call"] == EFFECT_CALL
    assert "clipped to [1/20, 20]" in df.attrs["target_log2fc_convention"]
    assert np.isfinite(df["target_log2fc"].dropna()).all()


def _calls() -> pd.DataFrame:
    """Four hand-made calls with a known answer: A both tests; B DE only, just its own target; C E-test only;
    D nothing."""
    return pd.DataFrame(
        {
            "call": [EFFECT_CALL, EFFECT_CALL, EFFECT_CALL, NULL_CALL],
            "evidence": ["both", "DE only", "E-test only", "neither"],
            "etest_p_adj": [0.001, 0.4, 0.01, 0.6],
            "n_de_genes": [30, 1, 0, 0],
            "n_de_other": [29, 0, 0, 0],
            "target_measured": [True, True, False, True],
            "target_fdr": [1e-9, 1e-4, np.nan, 0.7],
        },
        index=["A", "B", "C", "D"],
    )


def test_one_test_only_and_knockdown_only_rules():
    calls = _calls()
    assert one_test_only(calls) == ["B", "C"]
    assert knockdown_only(calls, alpha=0.05) == ["B"]
    assert knockdown_only(calls.assign(etest_p_adj=0.01), alpha=0.05) == []


def test_conclusions_are_written_from_the_records(synthetic_calls):
    rerun = synthetic_calls.copy()
    rerun.loc["NULL_A", "call"] = EFFECT_CALL
    table = stability(synthetic_calls, rerun)
    assert table.index[~table["stable"]].tolist() == ["NULL_A"]
    records = chapter_records(
        synthetic_calls,
        table,
        dataset="synthetic",
        n_genes=40,
        rerun_variant="seed + 1",
        device="device: cpu (no GPU path)",
    )
    takeaways = conclusions(records)
    text = "\n".join(takeaways.points)
    nulls = ", ".join(synthetic_calls.index[synthetic_calls["call"] == NULL_CALL])
    assert f"**synthetic**: 3 of 5 perturbations have a detectable effect; **2 show none** ({nulls})." in text
    assert f"{records['largest_edistances'][0]:.2f}" in text and "flips 1 call: NULL_A" in text
    assert "Of the 1 measured target, 1 are significantly lowered" in text
    markdown = takeaways.to_markdown()
    assert markdown.startswith("```{admonition} Key takeaways") and TAKEAWAYS_CLASS in markdown
    assert any("clipped to [1/20, 20]" in c for c in takeaways.conventions)
    # change a record and the sentence follows: nothing is typed
    records["n_effect"], records["n"] = 7, 9
    assert "7 of 9 perturbations" in conclusions(records).points[0]
    weak = "\n".join(weak_points(records))
    assert "120–120 cells" in weak and "Only 40 genes" in weak


def test_second_dataset_record_enters_the_conclusions(synthetic_calls):
    second = dataset_record(synthetic_calls, dataset="other", n_genes=40, n_control=300)
    records = chapter_records(
        synthetic_calls,
        stability(synthetic_calls, synthetic_calls),
        dataset="synthetic",
        n_genes=40,
        rerun_variant="seed + 1",
        second=second,
    )
    assert "**other**: 3 of 5 perturbations" in conclusions(records).points[-1]
    assert "300 control cells" in weak_points(records)[-1]
