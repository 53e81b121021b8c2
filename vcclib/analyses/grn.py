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

from vcclib.analyses.takeaways import Takeaways

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
        else:
            units.append(Unit(dataset.split("_")[0], dataset))
    return units


def load_units(units: list[Unit]) -> dict[str, AnnData]:
    """Each unit's data (the cells of its covariate where it has one); datasets are loaded once."""
    from vcclib.data import load
    from vcclib.splits import covariate_column

    cache: dict[tuple, AnnData] = {}
    out = {}
    for unit in units:
        key = (unit.dataset, tuple(sorted(unit.options.items())))
        if key not in cache:
            cache[key] = load(unit.dataset, **unit.options)
        adata = cache[key]
        if unit.covariate is not None:
            column = covariate_column(adata)
            adata = adata[(adata.obs[column].astype(str) == unit.covariate).to_numpy()].copy()
        out[unit.label] = adata
    return out


def infer_networks(data: dict[str, AnnData], methods: list[str], *, max_cells: int, max_genes: dict[str, int],
                   seed: int, n_estimators: int, n_steps: int, client=None, device: str = "cpu"
                   ) -> tuple[dict, dict, pd.DataFrame]:
    """Every method on every unit's control cells.

    Returns
    -------
    (networks, expressions, timings)
        ``networks[(label, method)]`` edge tables; ``expressions[label]`` the matrices they came from;
        ``timings``: ``dataset``, ``method``, ``n_cells``, ``n_genes``, ``n_regulators``, ``n_workers``,
        ``seconds``.
    """
    from vcclib.grn.inference import control_expression, infer_network
    from vcclib.grn.propagation import lambert_tfs

    workers = len(client.scheduler_info()["workers"]) if client is not None else 0
    networks, expressions, rows = {}, {}, []
    for label, adata in data.items():
        expression = control_expression(adata, lambert_tfs(), max_cells=max_cells, max_genes=max_genes.get(label, 0),
                                        seed=seed)
        expressions[label] = expression
        for method in methods:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                edges = infer_network(expression, method, seed=seed, client=client,
                                      n_estimators=n_estimators or None, n_steps=n_steps, device=device)
            networks[(label, method)] = edges
            rows.append({"dataset": label, "method": method, "n_cells": expression.X.shape[0],
                         "n_genes": len(expression.genes), "n_regulators": len(expression.regulators),
                         "n_workers": workers if method in ("grnboost2", "genie3") else 1,
                         "seconds": round(edges.attrs["seconds"], 2)})
    return networks, expressions, pd.DataFrame(rows)


def literature_comparison(networks: dict, expressions: dict, references: list[str], *, edges_per_target: int,
                          n_shuffles: int, seed: int) -> pd.DataFrame:
    """``grn_vs_literature`` rows for every unit × reference × method, with the random and shuffled nulls.

    Extra columns after the seven of the output: n_positive, n_candidates, top_k, null, null_sd.
    """
    from vcclib.data import load
    from vcclib.grn.literature import evaluate_networks, reference_network

    tables = {"trrust": load("grn_trrust_v2"), "dorothea": load("grn_dorothea")}
    refs = {name: reference_network(name, trrust=tables["trrust"], dorothea=tables["dorothea"]) for name in references}
    frames = []
    for label, expression in expressions.items():
        unit_networks = {method: edges for (lab, method), edges in networks.items() if lab == label}
        frames.append(evaluate_networks(unit_networks, refs, dataset=label, regulators=expression.regulators,
                                        genes=expression.genes, edges_per_target=edges_per_target,
                                        n_shuffles=n_shuffles, seed=seed))
    return pd.concat(frames, ignore_index=True)


