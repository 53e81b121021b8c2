"""The "Gene regulatory networks as ground truth" chapter: networks from control cells, judged three ways.

Infer networks on control cells, compare them with the literature and with held-out data, and predict
perturbations by propagating them through each network.

Everything the notebook shows is computed here; :func:`conclusions` writes the chapter's answer from the records.

Conventions
-----------
* Networks are inferred on control cells only (subsampled to ``max_cells``, seeded), one per dataset unit
  (Papalexi THP-1; Norman 2019 K562; each Kang 2018 cell type; Gasperini 2019 K562), with the Lambert 2018 TFs
  among the unit's genes as regulators and every kept gene as a target (``max_genes`` most variable genes where
  set, e.g. Kang's 6,998).
* Literature scores: :mod:`vcclib.grn.literature` (candidate edges, top-``K`` truncation, nulls).
* Data scores: :mod:`vcclib.grn.data_eval` (ridge on each gene's top regulators, folds by perturbation).
* Predictions: :mod:`vcclib.grn.propagation` models scored by :func:`vcclib.grn.scoring.score_models` on the
  baselines' tasks, placed between ``perturbed_mean`` (0) and ``technical_duplicate`` (1).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from vcclib.analyses.takeaways import Takeaways, number, plural, share

LITERATURE_COLUMNS = ("method", "dataset", "reference", "aupr", "auroc", "aupr_random", "early_precision")
PREDICTION_COLUMNS = ("model", "task", "metric", "value", "placement")
ANCHORS = ("perturbed_mean", "technical_duplicate")


@dataclass
class Unit:
    """One network: a dataset (with loader options), optionally one covariate value, and its label."""

    label: str
    dataset: str
    options: dict[str, Any] = field(default_factory=dict)
    covariate: str | None = None

    @property
    def key(self) -> tuple:
        """Dataset and options: units with the same key share one loaded AnnData."""
        return (self.dataset, tuple(sorted(self.options.items())))


def default_units(datasets: list[str], kang_cell_types: list[str] | None = None) -> list[Unit]:
    """The chapter's network units for the embedded datasets named in ``datasets``."""
    units: list[Unit] = []
    for dataset in datasets:
        if dataset == "papalexi2021_eccite_lowmoi":
            units.append(Unit("papalexi", dataset))
        elif dataset == "norman2019_mcfaline2024_devel":
            units.append(Unit("norman19", dataset, {"study": "norman19"}))
        elif dataset == "kang2018_ifnb_pbmc":
            for cell_type in kang_cell_types or []:
                units.append(Unit(f"kang:{cell_type}", dataset, covariate=cell_type))
        elif dataset == "gasperini2019_highmoi":
            units.append(Unit("gasperini", dataset))
        else:
            units.append(Unit(dataset.split("_")[0], dataset))
    return units


def load_units(
    units: list[Unit], reuse: dict[tuple, AnnData] | None = None
) -> tuple[dict[str, AnnData], dict[str, dict[str, int]]]:
    """Each unit's data (the cells of its covariate where it has one); datasets are loaded once.

    ``reuse`` maps a unit key (:attr:`Unit.key`) to data already loaded (the prediction tasks' subsampled data, so
    that a unit's network is the one the predictors infer on the same control cells). High-MOI data are reduced
    to their single-target cells (:func:`vcclib.grn.coverage.single_target_cells`); the second return value
    says, per such unit, how many cells that kept and dropped.
    """
    from vcclib.data import load
    from vcclib.grn.coverage import single_target_cells
    from vcclib.splits import covariate_column

    cache: dict[tuple, AnnData] = dict(reuse or {})
    out, reductions = {}, {}
    for unit in units:
        if unit.key not in cache:
            adata, counts = single_target_cells(load(unit.dataset, **unit.options))
            if counts["multi_target"] or counts["unassigned"]:
                reductions[unit.label] = counts
            cache[unit.key] = adata
        adata = cache[unit.key]
        if unit.covariate is not None:
            column = covariate_column(adata)
            adata = adata[(adata.obs[column].astype(str) == unit.covariate).to_numpy()].copy()
        out[unit.label] = adata
    return out, reductions


def genes_for(label: str, max_genes: dict[str, int]) -> int:
    """A unit's gene cap: its label's entry, else the entry of its prefix before ``:`` (``kang`` for ``kang:B``)."""
    return int(max_genes.get(label, max_genes.get(label.split(":")[0], 0)))


