"""Tests of :mod:`vcclib.analyses.guides` (guide efficacy and off-targeting chapter).

Synthetic data with a known truth (said in each test): a low-MOI screen of Poisson counts where target ``A`` has
three working guides (its own gene down 8-fold and ten other genes tripled) and one guide whose cells are drawn
from the control distribution (a failed guide), target ``B`` has two working guides, and target ``NULL`` has two
guides without any effect; two replicates. Screens: log fold changes generated as ``e_g · G + noise`` with known
efficacies, and a planted copy-number trend. Real mirror data: Achilles 19Q2 counts and the Chronos sample's
agreement with the published Chronos fit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

from vcclib.analyses import guides as ga
from vcclib.analyses.guides import correction, lowmoi, screens
from vcclib.errors import VccError


def _lowmoi(seed: int = 0) -> AnnData:
    rng = np.random.default_rng(seed)
    n_genes = 40
    base = rng.uniform(1.0, 4.0, n_genes)
    design = {
        ("non-targeting", "NT1"): 300,
        ("non-targeting", "NT2"): 300,
        ("A", "Ag1"): 120,
        ("A", "Ag2"): 120,
        ("A", "Ag3"): 120,
        ("A", "Ag4"): 120,
        ("B", "Bg1"): 120,
        ("B", "Bg2"): 120,
        ("NULL", "Ng1"): 120,
        ("NULL", "Ng2"): 120,
    }
    blocks, obs = [], []
    for (target, guide), n in design.items():
        rate = base.copy()
        if target == "A" and guide != "Ag4":
            rate[0] /= 8
            rate[10:20] *= 3
        if target == "B":
            rate[20:30] *= 3
        blocks.append(np.log1p(rng.poisson(rate, size=(n, n_genes)).astype(np.float32)))
        obs += [{"perturbation": target, "guide": guide, "replicate": f"r{i % 2}"} for i in range(n)]
    frame = pd.DataFrame(obs, index=[f"c{i}" for i in range(len(obs))])
    frame["is_control"] = frame["perturbation"] == "non-targeting"
    adata = AnnData(sp.csr_matrix(np.vstack(blocks)), obs=frame)
    adata.var_names = ["A"] + [f"G{i}" for i in range(1, n_genes)]
    adata.uns["vcc"] = {"control_label": "non-targeting", "dataset": "synthetic"}
    return adata


@pytest.fixture(scope="module")
def synthetic():
    adata = _lowmoi()
    return adata, lowmoi.guide_table(adata, n_resamples=200, n_pcs=10, seed=0)


def test_guide_table_finds_the_failed_guide_and_the_null_target(synthetic):
    """Known truth: Ag4 failed, Ag1–3 and Bg1–2 work, NULL's guides cannot be judged."""
    _, table = synthetic
    status = table.set_index("guide")["status"]
    assert status["Ag4"] == "failed"
    assert set(status[["Ag1", "Ag2", "Ag3", "Bg1", "Bg2"]]) == {"effective"}
    assert set(status[["Ng1", "Ng2"]]) == {"target without effect"}
    row = table.set_index("guide")
    assert (row.loc[["Ag1", "Ag2", "Ag3"], "target_log2fc"] < -2).all()
    assert (row.loc[["Ag1", "Ag2", "Ag3"], "p_calibrated"] <= 1 / 201 + 1e-12).all()
    assert row.loc["Ag4", "p_calibrated"] > 0.05 and abs(row.loc["Ag4", "efficacy"]) < 0.3
    # efficacy is relative to the pooled siblings: with one failed sibling, each working guide carries 3/2 of the
    # rest's (diluted) effect, and the failed one about none
    assert (row.loc[["Ag1", "Ag2", "Ag3"], "efficacy"].between(1.3, 1.7)).all()
    assert (row.loc[["Bg1", "Bg2"], "efficacy"].between(0.8, 1.2)).all()
    assert list(table.columns[:6]) == ["guide", "target", "n_cells", "target_measured", "target_log2fc", "p_calibrated"]
    assert "escape_fraction" in table and "efficacy" in table


def test_resampled_draws_match_the_group_replicate_make_up():
    """Each null draw has as many control cells per replicate as the group, and only control cells."""
    rng = np.random.default_rng(1)
    strata = np.array(["r0"] * 50 + ["r1"] * 50)
    control = np.zeros(100, dtype=bool)
    control[10:50] = control[60:100] = True
    members = np.array([0, 1, 2, 55, 56])
    draws = lowmoi.resampled_draws(strata, control, members, 30, rng)
    assert draws.shape == (30, 5)
    assert control[draws].all()
    assert ((strata[draws] == "r0").sum(axis=1) == 3).all()
    assert all(len(set(row)) == 5 for row in draws)  # without replacement


