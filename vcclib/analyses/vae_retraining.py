"""Chapter *Retraining the VAE*: does the simplest conditional VAE beat the honest baselines, and what helps it.

Experiments (each over ``seeds``; a seed sets the split, the held-out halves and the model):

``compare``
    the VAE variants against every available MIN and MAX reference on each task;
``losses``
    each loss with everything else fixed (cells mode, on a task with raw counts);
``features``
    the auxiliary data of the perturbation shift: none (learned), GO, DepMap, LINCS, their union;
``more_data``
    learning curves over nested training sets (the ``more_data`` hypothesis split) and one added dataset;
``diversity``
    mode collapse: the spread of the predicted perturbation effects against the real spread (Diversity by
    Design's concern), and the within-perturbation cell variance against the real one.

Every score is placed between the MIN anchor (``perturbed_mean``, 0) and the MAX anchor (``technical_duplicate``,
1) of the same task and seed; the metrics reported are those on which the MAX anchor beats the MIN anchor on at
least :data:`~vcclib.analyses.metrics_and_baselines.SEPARATING_WIN_RATE` of the held-out perturbations (the
metrics chapter's rule, recomputed on this chapter's runs).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from vcclib.analyses.metrics_and_baselines import SEPARATING_WIN_RATE
from vcclib.analyses.quiet import quietly
from vcclib.analyses.takeaways import Takeaways, names, number
from vcclib.errors import VccError
from vcclib.models.base import covariates_of
from vcclib.models.benchmark import (
    MAX_ANCHOR,
    MIN_ANCHOR,
    Task,
    evaluate_by_covariate,
    load_task_data,
    separation,
)
from vcclib.models.runner import available, predict_scored, scored_parts
from vcclib.models.spec import MODELS, get_model
from vcclib.registry import ModelKind
from vcclib.splits import make_split

#: metrics scored on every run (the trustworthy ones are chosen among them by :func:`trustworthy_metrics`)
METRICS = ("pearson_delta", "discrimination_score_l1", "mae", "mse", "dbd_wmse", "dbd_r2w_delta",
           "systema_pearson_delta_pert", "perturbench_cosine_rank", "edistance_pred_real",
           "gears_frac_correct_direction_all")
REFERENCE = "reference"
DEFAULT = "default"


@dataclass
class Settings:
    """The chapter's knobs (the notebook's parameters map onto these).

    ``vae`` holds the VAE settings shared by every experiment; ``cells_vae`` those of cells-mode runs (the loss
    experiment). ``max_cells_per_perturbation`` subsamples every task (controls: four times as many).
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    max_cells_per_perturbation: int = 50
    vae: dict[str, Any] = field(default_factory=lambda: {
        "latent_dim": 16, "hidden_dim": 64, "epochs": 60, "batch_size": 64, "patience": 8, "minibulk_size": 16,
        "minibulks_per_group": 8, "n_basal": 64, "progress": False})
    cells_vae: dict[str, Any] = field(default_factory=lambda: {"epochs": 15, "batch_size": 128, "patience": 4})
    device: str = "cpu"
    exclude_references: tuple[str, ...] = ()


def _model_params(name: str, settings: Settings, extra: dict | None = None) -> dict:
    spec = MODELS.get(name)
    if spec.kind is not ModelKind.NEURAL:
        return {}
    params = {**settings.vae, "device": settings.device}
    if not spec.params.get("pseudobulk") and not (extra or {}).get("pseudobulk"):
        params.update(settings.cells_vae)
    return {**params, **(extra or {})}