def infer_networks(
    data: dict[str, AnnData],
    methods: list[str],
    *,
    max_cells: int,
    max_genes: dict[str, int],
    seed: int,
    n_estimators: int,
    n_steps: int,
    client=None,
    device: str = "cpu",
    extra_methods: dict[str, list[str]] | None = None,
) -> tuple[dict, dict, pd.DataFrame]:
    """Every method on every unit's control cells (and ``extra_methods[label]`` on that unit only).

    ``n_estimators`` sets GENIE3's trees (GRNBoost2 keeps arboreto's early-stopped default); ``n_steps`` and
    ``device`` are RegDiffusion's.

    Returns
    -------
    (networks, expressions, timings)
        ``networks[(label, method)]`` edge tables; ``expressions[label]`` the matrices they came from;
        ``timings``: ``dataset``, ``method``, ``n_cells``, ``n_genes``, ``n_regulators``, ``n_workers``,
        ``seconds``, ``cached``.
    """
    from vcclib.grn.inference import control_expression, infer_network
    from vcclib.grn.propagation import lambert_tfs

    workers = len(client.scheduler_info()["workers"]) if client is not None else 0
    networks, expressions, rows = {}, {}, []
    for label, adata in data.items():
        expression = control_expression(
            adata, lambert_tfs(), max_cells=max_cells, max_genes=genes_for(label, max_genes), seed=seed
        )
        expressions[label] = expression
        for method in methods + [m for m in (extra_methods or {}).get(label, []) if m not in methods]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                edges = infer_network(
                    expression,
                    method,
                    seed=seed,
                    client=client,
                    n_estimators=(n_estimators or None) if method == "genie3" else None,
                    n_steps=n_steps,
                    device=device,
                )
            networks[(label, method)] = edges
            rows.append(
                {
                    "dataset": label,
                    "method": method,
                    "n_cells": expression.X.shape[0],
                    "n_genes": len(expression.genes),
                    "n_regulators": len(expression.regulators),
                    "n_workers": workers if method in ("grnboost2", "genie3") else 1,
                    "seconds": round(edges.attrs["seconds"], 2),
                    "cached": bool(edges.attrs["cached"]),
                }
            )
    return networks, expressions, pd.DataFrame(rows)


def literature_comparison(
    networks: dict, expressions: dict, references: list[str], *, edges_per_target: int, n_shuffles: int, seed: int
) -> pd.DataFrame:
    """``grn_vs_literature`` rows for every unit × reference × method, with the random and shuffled nulls.

    Extra columns after the seven of the output: n_positive, n_candidates, top_k, null, null_sd.
    """
    from vcclib.grn.literature import evaluate_networks, reference_network

    refs = {name: reference_network(name) for name in references}
    frames = []
    for label, expression in expressions.items():
        unit_networks = {method: edges for (lab, method), edges in networks.items() if lab == label}
        frames.append(
            evaluate_networks(
                unit_networks,
                refs,
                dataset=label,
                regulators=expression.regulators,
                genes=expression.genes,
                edges_per_target=edges_per_target,
                n_shuffles=n_shuffles,
                seed=seed,
            )
        )
    return pd.concat(frames, ignore_index=True)