def test_calibrated_p_is_near_uniform_for_control_groups():
    """Known truth: groups of control cells relabelled as a target have no effect. Over 12 seeds × 12 groups of 25
    cells (144 groups; the earlier 48 groups of 4 seeds gave 10 % by chance: over 30 seeds, 360 groups, the
    signature test gives 5.6 % and knockdown 3.3 %), the share of p < 0.05 is at most 0.05 + 2.5 binomial SE
    (0.09) and the mean p is near 0.5."""
    p_signature, p_knock = [], []
    for seed in range(12):
        adata = _lowmoi(seed)
        control = np.flatnonzero(adata.obs["is_control"].to_numpy())
        fake = np.random.default_rng(seed).choice(control, size=12 * 25, replace=False)
        obs = adata.obs.copy()
        obs.loc[obs.index[fake], "perturbation"] = "A"
        obs.loc[obs.index[fake], "guide"] = [f"fake{i // 25}" for i in range(len(fake))]
        obs["is_control"] = obs["perturbation"] == "non-targeting"
        keep = ~obs["perturbation"].isin(["B", "NULL"]) & ~obs["guide"].isin(["Ag1", "Ag2", "Ag3", "Ag4"])
        data = AnnData(adata.X[keep.to_numpy()], obs=obs[keep], var=adata.var.copy(), uns=adata.uns)
        table = lowmoi.guide_table(data, n_resamples=200, n_pcs=10, seed=seed)
        p_signature += list(table["p_signature"])
        p_knock += list(table["p_calibrated"])
    assert np.mean(np.array(p_signature) < 0.05) <= 0.09 and np.mean(np.array(p_knock) < 0.05) <= 0.09
    assert 0.4 < np.mean(p_signature) < 0.6 and 0.4 < np.mean(p_knock) < 0.6


def test_null_calibration_relabels_controls(synthetic):
    adata, _ = synthetic
    null = lowmoi.null_calibration(adata, n_groups=6, group_size=30, n_resamples=100, n_pcs=5)
    assert len(null) == 6 and (null["n_cells"] == 30).all()
    assert null["p_calibrated"].between(0, 1).all() and null["p_signature"].between(0, 1).all()


def _highmoi(seed: int = 0) -> AnnData:
    """Synthetic high-MOI screen: gRNA T1 represses gene 0 four-fold, its sibling T2 does nothing (a failed gRNA);
    10 non-targeting gRNAs; cells carrying more gRNAs have 50 % higher expression of every gene (a confound the
    resampling must absorb); two batches."""
    rng = np.random.default_rng(seed)
    n_cells, n_genes, n_grna = 4000, 15, 12
    n_grnas = rng.choice([0, 1, 2, 3], size=n_cells, p=[0.4, 0.35, 0.18, 0.07])
    assigned = np.zeros((n_cells, n_grna), dtype=bool)
    for c, k in enumerate(n_grnas):
        assigned[c, rng.choice(n_grna, size=k, replace=False)] = True
    rate = np.full((n_cells, n_genes), 2.0) * (1 + 0.5 * (n_grnas[:, None] >= 2))
    rate[assigned[:, 0], 0] /= 4
    X = np.log1p(rng.poisson(rate).astype(np.float32))
    obs = pd.DataFrame(
        {"n_grnas": n_grnas, "batch": rng.choice(["b1", "b2"], size=n_cells), "perturbation": "x"},
        index=[f"c{i}" for i in range(n_cells)],
    )
    adata = AnnData(sp.csr_matrix(X), obs=obs)
    adata.var_names = [f"G{i}" for i in range(n_genes)]
    grnas = pd.DataFrame(
        {
            "grna_id": ["T1", "T2"] + [f"NT{i}" for i in range(10)],
            "grna_group": ["G0_TSS", "G0_TSS"] + ["non-targeting"] * 10,
            "target": ["G0", "G0"] + ["non-targeting"] * 10,
            "target_kind": ["TSS positive control"] * 2 + ["non-targeting"] * 10,
        }
    )
    adata.obsm["grna_assigned"] = sp.csr_matrix(assigned)
    adata.uns["grnas"] = grnas
    adata.uns["discovery_pairs"] = pd.DataFrame(
        {
            "response_id": ["G0", "G1"],
            "symbol": ["G0", "G1"],
            "grna_group": ["G0_TSS", "G0_TSS"],
            "type": ["pos_cntrl", "cis"],
        }
    )
    return adata


