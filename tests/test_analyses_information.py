"""Information-content chapter: readout size, modality statistics, prior sources, hypothesis splits."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from vcclib.analyses.information import cache, conclusions, records, weak_points
from vcclib.analyses.information import matrix as mx
from vcclib.analyses.information import modalities as mods
from vcclib.analyses.information import readout as ro
from vcclib.analyses.information.priors import anchor_diagnosis
from vcclib.analyses.takeaways import Takeaways
from vcclib.splits import Split, list_splits, make_split
from vcclib.splits.hypotheses import (
    DATA_KIND,
    LabelSplit,
    SplitInputError,
    label_table,
    learning_curve,
    signature_labels,
)


@functools.cache
def _data(dataset: str, **options):
    from vcclib.data import load

    return load(dataset, **options)


# --------------------------------------------------------------------------------------------------------------
# statistics (synthetic data with a known answer)
# --------------------------------------------------------------------------------------------------------------


def test_spearman_interval_covers_truth_and_permutation_detects_it():
    """Synthetic: b = a + noise has a known positive rank correlation; an independent c has none."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=400)
    b = a + rng.normal(size=400)
    c = rng.normal(size=400)
    linked = mx.spearman_with_uncertainty(a, b, n_boot=200, n_perm=200)
    assert 0.55 < linked["value"] < 0.8
    assert linked["ci_low"] < linked["value"] < linked["ci_high"]
    assert linked["p_perm"] <= 1 / 200
    null = mx.spearman_with_uncertainty(a, c, n_boot=200, n_perm=200)
    assert null["p_perm"] > 0.05
    assert null["ci_low"] < 0 < null["ci_high"]


def test_partial_correlation_removes_a_shared_driver():
    """Synthetic: A and B both follow C; given C, A tells nothing more about B, while D = B + noise still does."""
    rng = np.random.default_rng(1)
    c = rng.normal(size=2000)
    a = c + 0.3 * rng.normal(size=2000)
    b = c + 0.3 * rng.normal(size=2000)
    d = b + 0.3 * rng.normal(size=2000)
    assert abs(mx.partial_spearman(a, b, c)) < 0.1
    assert mx.partial_spearman(d, b, c) > 0.5


def test_matrix_marks_small_overlaps_and_names_the_best_other_modality():
    """Synthetic modalities on named genes: overlap sizes and the conditioning modality are known."""
    rng = np.random.default_rng(2)
    genes = [f"G{i}" for i in range(300)]
    base = pd.Series(rng.normal(size=300), index=genes)
    quantities = {
        "x": base + 0.2 * rng.normal(size=300),
        "y": base + 0.2 * rng.normal(size=300),
        "z": pd.Series(rng.normal(size=300), index=genes),
        "tiny": base.iloc[:12],
    }
    table = mx.modality_matrix(quantities, min_overlap=10, small=30, n_boot=50, n_perm=50)
    assert list(table.columns[:11]) == list(mx.COLUMNS)
    row = table[(table["source"] == "x") & (table["target"] == "y")].iloc[0]
    assert row["n"] == 300 and row["value"] > 0.8 and row["given"] in ("tiny", "z")
    tiny = table[table["source"] == "tiny"]
    assert (tiny["n"] == 12).all() and tiny["small_overlap"].all()
    assert records(matrix=table, min_n=30)["n_pairs"] == 6


# --------------------------------------------------------------------------------------------------------------
# readout size
# --------------------------------------------------------------------------------------------------------------


def test_readout_map_recovers_a_linear_transcriptome():
    """Synthetic: 40 genes driven by 3 factors; 10 measured genes determine the rest almost exactly."""
    rng = np.random.default_rng(3)
    factors = rng.normal(size=(200, 3))
    rows = factors @ rng.normal(size=(3, 40)) + 0.01 * rng.normal(size=(200, 40))
    measured = np.zeros(40, bool)
    measured[:10] = True
    predict = ro.fit_readout_map(rows[:150], measured)
    full = predict(rows[150:, measured])
    assert np.allclose(full[:, measured], rows[150:, measured])
    r = np.corrcoef(full[:, ~measured].ravel(), rows[150:, ~measured].ravel())[0, 1]
    assert r > 0.99


