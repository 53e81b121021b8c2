"""The retraining chapter's logic: placements against per-seed anchors, the trusted-metric rule, intervals,
mode-collapse signals on synthetic data with a known answer, and one tiny end-to-end run on the mirror."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

from vcclib.analyses import vae_retraining as chapter
from vcclib.errors import VccError

warnings.filterwarnings("ignore", category=UserWarning)


def _long(rows):
    return pd.DataFrame(
        rows, columns=["task", "model", "variant", "seed", "covariate", "perturbation", "metric", "value"]
    )


def test_placement_uses_the_anchors_of_the_same_seed_and_training_set():
    """Synthetic scores: MIN 0.2, MAX 0.8 at seed 0; MIN 0.4, MAX 0.6 at seed 1 (pearson_delta, higher better;
    mae lower better). A model at 0.5 is placed 0.5 at both seeds; a curve run uses its own anchors."""
    rows = []
    for seed, (lo, hi) in enumerate([(0.2, 0.8), (0.4, 0.6)]):
        for model, value in (("perturbed_mean", lo), ("technical_duplicate", hi), ("cvae_go", 0.5)):
            variant = "reference" if model != "cvae_go" else "default"
            rows.append(("t", model, variant, seed, "all", "P1", "pearson_delta", value))
            rows.append(("t", model, variant, seed, "all", "P1", "mae", 1 - value))
    rows += [
        ("t", "perturbed_mean", "train_fraction=0.5", 0, "all", "P1", "pearson_delta", 0.0),
        ("t", "technical_duplicate", "train_fraction=0.5", 0, "all", "P1", "pearson_delta", 1.0),
        ("t", "cvae_pseudobulk", "train_fraction=0.5|cvae_pseudobulk", 0, "all", "P1", "pearson_delta", 0.25),
    ]
    placed = chapter.placements(_long(rows)).set_index(["model", "variant", "seed", "metric"])["placement"]
    assert placed[("cvae_go", "default", 0, "pearson_delta")] == pytest.approx(0.5)
    assert placed[("cvae_go", "default", 1, "pearson_delta")] == pytest.approx(0.5)
    assert placed[("cvae_go", "default", 0, "mae")] == pytest.approx(0.5)
    assert placed[("perturbed_mean", "reference", 1, "pearson_delta")] == pytest.approx(0.0)
    assert placed[("cvae_pseudobulk", "train_fraction=0.5|cvae_pseudobulk", 0, "pearson_delta")] == pytest.approx(0.25)


def test_unordered_anchors_give_no_placement_and_the_metric_is_not_trusted():
    rows = []
    for seed in range(3):
        for pert in ("P1", "P2"):
            rows += [
                ("t", "perturbed_mean", "reference", seed, "all", pert, "mae", 0.1),
                ("t", "technical_duplicate", "reference", seed, "all", pert, "mae", 0.2),
                ("t", "perturbed_mean", "reference", seed, "all", pert, "pearson_delta", 0.1),
                ("t", "technical_duplicate", "reference", seed, "all", pert, "pearson_delta", 0.9),
            ]
    long = _long(rows)
    assert np.isnan(chapter.placements(long).query("metric == 'mae'")["placement"]).all()
    trusted = chapter.trustworthy_metrics(long).set_index("metric")["trusted"]
    assert trusted["pearson_delta"] and not trusted["mae"]


def test_intervals_are_t_intervals_over_seeds():
    placed = pd.DataFrame(
        {
            "task": "t",
            "model": "m",
            "variant": "v",
            "seed": [0, 1, 2],
            "metric": "pearson_delta",
            "value": 0.0,
            "placement": [0.1, 0.2, 0.3],
        }
    )
    row = chapter.intervals(placed, ["pearson_delta"]).iloc[0]
    assert row["mean"] == pytest.approx(0.2) and row["n_seeds"] == 3
    assert row["high"] - row["mean"] == pytest.approx(4.302653 * 0.1 / np.sqrt(3), rel=1e-5)


def _cells(effects: dict, n=30, noise=0.2, seed=0):
    rng = np.random.default_rng(seed)
    labels = [p for p in effects for _ in range(n)]
    X = np.vstack([1 + effects[p] + rng.normal(0, noise, len(effects[p])) for p in labels])
    obs = pd.DataFrame({"perturbation": labels, "cell_line": "x"}, index=[f"c{i}" for i in range(len(labels))])
    return AnnData(X.astype(np.float32), obs=obs)


def test_diversity_is_one_for_the_truth_and_zero_for_a_collapsed_prediction():
    """Known answer: a prediction equal to the real cells has spread ratio 1 and variance ratio 1; predicting
    every perturbation as the mean effect has spread ratio 0."""
    genes = 20
    effects = {"ctrl": np.zeros(genes), "A": np.r_[np.ones(10), np.zeros(10)], "B": np.r_[np.zeros(10), -np.ones(10)]}
    real = _cells(effects)
    same = chapter.prediction_diversity(real, real, "ctrl", "cell_line")
    assert same["effect_spread_ratio"] == pytest.approx(1.0) and same["cell_variance_ratio"] == pytest.approx(1.0)
    mean = (effects["A"] + effects["B"]) / 2
    collapsed = _cells({"ctrl": np.zeros(genes), "A": mean, "B": mean}, noise=0.0)
    collapsed.X[collapsed.obs["perturbation"].to_numpy() == "ctrl"] = real.X[
        real.obs["perturbation"].to_numpy() == "ctrl"
    ]
    signal = chapter.prediction_diversity(collapsed, real, "ctrl", "cell_line")
    assert signal["effect_spread_ratio"] < 0.05 and signal["cell_variance_ratio"] == pytest.approx(0.0)


@pytest.mark.mirror
@pytest.mark.slow  # about 30 s alone, more on a shared machine
def test_a_tiny_chapter_run_writes_placements_and_conclusions():
    pytest.importorskip("torch")
    from vcclib.models.tasks import default_tasks

    settings = chapter.Settings(
        seeds=(0, 1), max_cells_per_perturbation=10, exclude_references=("knn_text", "random_forest")
    )
    settings.vae.update(latent_dim=4, hidden_dim=16, epochs=3)
    settings.cells_vae.update(epochs=1)
    task = default_tasks(["norman2019_mcfaline2024_devel"])[0]
    runner = chapter.run_experiments(
        settings,
        compare_tasks=[task],
        loss_task=None,
        feature_task=task,
        curve_task=task,
        sources=("learned",),
        fractions=(1.0,),
        added_stages=((), ("A172",)),
    )
    long = runner.long()
    info = pd.DataFrame(runner.info)
    placed = chapter.placements(long)
    assert list(placed.columns) == ["task", "model", "variant", "seed", "metric", "value", "placement"]
    assert {"perturbed_mean", "technical_duplicate", "cvae_pseudobulk", "linear_go"} <= set(placed["model"])
    anchors = placed[(placed["variant"] == "reference") & placed["model"].isin(["perturbed_mean"])]
    assert np.allclose(anchors["placement"].dropna(), 0.0)
    records = chapter.headline(
        placed,
        chapter.trustworthy_metrics(long),
        info,
        settings=settings,
        seconds=1.0,
        cpu_seconds=1.0,
        device="device: cpu",
    )
    text = chapter.conclusions(records).to_markdown()
    assert "cvae_pseudobulk" in text and "key-takeaways" in text
    assert {"added=none|cvae_pseudobulk", "added=A172|linear_go", "hypothesis=variability|cvae_pseudobulk"} <= set(
        placed["variant"]
    )
    assert [s["stage"] for s in records["added_data"]["cvae_pseudobulk"]] == ["added=none", "added=A172"]
    assert {
        "variability on mcfaline23:variability, cvae_pseudobulk",
        "variability on mcfaline23:variability, linear_go",
    } <= set(records["hypotheses"])
    assert "added datasets" in text and "Other hypothesis splits" in text
    assert len(chapter.weak_evidence(records)) == 5


@pytest.mark.mirror
def test_added_data_stages_are_nested_and_score_the_same_unseen_perturbations():
    """Norman 2019 (K562) with McFaline-Figueroa 2023's glioma lines added: one held-out set of K562
    perturbations at every stage, nested training sets, and no held-out perturbation in any added line."""
    from vcclib.models.benchmark import load_task_data
    from vcclib.splits import make_split

    adata = load_task_data(chapter.ADDED_DATA_TASK, 10, 0)
    splits = [make_split("added_data", adata, seed=1, base="K562", added=added) for added in chapter.ADDED_STAGES]
    tests = [set(map(tuple, s.test_groups()[["covariate", "perturbation"]].to_numpy())) for s in splits]
    assert tests[0] and all(t == tests[0] for t in tests) and {c for c, _ in tests[0]} == {"K562"}
    base = adata[(adata.obs["cell_line"] == "K562").to_numpy()]
    expected = set(make_split("more_data", base, seed=1, train_fraction=1.0).test_groups()["perturbation"])
    assert {p for _, p in tests[0]} == expected
    trains = [set(map(tuple, s.groups("train")[["covariate", "perturbation"]].to_numpy())) for s in splits]
    assert trains[0] < trains[1] < trains[2]
    assert {c for c, _ in trains[0]} == {"K562"} and {c for c, _ in trains[2]} == {"K562", "A172", "T98G", "U87MG"}
    assert not {p for c, p in trains[2] if c != "K562"} & expected
    assert splits[2].mask(adata, "train").sum() > splits[0].mask(adata, "train").sum()
    with pytest.raises(VccError, match="not in the data"):
        make_split("added_data", adata, seed=1, base="K562", added=("HeLa",))
    with pytest.raises(VccError, match="name the base cell line"):
        make_split("added_data", adata, seed=1)


def test_added_data_table_orders_stages_by_added_lines_and_keeps_training_cells():
    summary = pd.DataFrame(
        {
            "task": "t",
            "model": "cvae_pseudobulk",
            "metric": "pearson_delta",
            "n_seeds": 3,
            "variant": [
                "added=A172+T98G|cvae_pseudobulk",
                "added=none|cvae_pseudobulk",
                "added=A172|cvae_pseudobulk",
                "added=none",
                "train_fraction=1|cvae_pseudobulk",
            ],
            "mean": [0.3, 0.1, 0.2, 0.0, 9.0],
            "low": [0.2, 0.0, 0.1, 0.0, 9.0],
            "high": [0.4, 0.2, 0.3, 0.0, 9.0],
        }
    )
    info = pd.DataFrame(
        {
            "variant": ["added=none|cvae_pseudobulk", "added=A172|cvae_pseudobulk", "added=A172+T98G|cvae_pseudobulk"],
            "n_train_cells": [100, 150, 200],
        }
    )
    table = chapter.added_data_table(summary, info)
    assert table["stage"].tolist() == ["added=none", "added=A172", "added=A172+T98G"]
    assert table["n_added"].tolist() == [0, 1, 2] and table["mean"].tolist() == [0.1, 0.2, 0.3]
    assert table["n_train_cells"].tolist() == [100, 150, 200]
    assert chapter.added_data_table(summary.iloc[3:], info).empty


def test_torch_threads_are_set_for_the_runs_and_restored_after():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    with chapter.experiments.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with chapter.experiments.torch_threads(0):
        assert torch.get_num_threads() == before