def test_highmoi_finds_the_working_and_the_failed_grna_and_is_calibrated():
    """Known truth (synthetic, _highmoi): group G0_TSS represses G0, not G1; T1 effective, T2 failed; the
    non-targeting gRNAs' p-values are uniform although gRNA-rich cells express more (stratified resampling)."""
    from vcclib.analyses.guides import highmoi

    table, negative = highmoi.highmoi_guide_table(_highmoi(), n_resamples=200, seed=0)
    rows = table.set_index(["guide", "gene"])
    assert rows.loc[("G0_TSS", "G0"), "p_calibrated"] <= 1 / 201 + 1e-12
    assert rows.loc[("G0_TSS", "G0"), "target_log2fc"] < -0.5
    assert rows.loc[("G0_TSS", "G1"), "p_calibrated"] > 0.01
    assert rows.loc[("T1", "G0"), "status"] == "effective" and rows.loc[("T2", "G0"), "status"] == "failed"
    assert rows.loc[("T1", "G0"), "efficacy"] > 0.5 and abs(rows.loc[("T2", "G0"), "efficacy"]) < 0.2
    assert list(table.columns[:7]) == [
        "guide",
        "target",
        "n_cells",
        "target_log2fc",
        "p_calibrated",
        "efficacy",
        "escape_fraction",
    ]
    summary = highmoi.calibration_summary(negative)
    assert summary["n_tests"] == 150 and summary["share_below_alpha"] <= 0.12 and summary["ks_statistic"] < 0.15


def test_highmoi_refuses_low_moi_data(synthetic):
    from vcclib.analyses.guides import highmoi

    with pytest.raises(VccError, match="not high-MOI"):
        highmoi.highmoi_guide_table(synthetic[0])


def test_down_weighting_strengthens_the_knockdown(synthetic):
    """Known truth: Ag4 failed (efficacy ≈ 0), so its cells get weight ≈ 0 and A's knockdown gets stronger."""
    adata, table = synthetic
    w = correction.guide_weights(adata, table, None)
    guide = adata.obs["guide"].to_numpy()
    assert (w[adata.obs["is_control"].to_numpy()] == 1).all() and w[guide == "Ag4"].max() < 0.3
    per_target, summary = correction.weighted_consequences(adata, w, dataset="synthetic")
    a = per_target.set_index("target").loc["A"]
    assert a["target_log2fc_after"] < a["target_log2fc_before"] and a["n_cells_after"] < a["n_cells_before"]
    assert set(summary["correction"]) == {"down-weight"}


def test_sgrna_design_parsing():
    from vcclib.analyses.guides import design

    parts = design.parse_sgid(pd.Series(["A1BG_+_58858964.23-P1", "bad"]))
    assert parts.loc[0, "strand"] == "+" and parts.loc[0, "position"] == 58858964 and parts.loc[0, "tss"] == "P1"
    assert parts.loc[1].isna().all()
    assert design.gc_content(pd.Series(["GGCC", "ATGC"])).tolist() == [1.0, 0.5]


def test_correct_drops_failed_guides_and_keeps_controls(synthetic):
    adata, table = synthetic
    corrected, log = correction.correct(adata, table, None)
    assert "Ag4" not in set(corrected.obs["guide"])
    assert corrected.obs["is_control"].sum() == adata.obs["is_control"].sum()
    assert log.set_index("target").loc["A", "guides_dropped"] == "Ag4"
    before = correction.target_effects(adata).set_index("target")
    after = correction.target_effects(corrected).set_index("target")
    assert after.loc["A", "target_log2fc"] < before.loc["A", "target_log2fc"]  # the knockdown gets stronger
    assert after.loc["A", "effect_norm"] > before.loc["A", "effect_norm"]


def test_agreement_within_targets_exceeds_between(synthetic):
    adata, table = synthetic
    judged = table[table["status"] == "effective"]
    effects = lowmoi.guide_effects(adata).loc[judged["guide"]]
    pairs = lowmoi.agreement_pairs(effects, judged.set_index("guide")["target"])
    within = pairs.loc[pairs["pair"] == "within", "pearson_r"].median()
    between = pairs.loc[pairs["pair"] == "between", "pearson_r"].median()
    assert within > 0.8 and between < 0.3
    reps = lowmoi.replicate_agreement(adata)
    assert reps.set_index("target").loc["A", "replicate_r"] > 0.8


def test_guide_data_errors_are_vcc_errors():
    adata = _lowmoi()
    del adata.obs["guide"]
    with pytest.raises(VccError, match="no column 'guide'"):
        lowmoi.guide_table(adata)