def data_comparison(networks: dict, data: dict[str, AnnData], *, regulators_per_target: int, seed: int,
                    max_cells: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Held-out regression per unit × method: per-target table and a summary (one row per unit × method)."""
    from vcclib.grn.data_eval import regression_scores, summarise_regression

    frames, rows = [], []
    for (label, method), edges in networks.items():
        table = regression_scores(edges, data[label], regulators_per_target=regulators_per_target, seed=seed,
                                  max_cells=max_cells)
        frames.append(table.assign(dataset=label, method=method))
        rows.append({"dataset": label, "method": method, **summarise_regression(table)})
    return pd.concat(frames, ignore_index=True), pd.DataFrame(rows)


def prediction_models(networks: list[str], *, max_cells: int, n_estimators: int, n_steps: int, seed: int,
                      baselines: list[str]) -> dict:
    """Fresh model instances: the baselines by name and one propagation predictor per network."""
    from vcclib.grn.propagation import INFERRED
    from vcclib.models import get_model

    models: dict = {name: name for name in baselines}
    for network in networks:
        name = f"grn_{network}" if network in INFERRED else f"lit_{network.split('_')[0]}"
        settings = {"network": network, "seed": seed}
        if network in INFERRED:
            settings.update(max_cells=max_cells, n_estimators=n_estimators, n_steps=n_steps)
        models[name] = get_model(name, **settings)
    return models


def score_predictions(tasks, task_data: dict[str, AnnData], make_models, *, split_seeds: list[int],
                      metrics: list[str] | None, profile: str = "full") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every model on every task and split seed.

    Returns the long table (task label ``<task>#<seed>``) and the fit report (calibration, seconds).
    """
    from vcclib.grn.scoring import score_models

    longs, fits = [], []
    for task in tasks:
        for split_seed in split_seeds:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                long, fit = score_models(task, make_models(), task_data[task.label], seed=split_seed,
                                         metrics=metrics, profile=profile)
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


def build_records(literature: pd.DataFrame, regression: pd.DataFrame, predictions: pd.DataFrame,
                  long: pd.DataFrame, timings: pd.DataFrame, expressions: dict, *, network_models: list[str],
                  headline_metrics: list[str]) -> dict[str, Any]:
    """The numbers :func:`conclusions` quotes, all computed from the chapter's tables."""
    lit = literature[literature["null"] == ""].copy()
    lit["ratio"] = lit["aupr"] / lit["aupr_random"]
    shuffled = literature[literature["null"] == "degree_shuffled"].assign(
        method=lambda f: f["method"].str.removesuffix("_degree_shuffled"))
    merged = lit.merge(shuffled[["method", "dataset", "reference", "aupr", "null_sd"]],
                       on=["method", "dataset", "reference"], suffixes=("", "_shuffled"))
    merged["beats_shuffle"] = merged["aupr"] > merged["aupr_shuffled"] + 2 * merged["null_sd_shuffled"]
    best = lit.dropna(subset=["ratio"]).sort_values("ratio", ascending=False).head(1)
    by_method = lit.dropna(subset=["ratio"]).groupby("method")["ratio"].median().sort_values(ascending=False)
    positives = literature[literature["null"] == ""].groupby(["dataset", "reference"])["n_positive"].first()
    rec: dict[str, Any] = {
        "literature": {
            "n_comparisons": int(len(merged)),
            "median_ratio_by_method": by_method.round(3).to_dict(),
            "best": best[["method", "dataset", "reference", "aupr", "aupr_random", "ratio"]].round(4).to_dict("records"),
            "share_beating_shuffle": float(merged["beats_shuffle"].mean()) if len(merged) else float("nan"),
            "share_above_random": float((lit["ratio"] > 1).mean()) if len(lit) else float("nan"),
            "min_positives": int(positives.min()) if len(positives) else 0,
            "max_positives": int(positives.max()) if len(positives) else 0,
        },
        "regression": {
            "gain_by_method": regression.groupby("method")["gain"].mean().round(4).to_dict(),
            "share_better_by_method": regression.groupby("method")["share_better"].mean().round(3).to_dict(),
        },
    }
    network_rows = predictions[predictions["model"].isin(network_models) & predictions["metric"].isin(headline_metrics)]
    ordered = network_rows.dropna(subset=["placement"])
    rec["predictions"] = {
        "tasks": sorted(predictions["task"].unique()),
        "metrics": list(headline_metrics),
        "median_placement": ordered.groupby("model")["placement"].median().round(3).to_dict(),
        "share_positive": ordered.assign(w=ordered["placement"] > 0).groupby("model")["w"].mean().round(3).to_dict(),
        "n_placed": int(len(ordered)),
        "n_unordered": int(network_rows["placement"].isna().sum()),
    }
    held = long[long["baseline"].isin(network_models) & long["metric"].isin(headline_metrics)]
    with_signal = held[held["fallback"] < 0.5]
    rec["predictions"]["held_out_with_signal"] = {
        m: sorted(set(with_signal.loc[with_signal["baseline"] == m, "perturbation"])) for m in network_models}
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
    rec["weak"] = {
        "panel": {label: len(e.genes) for label, e in expressions.items()},
        "regulators": {label: len(e.regulators) for label, e in expressions.items()},
        "control_cells": {label: int(e.X.shape[0]) for label, e in expressions.items()},
    }
    rec["timings"] = timings.groupby("method")["seconds"].sum().round(1).to_dict()
    return rec


def _fmt_list(items, limit: int = 6) -> str:
    items = list(items)
    if not items:
        return "none"
    shown = ", ".join(map(str, items[:limit]))
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def conclusions(records: dict[str, Any]) -> Takeaways:
    """The chapter's answer (the key-takeaways box).

    Every number comes from ``records`` (see :func:`build_records`); ``records['conventions']``, where present, become the box's conventions line.
    """
    lit, reg, pred, weak = records["literature"], records["regression"], records["predictions"], records["weak"]
    out = []
    ratios = lit["median_ratio_by_method"]
    if ratios:
        best_method = next(iter(ratios))
        best = lit["best"][0] if lit["best"] else None
        share = lit["share_beating_shuffle"]
        verdict = ("mostly beyond what their hub structure alone gives" if share >= 0.5
                   else "mostly no better than their own hub structure")
        sentence = (f"Against the literature, the median AUPR / random-ranking ratio is {ratios[best_method]:.2f} for "
                    f"the best method ({best_method})"
                    + "".join(f", {r:.2f} for {m}" for m, r in list(ratios.items())[1:]) + "; ")
        if best:
            sentence += (f"the best single case is {best['method']} on {best['dataset']} vs {best['reference']} "
                         f"(AUPR {best['aupr']:.3f} vs {best['aupr_random']:.3f} random). ")
        sentence += (f"{100 * share:.0f}% of {lit['n_comparisons']} method × dataset × reference comparisons beat "
                     f"their degree-preserving shuffle by more than 2 SD: the recovered edges are {verdict}.")
        out.append(sentence)
    gains = reg["gain_by_method"]
    if gains:
        out.append("On held-out perturbations, each gene's top inferred regulators explain it better than as many "
                   "random regulators by a mean R² gain of " + ", ".join(
                       f"{g:+.3f} ({m}; better for {100 * reg['share_better_by_method'][m]:.0f}% of genes)"
                       for m, g in gains.items()) + ".")
    placements = pred["median_placement"]
    if placements:
        out.append("Predicting perturbations by propagation: median placement between the mean baseline (0) and a "
                   "technical duplicate (1) on " + ", ".join(pred["metrics"]) + " is "
                   + ", ".join(f"{m} {p:+.2f} (above the mean baseline in {100 * pred['share_positive'][m]:.0f}% "
                               "of task × metric cells)" for m, p in placements.items())
                   + f"; {pred['n_unordered']} cells could not be placed because the anchors are not ordered.")
    paired = pred["paired_vs_mean"]
    if paired:
        out.append("Where a network carries the perturbation at all (held-out perturbations with a signal), it beats "
                   "the mean baseline on " + ", ".join(
                       f"{100 * v['share_better_than_mean']:.0f}% of {v['n']} perturbation × metric pairs ({m})"
                       for m, v in paired.items()) + ".")
    covered = {m: v for m, v in pred["held_out_with_signal"].items()}
    out.append("Coverage is the binding limit: held-out perturbations with a network signal were "
               + "; ".join(f"{m}: {_fmt_list(v)}" for m, v in covered.items()) + ".")
    panel = ", ".join(f"{label} {n} genes / {weak['regulators'][label]} TFs / {weak['control_cells'][label]} "
                      "control cells" for label, n in weak["panel"].items())
    out.append(f"The evidence is thin: {panel}; networks are inferred from control cells only.")
    return Takeaways(points=out, conventions=tuple(records.get("conventions", ())))


def timed(func, *args, **kwargs):
    """``(result, seconds)``."""
    start = time.perf_counter()
    result = func(*args, **kwargs)
    return result, time.perf_counter() - start
