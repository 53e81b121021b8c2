"""Tests of the calibrated chapter (:mod:`vcclib.analyses.null_effects` calibration, groups, quality, genome scale,
calls).

Synthetic data with a known truth unless marked ``mirror``: Poisson counts (log1p) where some groups are drawn
from the control distribution (must not be called) and others triple the rate of 8 genes (must be called); a
high-MOI toy whose cells carry two gRNAs; a Replogle-shaped statistics table whose calls are known by construction.
The Mann–Whitney pieces are checked against scipy, the vectorised null's E-distance against the metrics engine.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData
from scipy.stats import mannwhitneyu

from vcclib.analyses.null_effects import answer, calibration, genome_scale, quality
from vcclib.analyses.null_effects.groups import cell_groups
from vcclib.metrics.distances import edistance


def _counts(rng, n, rate):
    return np.log1p(rng.poisson(rate, size=(n, rate.size)).astype(float))


def test_mwu_against_block_equals_scipy():
    rng = np.random.default_rng(1)
    main = _counts(rng, 300, np.full(6, 0.7))
    group = _counts(rng, 40, np.full(6, 1.0))
    removed = rng.choice(300, 40, replace=False)
    block = calibration.SortedBlock(main, 10.0)
    U, tie = calibration.mwu_against_block(block, group, main[removed])
    keep = np.setdiff1d(np.arange(300), removed)
    for j in range(6):
        assert U[j] == mannwhitneyu(group[:, j], main[keep, j]).statistic
        union = np.concatenate([group[:, j], main[keep, j]])
        assert tie[j] == calibration.tie_term(union[:, None])[0]


def test_null_distribution_edistance_equals_the_engine():
    rng = np.random.default_rng(2)
    pcs = rng.normal(size=(120, 5))
    D = calibration.pairwise_distances(pcs)
    ranks = np.zeros((120, 1))
    null = calibration.null_distribution(D, ranks, np.zeros(1), 30, 3, 0.05, np.random.default_rng(7))
    picks = np.random.default_rng(7).random((3, 120)).argsort(axis=1)[:, :30]
    for k in range(3):
        rest = np.setdiff1d(np.arange(120), picks[k])
        assert null.edistance[k] == pytest.approx(edistance(pcs[picks[k]], pcs[rest], "pertpy"), rel=1e-6)


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 3.0, 30)
    blocks, groups, start = [_counts(rng, 900, base)], {}, 900
    for name, n in (("NULL_A", 80), ("NULL_B", 150), ("UP_A", 80), ("UP_B", 150)):
        rate = base.copy()
        if name.startswith("UP"):
            rate[:8] *= 3
        blocks.append(_counts(rng, n, rate))
        groups[name] = np.arange(start, start + n)
        start += n
    X = np.vstack(blocks)
    pcs = (X - X.mean(0))[:, :10]
    return X, pcs, groups


def test_calibrated_calls_find_the_effects_and_not_the_nulls(synthetic):
    X, pcs, groups = synthetic
    eff, cal = calibration.calibrated_tests(
        pcs, sp.csr_matrix(X), groups, np.arange(900), n_null=200, n_check=30, max_cells=100, min_cells=20, seed=0
    )
    assert (eff.loc[["UP_A", "UP_B"], "q_calibrated"] < 0.05).all()
    assert (eff.loc[["NULL_A", "NULL_B"], "p_calibrated"] > 0.05).all()
    assert eff.loc["UP_B", "n_cells_tested"] == 100 and eff.loc["NULL_A", "n_cells_tested"] == 80
    summary = calibration.calibration_summary(cal)
    assert summary["n_checks"] == 60 and summary["share_called"] <= 0.15
    assert set(cal["size"]) == {80, 100}
    assert cal.attrs["n_control_main"] + cal.attrs["n_control_holdout"] == 900


def test_high_moi_cells_belong_to_every_group_they_carry():
    grnas = pd.DataFrame(
        {
            "grna_id": ["a1", "b1", "nt1"],
            "grna_group": ["A", "B", "non-targeting"],
            "target": ["A", "B", "non-targeting"],
            "target_kind": ["x", "x", "non-targeting"],
        }
    )
    assigned = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 1], [0, 0, 1], [0, 0, 0]], dtype=bool))
    obs = pd.DataFrame(
        {"perturbation": ["A+B", "A", "non-targeting", "unassigned"], "n_perturbations": [2, 1, 0, 0]},
        index=[f"c{i}" for i in range(4)],
    )
    adata = AnnData(np.zeros((4, 2)), obs=obs)
    adata.obsm["grna_assigned"] = assigned
    adata.uns["grnas"] = grnas
    adata.uns["vcc"] = {"control_label": "non-targeting", "moi": "high"}
    cg = cell_groups(adata)
    assert cg.groups["A"].tolist() == [0, 1] and cg.groups["B"].tolist() == [0]
    assert cg.control.tolist() == [2] and "non-targeting" not in cg.groups
    assert set(cg.guides["A"]) == {"a1"}


def test_quality_shift_flags_the_dying_group_and_skips_what_is_absent():
    rng = np.random.default_rng(3)
    counts = rng.poisson(5.0, size=(400, 20))
    counts[300:] = rng.poisson(2.0, size=(100, 20))  # the "dying" group: far fewer UMIs
    obs = pd.DataFrame(
        {"perturbation": ["ctrl"] * 200 + ["OK"] * 100 + ["DYING"] * 100}, index=[f"c{i}" for i in range(400)]
    )
    adata = AnnData(np.log1p(counts.astype(float)), obs=obs)
    adata.layers["counts"] = sp.csr_matrix(counts)
    signals, notes = quality.quality_signals(adata, mito_column="pct_mt")
    assert list(signals.columns) == ["total_umis", "genes_detected"]
    assert any("pct_mt" in n and "skipped" in n for n in notes)
    groups = {"OK": np.arange(200, 300), "DYING": np.arange(300, 400)}
    shifts = quality.quality_shifts(signals, groups, np.arange(200))
    flag = quality.dying_flag(shifts)
    assert flag["DYING"] and not flag["OK"]


def test_depletion_against_non_targeting_guides():
    nt = {f"nt{i}": np.arange(100 + i) for i in range(5)}
    guides = {"LOW": {"g1": np.arange(20), "g2": np.arange(20, 45)}, "NORMAL": {"g1": np.arange(102)}}
    table = quality.depletion(guides, nt)
    assert table.loc["LOW", "cells_expected"] == 204 and table.loc["LOW", "depletion_ratio"] < 0.25
    assert table.loc["LOW", "depletion_z"] < -2 < table.loc["NORMAL", "depletion_z"]


def test_classify_order_of_the_rules():
    table = pd.DataFrame(
        {
            "n_cells": [10, 100, 100, 100, 100],
            "q_calibrated": [np.nan, 0.01, 0.01, 0.5, 0.5],
            "dying_flag": [False, True, False, False, False],
            "target_measured": [True, True, True, True, False],
            "target_fdr": [1e-9, 1e-9, 1e-9, 0.8, np.nan],
            "target_log2fc": [-2, -2, -2, 0.1, np.nan],
        },
        index=["FEW", "DYING", "EFFECT", "FAILED", "NULL"],
    )
    calls = answer.classify(table, perturbation_type="CRISPRi")
    assert calls.tolist() == ["too few cells", "effect, dying-cell readout", "effect", "failed knockdown", "no effect"]
    # CRISPRa: an unchanged target is not a failed knockdown
    assert answer.classify(table, perturbation_type="CRISPRa")["FAILED"] == "no effect"


def _stats() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    n_ctrl = 99
    ctrl = pd.DataFrame(
        {
            "target": "non-targeting",
            "is_control": True,
            "energy_test_p": rng.uniform(0, 1, n_ctrl),
            "n_degs_anderson_darling": rng.integers(0, 3, n_ctrl),
            "percent_knockdown": np.nan,
            "n_cells_filtered": 150,
            "n_cells_unfiltered": 155,
            "umis_zscore": rng.normal(0, 0.1, n_ctrl),
            "mito_fraction": rng.normal(0.1, 0.005, n_ctrl),
        }
    )
    genes = pd.DataFrame(
        {
            "target": ["STRONG", "DYING", "NOTHING", "FAILED", "FEW"],
            "is_control": False,
            "energy_test_p": [1e-4, 1e-4, 0.6, 0.6, 1e-4],
            "n_degs_anderson_darling": [500, 800, 0, 0, 9],
            "percent_knockdown": [-0.9, -0.9, -0.9, -0.1, -0.9],
            "n_cells_filtered": [150, 40, 150, 150, 5],
            "n_cells_unfiltered": [155, 160, 155, 155, 6],
            "umis_zscore": [0.0, -1.5, 0.0, 0.0, 0.0],
            "mito_fraction": [0.1, 0.2, 0.1, 0.1, 0.1],
        }
    )
    out = pd.concat([ctrl, genes], ignore_index=True)
    out["screen"] = "S"
    out["perturbation_id"] = out["target"]
    out["n_degs_mann_whitney"] = out["n_degs_anderson_darling"]
    out["target_expression"] = 1.0
    return out


def test_genome_scale_calls_known_by_construction():
    table = genome_scale.genome_scale_calls(_stats(), "S", alpha=0.05, min_cells=30).set_index("gene")
    assert table["call"].to_dict() == {
        "STRONG": "effect",
        "DYING": "effect, dying-cell readout",
        "NOTHING": "no effect",
        "FAILED": "failed knockdown",
        "FEW": "too few cells",
    }
    assert table.loc["STRONG", "p_rank_vs_controls"] == pytest.approx(1 / 100)
    assert table.loc["STRONG", "p_calibrated"] == pytest.approx(1 / 100) and table.attrs["smallest_p"] == 1 / 100
    assert table.attrs["control_share_calibrated"] <= 0.05
    record = answer.genome_record(table.reset_index(), "S")
    assert record["no effect"]["n"] == 1 and record["n_tested"] == 4
    text = "\n".join(answer.conclusions({"datasets": [], "genome": [record]}).points)
    assert "**Replogle S**: 25%" in text


def test_genome_scale_controls_are_scored_like_perturbations_and_called_at_most_alpha():
    """Controls whose raw energy p is inflated (p = U³: 37% below 0.05) and a few strong outliers among them."""
    rng = np.random.default_rng(7)
    n_ctrl, n_null, n_eff = 200, 600, 400
    rows = pd.DataFrame(
        {
            "target": ["non-targeting"] * n_ctrl + [f"N{i}" for i in range(n_null)] + [f"E{i}" for i in range(n_eff)],
            "is_control": [True] * n_ctrl + [False] * (n_null + n_eff),
            "energy_test_p": np.concatenate([rng.uniform(0, 1, n_ctrl + n_null) ** 3, np.full(n_eff, 1e-4)]),
            "n_degs_anderson_darling": np.concatenate([rng.poisson(1, n_ctrl + n_null), rng.integers(300, 900, n_eff)]),
        }
    )
    rows.loc[:3, ["energy_test_p", "n_degs_anderson_darling"]] = [1e-4, 250]  # 4 outlier controls
    rows = rows.assign(
        percent_knockdown=np.where(rows["is_control"], np.nan, -0.9),
        n_cells_filtered=150,
        n_cells_unfiltered=155,
        umis_zscore=0.0,
        mito_fraction=0.1,
        screen="S",
        perturbation_id=rows["target"],
        n_degs_mann_whitney=0,
        target_expression=1.0,
    )
    table = genome_scale.genome_scale_calls(rows, "S", alpha=0.05).set_index("gene")
    cal = table.attrs["calibration"]
    assert cal["raw_share"] > 0.3  # the raw p-values call a third of the controls
    assert cal["called_share"] <= 0.05 and cal["per_test_share"] <= 0.05 + 2 / n_ctrl
    effects = table.loc[[f"E{i}" for i in range(n_eff)], "call"]
    assert (effects == "effect").mean() > 0.95
    nulls = table.loc[[f"N{i}" for i in range(n_null)], "call"]
    assert (nulls == "effect").mean() <= 0.05
    check = genome_scale.calibration_table(rows, "S")
    assert len(check) == n_ctrl and check["called"].mean() == pytest.approx(cal["called_share"])
    # the sensitivity null of the core controls only (here: all but the 4 outliers) calls those outliers
    core = genome_scale.genome_scale_calls(rows.assign(core_control=rows.index >= 4), "S", null_controls="core")
    assert core.attrs["calibration"]["non_null_controls"] == 4
    assert core.attrs["calibration"]["non_null_called_share"] == 1.0
    assert answer.core_null_sensitivity(core)["n_core"] == n_ctrl - 4
    with pytest.raises(ValueError, match="null_controls"):
        genome_scale.genome_scale_calls(rows, "S", null_controls="some")


def test_panel_signals_are_refused_for_the_dying_flag():
    panel = [
        "total_umis: sum of layers['counts'] over the 299 measured genes",
        "genes_detected: measured genes with ≥ 1 UMI (of 299)",
        "mito_fraction: not measured (0 MT- genes), skipped",
    ]
    usable, refused = quality.usable_signals(panel, 299)
    assert usable == [] and len(refused) == 2 and "299 measured genes" in refused[0]
    whole = ["total_umis: obs['gene_n_umis']", "mito_fraction: obs['p_mito']"]
    assert quality.usable_signals(whole, 341) == (["total_umis", "mito_fraction"], [])
    assert quality.usable_signals(panel, 20000)[0] == ["total_umis", "genes_detected"]
    shifts = pd.DataFrame({"total_umis_log2_shift": [-1.0], "total_umis_q": [0.001]}, index=["A"])
    assert quality.dying_flag(shifts, signals=[]).isna().all()
    assert bool(quality.dying_flag(shifts, signals=["total_umis"])["A"])


@pytest.mark.mirror
def test_replogle_controls_called_at_most_alpha():
    from vcclib.data import load

    stats = load("replogle2022_tables", tables=["statistics"])["statistics"]
    table = genome_scale.genome_scale_calls(stats, "K562_essential_day6")
    cal = table.attrs["calibration"]
    assert cal["n_controls"] == 109 and cal["raw_share"] > 0.1  # raw energy p: 16% of controls below 0.05
    assert cal["called_share"] <= 0.05 and set(table["call"]) <= set(answer.GENOME_CALLS)


@pytest.mark.mirror
def test_gasperini_high_moi_groups_end_to_end_at_tiny_size():
    from vcclib.analyses.null_effects.pipeline import analyse_dataset
    from vcclib.data import load

    adata = load("gasperini2019_highmoi")
    rng = np.random.default_rng(0)
    control = np.flatnonzero(adata.obs["perturbation"].astype(str).to_numpy() == "non-targeting")
    carriers = np.flatnonzero(adata.obs["perturbation"].astype(str).str.contains("RPL6|MRPL9|chr19.488"))
    small = adata[np.sort(np.concatenate([rng.choice(control, 600, replace=False), carriers]))].copy()
    out = analyse_dataset(
        small,
        dataset="gasperini",
        n_null=40,
        n_check=3,
        n_permutations=20,
        max_cells=60,
        max_control_cells=300,
        n_pcs=5,
        umi_column="gene_n_umis",
        mito_column="p_mito",
        seed=0,
    )
    table = out["effects"]
    tested = table[table["call"] != "too few cells"]
    assert {"RPL6", "MRPL9", "chr19.488"} <= set(tested.index) and set(table["call"]) <= set(answer.CALLS)
    assert tested.loc["RPL6", "target_measured"] and tested.loc["RPL6", "target_log2fc"] < 0  # TSS group
    assert not tested.loc["chr19.488", "target_measured"]  # an enhancer group has no target gene
    assert out["record"]["usable_signals"] == ["total_umis", "mito_fraction"]
    assert out["record"]["calibration"]["n_checks"] > 0 and "high-MOI" in out["record"]["settings"]["group_rule"]


@pytest.mark.mirror
@pytest.mark.slow
def test_papalexi_calibrated_calls_keep_the_ifng_pathway():
    from vcclib.analyses.null_effects.pipeline import analyse_dataset
    from vcclib.data import load

    adata = load("papalexi2021_eccite_lowmoi")
    out = analyse_dataset(
        adata,
        dataset="papalexi",
        n_null=100,
        n_check=5,
        n_permutations=50,
        max_cells=100,
        max_control_cells=500,
        n_pcs=10,
        escape_method="none",
        seed=0,
    )
    table = out["effects"]
    assert len(table) == 25 and set(table["call"]) <= set(answer.CALLS)
    for gene in ("STAT1", "JAK2", "IFNGR1", "IFNGR2"):
        assert table.loc[gene, "call"].startswith("effect")