def test_score_deltas_matches_a_direct_pearson():
    rng = np.random.default_rng(4)
    real = pd.DataFrame(rng.normal(size=(5, 30)), index=list("ABCDE"), columns=[f"g{i}" for i in range(30)])
    pred = real + 0.5 * rng.normal(size=real.shape)
    scored = ro.score_deltas(pred, real).set_index(["perturbation", "metric"])["value"]
    expected = np.corrcoef(pred.loc["C"], real.loc["C"])[0, 1]
    assert scored[("C", "pearson_delta")] == pytest.approx(expected)
    assert scored[("C", "mse_delta")] == pytest.approx(((pred.loc["C"] - real.loc["C"]) ** 2).mean())


@pytest.mark.mirror
def test_readout_on_papalexi_is_seeded_and_anchored():
    adata = _data("papalexi2021_eccite_lowmoi")
    from vcclib.models.runner import subsample

    small = subsample(adata, 40, seed=0)
    landmarks = ro.landmark_genes()
    assert len(landmarks) == 978
    one = ro.readout_cells(small, ro.DATASETS["papalexi"], 0, landmarks, ks=(10, 30))
    again = ro.readout_cells(small, ro.DATASETS["papalexi"], 0, landmarks, ks=(10, 30))
    pd.testing.assert_frame_equal(one, again)
    summary = ro.summarise_readout(one)
    pear = summary[summary["metric"] == "pearson_delta"].set_index(["gene_choice", "k"])["value"]
    assert {("all", adata.n_vars), ("none", 0), ("hvg", 10), ("random", 30)} <= set(pear.index)
    assert {"hvg", "random", "landmark"} <= set(summary["gene_choice"])
    # with 20 cells per half, a technical duplicate of Papalexi's weak effects can score below the mean effect:
    # placement is then undefined and must not be reported
    placed = ro.placement_by_k(summary)
    assert placed.empty == bool(pear[("all", adata.n_vars)] <= pear[("none", 0)])


@pytest.mark.mirror
@pytest.mark.slow
def test_lincs_landmarks_predict_inferred_genes():
    sig = _data("lincs_ctrap_kd_consensus")
    table = ro.readout_signatures(sig, ro.DATASETS["lincs_ctrap"], 0, ro.landmark_genes(), ks=(10,))
    summary = ro.summarise_readout(table)
    inference = summary[(summary["gene_choice"] == "l1000_inference") & (summary["metric"] == "pearson_delta")]
    mean = summary[(summary["gene_choice"] == "none") & (summary["metric"] == "pearson_delta")]
    assert inference["k"].iloc[0] == 978
    assert inference["value"].iloc[0] > mean["value"].iloc[0]


# --------------------------------------------------------------------------------------------------------------
# hypothesis splits
# --------------------------------------------------------------------------------------------------------------


def test_every_hypothesis_split_is_registered_and_says_what_it_tests():
    registered = set(list_splits()["name"])
    assert {
        "more_data",
        "variability",
        "variability_labels",
        "chemical",
        "species",
        "guide_information",
        "phenotype_only",
    } <= registered
    table = list_splits().set_index("name")
    for name in DATA_KIND:
        assert table.loc[name, "hypothesis"] and table.loc[name, "description"]


@pytest.mark.mirror
def test_more_data_training_sets_are_nested_with_one_test_set():
    adata = _data("norman2019_mcfaline2024_devel", study="norman19")
    curve = learning_curve(adata, seed=5, fractions=(0.25, 0.5, 1.0))
    tests = [set(s.test_groups()["perturbation"]) for s in curve]
    trains = [set(s.train_perturbations()) for s in curve]
    assert tests[0] == tests[1] == tests[2]
    assert trains[0] < trains[1] < trains[2]
    assert not (trains[2] & tests[0])
    assert make_split("more_data", adata, seed=5, train_fraction=0.5) == curve[1]


@pytest.mark.mirror
@pytest.mark.parametrize("held_out", ["A172", "T98G", "U87MG"])
def test_variability_holds_out_each_glioma_line(held_out, tmp_path):
    adata = _data("norman2019_mcfaline2024_devel", study="mcfaline23")
    split = make_split("variability", adata, seed=0, held_out=held_out)
    assert set(split.test_groups()["covariate"]) == {held_out}
    path = split.save(tmp_path / "v.csv")
    assert Split.load(path) == split


@pytest.mark.mirror
def test_guide_information_holds_out_one_guide_per_target(tmp_path):
    adata = _data("papalexi2021_eccite_lowmoi")
    split = make_split("guide_information", adata, seed=1)
    again = make_split("guide_information", adata, seed=1)
    assert split == again
    test = split.test_groups()
    assert test["perturbation"].is_unique  # one guide per target
    mask_test, mask_train = split.mask(adata, "test"), split.mask(adata, "train")
    assert not (mask_test & mask_train).any()
    held = set(test["covariate"])
    assert set(adata.obs.loc[mask_test, "guide"]) == held
    assert not (set(adata.obs.loc[mask_train, "guide"]) & held)
    assert Split.load(split.save(tmp_path / "g.csv")) == split
    assert make_split("guide_information", adata, seed=2) != split