def prediction_diversity(prediction: AnnData, real: AnnData, control: str, column: str | None) -> dict[str, float]:
    """Mode-collapse signals of one prediction against the real held-out cells (log1p, all genes).

    ``effect_spread_ratio``: mean pairwise Euclidean distance between the predicted perturbation effects
    (pseudobulk − control pseudobulk, per covariate) over the same for the real effects — 1 matches the real
    diversity, 0 is a collapsed (perturbation-agnostic) prediction. ``cell_variance_ratio``: mean within-group
    per-gene variance of the predicted cells over that of the real cells (0 for a pseudobulk prediction).
    """
    spreads, variances = [], []
    for side in (prediction, real):
        obs = side.obs
        keys = covariates_of(side, column)
        X = np.asarray(side.X.toarray() if hasattr(side.X, "toarray") else side.X, dtype=np.float64)
        spread, variance = [], []
        for covariate in np.unique(keys):
            rows = keys == covariate
            pert = obs["perturbation"].astype(str).to_numpy()[rows]
            block = X[rows]
            ctrl = block[pert == control].mean(0)
            labels = sorted(set(pert) - {control})
            if not labels:
                continue
            effects = np.vstack([block[pert == p].mean(0) - ctrl for p in labels])
            variance += [block[pert == p].var(0).mean() for p in labels]
            if len(labels) > 1:
                d = np.sqrt(((effects[:, None, :] - effects[None, :, :]) ** 2).sum(-1))
                spread.append(d[np.triu_indices(len(labels), 1)].mean())
        spreads.append(np.mean(spread) if spread else np.nan)
        variances.append(np.mean(variance) if variance else np.nan)
    return {"effect_spread_ratio": float(spreads[0] / spreads[1]) if spreads[1] else np.nan,
            "cell_variance_ratio": float(variances[0] / variances[1]) if variances[1] else np.nan}


