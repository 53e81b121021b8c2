"""Information-content chapter: readout size, modality statistics, prior sources, hypothesis splits."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from vcclib.analyses.information import conclusions, records
from vcclib.analyses.information import modalities as mods
from vcclib.analyses.information import readout as ro
from vcclib.splits import Split, list_splits, make_split
from vcclib.splits.hypotheses import (
    DATA_KIND,
    LabelSplit,
    SplitInputError,
    label_table,
    learning_curve,
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
    linked = mods.spearman_with_uncertainty(a, b, n_boot=200, n_perm=200)
    assert 0.55 < linked["value"] < 0.8
    assert linked["ci_low"] < linked["value"] < linked["ci_high"]
    assert linked["p_perm"] <= 1 / 200
    null = mods.spearman_with_uncertainty(a, c, n_boot=200, n_perm=200)
    assert null["p_perm"] > 0.05
    assert null["ci_low"] < 0 < null["ci_high"]


def test_partial_correlation_removes_a_shared_driver():
    """Synthetic: A and B both follow C; given C, A tells nothing more about B, while D = B + noise still does."""
    rng = np.random.default_rng(1)
    c = rng.normal(size=2000)
    a = c + 0.3 * rng.normal(size=2000)
    b = c + 0.3 * rng.normal(size=2000)
    d = b + 0.3 * rng.normal(size=2000)
    assert abs(mods.partial_spearman(a, b, c)) < 0.1
    assert mods.partial_spearman(d, b, c) > 0.5


def test_matrix_marks_small_overlaps_and_names_the_best_other_modality():
    """Synthetic modalities on named genes: overlap sizes and the conditioning modality are known."""
    rng = np.random.default_rng(2)
    genes = [f"G{i}" for i in range(300)]
    base = pd.Series(rng.normal(size=300), index=genes)
    quantities = {"x": base + 0.2 * rng.normal(size=300), "y": base + 0.2 * rng.normal(size=300),
                  "z": pd.Series(rng.normal(size=300), index=genes), "tiny": base.iloc[:12]}
    table = mods.modality_matrix(quantities, min_overlap=10, small=30, n_boot=50, n_perm=50)
    assert list(table.columns[:11]) == list(mods.COLUMNS)
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
    assert {"more_data", "variability", "variability_labels", "chemical", "species", "guide_information",
            "phenotype_only"} <= registered
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
    table = pd.concat([
        label_table(targets, "perturbseq_papalexi", kind="expression"),
        label_table(pd.DataFrame({"gene": depmap.var_names}), "depmap_chronos", kind="phenotype"),
        label_table(il2, "screen_IL2", kind="phenotype"),
    ], ignore_index=True)
    split = make_split("phenotype_only", table, seed=0, test_fraction=0.5)
    assert split == make_split("phenotype_only", table, seed=0, test_fraction=0.5)
    test = split.pairs("test")
    assert set(test["context"]) == {"perturbseq_papalexi"}
    train_pheno = split.pairs("train")
    assert set(test["label"]) <= set(train_pheno.loc[train_pheno["context"] != "perturbseq_papalexi", "label"])
    assert not (set(map(tuple, test[["context", "label"]].to_numpy()))
                & set(map(tuple, train_pheno[["context", "label"]].to_numpy())))
    path = split.save(tmp_path / "p.csv")
    assert LabelSplit.load(path) == split
    species = pd.concat([label_table(il2, "human"), label_table(pan, "mouse", label_column="id")])
    cross = make_split("species", species, seed=0)
    mouse_test = cross.labels("test", "mouse")
    assert len(mouse_test) > 10_000 and {g.upper() for g in mouse_test} <= set(cross.labels("train", "human"))
    assert LabelSplit.load(cross.save(tmp_path / "s.csv")) == cross


def test_label_splits_on_drug_and_cell_line_tables():
    """Synthetic label tables with a known design: drugs × lines, and K562/RPE1 knockdowns."""
    drugs = pd.DataFrame([(line, f"drug{i}") for line in ("A549", "K562", "MCF7") for i in range(20)],
                         columns=["context", "label"])
    unseen = make_split("chemical", drugs, seed=3, test_fraction=0.25)
    test_drugs = set(unseen.labels("test"))
    assert len(test_drugs) == 5 and not (test_drugs & set(unseen.labels("train")))
    assert make_split("chemical", drugs, seed=4, test_fraction=0.25) != unseen
    line = make_split("chemical", drugs, seed=0, held_out_context="MCF7")
    assert set(line.pairs("test")["context"]) == {"MCF7"} and len(line.labels("test")) == 20
    knockdowns = pd.DataFrame([("K562", f"G{i}") for i in range(30)] + [("RPE1", f"G{i}") for i in range(10, 40)],
                              columns=["context", "label"])
    transfer = make_split("variability_labels", knockdowns, seed=0)
    assert transfer.labels("test", "RPE1") == sorted(f"G{i}" for i in range(10, 30))
    assert set(transfer.pairs("train")["context"]) == {"K562"}
    with pytest.raises(SplitInputError, match="context 'HeLa'"):
        make_split("variability_labels", knockdowns, seed=0, test_context="HeLa")
    with pytest.raises(SplitInputError, match="lacks columns"):
        make_split("chemical", drugs.rename(columns={"label": "drug"}), seed=0)


def test_conclusions_quote_the_records():
    rec = {"min_n": 30, "level": 0.8, "k_needed": {"norman19": {"hvg": 30, "random": 100, "landmark": None}},
           "l1000_inference_r": 0.71, "l1000_mean_r": 0.2}
    text = " ".join(conclusions(rec))
    assert "norman19: 30 hvg genes" in text and "0.71" in text


def test_records_skip_tasks_whose_anchors_cannot_place():
    """Synthetic placements: a task with only NaN placements (unordered anchors) is left out, not an error."""
    priors = pd.DataFrame({"task": ["a", "a", "b"], "source": ["go", "lincs", "go"], "metric": "pearson_delta",
                           "placement": [0.4, 0.1, np.nan], "low": [0.3, 0.0, np.nan], "high": [0.5, 0.2, np.nan],
                           "fallback": [0.0, 0.5, 0.0]})
    rec = records(priors=priors)
    assert rec["best_prior"] == {"a": {"source": "go", "placement": 0.4, "low": 0.3, "high": 0.5, "fallback": 0.0}}