@pytest.mark.mirror
def test_phenotype_only_and_species_on_real_tables(tmp_path):
    depmap = _data("depmap_chronos_sample")["gene_effect"]
    pan = _data("screens_mageckflute_pan2018")["rra_gene"]
    il2 = _data("screens_biodiscoveryagent")["IL2"]
    papalexi = _data("papalexi2021_eccite_lowmoi")
    targets = pd.DataFrame({"gene": sorted(set(papalexi.obs["perturbation"].astype(str)) - {"non-targeting"})})
    table = pd.concat(
        [
            label_table(targets, "perturbseq_papalexi", kind="expression"),
            label_table(pd.DataFrame({"gene": depmap.var_names}), "depmap_chronos", kind="phenotype"),
            label_table(il2, "screen_IL2", kind="phenotype"),
        ],
        ignore_index=True,
    )
    split = make_split("phenotype_only", table, seed=0, test_fraction=0.5)
    assert split == make_split("phenotype_only", table, seed=0, test_fraction=0.5)
    test = split.pairs("test")
    assert set(test["context"]) == {"perturbseq_papalexi"}
    train_pheno = split.pairs("train")
    assert set(test["label"]) <= set(train_pheno.loc[train_pheno["context"] != "perturbseq_papalexi", "label"])
    assert not (
        set(map(tuple, test[["context", "label"]].to_numpy()))
        & set(map(tuple, train_pheno[["context", "label"]].to_numpy()))
    )
    path = split.save(tmp_path / "p.csv")
    assert LabelSplit.load(path) == split
    species = pd.concat([label_table(il2, "human"), label_table(pan, "mouse", label_column="id")])
    cross = make_split("species", species, seed=0)
    mouse_test = cross.labels("test", "mouse")
    assert len(mouse_test) > 10_000 and {g.upper() for g in mouse_test} <= set(cross.labels("train", "human"))
    assert LabelSplit.load(cross.save(tmp_path / "s.csv")) == cross


def test_label_splits_on_drug_and_cell_line_tables():
    """Synthetic label tables with a known design: drugs × lines, and K562/RPE1 knockdowns."""
    drugs = pd.DataFrame(
        [(line, f"drug{i}") for line in ("A549", "K562", "MCF7") for i in range(20)], columns=["context", "label"]
    )
    unseen = make_split("chemical", drugs, seed=3, test_fraction=0.25)
    test_drugs = set(unseen.labels("test"))
    assert len(test_drugs) == 5 and not (test_drugs & set(unseen.labels("train")))
    assert make_split("chemical", drugs, seed=4, test_fraction=0.25) != unseen
    line = make_split("chemical", drugs, seed=0, held_out_context="MCF7")
    assert set(line.pairs("test")["context"]) == {"MCF7"} and len(line.labels("test")) == 20
    knockdowns = pd.DataFrame(
        [("K562", f"G{i}") for i in range(30)] + [("RPE1", f"G{i}") for i in range(10, 40)],
        columns=["context", "label"],
    )
    transfer = make_split("variability_labels", knockdowns, seed=0)
    assert transfer.labels("test", "RPE1") == sorted(f"G{i}" for i in range(10, 30))
    assert set(transfer.pairs("train")["context"]) == {"K562"}
    with pytest.raises(SplitInputError, match="context 'HeLa'"):
        make_split("variability_labels", knockdowns, seed=0, test_context="HeLa")
    with pytest.raises(SplitInputError, match="lacks columns"):
        make_split("chemical", drugs.rename(columns={"label": "drug"}), seed=0)


def test_conclusions_quote_the_records():
    rec = {
        "min_n": 30,
        "level": 0.8,
        "k_needed": {"norman19": {"hvg": 30, "random": 100, "landmark": None}},
        "l1000_inference_r": 0.71,
        "l1000_mean_r": 0.2,
    }
    box = conclusions(rec)
    assert isinstance(box, Takeaways)
    assert "norman19: 30 hvg genes" in str(box) and "0.71" in str(box)
    assert "key-takeaways" in box.to_markdown()


