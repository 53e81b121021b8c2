"""Chapter *Metrics and baselines*: where every metric places honest references between a floor and a ceiling.

The scoring itself lives in :mod:`vcclib.models.benchmark` (tasks, runs, placement, separation, the headline
numbers); this module runs the chapter's tasks (:func:`run_tasks`), derives its tables (:func:`key_scores`,
:func:`separation_tables`, :func:`systematic_variation_table`), and writes its conclusions from the headline
record (:func:`conclusions`).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

from vcclib.analyses.quiet import quietly
from vcclib.analyses.takeaways import Takeaways, names, number, share
from vcclib.models.benchmark import (
    MAX_ANCHOR,
    MIN_ANCHOR,
    Task,
    default_tasks,
    load_task_data,
    run_task,
    separation,
    systematic_variation,
)

USER_TASK = "user:unseen_perturbation"
#: the five metrics of the key-scores table
KEY_METRICS = ("pearson_delta", "discrimination_score_l1", "overlap_at_N", "mae", "systema_pearson_delta_pert")
#: win rate at or above which a metric separates the ceiling from the mean baseline (and ≤ 0.5: rewards the mean)
SEPARATING_WIN_RATE = 0.8
#: the code a task's stored scores depend on (see vcclib.memo)
MEMO_CODE = ("vcclib.models", "vcclib.metrics", "vcclib.splits", "vcclib.analyses.metrics_and_baselines")


def chapter_tasks(datasets: str, *, user_adata=None) -> tuple[list[Task], dict]:
    """The chapter's tasks: the default ones of the comma-separated ``datasets``, or one task on a user's data.

    Returns
    -------
    tasks, task_data
        The tasks and, for a user's data, its AnnData by task label (the other tasks load their own data).
    """
    if user_adata is not None:
        task = Task("user_h5ad", "unseen_perturbation", split_params={"test_fraction": 0.3}, label=USER_TASK)
        return [task], {USER_TASK: user_adata}
    ids = [d.strip() for d in datasets.split(",") if d.strip()]
    return default_tasks(ids), {}


def baseline_catalogue() -> pd.DataFrame:
    """Every registered baseline with ``available_here`` (its optional packages are installed)."""
    from vcclib.models import available, list_models

    catalogue = list_models()
    catalogue["available_here"] = catalogue["name"].isin(quietly(available, halves=None))
    return catalogue


def task_table(tasks: list[Task]) -> pd.DataFrame:
    """One row per task: label, dataset, loader options, split, split parameters, halving."""
    return pd.DataFrame(
        [
            {
                "task": t.label,
                "dataset": t.dataset,
                "options": str(t.options),
                "split": t.split,
                "split_params": str(t.split_params),
                "halves": t.halves,
            }
            for t in tasks
        ]
    )


def systematic_variation_table(tasks: list[Task], task_data: dict, seed: int = 0) -> pd.DataFrame:
    """Systema's systematic variation per perturbation, once per dataset (all cells, no subsampling)."""
    frames = []
    for ds, options in dict.fromkeys(
        (t.dataset, tuple(sorted(t.options.items()))) for t in tasks if t.halves == "random"
    ):
        data = task_data.get(USER_TASK) if ds == "user_h5ad" else None
        if data is None:
            data = load_task_data(Task(ds, "unseen_perturbation", dict(options)), 0, seed)
        frame = quietly(systematic_variation, data)
        frame["dataset"] = ds + "".join(f"[{v}]" for _, v in options)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def run_tasks(
    tasks: list[Task],
    task_data: dict,
    *,
    baselines=None,
    seed: int = 0,
    profile: str = "full",
    max_cells_per_perturbation: int = 100,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Every baseline on every task.

    Returns
    -------
    scores, settings, skipped
        The long scores; cells, genes and seconds per task; and one line per baseline a task skipped (the
        warnings of :func:`vcclib.models.benchmark.run_task`, kept as data rather than printed).
    """
    frames, timings, skipped = [], [], []
    for task in tasks:
        tick = time.perf_counter()
        data = task_data.get(task.label)
        if data is None:
            data = load_task_data(task, max_cells_per_perturbation, seed)
        table, messages = _scored_task(task, data, baselines=baselines, seed=seed, profile=profile)
        frames.append(table)
        skipped += messages
        timings.append(
            {
                "task": task.label,
                "cells": data.n_obs,
                "genes": data.n_vars,
                "seconds": round(time.perf_counter() - tick, 1),
            }
        )
    settings = pd.DataFrame(timings).assign(
        max_cells_per_perturbation=max_cells_per_perturbation, seed=seed, profile=profile
    )
    return pd.concat(frames, ignore_index=True), settings, skipped


def _scored_task(task: Task, data, *, baselines, seed: int, profile: str) -> tuple[pd.DataFrame, list[str]]:
    """:func:`run_task` and the lines of the baselines it skipped, kept on disk between runs.

    The store (:mod:`vcclib.memo`) is keyed by the data's content, the task, baselines, seed and profile, and the
    source of the models, metrics and splits.
    """
    from vcclib import memo

    def compute():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            table = quietly(run_task, task, baselines=baselines, seed=seed, profile=profile, adata=data)
        return table, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]

    inputs = {"task": repr(task), "data": memo.token(data), "baselines": baselines, "seed": seed, "profile": profile}
    table, messages = memo.memo("metrics_and_baselines.run_task", compute, inputs=inputs, code=MEMO_CODE)
    return table, list(messages)


def key_scores(placed: pd.DataFrame, scores: pd.DataFrame, metrics=KEY_METRICS) -> pd.DataFrame:
    """Mean score per task and baseline on the key metrics, with each baseline's share of fallback predictions."""
    key = placed[placed["metric"].isin(metrics)].pivot_table(
        index=["task", "baseline"], columns="metric", values="score"
    )
    fallback = scores.groupby(["task", "baseline"])["fallback"].mean().rename("fallback_share")
    return key.join(fallback).round(3)


def separation_tables(scores: pd.DataFrame, placed: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Win rate of the MAX reference over the mean baseline: pooled over tasks, and per task.

    On a replicate-halved task the MAX anchor is the biological ``replicate``; pooled, it counts as the
    technical duplicate.
    """
    anchors = placed.drop_duplicates("task")[["task", "max_anchor"]].itertuples(index=False)
    by_task = pd.concat(
        [separation(scores[scores["task"] == t], max_anchor=a).assign(task=t) for t, a in anchors], ignore_index=True
    )
    pooled = separation(scores.assign(baseline=scores["baseline"].replace({"replicate": MAX_ANCHOR})))
    return pooled, by_task


def fallback_by_baseline(scores: pd.DataFrame) -> dict[str, float]:
    """Share of fallback predictions per baseline over all tasks."""
    return {str(b): float(v) for b, v in scores.groupby("baseline")["fallback"].mean().items()}


def chapter_records(
    headline: dict,
    *,
    max_cells_per_perturbation: int,
    seed: int,
    seconds: float,
    skipped: list[str],
    fallback: dict[str, float],
    skipped_runs: list[str] = (),
    device: str = "",
) -> dict:
    """The chapter's record: :func:`vcclib.models.benchmark.headline` plus the run's settings.

    ``skipped`` names the baselines not available here (optional packages), ``skipped_runs`` the (task,
    baseline) runs that could not be scored.
    """
    return {
        **headline,
        "max_cells_per_perturbation": int(max_cells_per_perturbation),
        "seed": int(seed),
        "seconds": float(seconds),
        "skipped_baselines": list(skipped),
        "skipped_runs": list(skipped_runs),
        "fallback_by_baseline": fallback,
        "min_anchor": MIN_ANCHOR,
        "max_anchor": MAX_ANCHOR,
        "device": device,
    }


def _rate(value) -> str:
    return number(value, 2)


def conclusions(records: dict) -> Takeaways:
    """The chapter's answer, every number formatted from ``records`` (:func:`chapter_records`)."""
    r = records
    wr = r["win_rate"]
    sv = "; ".join(
        f"{d}: median cosine {number(v['cosine'])}, median share explained {number(v['share_explained'])}"
        f" (n = {v['n']})"
        for d, v in r["systematic_variation"].items()
    )
    anchors_pd = r["anchors_by_task"].get("pearson_delta", {})
    ordered = "; ".join(
        f"{t}: mean baseline {number(v['min'])} vs ceiling {number(v['max'])}" for t, v in anchors_pd.items()
    )
    not_ordered = [t for t, v in anchors_pd.items() if not v["ordered"]]
    best = "; ".join(
        f"{t}: {v['baseline']} (PearsonΔ {number(v['score'])}, placement {number(v['placement'])})"
        for t, v in r["best_min"].get("pearson_delta", {}).items()
    )
    beats = pd.DataFrame(r["min_beats_max"])
    if beats.empty:
        beats_text = "no MIN baseline reaches the ceiling on any metric where the ceiling beats the mean baseline"
    else:
        top = names(beats["metric"].value_counts().index[:4])
        beats_text = (
            f"{len(beats)} (task, baseline, metric) triples where a MIN baseline reaches or passes the "
            f"ceiling (most on {top})"
        )
    learned = r["share_learned_beating_mean"]
    unordered = ", ".join(f"{t} {share(v)}" for t, v in r["unordered_by_task"].items())
    mae = wr.get("mae")
    collapse = (
        " A half-sample of real cells is then no closer to the truth than the mean of the training "
        "perturbations: the mode-collapse critique in numbers."
        if mae is not None and np.isfinite(mae) and mae <= 0.5
        else ""
    )
    if not_ordered:
        task_note = (
            f"On {names(not_ordered)} the ceiling does not beat the mean baseline: with at most "
            f"{r['max_cells_per_perturbation']} cells per perturbation, halves of weak knockouts are "
            "noise-dominated, so no score can be placed between the anchors there."
        )
    else:
        task_note = "The ceiling beats the mean on every task."
    points = [
        f"**Systematic variation.** {sv}. Where the cosine is high, a large part of every perturbation's effect is "
        "a shared perturbed-vs-control shift that the mean baseline gets for free.",
        f"**Metrics that separate the ceiling from the mean baseline** (win rate ≥ {SEPARATING_WIN_RATE}): "
        f"{names(r['separating'])}. PearsonΔ: win rate {_rate(wr.get('pearson_delta'))}; PDS (L1): "
        f"{_rate(wr.get('discrimination_score_l1'))}; DES (overlap_at_N): {_rate(wr.get('overlap_at_N'))}; Systema's "
        f"PearsonΔ against the perturbed reference: {_rate(wr.get('systema_pearson_delta_pert'))}.",
        f"**Metrics that do not** (win rate ≤ 0.5: they reward, or cannot tell, the collapsed mean prediction): "
        f"{names(r['rewarding_mean'])}. MAE: win rate {_rate(mae)}, MSE: {_rate(wr.get('mse'))}.{collapse}",
        f"**Per task (PearsonΔ, all genes, Δ against the shared real controls):** {ordered or 'n/a'}. {task_note} "
        f"Share of metrics whose ceiling does not beat the floor, per task: {unordered or 'n/a'}. Best MIN baseline "
        f"on PearsonΔ per task: {best or 'n/a'}. There are {beats_text}.",
        f"**Learned MIN baselines vs the mean.** Share of (task, learned baseline) pairs placed above the mean "
        f"baseline: PearsonΔ {_rate(learned.get('pearson_delta'))}, PDS "
        f"{_rate(learned.get('discrimination_score_l1'))}, MAE {_rate(learned.get('mae'))}.",
    ]
    return Takeaways(points, conventions=conventions(records))


def conventions(records: dict) -> list[str]:
    """The conventions the chapter's numbers depend on."""
    r = records
    lines = [
        "scores are means over held-out perturbations, scored on half B of the held-out cells against the real "
        "control cells of the same cell line/type",
        "pseudobulk = mean of log1p over cells; all measured genes",
        f"at most {r['max_cells_per_perturbation'] or 'all'} cells per perturbation; seed {r['seed']}",
        f"{r['n_baselines']} references, {r['n_metrics']} scored metrics, {len(r['tasks'])} tasks",
        f"placement (u − b)/(r − b) with b = `{r['min_anchor']}`, r = `{r['max_anchor']}` (the biological replicate "
        "on the replicate task)",
        f"the whole analysis took {number(r['seconds'], 0)} s",
    ]
    return lines + ([r["device"]] if r.get("device") else [])


def skipped_note(records: dict) -> str:
    """Which baselines did not run (missing optional packages) and each baseline's fallback share."""
    fallback = ", ".join(f"{b} {share(v)}" for b, v in records["fallback_by_baseline"].items())
    text = (
        f"Baselines not run here (missing optional packages): {names(records['skipped_baselines'])}. "
        f"Fallback share per baseline (all tasks): {fallback}."
    )
    if records.get("skipped_runs"):
        text += " Runs that could not be scored: " + "; ".join(records["skipped_runs"]) + "."
    return text