def run_one(name: str, adata: AnnData, split, task: Task, *, seed: int, variant: str = REFERENCE,
            params: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """Fit, predict and score one model on one split.

    ``name`` is fitted on the split's training part (early stopping on its ``val`` part where it has one), predicts
    the held-out groups, and is scored on half B with :data:`METRICS`.

    Returns
    -------
    scores, info
        Long scores (``task``, ``model``, ``variant``, ``seed``, ``covariate``, ``perturbation``, ``metric``,
        ``value``) and a record (seconds, fallback share, diversity, training throughput).
    """
    control = str(adata.uns["vcc"]["control_label"])
    model = get_model(name, **(params or {}))
    tick = time.perf_counter()
    real, query_half = scored_parts(model, adata, split, score_on="half", halves=task.halves, seed=seed)
    val = split.subset(adata, "val") if "val" in set(split.assignment["part"]) else None
    model.fit(split.subset(adata, "train"), val=val, heldout=query_half)
    prediction, real = predict_scored(model, adata, split, real, score_on="half", halves=task.halves, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = evaluate_by_covariate(prediction, real, split.covariate_column, control=control, metrics=METRICS)
    long = scores.melt(id_vars=["covariate", "perturbation"], var_name="metric", value_name="value")
    long.insert(0, "task", task.label)
    long.insert(1, "model", name)
    long.insert(2, "variant", variant)
    long.insert(3, "seed", seed)
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    predicted = ~prediction.obs["is_control"].to_numpy()
    history = getattr(model, "history", None) or {}
    info = {"task": task.label, "model": name, "variant": variant, "seed": seed,
            "seconds": round(time.perf_counter() - tick, 2),
            "fallback_share": float(prediction.obs.loc[predicted, "vcc_fallback"].mean()),
            "n_train_cells": int(split.mask(adata, "train").sum()),
            "epochs": len(history.get("epochs", [])), "cells_per_second": history.get("samples_per_second"),
            **prediction_diversity(prediction, real, control, split.covariate_column)}
    return long, info


def references(task: Task, exclude=()) -> list[str]:
    """Every MIN and MAX reference of the metrics chapter available for ``task``.

    The references and learned baselines of :mod:`vcclib.models.baselines` (the task's ``models`` list where it
    has one), less ``exclude``.
    """
    candidates = [n for n in (task.models or MODELS.names()) if n not in set(exclude)
                  if MODELS.get(n).kind in (ModelKind.MIN_REFERENCE, ModelKind.MAX_REFERENCE, ModelKind.LEARNED)
                  and MODELS.get(n).cls.startswith("vcclib.models.baselines.")]
    return quietly(available, candidates, halves=task.halves)


class Runner:
    """Runs the experiments, caching each task's data and each (task, seed) split and references."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._data: dict[str, AnnData] = {}
        self.scores: list[pd.DataFrame] = []
        self.info: list[dict] = []
        self._referenced: set = set()
        self.skipped: list[str] = []

    def data(self, task: Task) -> AnnData:
        """The task's (subsampled) data, loaded once."""
        if task.label not in self._data:
            self._data[task.label] = quietly(load_task_data, task, self.settings.max_cells_per_perturbation, 0)
        return self._data[task.label]

    def _run(self, name, task, split, seed, variant, params):
        try:
            long, info = quietly(run_one, name, self.data(task), split, task, seed=seed, variant=variant,
                                 params=params)
        except (ValueError, ImportError, VccError) as error:
            warnings.warn(f"{task.label} seed {seed}: {name} ({variant}) skipped: {error}", stacklevel=2)
            self.skipped.append(f"{task.label} seed {seed}: {name} ({variant}): {error}")
            return
        self.scores.append(long)
        self.info.append(info)

    def reference_runs(self, task: Task, seed: int, split=None, tag: str = REFERENCE) -> None:
        """Every reference on (task, seed) once (their scores anchor every placement)."""
        key = (task.label, seed, tag)
        if key in self._referenced:
            return
        self._referenced.add(key)
        split = split or make_split(task.split, self.data(task), seed=seed, **task.split_params)
        chosen = references(task, self.settings.exclude_references) if tag == REFERENCE else [MIN_ANCHOR, MAX_ANCHOR]
        for name in chosen:
            self._run(name, task, split, seed, tag, None)

    def vae_runs(self, task: Task, seed: int, variants: dict[str, tuple[str, dict]], split=None,
                 anchors_tag: str = REFERENCE) -> None:
        """VAE ``variants`` (label → (model name, parameters)) on (task, seed), with the anchors of that split."""
        split = split or make_split(task.split, self.data(task), seed=seed, **task.split_params)
        self.reference_runs(task, seed, split if anchors_tag != REFERENCE else None, anchors_tag)
        for variant, (name, extra) in variants.items():
            params = _model_params(name, self.settings, {**extra, "seed": seed})
            self._run(name, task, split, seed, variant if anchors_tag == REFERENCE else f"{anchors_tag}|{variant}",
                      params)

    def long(self) -> pd.DataFrame:
        """Every score so far, long."""
        return pd.concat(self.scores, ignore_index=True) if self.scores else pd.DataFrame()


def loss_variants(losses) -> dict[str, tuple[str, dict]]:
    """``loss=<spec>`` → the GO-feature VAE in cells mode with that loss (everything else fixed)."""
    return {f"loss={loss}": ("cvae_go", {"loss": loss}) for loss in losses}


def feature_variants(sources) -> dict[str, tuple[str, dict]]:
    """``features=<source>`` → the pseudobulk VAE with that perturbation-shift source (``learned``: none)."""
    return {f"features={s}": ("cvae_pseudobulk", {"features": s}) for s in sources}


def more_data_runs(runner: Runner, task: Task, seed: int, fractions, added: Task | None = None) -> None:
    """The pseudobulk VAE and the linear GO baseline on nested training sets.

    The ``more_data`` split (one held-out set per seed); each training size has its own MIN/MAX anchors.
    """
    adata = runner.data(task)
    for fraction in sorted(fractions):
        split = make_split("more_data", adata, seed=seed, train_fraction=float(fraction),
                           test_fraction=float(task.split_params.get("test_fraction", 0.3)))
        tag = f"train_fraction={fraction:g}"
        runner.reference_runs(task, seed, split, tag)
        for name in ("cvae_pseudobulk", "linear_go"):
            params = _model_params(name, runner.settings, {"seed": seed})
            runner._run(name, task, split, seed, f"{tag}|{name}", params)


def placements(long: pd.DataFrame) -> pd.DataFrame:
    """Every mean score placed between the MIN and MAX anchors of its task, seed and training set.

    Columns ``task``, ``model``, ``variant``, ``seed``, ``metric``, ``value`` (mean over held-out perturbations)
    and ``placement`` = (u − b)/(r − b), NaN where the MAX anchor does not beat the MIN anchor.
    """
    from vcclib.metrics import METRICS as REGISTRY

    means = long.groupby(["task", "model", "variant", "seed", "metric"], sort=False)["value"].mean().reset_index()
    means["anchor_tag"] = means["variant"].str.split("|").str[0].where(means["variant"].str.contains(r"\|"),
                                                                       REFERENCE)
    means.loc[means["model"].isin([MIN_ANCHOR, MAX_ANCHOR]) & ~means["variant"].str.contains(r"\|"), "anchor_tag"] = \
        means["variant"]
    anchors = means[means["model"].isin([MIN_ANCHOR, MAX_ANCHOR]) & ~means["variant"].str.contains(r"\|")]
    table = anchors.pivot_table(index=["task", "seed", "variant", "metric"], columns="model", values="value")
    table.index = table.index.set_names("anchor_tag", level="variant")
    merged = means.join(table, on=["task", "seed", "anchor_tag", "metric"])
    higher = merged["metric"].map(lambda m: bool(REGISTRY.get(m).higher_is_better))
    b, r = merged[MIN_ANCHOR], merged[MAX_ANCHOR]
    ordered = np.where(higher, r > b, r < b)
    merged["placement"] = np.where(ordered, (merged["value"] - b) / (r - b), np.nan)
    return merged[["task", "model", "variant", "seed", "metric", "value", "placement"]]


def trustworthy_metrics(long: pd.DataFrame) -> pd.DataFrame:
    """The metrics chapter's separation test on this chapter's reference runs.

    Win rate of the MAX anchor over the MIN anchor per metric, paired over the held-out perturbations of every
    task and seed; ``trusted`` = win rate ≥ :data:`SEPARATING_WIN_RATE` and a positive mean gap.
    """
    refs = long[(long["variant"] == REFERENCE) & long["model"].isin([MIN_ANCHOR, MAX_ANCHOR])]
    refs = refs.assign(task=refs["task"] + "#" + refs["seed"].astype(str), baseline=refs["model"])
    table = separation(refs)
    table["trusted"] = (table["win_rate"] >= SEPARATING_WIN_RATE) & (table["mean_gap"] > 0)
    return table


def intervals(placed: pd.DataFrame, metrics) -> pd.DataFrame:
    """Mean placement over seeds with a 95% t-interval, per (task, model, variant, metric) on ``metrics``."""
    from scipy.stats import t

    rows = placed[placed["metric"].isin(list(metrics))]
    grouped = rows.groupby(["task", "model", "variant", "metric"], sort=False)["placement"]
    table = grouped.agg(["mean", "std", "count", "min", "max"]).reset_index()
    half = t.ppf(0.975, (table["count"] - 1).clip(lower=1)) * table["std"] / np.sqrt(table["count"].clip(lower=1))
    table["low"], table["high"] = table["mean"] - half, table["mean"] + half
    return table.rename(columns={"count": "n_seeds"})


def headline(placed: pd.DataFrame, trusted: pd.DataFrame, info: pd.DataFrame, *, settings: Settings,
             seconds: float, cpu_seconds: float, device: str) -> dict[str, Any]:
    """The numbers the conclusions quote (computed from the chapter's tables)."""
    metrics = trusted.loc[trusted["trusted"], "metric"].tolist()
    summary = intervals(placed, metrics)
    ref = summary[summary["variant"].isin([REFERENCE, DEFAULT])]
    vae = ref[ref["model"].str.startswith("cvae")]
    others = ref[~ref["model"].str.startswith("cvae") & ~ref["model"].isin([MAX_ANCHOR, "replicate"])]
    best_baseline = others.loc[others.groupby(["task", "metric"])["mean"].idxmax()] if len(others) else others
    beats = {}
    for row in vae.itertuples():
        best = best_baseline[(best_baseline["task"] == row.task) & (best_baseline["metric"] == row.metric)]
        top = best.iloc[0] if len(best) else None
        beats.setdefault(row.model, []).append({
            "task": row.task, "metric": row.metric, "vae": round(float(row.mean), 3),
            "vae_low": round(float(row.low), 3), "vae_high": round(float(row.high), 3),
            "above_mean_baseline": bool(row.low > 0),
            "best_baseline": None if top is None else top["model"],
            "best_baseline_placement": None if top is None else round(float(top["mean"]), 3),
            "beats_best": None if top is None else bool(row.mean > top["mean"])})

    def effects(prefix: str) -> dict:
        rows = summary[summary["variant"].str.startswith(prefix)]
        return {v: round(float(g["mean"].mean()), 3) for v, g in rows.groupby("variant")}

    curve = summary[summary["variant"].str.startswith("train_fraction=")]
    curve = curve.assign(fraction=curve["variant"].str.extract(r"train_fraction=([\d.]+)")[0].astype(float),
                         learner=curve["variant"].str.split("|").str[1])
    slopes = {}
    for learner, block in curve.groupby("learner"):
        by_fraction = block.groupby("fraction")["mean"].mean()
        if len(by_fraction) > 1:
            slopes[learner] = {"first": round(float(by_fraction.iloc[0]), 3), "last": round(float(by_fraction.iloc[-1]), 3),
                               "fractions": [float(f) for f in by_fraction.index]}
    diversity = info[(info["model"].str.startswith("cvae") | info["model"].isin([MIN_ANCHOR, MAX_ANCHOR, "linear_go"]))
                     & ~info["variant"].str.contains("train_fraction")]
    spread = diversity.groupby(["model", "variant"])[["effect_spread_ratio", "cell_variance_ratio"]].mean()
    widths = (summary["high"] - summary["low"]).dropna()
    return {
        "tasks": sorted(placed["task"].unique()), "seeds": list(settings.seeds), "trusted_metrics": metrics,
        "untrusted_metrics": trusted.loc[~trusted["trusted"], "metric"].tolist(),
        "vae_vs_baselines": beats, "losses": effects("loss="), "features": effects("features="),
        "learning_curve": slopes,
        "diversity": {f"{m} ({v})": {k: round(float(x), 3) for k, x in row.items()} for (m, v), row in spread.iterrows()},
        "median_interval_width": float(widths.median()) if len(widths) else float("nan"),
        "max_cells_per_perturbation": settings.max_cells_per_perturbation, "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1), "device": device,
        "vae_cells_per_second": float(info.loc[info["model"].str.startswith("cvae"), "cells_per_second"].median()),
        "n_runs": int(len(info)),
    }


def _best(effects: dict) -> tuple[str, float]:
    if not effects:
        return "n/a", float("nan")
    key = max(effects, key=effects.get)
    return key.split("=", 1)[1], effects[key]


def conclusions(records: dict) -> Takeaways:
    """The chapter's answer, every number formatted from ``records`` (:func:`headline`)."""
    r = records
    lines = []
    for model, rows in r["vae_vs_baselines"].items():
        above = [f"{x['task']} {x['metric']} {number(x['vae'])} [{number(x['vae_low'])}, {number(x['vae_high'])}]"
                 for x in rows]
        wins = sum(1 for x in rows if x["beats_best"])
        clear = sum(1 for x in rows if x["above_mean_baseline"])
        lines.append(f"`{model}` beats the best MIN baseline on {wins} of {len(rows)} (task, metric) pairs and is "
                     f"clearly above the mean baseline (interval above 0) on {clear}; placements: "
                     f"{'; '.join(above)}")
    loss_name, loss_value = _best(r["losses"])
    feature_name, feature_value = _best(r["features"])
    losses = ", ".join(f"{k.split('=', 1)[1]} {number(v)}" for k, v in sorted(r["losses"].items(), key=lambda kv: -kv[1]))
    feats = ", ".join(f"{k.split('=', 1)[1]} {number(v)}" for k, v in sorted(r["features"].items(), key=lambda kv: -kv[1]))
    curve = "; ".join(f"{k}: {number(v['first'])} at {v['fractions'][0]:g} → {number(v['last'])} at "
                      f"{v['fractions'][-1]:g} of the training perturbations" for k, v in r["learning_curve"].items())
    diversity = "; ".join(f"{k}: effect spread {number(v['effect_spread_ratio'])}, cell variance "
                          f"{number(v['cell_variance_ratio'])}" for k, v in r["diversity"].items()
                          if REFERENCE in k or DEFAULT in k or "loss=" in k)
    points = [
        f"**Metrics used** (the MAX anchor beats the MIN anchor on ≥ {SEPARATING_WIN_RATE:.0%} of held-out "
        f"perturbations in this chapter's own runs): {names(r['trusted_metrics'])}. Not used: "
        f"{names(r['untrusted_metrics'])}.",
        "**VAE against the honest baselines** (placement 0 = mean of the training perturbations, 1 = technical "
        f"duplicate; mean over {len(r['seeds'])} seeds with a 95% interval): " + " ".join(f"{s}." for s in lines),
        f"**Losses, everything else fixed** (mean placement over the trusted metrics): {losses or 'n/a'}. Best: "
        f"{loss_name} ({number(loss_value)}).",
        f"**Auxiliary data for the perturbation shift**: {feats or 'n/a'}. Best: {feature_name} "
        f"({number(feature_value)}).",
        f"**More data** (nested training sets, mean placement over trusted metrics): {curve or 'n/a'}.",
        f"**Mode collapse** (predicted/real spread of perturbation effects; within-perturbation cell variance "
        f"ratio): {diversity or 'n/a'}.",
    ]
    conventions = [
        "log1p expression, all measured genes; pseudobulk = mean of log1p; Δ against the real control cells of "
        "the same cell line", f"at most {r['max_cells_per_perturbation']} cells per perturbation",
        f"seeds {', '.join(map(str, r['seeds']))} (each sets the split, the halves and the model)",
        f"{r['n_runs']} fitted runs in {number(r['seconds'], 0)} s wall ({number(r['cpu_seconds'], 0)} s CPU)",
        r["device"],
    ]
    return Takeaways(points, conventions=conventions)


def weak_evidence(records: dict) -> list[str]:
    """Where the evidence is weak, with the numbers that say so."""
    r = records
    return [
        f"Median width of a 95% placement interval over {len(r['seeds'])} seeds: "
        f"{number(r['median_interval_width'])} — differences smaller than that are not resolved.",
        f"At most {r['max_cells_per_perturbation']} cells per perturbation, few epochs and a small network (book "
        "settings): a larger budget may change the ranking of losses; the VAE's training throughput here was "
        f"{number(r['vae_cells_per_second'], 0)} samples/s on the CPU.",
        "Held-out sets are small (a few perturbations per task and seed), so a placement rests on a handful of "
        "perturbations; tasks with two perturbations (Kang) are left out of the book run.",
    ]


# --- the whole chapter --------------------------------------------------------------------------------------
def run_experiments(settings: Settings, *, compare_tasks: list[Task], loss_task: Task | None, feature_task: Task,
                    curve_task: Task, losses=("mse", "wmse", "nb", "mse+energy", "mse+grn"),
                    sources=("learned", "go", "depmap+coessentiality", "lincs", "union"),
                    fractions=(0.33, 0.67, 1.0), compare_models=("cvae_pseudobulk",),
                    task_data: dict | None = None) -> Runner:
    """Every experiment of the chapter over ``settings.seeds``; returns the :class:`Runner` with all scores.

    ``task_data`` gives the AnnData of tasks by label (a user's data); other tasks load their dataset.
    """
    runner = Runner(settings)
    runner._data.update(task_data or {})
    for seed in settings.seeds:
        for task in compare_tasks:
            runner.vae_runs(task, seed, {DEFAULT if i == 0 else f"{DEFAULT}:{m}": (m, {})
                                         for i, m in enumerate(compare_models)})
        runner.vae_runs(feature_task, seed, feature_variants(sources))
        if loss_task is not None:
            runner.vae_runs(loss_task, seed, loss_variants(losses))
        more_data_runs(runner, curve_task, seed, fractions)
    return runner


def learning_curve_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean placement (over the trusted metrics) per training fraction and learner, with its seed range."""
    curve = summary[summary["variant"].str.startswith("train_fraction=")].copy()
    curve["fraction"] = curve["variant"].str.extract(r"train_fraction=([\d.]+)")[0].astype(float)
    curve["learner"] = curve["variant"].str.split("|").str[1]
    return (curve.groupby(["task", "learner", "fraction"])[["mean", "low", "high"]].mean().reset_index())


def variant_table(summary: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """Mean placement with its 95% interval per variant starting with ``prefix`` and metric."""
    rows = summary[summary["variant"].str.startswith(prefix)]
    return rows[["task", "model", "variant", "metric", "mean", "low", "high", "n_seeds"]].reset_index(drop=True)


def plot_variants(table: pd.DataFrame, title: str):
    """Placements with 95% intervals: one panel per metric, one bar per variant (0 = mean baseline, 1 = ceiling)."""
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(table["metric"]))
    fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(2.6 * max(len(metrics), 1), 3.2), sharey=True,
                             squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        rows = table[table["metric"] == metric]
        labels = rows["model"].where(rows["variant"].isin([REFERENCE, DEFAULT]), rows["variant"])
        y = np.arange(len(rows))
        ax.barh(y, rows["mean"], xerr=[rows["mean"] - rows["low"], rows["high"] - rows["mean"]], color="#4c72b0",
                ecolor="#333", capsize=2)
        ax.set_yticks(y, [str(v).split("=", 1)[-1] for v in labels], fontsize=7)
        for x in (0, 1):
            ax.axvline(x, color="#999", lw=0.8, ls="--" if x else "-")
        ax.set_title(metric, fontsize=8)
        ax.set_xlim(-2, 1.5)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_learning_curve(curve: pd.DataFrame):
    """Mean placement against the share of training perturbations, one line per learner."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    for learner, rows in curve.groupby("learner"):
        ax.plot(rows["fraction"], rows["mean"], marker="o", label=learner)
        ax.fill_between(rows["fraction"], rows["low"], rows["high"], alpha=0.2)
    ax.axhline(0, color="#999", lw=0.8)
    ax.set_xlabel("share of the training perturbations")
    ax.set_ylabel("placement (mean over trusted metrics)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_diversity(info: pd.DataFrame):
    """Predicted/real spread of perturbation effects per model and variant (1 = real diversity, 0 = collapsed)."""
    import matplotlib.pyplot as plt

    table = (info[~info["variant"].str.contains("train_fraction")]
             .groupby(["model", "variant"])["effect_spread_ratio"].agg(["mean", "min", "max"]).reset_index()
             .sort_values("mean"))
    fig, ax = plt.subplots(figsize=(5, 0.22 * len(table) + 1))
    y = np.arange(len(table))
    ax.barh(y, table["mean"], xerr=[table["mean"] - table["min"], table["max"] - table["mean"]], color="#dd8452",
            ecolor="#333", capsize=2)
    ax.set_yticks(y, [f"{m} ({v})" for m, v in zip(table["model"], table["variant"])], fontsize=6)
    ax.axvline(1, color="#999", lw=0.8, ls="--")
    ax.set_xlabel("effect spread, predicted / real (seed range)")
    fig.tight_layout()
    return fig, table