def test_records_skip_tasks_whose_anchors_cannot_place():
    """Synthetic placements: a task with only NaN placements (unordered anchors) is left out, not an error."""
    priors = pd.DataFrame(
        {
            "task": ["a", "a", "b"],
            "source": ["go", "lincs", "go"],
            "metric": "pearson_delta",
            "placement": [0.4, 0.1, np.nan],
            "low": [0.3, 0.0, np.nan],
            "high": [0.5, 0.2, np.nan],
            "fallback": [0.0, 0.5, 0.0],
        }
    )
    rec = records(priors=priors)
    assert rec["best_prior"] == {"a": {"source": "go", "placement": 0.4, "low": 0.3, "high": 0.5, "fallback": 0.0}}


# --------------------------------------------------------------------------------------------------------------
# the new modalities, the run cache, the prior anchors
# --------------------------------------------------------------------------------------------------------------


def test_same_source_pairs_are_kept_but_not_ranked():
    """Synthetic: two quantities of one registered group agree perfectly; a third modality is a noisy copy."""
    rng = np.random.default_rng(5)
    genes = [f"G{i}" for i in range(200)]
    base = pd.Series(rng.normal(size=200), index=genes)
    quantities = {
        "replogle_k562_degs": base,
        "replogle_k562_energy": base * 2 + 1,
        "depmap_22q1_calls": base + rng.normal(size=200),
        "go": pd.Series(rng.normal(size=200), index=genes),
    }
    table = mx.modality_matrix(quantities, n_boot=50, n_perm=50)
    pair = table[(table["source"] == "replogle_k562_degs") & (table["target"] == "replogle_k562_energy")].iloc[0]
    assert pair["same_source"] and pair["value"] == pytest.approx(1.0)
    links = mx.ranked_links(table, min_n=30)
    assert not links["same_source"].any()
    assert {tuple(sorted(p)) for p in zip(links["source"], links["target"])} >= {
        ("depmap_22q1_calls", "replogle_k562_degs")
    }
    # the conditioning modality is never of the source's or the target's group
    row = table[(table["source"] == "depmap_22q1_calls") & (table["target"] == "replogle_k562_degs")].iloc[0]
    assert row["given"] == "go"
    # symmetric statistics are computed once per unordered pair
    back = table[(table["source"] == "replogle_k562_energy") & (table["target"] == "replogle_k562_degs")].iloc[0]
    assert (
        back[["value", "ci_low", "ci_high", "p_perm"]].tolist()
        == pair[["value", "ci_low", "ci_high", "p_perm"]].tolist()
    )
    best = mx.best_partners(table, min_n=30).set_index("source")
    assert best.loc["replogle_k562_degs", "target"] == "depmap_22q1_calls"


def test_dependent_share_counts_calls_and_skips_missing():
    """Synthetic calls with known shares: codes 0 weak, 1 dependency, 2 strong, -1 missing."""
    from anndata import AnnData

    calls = AnnData(np.array([[0, 1, 2], [1, 2, -1], [0, 0, -1], [2, 0, -1]], dtype=np.int8))
    calls.var_names = ["A", "B", "C (123)"]
    calls.uns["vcc"] = {"classes": ["weak_dependency", "dependency", "strong_dependency"]}
    share = mods.dependent_share(calls)
    assert share.to_dict() == {"A": 0.5, "B": 0.5, "C": 1.0}


def test_signature_transfer_is_the_top_k_jaccard():
    """Synthetic K562/RPE1 rankings with a known overlap of their top genes."""
    from vcclib.data.signatures import Signature, Signatures

    def sig(p, c, ranking):
        return Signature(p, c, tuple(ranking), frozenset(ranking[:1]))

    entries = {
        ("X", "K562"): sig("X", "K562", list("abcd")),
        ("X", "RPE1"): sig("X", "RPE1", list("abef")),
        ("Y", "K562"): sig("Y", "K562", list("abcd")),
        ("Z", "RPE1"): sig("Z", "RPE1", list("abcd")),
    }
    signatures = Signatures("synthetic", "CRISPRi", entries)
    transfer = mods.signature_transfer(signatures, top=4)
    assert transfer.to_dict() == {"X": pytest.approx(2 / 6)}
    assert signature_labels(signatures).shape == (4, 2)