def test_fit_guide_efficacy_recovers_known_efficacies():
    """Known truth: lfc = e_g · G + noise with e_g ∈ [0.1, 1] over 30 lines and 60 genes of 4 guides."""
    rng = np.random.default_rng(0)
    genes = [f"g{i}" for i in range(60)]
    G = rng.normal(-1.0, 0.8, size=(30, 60))
    guide_map = pd.DataFrame({"sgrna": [f"s{i}" for i in range(240)], "symbol": np.repeat(genes, 4)})
    e = rng.uniform(0.1, 1.0, 240)
    e[::4] = 1.0
    lfc = G[:, np.repeat(np.arange(60), 4)] * e + rng.normal(0, 0.1, size=(30, 240))
    fitted_G, fitted_e = screens.fit_guide_efficacy(
        pd.DataFrame(lfc, columns=guide_map["sgrna"]), guide_map, prior=0.01
    )
    assert np.corrcoef(fitted_e.to_numpy(), e)[0, 1] > 0.95
    naive = screens.mean_over_guides(pd.DataFrame(lfc, columns=guide_map["sgrna"]), guide_map)
    assert (
        np.corrcoef(fitted_G.to_numpy().ravel(), G.ravel())[0, 1]
        >= np.corrcoef(naive.to_numpy().ravel(), G.ravel())[0, 1]
    )


def test_copy_number_correction_removes_a_planted_trend():
    """Known truth: non-essential genes' scores fall by 0.4 per unit of copy number above 1."""
    rng = np.random.default_rng(0)
    genes = [f"g{i}" for i in range(400)]
    cn = pd.DataFrame(rng.uniform(0.5, 3.0, size=(3, 400)), index=["L1", "L2", "L3"], columns=genes)
    scores = pd.DataFrame(rng.normal(0, 0.05, size=(3, 400)), index=cn.index, columns=genes) - 0.4 * (cn - 1)
    corrected, trend = screens.copy_number_correct(scores, cn, essentials=[])
    assert abs(np.corrcoef(corrected.to_numpy().ravel(), cn.to_numpy().ravel())[0, 1]) < 0.1
    assert np.corrcoef(scores.to_numpy().ravel(), cn.to_numpy().ravel())[0, 1] < -0.9
    assert len(trend) > 0


def test_scale_to_controls_maps_medians():
    scores = pd.DataFrame(np.arange(20, dtype=float)[None, :].repeat(2, 0), columns=[f"g{i}" for i in range(20)])
    scaled = screens.scale_to_controls(scores, [f"g{i}" for i in range(5)], [f"g{i}" for i in range(15, 20)])
    assert np.allclose(scaled[[f"g{i}" for i in range(15, 20)]].median(axis=1), 0)
    assert np.allclose(scaled[[f"g{i}" for i in range(5)]].median(axis=1), -1)


def test_conclusions_are_formatted_from_records(synthetic):
    _, table = synthetic
    records = {"dataset": "synthetic", "guides": ga.guide_summary(table)}
    text = str(ga.conclusions(records))
    n_failed = records["guides"]["status_counts"]["failed"]
    assert f"{n_failed} (" in text and "NULL" in text
    records["guides"]["status_counts"]["failed"] = 99
    assert "99 (" in str(ga.conclusions(records))
    assert "key-takeaways" in ga.conclusions(records).to_markdown()


@pytest.mark.mirror
def test_achilles_guides_on_the_mirror():
    from vcclib.data import load

    tables = load("depmap_achilles_19q2")
    guides = screens.achilles_guides(tables)
    genes = screens.achilles_genes(guides, tables)
    summary = screens.achilles_summary(guides, genes)
    assert summary["n_guides"] == 70907 and summary["n_guides_with_efficacy"] == 69913
    assert 500 < summary["n_multi_gene_guides"] < 5000
    assert 0 < summary["n_genes_under_2_effective"] < summary["n_genes"]


@pytest.mark.mirror
@pytest.mark.slow
def test_chronos_sample_naive_scores_agree_with_published_fit():
    """On the real Chronos sample, guide-mean scores of QC-passing sequences track the published Chronos fit."""
    from vcclib.data import load

    tables = load("depmap_chronos_sample")
    published = screens.published_gene_effect(tables)
    fit = screens.gene_effects(tables, "avana", weighting=False, cn_correct=False)
    agreement = screens.agreement(fit["scores"], published)
    assert agreement["n_lines"] >= 40 and agreement["pearson_r"] > 0.7