def data_comparison(
    networks: dict, data: dict[str, AnnData], *, regulators_per_target: int, seed: int, max_cells: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Held-out regression per unit × method: per-target table and a summary (one row per unit × method)."""
    from vcclib.grn.data_eval import regression_scores, summarise_regression

    frames, rows = [], []
    for (label, method), edges in networks.items():
        table = regression_scores(
            edges, data[label], regulators_per_target=regulators_per_target, seed=seed, max_cells=max_cells
        )
        frames.append(table.assign(dataset=label, method=method))
        rows.append({"dataset": label, "method": method, **summarise_regression(table)})
    return pd.concat(frames, ignore_index=True), pd.DataFrame(rows)


def prediction_models(
    networks: list[str],
    *,
    max_cells: int,
    max_genes: int = 0,
    n_estimators: int,
    n_steps: int,
    seed: int,
    baselines: list[str],
) -> dict:
    """Fresh model instances: the baselines by name and one propagation predictor per network.

    The inferred-network predictors get the chapter's inference settings (``n_estimators`` for GENIE3 only), so
    on the same control cells they reuse the chapter's networks from the inference cache.
    """
    from vcclib.grn.propagation import INFERRED
    from vcclib.models import get_model

    models: dict = {name: name for name in baselines}
    for network in networks:
        name = f"grn_{network}" if network in INFERRED else f"lit_{network.split('_')[0]}"
        settings = {"network": network, "seed": seed}
        if network in INFERRED:
            settings.update(
                max_cells=max_cells,
                max_genes=max_genes,
                n_steps=n_steps,
                n_estimators=n_estimators if network == "genie3" else 0,
            )
        models[name] = get_model(name, **settings)
    return models


def score_predictions(
    tasks,
    task_data: dict[str, AnnData],
    make_models,
    *,
    split_seeds: list[int],
    metrics: list[str] | None,
    profile: str = "full",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every model (``make_models(task)``: fresh instances per split) on every task and split seed.

    Returns the long table (task label ``<task>#<seed>``) and the fit report (calibration, seconds).
    """
    from vcclib.grn.scoring import score_models

    longs, fits = [], []
    for task in tasks:
        for split_seed in split_seeds:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                long, fit = score_models(
                    task, make_models(task), task_data[task.label], seed=split_seed, metrics=metrics, profile=profile
                )
            label = f"{task.label}#{split_seed}"
            longs.append(long.assign(task=label))
            fits.append(fit.assign(task=label))
    return pd.concat(longs, ignore_index=True), pd.concat(fits, ignore_index=True)


def prediction_table(long: pd.DataFrame) -> pd.DataFrame:
    """``grn_predictions``: mean score per model × task × metric and its placement.

    Placement: perturbed_mean 0, technical duplicate 1; NaN where the two anchors are not ordered on that metric.
    """
    from vcclib.models.benchmark import placement

    placed = placement(long)
    table = placed.rename(columns={"baseline": "model", "score": "value"})
    return table[list(PREDICTION_COLUMNS) + ["side", "anchors_ordered"]].reset_index(drop=True)


def per_perturbation(long: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """Per held-out perturbation: each model's score, fallback share and the perturbed_mean score (for pairing)."""
    rows = long[long["baseline"].isin(list(models) + ["perturbed_mean"])]
    wide = rows.pivot_table(index=["task", "perturbation", "metric"], columns="baseline", values="value")
    falls = rows.pivot_table(index=["task", "perturbation", "metric"], columns="baseline", values="fallback")
    wide.columns = [f"value_{c}" for c in wide.columns]
    falls.columns = [f"fallback_{c}" for c in falls.columns]
    return wide.join(falls).reset_index()


def _better(metric: str, a: float, b: float) -> bool:
    from vcclib.models.benchmark import _higher_is_better

    return a > b if _higher_is_better(metric) else a < b


def _literature_records(literature: pd.DataFrame) -> dict[str, Any]:
    lit = literature[literature["null"] == ""].copy()
    lit["ratio"] = lit["aupr"] / lit["aupr_random"]
    shuffled = literature[literature["null"] == "degree_shuffled"].assign(
        method=lambda f: f["method"].str.removesuffix("_degree_shuffled")
    )
    merged = lit.merge(
        shuffled[["method", "dataset", "reference", "aupr", "null_sd"]],
        on=["method", "dataset", "reference"],
        suffixes=("", "_shuffled"),
    )
    merged["beats_shuffle"] = merged["aupr"] > merged["aupr_shuffled"] + 2 * merged["null_sd_shuffled"]
    best = lit.dropna(subset=["ratio"]).sort_values("ratio", ascending=False).head(1)
    by_method = lit.dropna(subset=["ratio"]).groupby("method")["ratio"].median().sort_values(ascending=False)
    positives = literature[literature["null"] == ""].groupby(["reference", "dataset"])["n_positive"].first()
    candidates = literature[literature["null"] == ""].groupby("dataset")["n_candidates"].first()
    return {
        "n_comparisons": int(len(merged)),
        "median_ratio_by_method": by_method.round(3).to_dict(),
        "best": best[["method", "dataset", "reference", "aupr", "aupr_random", "ratio"]].round(4).to_dict("records"),
        "share_beating_shuffle": float(merged["beats_shuffle"].mean()) if len(merged) else float("nan"),
        "share_above_random": float((lit["ratio"] > 1).mean()) if len(lit) else float("nan"),
        "min_positives": int(positives.min()) if len(positives) else 0,
        "max_positives": int(positives.max()) if len(positives) else 0,
        "positives": {ref: block.droplevel(0).astype(int).to_dict() for ref, block in positives.groupby(level=0)},
        "candidates": candidates.astype(int).to_dict(),
    }


def _median_placement(predictions: pd.DataFrame, models: list[str], metrics: list[str]) -> dict[str, float]:
    rows = predictions[predictions["model"].isin(models) & predictions["metric"].isin(metrics)]
    return rows.dropna(subset=["placement"]).groupby("model")["placement"].median().round(3).to_dict()


def build_records(
    literature: pd.DataFrame,
    regression: pd.DataFrame,
    predictions: pd.DataFrame,
    long: pd.DataFrame,
    timings: pd.DataFrame,
    expressions: dict,
    *,
    network_models: list[str],
    headline_metrics: list[str],
    coverage: pd.DataFrame | None = None,
    references: list[str] = (),
    reductions: dict | None = None,
    comparison_baselines: tuple[str, ...] = ("linear_pca", "control_mean"),
) -> dict[str, Any]:
    """The numbers :func:`conclusions` quotes, all computed from the chapter's tables.

    ``coverage`` is :func:`vcclib.grn.coverage.target_coverage` (perturbed targets each network carries),
    ``reductions`` the high-MOI cell counts of :func:`load_units`.
    """
    from vcclib.grn.coverage import coverage_counts

    rec: dict[str, Any] = {
        "literature": _literature_records(literature),
        "regression": {
            "gain_by_method": regression.groupby("method")["gain"].mean().round(4).to_dict(),
            "share_better_by_method": regression.groupby("method")["share_better"].mean().round(3).to_dict(),
        },
    }
    network_rows = predictions[predictions["model"].isin(network_models) & predictions["metric"].isin(headline_metrics)]
    ordered = network_rows.dropna(subset=["placement"])
    unordered = predictions[predictions["metric"].isin(headline_metrics) & ~predictions["anchors_ordered"].astype(bool)]
    rec["predictions"] = {
        "tasks": sorted(predictions["task"].unique()),
        "metrics": list(headline_metrics),
        "median_placement": _median_placement(predictions, network_models, headline_metrics),
        "baseline_placement": _median_placement(predictions, list(comparison_baselines), headline_metrics),
        "share_positive": ordered.assign(w=ordered["placement"] > 0).groupby("model")["w"].mean().round(3).to_dict(),
        "n_placed": int(len(ordered)),
        "n_unordered": int(network_rows["placement"].isna().sum()),
        "unordered_cells": sorted({f"{m} on {t}" for t, m in zip(unordered["task"], unordered["metric"])}),
    }
    held = long[long["baseline"].isin(network_models) & long["metric"].isin(headline_metrics)]
    with_signal = held[held["fallback"] < 0.5]
    rec["predictions"]["held_out_with_signal"] = {
        m: sorted(set(with_signal.loc[with_signal["baseline"] == m, "perturbation"])) for m in network_models
    }
    rec["predictions"]["n_held_out"] = int(long.loc[long["baseline"] == "perturbed_mean", "perturbation"].nunique())
    pm = long[long["baseline"] == "perturbed_mean"].set_index(["task", "covariate", "perturbation", "metric"])["value"]
    wins = {}
    for model in network_models:
        rows = with_signal[with_signal["baseline"] == model]
        if rows.empty:
            continue
        base = pm.reindex(pd.MultiIndex.from_frame(rows[["task", "covariate", "perturbation", "metric"]])).to_numpy()
        better = [_better(m, v, b) for m, v, b in zip(rows["metric"], rows["value"], base) if np.isfinite(b)]
        wins[model] = {"n": len(better), "share_better_than_mean": float(np.mean(better)) if better else float("nan")}
    rec["predictions"]["paired_vs_mean"] = wins
    if coverage is not None:
        rec["coverage"] = coverage_counts(coverage, list(references))
        rec["coverage_targets"] = {
            label: {
                column: sorted(block.loc[block[column].astype(bool), "target"].astype(str))
                for column in ["inferred_regulator", *references]
            }
            for label, block in coverage.groupby("dataset", sort=False)
        }
    rec["high_moi"] = reductions or {}
    rec["weak"] = {
        "panel": {label: len(e.genes) for label, e in expressions.items()},
        "regulators": {label: len(e.regulators) for label, e in expressions.items()},
        "control_cells": {label: int(e.X.shape[0]) for label, e in expressions.items()},
    }
    rec["timings"] = timings.groupby("method")["seconds"].sum().round(1).to_dict()
    return rec


def _answer(pred: dict[str, Any]) -> str:
    """The first takeaway: whether the network predictors beat the baselines."""
    placements = pred["median_placement"]
    if not placements:
        return (
            f"**Answer: not measurable in this run.** None of the {pred['n_unordered']} network × task × metric "
            "cells could be placed: the technical duplicate does not beat the mean baseline on these metrics."
        )
    best_model, best = max(placements.items(), key=lambda item: item[1])
    others = {m: v for m, v in pred.get("baseline_placement", {}).items()}
    bar = max([0.0, *others.values()])
    verdict = (
        "do not predict held-out perturbations better than the baselines"
        if best <= bar
        else f"predict held-out perturbations better than the baselines only through {best_model}"
    )
    text = (
        f"**Answer: networks inferred from control cells (GENIE3-style) and literature networks {verdict}.** "
        f"Median placement over {len(pred['tasks'])} task × split runs and {number(len(pred['metrics']), 0)} "
        "metrics (0 = mean baseline, 1 = technical duplicate): "
        + ", ".join(f"{m} {v:+.2f}" for m, v in sorted(placements.items(), key=lambda i: -i[1]))
    )
    if others:
        text += "; baselines " + ", ".join(f"{m} {v:+.2f}" for m, v in others.items())
    return text + "."


def conclusions(records: dict[str, Any]) -> Takeaways:
    """The chapter's answer (the key-takeaways box).

    Every number comes from ``records`` (see :func:`build_records`); ``records['conventions']``, where present,
    become the box's conventions line.
    """
    lit, reg, pred, weak = records["literature"], records["regression"], records["predictions"], records["weak"]
    out = [_answer(pred)]
    paired = pred["paired_vs_mean"]
    if paired:
        out.append(
            "Where a network carries the perturbation at all (held-out perturbations with a signal), it beats "
            "the mean baseline on "
            + ", ".join(
                f"{share(v['share_better_than_mean'])} of {v['n']} perturbation × metric pairs ({m})"
                for m, v in paired.items()
            )
            + "; elsewhere it *is* the mean baseline (a fallback)."
        )
    coverage = records.get("coverage", {})
    if coverage:
        parts = []
        for label, c in coverage.items():
            refs = [k for k in c if k not in ("targets", "tfs", "measured_tfs", "inferred", "kinds")]
            kinds = (
                ""
                if list(c["kinds"]) == ["gene"]
                else " (" + ", ".join(f"{v} {k}" for k, v in c["kinds"].items()) + ")"
            )
            carried_by = ", ".join(f"{r} {c[r]}" for r in refs)
            parts.append(
                f"{label}: {plural(c['targets'], 'perturbed target')}{kinds}, {c['tfs']} TFs, "
                f"{c['measured_tfs']} measured TFs; carried by the inferred networks {c['inferred']}, "
                f"by {carried_by}"
            )
        out.append("Coverage is the binding limit: " + "; ".join(parts) + ".")
    ratios = lit["median_ratio_by_method"]
    if ratios:
        best_method = next(iter(ratios))
        best = lit["best"][0] if lit["best"] else None
        fraction = lit["share_beating_shuffle"]
        verdict = (
            "mostly beyond what their hub structure alone gives"
            if fraction >= 0.5
            else "mostly no better than their own hub structure"
        )
        sentence = (
            f"Against the literature, the median AUPR / random-ranking ratio is {ratios[best_method]:.2f} for "
            f"the best method ({best_method})"
            + "".join(f", {r:.2f} for {m}" for m, r in list(ratios.items())[1:])
            + "; "
        )
        if best:
            sentence += (
                f"the best single case is {best['method']} on {best['dataset']} vs {best['reference']} "
                f"(AUPR {best['aupr']:.3f} vs {best['aupr_random']:.3f} random). "
            )
        sentence += (
            f"{share(fraction)} of {lit['n_comparisons']} method × dataset × reference comparisons beat "
            f"their degree-preserving shuffle by more than 2 SD: the recovered edges are {verdict}."
        )
        out.append(sentence)
    gains = reg["gain_by_method"]
    if gains:
        out.append(
            "On held-out perturbations, each gene's top inferred regulators explain it better than as many "
            "random regulators by a mean R² gain of "
            + ", ".join(
                f"{g:+.3f} ({m}; better for {share(reg['share_better_by_method'][m])} of genes)"
                for m, g in gains.items()
            )
            + "."
        )
    panel = ", ".join(
        f"{label} {n} genes / {weak['regulators'][label]} TFs / {weak['control_cells'][label]} control cells"
        for label, n in weak["panel"].items()
    )
    out.append(
        f"The evidence is thin: {panel}; literature edges among a unit's candidate pairs range from "
        f"{lit['min_positives']} to {lit['max_positives']}; {pred['n_unordered']} network × task × metric "
        "cells have no placement because the technical duplicate does not beat the mean baseline there."
    )
    return Takeaways(points=out, conventions=tuple(records.get("conventions", ())))


def timed(func, *args, **kwargs):
    """``(result, seconds)``."""
    start = time.perf_counter()
    result = func(*args, **kwargs)
    return result, time.perf_counter() - start