def test_cache_reads_once_inside_a_block(monkeypatch):
    calls = []

    def fake_load(dataset, **options):
        calls.append((dataset, options))
        return object()

    monkeypatch.setattr("vcclib.data.load", fake_load)
    with cache.loaded_once():
        first = cache.load("x", tables=["a"])
        assert cache.load("x", tables=["a"]) is first
        assert cache.load("x", tables=["b"]) is not first
        assert cache.n_loaded() == 2
    assert cache.n_loaded() == 0
    assert cache.load("x", tables=["a"]) is not first
    assert len(calls) == 3


def test_undefined_prior_placements_are_explained():
    """Synthetic placements: the MAX anchor scores below the MIN anchor on pearson_delta in every seed."""
    rows = []
    for seed, (low, high) in enumerate([(0.24, 0.13), (0.34, 0.26)]):
        for baseline, score in (("perturbed_mean", low), ("technical_duplicate", high), ("go", 0.15)):
            rows.append(
                {
                    "task": "papalexi2021:unseen_perturbation",
                    "baseline": baseline,
                    "metric": "pearson_delta",
                    "score": score,
                    "anchors_ordered": False,
                    "placement": np.nan,
                    "seed": seed,
                    "fallback": 0.0,
                }
            )
            rows.append(
                {
                    "task": "papalexi2021:unseen_perturbation",
                    "baseline": baseline,
                    "metric": "discrimination_score_l1",
                    "score": 0.6 + 0.1 * (baseline != "perturbed_mean"),
                    "anchors_ordered": True,
                    "placement": 1.0,
                    "seed": seed,
                    "fallback": 0.0,
                }
            )
    placed = pd.DataFrame(rows)
    diag = anchor_diagnosis(placed).set_index("metric")
    assert diag.loc["pearson_delta", "ordered_seeds"] == 0
    assert diag.loc["pearson_delta", "min_score"] == pytest.approx(0.29)
    priors = pd.DataFrame(
        {
            "task": ["papalexi2021:unseen_perturbation"],
            "source": ["go"],
            "metric": "pearson_delta",
            "placement": [np.nan],
            "low": [np.nan],
            "high": [np.nan],
            "fallback": [0.0],
            "n_seeds": [2],
        }
    )
    rec = records(priors=priors, placed=placed, settings={"prior_max_cells": 50})
    undefined = rec["prior_undefined"]["papalexi2021:unseen_perturbation"]
    assert undefined["ordered_metrics"] == ["discrimination_score_l1"]
    text = " ".join(weak_points(rec))
    assert "0.20 on pearson_delta and the mean-effect baseline 0.29" in text and "25 per half" in text
    assert "No prior can be placed on papalexi2021:unseen_perturbation" in str(conclusions(rec))


@pytest.mark.mirror
def test_replogle_and_tian_modalities_on_real_tables():
    with cache.loaded_once():
        built = mods.build_modalities(
            [
                "replogle_k562_degs",
                "replogle_k562_energy",
                "replogle_k562_knockdown",
                "replogle_rpe1_degs",
                "tian2019_neurons",
                "tian2020_neurons",
            ]
        )
        assert cache.n_loaded() == 2  # Replogle's statistics and the CRISPRbrain tables, each read once
    assert not mods.SKIPPED
    k562 = built["replogle_k562_degs"]
    assert 9_000 < len(k562) <= 11_258  # 11,258 perturbations, several per gene where a gene has two promoters
    assert len(built["replogle_rpe1_degs"]) > 2_000 and len(built["tian2019_neurons"]) > 2_000
    assert built["replogle_k562_knockdown"].median() > 0.5  # CRISPRi knocks most targets down by more than half
    table = mx.modality_matrix(built, n_boot=50, n_perm=50)
    rho = table.set_index(["source", "target"])["value"]
    # more DEGs ⇔ a more significant energy test (same screen); K562 and RPE1 DEG counts agree on shared genes
    assert rho[("replogle_k562_degs", "replogle_k562_energy")] > 0.5
    assert rho[("replogle_k562_degs", "replogle_rpe1_degs")] > 0.3
    assert table.set_index(["source", "target"]).loc[("replogle_k562_degs", "replogle_k562_energy"), "same_source"]


