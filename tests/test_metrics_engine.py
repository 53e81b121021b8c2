"""Registry, profiles, scoring, DE conventions, field metrics, distances vs pertpy, and the CLI (synthetic data)."""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd
import pytest
from metrics_fixtures import CONTROL, make_adata, make_pair

import vcclib.metrics as vm
from vcclib.metrics import distances
from vcclib.metrics.de import differential_expression


def test_registry_and_profiles():
    table = vm.list_metrics()
    assert {"name", "family", "best_value", "higher_is_better", "source"} <= set(table.columns)
    assert table["name"].is_unique
    for profile in ("vcc", "full", "de", "cell-eval"):
        assert all(n in vm.REGISTRY for n in vm.PROFILES[profile])
    assert vm.PROFILES["vcc"] == ["mae", "discrimination_score_l1", "overlap_at_N"]
    assert vm.REGISTRY["mae"].best_value == 0.0 and vm.REGISTRY["mae"].higher_is_better is False


def test_scores():
    model = {"mae": 0.02, "discrimination_score_l1": 0.8, "overlap_at_N": 0.3}
    base = {"mae": 0.027, "discrimination_score_l1": 0.514, "overlap_at_N": 0.106}
    s = vm.vcc2025_score(model, base)
    assert s["mae"] == pytest.approx(1 - 0.02 / 0.027)
    assert s["overlap_at_N"] == pytest.approx((0.3 - 0.106) / (1 - 0.106))
    assert s["avg_score"] == pytest.approx(np.mean([s["mae"], s["discrimination_score_l1"], s["overlap_at_N"]]))
    assert vm.vcc2025_score({"mae": 0.1}, {"mae": 0.027})["mae"] == 0.0  # clipped at 0
    assert vm.calibrated_score(0.75, 0.5, 1.0) == pytest.approx(0.5)
    assert vm.calibrated_score(model, base, {k: 1.0 for k in model})["overlap_at_N"] == pytest.approx(s["overlap_at_N"])


def test_de_vcc2025_convention():
    real = make_adata(n_perts=3, n_genes=20)
    a = differential_expression(real, "perturbation", CONTROL, convention="cell-eval")
    b = differential_expression(real, "perturbation", CONTROL, convention="vcc2025")
    assert np.allclose(a["p_value"], b["p_value"])
    from scipy.stats import false_discovery_control

    assert np.allclose(b["fdr"], false_discovery_control(b["p_value"].to_numpy()))
    assert b["fold_change"].between(1 / 20, 20).all()
    # p-values equal scipy's asymptotic Mann-Whitney U
    from scipy.stats import mannwhitneyu

    X = real.X.toarray()
    labels = real.obs["perturbation"].to_numpy()
    row = a.iloc[25]
    p = mannwhitneyu(X[labels == row["target"], 5], X[labels == CONTROL, 5], method="asymptotic").pvalue
    ref = a[(a.target == row["target"]) & (a.feature == "G5")]["p_value"].iloc[0]
    assert ref == pytest.approx(p, abs=1e-7)  # scipy works in float32 here


def test_full_profile_runs_with_baseline(tmp_path):
    pred, real = make_pair(n_perts=5, n_genes=40)
    base = make_adata(seed=11, n_perts=5, n_genes=40, effect_seed=9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = vm.evaluate(pred, real, profile="full", baseline=base, outdir=tmp_path)
    assert set(vm.PROFILES["full"]) <= set(res.results.columns)
    assert len(res.results) == 5
    assert "avg_score" in res.scores["vcc2025"]
    assert (tmp_path / "results.csv").exists() and (tmp_path / "agg_results.csv").exists()
    assert "perturbations" in res.summary()
    # a perfect prediction scores the best value on the field metrics with a best value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        perfect = vm.evaluate(real, real, profile="field")
    for name in vm.PROFILES["field"]:
        best = vm.REGISTRY[name].best_value
        if vm.REGISTRY[name].scored:
            assert np.allclose(perfect.results[name], best, atol=1e-9), name


def test_distances_match_pertpy():
    pt = pytest.importorskip("pertpy")
    from pertpy.tools._distances._distances import MMD, Edistance

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(30, 5)), rng.normal(0.5, 1.2, size=(40, 5))
    assert distances.edistance(X, Y, "pertpy") == pytest.approx(Edistance()(X, Y), abs=1e-9)
    assert distances.mmd(X, Y) == pytest.approx(MMD()(X, Y), abs=1e-9)
    assert distances.mmd(X, Y, kernel="rbf", gamma=0.1) == pytest.approx(MMD()(X, Y, kernel="rbf", gamma=0.1), abs=1e-9)
    # scPerturb convention: squared Euclidean, N(N-1) within-group
    from scipy.spatial.distance import cdist

    d = cdist(X, Y, "sqeuclidean").mean()
    sx = cdist(X, X, "sqeuclidean").sum() / (30 * 29)
    sy = cdist(Y, Y, "sqeuclidean").sum() / (40 * 39)
    assert distances.edistance(X, Y) == pytest.approx(2 * d - sx - sy)
    e, p = distances.etest(X, Y, n_perms=200)
    assert e == pytest.approx(Edistance()(X, Y)) and p <= 0.05
    _, p_same = distances.etest(X, rng.normal(size=(40, 5)), n_perms=200)
    assert p_same > 0.05
    assert pt is not None


def test_cli(tmp_path, capsys):
    from vcclib.cli import eval_cmd

    pred, real = make_pair(n_perts=4, n_genes=20)
    pred.write_h5ad(tmp_path / "pred.h5ad")
    real.write_h5ad(tmp_path / "real.h5ad")
    parser = argparse.ArgumentParser()
    eval_cmd.register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "eval",
            "--pred",
            str(tmp_path / "pred.h5ad"),
            "--real",
            str(tmp_path / "real.h5ad"),
            "--control",
            CONTROL,
            "--use-real-controls",
            "-o",
            str(tmp_path / "out"),
        ]
    )
    assert args.func(args) == 0
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert list(results.columns) == ["perturbation", "mae", "discrimination_score_l1", "overlap_at_N"]
    args.control = "missing"
    args.outdir = str(tmp_path / "out-missing-control")
    assert args.func(args) == 2
    assert "missing" in capsys.readouterr().err
    assert not (tmp_path / "out-missing-control" / "results.csv").exists()