@pytest.mark.mirror
def test_replogle_signature_modalities_and_their_split():
    """variability_labels on the real Replogle signatures: K562 trains, the 585 knockdowns in RPE1 test."""
    signatures = _data("replogle2022_signatures")
    with cache.loaded_once():
        built = mods.build_modalities(["replogle_signature_up", "replogle_signature_transfer"])
    assert len(built["replogle_signature_up"]) == 585 and len(built["replogle_signature_transfer"]) == 585
    assert 0 < built["replogle_signature_transfer"].median() < 1
    split = make_split("variability_labels", signatures, seed=0)
    assert split.dataset == "replogle2022_signatures"
    assert split.labels("test", "RPE1") == signatures.shared_perturbations("K562", "RPE1")
    assert set(split.pairs("train")["context"]) == {"K562"} and len(split.pairs("train")) == 585
    few = make_split("variability_labels", signatures, seed=1, test_fraction=0.2)
    assert len(few.labels("test")) == round(0.2 * 585) or abs(len(few.labels("test")) - 0.2 * 585) <= 1
    assert not set(few.labels("test")) & set(few.labels("train", "RPE1"))
    assert few != make_split("variability_labels", signatures, seed=2, test_fraction=0.2)


@pytest.mark.mirror
def test_chemical_split_on_real_sciplex(tmp_path):
    """The chemical split on sci-Plex's 23 drugs × A549, K562, MCF7 signatures: unseen drugs and unseen line."""
    signatures = _data("sciplex2020_signatures")
    unseen = make_split("chemical", signatures, seed=0, test_fraction=0.3)
    test = set(unseen.labels("test"))
    assert len(test) == round(0.3 * 23) or abs(len(test) - 0.3 * 23) <= 1
    assert not test & set(unseen.labels("train"))
    assert set(unseen.pairs("test")["context"]) == {"A549", "K562", "MCF7"}
    assert LabelSplit.load(unseen.save(tmp_path / "c.csv")) == unseen
    line = make_split("chemical", signatures, seed=0, held_out_context="K562")
    assert set(line.pairs("test")["context"]) == {"K562"} and len(line.labels("test")) == 23
    assert set(line.pairs("train")["context"]) == {"A549", "MCF7"}


@pytest.mark.mirror
@pytest.mark.slow
def test_chemical_split_on_real_tahoe():
    """Tahoe-100M signatures of two lines (reading all ten takes minutes): the held-out line's shared drugs test."""
    signatures = _data("tahoe100m_signatures", contexts=("A498", "LoVo"))
    split = make_split("chemical", signatures, seed=0, held_out_context="LoVo")
    shared = set(signatures.shared_perturbations("A498", "LoVo"))
    assert set(split.labels("test")) == shared and len(shared) > 100
    assert set(split.pairs("train")["context"]) == {"A498"}


@pytest.mark.mirror
@pytest.mark.slow
def test_depmap_calls_agree_with_chronos_essentiality():
    """The 22Q1 calls over 1,067 lines and the Chronos sample of 58 lines measure the same essentiality."""
    with cache.loaded_once():
        built = mods.build_modalities(["depmap_22q1_calls", "depmap_chronos"])
    calls = built["depmap_22q1_calls"]
    assert len(calls) > 17_000 and calls.between(0, 1).all()
    table = mx.modality_matrix(built, n_boot=20, n_perm=20).set_index(["source", "target"])
    assert table.loc[("depmap_22q1_calls", "depmap_chronos"), "value"] > 0.5
    assert table.loc[("depmap_22q1_calls", "depmap_chronos"), "same_source"]


def test_figures_are_not_left_open_in_pyplot():
    """The chapter glues each figure into a numbered caption; a pyplot figure would be shown a second time,
    uncaptioned, at the end of its cell (the inline backend shows every open pyplot figure)."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from vcclib.analyses.information import figures

    plt.close("all")
    readout = pd.DataFrame(
        {
            "dataset": "d",
            "k": [0, 10, 10, 100],
            "gene_choice": ["none", "hvg", "hvg", "all"],
            "metric": ["pearson_delta", "pearson_delta", "pearson_delta_unmeasured", "pearson_delta"],
            "value": [0.1, 0.4, 0.3, 0.9],
        }
    )
    matrix = pd.DataFrame(
        {"source": ["a", "b"], "target": ["b", "a"], "value": [0.3, 0.3], "n": [40, 40], "same_source": [False, False]}
    )
    priors = pd.DataFrame(
        {
            "task": "t",
            "source": ["go", "depmap"],
            "metric": "pearson_delta",
            "placement": [0.2, np.nan],
            "low": [0.1, np.nan],
            "high": [0.3, np.nan],
            "fallback": [0.1, 0.9],
        }
    )
    made = [figures.readout_figure(readout), figures.matrix_heatmap(matrix), figures.prior_figure(priors)]
    assert all(isinstance(fig, Figure) for fig in made)
    assert plt.get_fignums() == []
    for fig in made:
        assert fig.axes and fig.canvas.get_width_height()[0] > 0
