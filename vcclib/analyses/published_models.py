"""Chapter *Published models on open data*: published models placed between the MIN and MAX references.

Every registered published model (kind ``EXTERNAL``) that is installed here is trained from scratch on the
project's splits and scored by the same metrics beside the MIN/MAX references and the project's VAE
(:data:`PROJECT_VAE` at the VAE chapter's settings); one that is not installed is listed with the command that
installs it, so a new wrapper joins the chapter by registering.

Conventions (stated in the chapter next to the numbers)
-------------------------------------------------------
* tasks: ``tasks.yaml``'s random-halves tasks of the chosen datasets; a model runs only on the tasks its spec
  declares (:class:`vcclib.models.PredictionTask`); elsewhere it is reported *not applicable*, never scored;
* data: at most ``max_cells_per_perturbation`` cells per perturbation (four times as many controls), all
  measured genes (Norman/McFaline: 500 HVGs), seeded; every seed re-draws the split, the halves and the fit;
* metrics: cell-eval's ``vcc`` profile plus the VAE chapter's candidates (:data:`METRICS`); the ones trusted are
  those on which the technical duplicate beats the mean baseline (the metrics chapter's separation test, on this
  chapter's own anchor runs);
* scores: mean over held-out perturbations on half ``B`` of the held-out cells, controls shared with the
  prediction; placement ``(u − b)/(r − b)`` with b = ``perturbed_mean``, r = ``technical_duplicate``
  (:func:`vcclib.models.benchmark.placement`); intervals: 2.5–97.5% of a bootstrap over held-out perturbations
  (anchors resampled with the model);
* cost: wall seconds of ``fit`` and of ``predict`` in this process, and the peak resident memory of the process
  during both (sampled every 50 ms; it includes what was loaded before).
"""

from __future__ import annotations

import threading
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd

from vcclib.analyses.quiet import quietly
from vcclib.analyses.takeaways import Takeaways, names, number
from vcclib.metrics.inputs import InputError
from vcclib.metrics.profiles import PROFILES
from vcclib.models import MODELS, PredictionTask
from vcclib.models.base import group_means
from vcclib.models.benchmark import (
    MAX_ANCHOR,
    MIN_ANCHOR,
    covariate_parts,
    evaluate_by_covariate,
    load_task_data,
    placement,
    separation,
)
from vcclib.models.runner import available, predict_scored, scored_parts, subsample
from vcclib.models.tasks import Task, default_tasks
from vcclib.registry import ModelKind
from vcclib.splits import covariate_column, make_split

#: the references every published model is placed between (and the plain control baseline)
REFERENCES = ("control_mean", MIN_ANCHOR, MAX_ANCHOR)
#: split generator → the kind of question it asks
#: the label of the task on a user's own data (``h5ad_path``)
USER_TASK = "user:unseen_perturbation"
TASK_KIND = {
    "unseen_perturbation": PredictionTask.UNSEEN_PERTURBATION,
    "combo_seen_singles": PredictionTask.COMBINATION,
    "covariate_transfer": PredictionTask.COVARIATE_TRANSFER,
}
#: the project's VAE, run beside the published models at the VAE chapter's settings (its compared model)
PROJECT_VAE = "cvae_pseudobulk"
#: metrics scored: cell-eval's ``vcc`` profile, then the VAE chapter's candidates (the trusted ones are chosen among
#: them per run by :func:`trusted_metrics`)
VCC_METRICS = tuple(PROFILES["vcc"])
METRICS = tuple(
    dict.fromkeys(
        [
            *VCC_METRICS,
            "pearson_delta",
            "mse",
            "systema_pearson_delta_pert",
            "dbd_wmse",
            "dbd_r2w_delta",
            "perturbench_cosine_rank",
            "gears_frac_correct_direction_all",
        ]
    )
)
#: the metric the published claims are checked on (each paper reports a correlation of predicted and real Δ)
CLAIM_METRIC = "pearson_delta"
#: the published claims the chapter checks: (model, task kind, metric, claim, citation key)
CLAIMS = (
    (
        "gears",
        PredictionTask.UNSEEN_PERTURBATION,
        "pearson_delta",
        "GEARS predicts unseen single-gene perturbations better than the mean of the training perturbations",
        "roohani2024_gears",
    ),
    (
        "gears",
        PredictionTask.COMBINATION,
        "pearson_delta",
        "GEARS predicts combinations of seen genes better than the mean",
        "roohani2024_gears",
    ),
    (
        "biolord",
        PredictionTask.UNSEEN_PERTURBATION,
        "pearson_delta",
        "biolord predicts unseen perturbations from their attributes better than the mean",
        "piran2024_biolord",
    ),
    (
        "scgen",
        PredictionTask.COVARIATE_TRANSFER,
        "pearson_delta",
        "scGen transfers a perturbation to an unseen cell type/line better than the mean",
        "lotfollahi2019_scgen",
    ),
    (
        "state",
        PredictionTask.COVARIATE_TRANSFER,
        "discrimination_score_l1",
        "STATE tells perturbations apart in a held-out cell context better than the mean",
        "adduri2025_state",
    ),
    (
        "cpa",
        PredictionTask.COMBINATION,
        "pearson_delta",
        "CPA predicts unseen combinations of seen perturbations better than the mean",
        "lotfollahi2023_cpa",
    ),
    (
        "cellflow",
        PredictionTask.UNSEEN_PERTURBATION,
        "pearson_delta",
        "CellFlow predicts unseen perturbations from their embeddings better than the mean",
        "klein2025_cellflow",
    ),
    (
        "scpram",
        PredictionTask.COVARIATE_TRANSFER,
        "pearson_delta",
        "scPRAM transfers a perturbation response to an unseen cell type better than the mean",
        "jiang2024_scpram",
    ),
)


def external_models() -> list[str]:
    """Every registered published model (kind ``EXTERNAL``), in registration order."""
    return [s.name for s in MODELS.specs() if s.kind is ModelKind.EXTERNAL]


def model_catalogue() -> pd.DataFrame:
    """One row per published model: tasks it declares, installed here, licence, source, parameters."""
    from vcclib.models.external import PACKAGES, install_state

    rows = []
    for name in external_models():
        spec = MODELS.get(name)
        ready, command = install_state(name)
        rows.append(
            {
                "model": name,
                "tasks": ", ".join(t.value for t in spec.tasks),
                "installed": ready,
                "install": command,
                "licence": PACKAGES[name].licence,
                "source": spec.source,
                "homepage": PACKAGES[name].homepage,
                "description": spec.description,
            }
        )
    return pd.DataFrame(rows)


def vae_params(test_mode: bool = False) -> dict:
    """The project's VAE settings: the VAE chapter's, or its registered test-mode ones.

    The chapter's are :class:`vcclib.analyses.vae_retraining.Settings` ``.vae``.
    """
    from vcclib.analyses.vae_retraining import Settings

    return dict(MODELS.get(PROJECT_VAE).test_params) if test_mode else dict(Settings().vae)


def settings_table(models, overrides: dict) -> pd.DataFrame:
    """Each model's parameters in this run: its registered ones with this run's overrides."""
    rows = []
    for name in models:
        spec = MODELS.get(name)
        params = {**spec.params, **overrides.get(name, {})}
        rows.append(
            {
                "model": name,
                "params": ", ".join(
                    f"{k}={v}" for k, v in params.items() if k not in ("graph_genes", "seed", "device")
                ),
            }
        )
    return pd.DataFrame(rows)


def placement_figure(summary: pd.DataFrame, metrics=("pearson_delta", "discrimination_score_l1")):
    """Placement per task and model with its interval, one panel per metric (numbers: ``placement_summary``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5 * len(metrics), 3.6))
    axes = fig.subplots(1, len(metrics), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        block = summary[summary["metric"] == metric].reset_index(drop=True)
        labels = [f"{t} · {m}" for t, m in zip(block["task"], block["model"])]
        y = np.arange(len(block))
        lower = (block["placement"] - block["low"]).clip(lower=0).fillna(0)
        upper = (block["high"] - block["placement"]).clip(lower=0).fillna(0)
        ax.errorbar(block["placement"], y, xerr=[lower, upper], fmt="o", color="#33658a", ecolor="#999999")
        ax.axvline(0, color="#c0392b", lw=1)
        ax.axvline(1, color="#27ae60", lw=1, ls="--")
        ax.set_yticks(y, labels, fontsize=7)
        ax.set_xlabel(f"placement on {metric} (0 = mean baseline, 1 = technical duplicate)", fontsize=8)
        ax.set_xlim(-2, 2)
    fig.tight_layout()
    return fig


def cost_figure(cost: pd.DataFrame):
    """Training seconds and peak resident memory per model, the largest over tasks and seeds (numbers: ``cost``)."""
    from matplotlib.figure import Figure

    worst = cost.groupby("model", sort=False)[["train_s", "predict_s", "peak_rss_mb"]].max()
    fig = Figure(figsize=(9, 0.5 + 0.45 * max(len(worst), 2)))
    axes = fig.subplots(1, 2, squeeze=False)
    y = np.arange(len(worst))
    axes[0][0].barh(y, worst["train_s"], color="#33658a", label="fit")
    axes[0][0].barh(y, worst["predict_s"], left=worst["train_s"], color="#86bbd8", label="predict")
    axes[0][0].set_xlabel("seconds (largest over tasks and seeds)", fontsize=8)
    axes[0][0].legend(fontsize=7, frameon=False)
    axes[0][1].barh(y, worst["peak_rss_mb"], color="#f6ae2d")
    axes[0][1].set_xlabel("peak resident memory of the process (MB)", fontsize=8)
    for ax in axes[0]:
        ax.set_yticks(y, worst.index, fontsize=8)
        ax.invert_yaxis()
    fig.tight_layout()
    return fig


def chapter_tasks(datasets: str, *, user_adata=None) -> tuple[list[Task], dict]:
    """The chapter's tasks: those of ``datasets`` (comma-separated), or one task on a user's data.

    The random-halves tasks of the datasets from ``tasks.yaml``; with ``user_adata`` (as
    :func:`vcclib.data.load_perturbation_data` returns it), one unseen-perturbation task on it instead.

    Returns
    -------
    tasks, task_data
        The tasks and, for a user's data, its AnnData by task label (the other tasks load their own data).
    """
    if user_adata is not None:
        task = Task("user_h5ad", "unseen_perturbation", split_params={"test_fraction": 0.3}, label=USER_TASK)
        return [task], {USER_TASK: user_adata}
    ids = [d.strip() for d in datasets.split(",") if d.strip()]
    return [t for t in default_tasks(ids) if t.halves == "random" and t.split in TASK_KIND], {}


def task_cells(task: Task, task_data: dict, max_cells_per_perturbation: int, seed: int):
    """The task's cells, at most ``max_cells_per_perturbation`` per group (seeded): a user's, or its dataset's."""
    if task.label not in task_data:
        return load_task_data(task, max_cells_per_perturbation, seed)
    adata = task_data[task.label]
    return subsample(adata, max_cells_per_perturbation, seed=seed, column=covariate_column(adata))


class PeakMemory:
    """Peak resident memory (MB) of this process and its child processes while the ``with`` block runs.

    Sampled every 50 ms; the children count because the own-environment models (CPA, CellFlow, scPRAM) train
    in a subprocess.
    """

    def __enter__(self):
        import psutil

        self._process, self._stop, self.peak_mb = psutil.Process(), threading.Event(), 0.0
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        import psutil

        rss = self._process.memory_info().rss
        for child in self._process.children(recursive=True):
            try:
                rss += child.memory_info().rss
            except psutil.Error:  # the child ended between listing and reading
                pass
        self.peak_mb = max(self.peak_mb, rss / 2**20)

    def _run(self):
        while not self._stop.wait(0.05):
            self._sample()

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()
        return False


def _targets(adata) -> list[str]:
    from vcclib.data.schema import split_targets

    control = str(adata.uns["vcc"]["control_label"])
    return sorted({t for p in adata.obs["perturbation"].astype(str).unique() if p != control for t in split_targets(p)})


def run_one(name: str, task: Task, adata, split, *, seed: int, params: dict, device: str) -> dict[str, Any]:
    """Fit ``name`` on ``split`` (timed, memory sampled), predict the held-out groups, score them."""
    spec = MODELS.get(name)
    settings = dict(params)
    if spec.kind in (ModelKind.EXTERNAL, ModelKind.NEURAL):
        settings.update(seed=seed, device=device)
        if name == "gears":  # GEARS' gene graph covers the targets the dataset names (see its wrapper)
            settings["graph_genes"] = _targets(adata)
    model = spec.create(**settings)
    real, query_half = scored_parts(model, adata, split, score_on="half", seed=seed)
    with PeakMemory() as memory:
        tick = time.perf_counter()
        model.fit(split.subset(adata, "train"), heldout=query_half)
        train_s = time.perf_counter() - tick
        tick = time.perf_counter()
        prediction, real_out = predict_scored(model, adata, split, real, score_on="half", halves="random", seed=seed)
        predict_s = time.perf_counter() - tick
    control = str(adata.uns["vcc"]["control_label"])
    scores = evaluate_by_covariate(prediction, real_out, split.covariate_column, control=control, metrics=list(METRICS))
    return {
        "prediction": prediction,
        "real": real_out,
        "scores": scores,
        "train_s": train_s,
        "predict_s": predict_s,
        "peak_rss_mb": memory.peak_mb,
        "side": model.side.value,
        "model": name,
        "device": ran_on(model, device),
    }


def ran_on(model, device: str) -> str:
    """Where ``model`` ran, for the cost table.

    The device its own-environment runner reported (a runner whose torch lacks the wrapper's device falls back
    to the CPU and says so), else ``device`` as resolved on this machine.
    """
    from vcclib.device import resolve_device

    reported = sorted({str(r["device"]) for r in getattr(model, "runner_reports", None) or [] if "device" in r})
    return "/".join(reported) or resolve_device(device).name


def diversity(prediction, real, column: str | None, control: str) -> dict[str, float]:
    """Mode-collapse diagnostics: how different the predicted effects of the held-out perturbations are.

    ``spread_ratio``: mean over genes of the across-perturbation standard deviation of predicted Δ, over the
    same for the real Δ (1 = as diverse as the truth, 0 = one effect for all); ``cosine_pred`` /
    ``cosine_real``: mean pairwise cosine between the perturbations' Δ (1 = all the same direction).
    Δ = pseudobulk − control pseudobulk of the same covariate (log1p, all genes).
    """

    def deltas(adata):
        means = group_means(adata, column)
        out = []
        for _, block in means.groupby(level="covariate"):
            block = block.droplevel("covariate")
            if control in block.index:
                out.append(block.drop(index=control) - block.loc[control])
        return pd.concat(out) if out else pd.DataFrame()

    pred, true = deltas(prediction), deltas(real)
    if len(pred) < 2 or len(true) < 2:
        return {"spread_ratio": np.nan, "cosine_pred": np.nan, "cosine_real": np.nan, "n": len(true)}

    def mean_cosine(frame):
        values = frame.to_numpy()
        unit = values / np.clip(np.linalg.norm(values, axis=1, keepdims=True), 1e-12, None)
        sims = unit @ unit.T
        return float(sims[np.triu_indices(len(values), 1)].mean())

    spread_true = float(true.std(axis=0).mean())
    return {
        "spread_ratio": float(pred.std(axis=0).mean()) / spread_true if spread_true > 0 else np.nan,
        "cosine_pred": mean_cosine(pred),
        "cosine_real": mean_cosine(true),
        "n": int(len(true)),
    }


def run_chapter(
    tasks: list[Task],
    *,
    task_data: dict | None = None,
    models,
    seeds,
    max_cells_per_perturbation: int,
    model_params: dict,
    device: str = "auto",
    vae: str | None = PROJECT_VAE,
) -> dict[str, pd.DataFrame]:
    """Every reference, the project's VAE (``vae``; None: without) and every published model on every task and seed.

    ``task_data``: AnnData by task label for tasks on a user's data (:func:`chapter_tasks`); the other tasks
    load their dataset. Returns a dict of tables: ``scores`` (long: task, seed, model, side, covariate,
    perturbation, metric, value, fallback), ``cost``, ``diversity``, ``status`` (one row per task × model × seed:
    ran, not applicable, not installed, or failed with the message; a run whose cells are not scaled counts
    says there why the VCC 2026 suite was not scored), ``vcc2026`` and ``tasks`` (per task and seed: cells,
    genes, perturbations and control cells after subsampling).
    """
    from vcclib.models.external import install_state

    frames, cost, div, status, suite, described = [], [], [], [], [], []
    for task in tasks:
        kind = TASK_KIND[task.split]
        for seed in seeds:
            adata = task_cells(task, task_data or {}, max_cells_per_perturbation, seed)
            split = make_split(task.split, adata, seed=seed, **task.split_params)
            control = str(adata.uns["vcc"]["control_label"])
            labels = adata.obs["perturbation"].astype(str)
            described.append(
                {
                    "task": task.label,
                    "seed": seed,
                    "cells": int(adata.n_obs),
                    "genes": int(adata.n_vars),
                    "perturbations": int(labels[labels != control].nunique()),
                    "control_cells": int((labels == control).sum()),
                }
            )
            references: dict = {}  # the VCC 2026 suite's b and r per covariate, from the first scored model's cells
            for name in [*REFERENCES, *([vae] if vae else []), *models]:
                spec = MODELS.get(name)
                row = {"task": task.label, "model": name, "seed": seed}
                learned = spec.kind in (ModelKind.EXTERNAL, ModelKind.NEURAL)
                if learned and kind not in spec.tasks:
                    status.append({**row, "status": "not applicable", "detail": f"{name} does not answer {kind.value}"})
                    continue
                if spec.kind is ModelKind.EXTERNAL and not install_state(name)[0]:
                    status.append({**row, "status": "not installed", "detail": f"run {install_state(name)[1]}"})
                    continue
                if not quietly(available, [name], halves=None):
                    status.append(
                        {**row, "status": "not installed", "detail": f"run pip install 'vcclib[{spec.extra}]'"}
                    )
                    continue
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        out = quietly(
                            run_one,
                            name,
                            task,
                            adata,
                            split,
                            seed=seed,
                            params=model_params.get(name, {}),
                            device=device,
                        )
                except Exception as error:  # noqa: BLE001 - a package failure is reported, not raised
                    status.append({**row, "status": "failed", "detail": f"{type(error).__name__}: {error}"[:300]})
                    continue
                status.append({**row, "status": "ran", "detail": ""})
                long = out["scores"].melt(id_vars=["covariate", "perturbation"], var_name="metric", value_name="value")
                obs = out["prediction"].obs[~out["prediction"].obs["is_control"].to_numpy()]
                fallback = obs.groupby(obs["perturbation"].astype(str))["vcc_fallback"].mean()
                long["fallback"] = long["perturbation"].map(fallback)
                frames.append(long.assign(task=task.label, seed=seed, model=name, side=out["side"]))
                if learned:
                    cost.append(
                        {
                            "model": name,
                            "task": task.label,
                            "seed": seed,
                            "train_s": round(out["train_s"], 2),
                            "predict_s": round(out["predict_s"], 2),
                            "peak_rss_mb": round(out["peak_rss_mb"], 1),
                            "device": out["device"],
                            "cells": int(adata.n_obs),
                            "genes": int(adata.n_vars),
                        }
                    )
                if name != MAX_ANCHOR:
                    div.append({**row, **diversity(out["prediction"], out["real"], split.covariate_column, control)})
                try:
                    table = vcc2026_scores(out, split.covariate_column, control, references, seed=seed)
                except InputError as error:  # a user's cells that are not scaled counts: no counts to score
                    status[-1]["detail"] = f"VCC 2026 suite not scored: {error}"[:300]
                    continue
                suite.append(table.assign(**row))
    scores = pd.concat(frames, ignore_index=True)
    scores["value"] = pd.to_numeric(scores["value"], errors="coerce")
    return {
        "scores": scores,
        "cost": pd.DataFrame(cost),
        "diversity": pd.DataFrame(div),
        "status": pd.DataFrame(status),
        "vcc2026": pd.concat(suite, ignore_index=True) if suite else pd.DataFrame(),
        "tasks": pd.DataFrame(described),
    }


def gene_spaces(tasks_table: pd.DataFrame) -> dict[str, str]:
    """Each task's number of measured genes, from :func:`run_chapter`'s ``tasks``.

    "500", or "1,187–1,200" where the seeds' cells kept different genes.
    """
    spaces = {}
    for task, genes in tasks_table.groupby("task", sort=False)["genes"]:
        low, high = int(genes.min()), int(genes.max())
        spaces[str(task)] = f"{low:,}" if low == high else f"{low:,}–{high:,}"
    return spaces


def _scoring_convention(records: dict) -> str:
    """How every placement is scored, with each task's gene space (records saved before it was kept: not named)."""
    spaces = records.get("gene_spaces", {})
    genes = "; ".join(f"`{task}` {n}" for task, n in spaces.items()) + " genes" if spaces else "genes not recorded"
    return (
        f"scored on half B of the held-out cells against shared real controls; every measured gene ({genes}); "
        "log1p pseudobulk"
    )


def placement_conventions(records: dict) -> str:
    """The placements' conventions as one sentence (:func:`chapter_records`); the takeaways' conventions share it."""
    cells = f"at most {records['max_cells_per_perturbation']} cells per perturbation"
    return f"Conventions: {cells}; {_scoring_convention(records)}."


def vcc2026_scores(out: dict, column: str | None, control: str, references: dict, *, seed: int) -> pd.DataFrame:
    """The VCC 2026 suite on one model's held-out cells, per covariate (:mod:`vcclib.analyses.published_counts`).

    Real counts are recovered from the log1p data; the technical duplicate's cells are real, so recovered too;
    every other prediction is drawn as counts (seeded). ``references`` caches, per covariate, what depends only on
    the real held-out cells (shared by every model of a task and seed): their counts and control units, and the
    suite's b and r. One row per covariate and metric: ``value`` (u), ``baseline`` (b), ``replicate`` (r),
    ``score`` (s), and ``avg_score`` (the suite's mean s; NaN when a metric is undefined at this many cells).
    """
    from vcclib.analyses import published_counts as counts

    frames = []
    for value, pred, ref in covariate_parts(out["prediction"], out["real"], column):
        if value not in references:
            units = counts.count_units(ref.X)
            real_counts = counts.recovered_counts(ref, units)
            is_control = (ref.obs["perturbation"].astype(str) == control).to_numpy()
            references[value] = {
                "counts": real_counts,
                "control_units": units[is_control],
                **counts.suite_references(real_counts, control),
            }
        cached = references[value]
        if out["model"] == MAX_ANCHOR:
            pred_counts = counts.recovered_counts(pred)
        else:
            pred_counts = counts.predicted_counts(
                pred, ref, None, control, seed=seed, control_units=cached["control_units"]
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = counts.suite_scores(pred_counts, cached["counts"], control, cached)
        frames.append(table.assign(covariate=value))
    return pd.concat(frames, ignore_index=True)


def vcc2026_summary(suite: pd.DataFrame) -> pd.DataFrame:
    """Per task and model: the suite's mean ``avg_score`` over covariates and the mean of its defined s.

    ``defined`` counts the finite s of the six scored metrics at the chapter's cell counts, out of ``pairs``
    (covariate × metric).
    """
    if suite.empty:
        return pd.DataFrame(columns=["task", "model", "defined", "pairs", "avg_score", "mean_defined_score"])
    metrics = suite[suite["metric"] != "avg_score"]
    defined = metrics.assign(ok=np.isfinite(metrics["score"].to_numpy(dtype=float)))
    table = defined.groupby(["task", "model"], sort=False).agg(defined=("ok", "sum"), pairs=("ok", "size"))
    avg = suite[suite["metric"] == "avg_score"].groupby(["task", "model"], sort=False)["score"].mean()
    per_metric = metrics.groupby(["task", "model"], sort=False)["score"].mean()
    return table.assign(avg_score=avg, mean_defined_score=per_metric).reset_index()


def placements(scores: pd.DataFrame, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """``tables/placements.csv``: one row per task, model, seed and metric.

    Columns ``task``, ``model``, ``variant``, ``seed``, ``metric``, ``value`` (mean score), ``placement``, and
    the bootstrap interval ``low``/``high`` over held-out perturbations.
    """
    rows = []
    rng = np.random.default_rng(seed)
    for (task, run_seed), block in scores.groupby(["task", "seed"], sort=False):
        placed = placement(block.rename(columns={"model": "baseline"}))
        for metric, per_metric in block.groupby("metric"):
            wide = per_metric.pivot_table(index=["covariate", "perturbation"], columns="model", values="value")
            if MIN_ANCHOR not in wide or MAX_ANCHOR not in wide:
                continue
            draws = rng.integers(0, len(wide), size=(n_boot, len(wide)))
            boot = {m: np.nanmean(wide[m].to_numpy()[draws], axis=1) for m in wide.columns}
            gap = boot[MAX_ANCHOR] - boot[MIN_ANCHOR]
            for model in wide.columns:
                with np.errstate(divide="ignore", invalid="ignore"):
                    values = np.where(np.abs(gap) > 1e-12, (boot[model] - boot[MIN_ANCHOR]) / gap, np.nan)
                hit = placed[(placed["baseline"] == model) & (placed["metric"] == metric)]
                if hit.empty:
                    continue
                finite = values[np.isfinite(values)]
                rows.append(
                    {
                        "task": task,
                        "model": model,
                        "variant": variant_of(model),
                        "seed": int(run_seed),
                        "metric": metric,
                        "value": float(hit["score"].iloc[0]),
                        "placement": float(hit["placement"].iloc[0]),
                        "low": float(np.quantile(finite, 0.025)) if len(finite) else np.nan,
                        "high": float(np.quantile(finite, 0.975)) if len(finite) else np.nan,
                    }
                )
    return pd.DataFrame(rows)


def variant_of(model: str) -> str:
    """``published`` (a wrapped published model), ``project`` (the project's VAE) or ``reference``."""
    kind = MODELS.get(model).kind
    return {ModelKind.EXTERNAL: "published", ModelKind.NEURAL: "project"}.get(kind, "reference")


def trusted_metrics(scores: pd.DataFrame) -> pd.DataFrame:
    """The metrics chapter's separation test on this run's anchors.

    Per metric, how often the technical duplicate beats the mean baseline over every held-out perturbation of
    every task and seed; ``trusted`` = it separates (win rate ≥ 0.8, positive mean gap).
    """
    refs = scores[scores["model"].isin([MIN_ANCHOR, MAX_ANCHOR])]
    refs = refs.assign(task=refs["task"] + "#" + refs["seed"].astype(str), baseline=refs["model"])
    table = separation(refs)
    table["trusted"] = table["separates"].astype(bool)
    table["in_vcc_profile"] = table["metric"].isin(VCC_METRICS)
    return table


def placement_summary(placed: pd.DataFrame) -> pd.DataFrame:
    """Per task, model and metric: mean placement over seeds, the lowest ``low`` and highest ``high``."""
    return (
        placed.groupby(["task", "model", "metric"], sort=False)
        .agg(placement=("placement", "mean"), low=("low", "min"), high=("high", "max"), seeds=("seed", "nunique"))
        .reset_index()
    )


def claims(summary: pd.DataFrame, status: pd.DataFrame) -> pd.DataFrame:
    """Each published claim (:data:`CLAIMS`) on its task, with a verdict.

    Verdicts: holds (interval above 0), does not hold (below 0), undecided, not applicable, not installed or not
    run here. Each claim is checked on its own metric (the one its paper reports).
    """
    rows = []
    registered = set(external_models())
    for model, kind, metric, claim, cite in CLAIMS:
        if model not in registered:  # a claim of a model not wrapped (yet) is not listed
            continue
        tasks = [t for t in dict.fromkeys(status["task"]) if _kind_of(t) is kind]
        for task in tasks:  # a claim about a task this run does not hold is not listed
            hit = summary[(summary["model"] == model) & (summary["task"] == task) & (summary["metric"] == metric)]
            ran = status[(status["model"] == model) & (status["task"] == task)]
            if hit.empty:
                verdict = ran["status"].iloc[0] if len(ran) else "not run"
                rows.append(
                    {
                        "model": model,
                        "task": task,
                        "claim": claim,
                        "cite": cite,
                        "metric": metric,
                        "placement": np.nan,
                        "low": np.nan,
                        "high": np.nan,
                        "verdict": verdict,
                    }
                )
                continue
            p, lo, hi = (float(hit[c].iloc[0]) for c in ("placement", "low", "high"))
            verdict = "holds" if lo > 0 else ("does not hold" if hi < 0 else "undecided")
            rows.append(
                {
                    "model": model,
                    "task": task,
                    "claim": claim,
                    "cite": cite,
                    "metric": metric,
                    "placement": p,
                    "low": lo,
                    "high": hi,
                    "verdict": verdict,
                }
            )
    return pd.DataFrame(rows)


def _kind_of(task_label: str) -> PredictionTask | None:
    split = task_label.split(":", 1)[-1].split("/")[0]
    return TASK_KIND.get(split)


def chapter_records(
    summary: pd.DataFrame,
    claims_table: pd.DataFrame,
    cost: pd.DataFrame,
    div: pd.DataFrame,
    status: pd.DataFrame,
    *,
    trusted: pd.DataFrame,
    catalogue: pd.DataFrame,
    seeds,
    max_cells_per_perturbation: int,
    seconds: float,
    device: str,
    vae: str | None = PROJECT_VAE,
    suite: pd.DataFrame | None = None,
    tasks_table: pd.DataFrame | None = None,
) -> dict:
    """The numbers the conclusions quote.

    ``suite``: :func:`vcc2026_summary` of the VCC 2026 scores; ``tasks_table``: :func:`run_chapter`'s ``tasks``,
    for each task's gene space.
    """
    external = set(external_models())
    trusted_names = sorted(trusted.loc[trusted["trusted"], "metric"]) if len(trusted) else []
    on_trusted = summary[summary["metric"].isin(trusted_names)]
    mean_trusted = on_trusted.groupby(["task", "model"], sort=False)["placement"].mean()
    pd_rows = summary[summary["metric"] == CLAIM_METRIC]
    best, versus_vae = {}, []
    for task, block in pd_rows[pd_rows["model"].isin(external)].groupby("task"):
        top = block.loc[block["placement"].idxmax()]
        best[task] = {
            "model": top["model"],
            "placement": round(float(top["placement"]), 3),
            "low": round(float(top["low"]), 3),
            "high": round(float(top["high"]), 3),
        }
    for (task, model), value in mean_trusted.items():
        if model not in external or (task, vae) not in mean_trusted.index:
            continue
        versus_vae.append(
            {
                "task": task,
                "model": model,
                "placement": round(float(value), 3),
                "vae": round(float(mean_trusted[(task, vae)]), 3),
            }
        )
    learned = external | ({vae} if vae else set())
    ext_div = div[div["model"].isin(learned)].groupby("model")[["spread_ratio", "cosine_pred", "cosine_real"]].mean()
    ext_cost = cost.groupby("model")[["train_s", "predict_s", "peak_rss_mb"]].max() if len(cost) else pd.DataFrame()
    missing = status[status["status"] == "not installed"].drop_duplicates("model")
    vcc = trusted[trusted["in_vcc_profile"]] if len(trusted) else trusted
    return {
        "seeds": [int(s) for s in seeds],
        "max_cells_per_perturbation": int(max_cells_per_perturbation),
        "tasks": sorted(status["task"].unique()),
        "gene_spaces": gene_spaces(tasks_table) if tasks_table is not None and len(tasks_table) else {},
        "models": sorted(external & set(status["model"])),
        "vae": vae,
        "ran": int((status["status"] == "ran").sum()),
        "trusted_metrics": trusted_names,
        "vcc_profile_win_rate": {str(r.metric): round(float(r.win_rate), 3) for r in vcc.itertuples()},
        "not_applicable": status.loc[status["status"] == "not applicable", ["task", "model"]]
        .drop_duplicates()
        .to_dict("records"),
        "failed": status.loc[status["status"] == "failed", ["task", "model", "detail"]]
        .drop_duplicates(["task", "model"])
        .to_dict("records"),
        "not_installed": dict(zip(missing["model"], missing["detail"])),
        "best_pearson_delta": best,
        "versus_vae": versus_vae,
        "claims": claims_table[["model", "task", "cite", "verdict", "placement", "low", "high"]]
        .round(3)
        .to_dict("records"),
        "diversity": ext_div.round(3).to_dict("index"),
        "reference_diversity": div[div["model"] == MIN_ANCHOR][["spread_ratio", "cosine_pred"]]
        .mean()
        .round(3)
        .to_dict(),
        "cost": ext_cost.round(1).to_dict("index"),
        "licences": dict(zip(catalogue["model"], catalogue["licence"])),
        "seconds": float(seconds),
        "device": device,
        "vcc2026": _suite_records(suite, external | ({vae} if vae else set())),
    }


def _suite_records(suite: pd.DataFrame | None, learned: set) -> dict:
    """Per task, the best learned model on the suite's mean defined s, and how many (covariate × metric) s exist."""
    if suite is None or suite.empty:
        return {"defined": 0, "pairs": 0, "best": {}, "anchors": {}}
    best = {}
    for task, block in suite[suite["model"].isin(learned)].groupby("task"):
        block = block.dropna(subset=["mean_defined_score"])
        if len(block):
            top = block.loc[block["mean_defined_score"].idxmax()]
            best[task] = {"model": top["model"], "score": round(float(top["mean_defined_score"]), 3)}
    anchors = suite[suite["model"].isin([MIN_ANCHOR, MAX_ANCHOR])].groupby("model")["mean_defined_score"].mean()
    return {
        "defined": int(suite["defined"].sum()),
        "pairs": int(suite["pairs"].sum()),
        "avg_score_defined": int(np.isfinite(suite["avg_score"].to_numpy(dtype=float)).sum()),
        "runs": len(suite),
        "best": best,
        "anchors": {k: round(float(v), 3) for k, v in anchors.items()},
    }


def conclusions(records: dict) -> Takeaways:
    """The chapter's answer, every number formatted from ``records`` (:func:`chapter_records`)."""
    r = records
    best = "; ".join(
        f"{t}: {v['model']} {number(v['placement'])} [{number(v['low'])}, {number(v['high'])}]"
        for t, v in r["best_pearson_delta"].items()
    )
    against = "; ".join(
        f"{v['model']} {number(v['placement'])} vs {number(v['vae'])} on {v['task']}" for v in r["versus_vae"]
    )
    beats = sum(v["placement"] > v["vae"] for v in r["versus_vae"])
    verdicts = "; ".join(
        f"{c['model']} on {c['task']}: {c['verdict']}"
        + (
            f" ({number(c['placement'])} [{number(c['low'])}, {number(c['high'])}])"
            if c["placement"] == c["placement"]
            else ""
        )
        + f" {{cite:p}}`{c['cite']}`"
        for c in r["claims"]
    )
    collapse = "; ".join(
        f"{m}: spread {number(v['spread_ratio'])} of the real, cosine between effects "
        f"{number(v['cosine_pred'])} (real {number(v['cosine_real'])})"
        for m, v in r["diversity"].items()
    )
    cost = "; ".join(
        f"{m}: fit ≤ {number(v['train_s'], 1)} s, peak RSS ≤ {number(v['peak_rss_mb'], 0)} MB"
        for m, v in r["cost"].items()
    )
    na = ", ".join(f"{x['model']} on {x['task']}" for x in r["not_applicable"])
    failed = "; ".join(f"{x['model']} on {x['task']} ({x['detail'][:80]})" for x in r["failed"])
    missing = "; ".join(f"{m} ({detail})" for m, detail in r["not_installed"].items())
    vcc = ", ".join(f"`{m}` {number(w)}" for m, w in r["vcc_profile_win_rate"].items())
    licences = "; ".join(f"{m} {lic}" for m, lic in r["licences"].items())
    suite = r.get("vcc2026", {})
    suite_best = "; ".join(f"{t}: {v['model']} {number(v['score'])}" for t, v in suite.get("best", {}).items())
    suite_anchors = ", ".join(f"`{m}` {number(v)}" for m, v in suite.get("anchors", {}).items())
    points = [
        f"**Trusted metrics here** (technical duplicate beats the mean baseline on ≥ 80% of held-out perturbations): "
        f"{names([f'`{m}`' for m in r['trusted_metrics']])}; win rates of cell-eval's `vcc` set: {vcc or 'n/a'}.",
        f"**Best published model per task (PearsonΔ placement, 0 = mean baseline, 1 = technical duplicate; "
        f"bootstrap interval):** {best or 'n/a'}.",
        f"**Against the project's VAE (`{r['vae']}`), mean placement over the trusted metrics:** "
        f"{beats} of {len(r['versus_vae'])} published runs place above it" + (f" ({against})." if against else "."),
        f"**Published claims here:** {verdicts or 'n/a'}.",
        f"**Mode collapse:** {collapse or 'n/a'}; the mean baseline predicts one effect for every perturbation "
        f"(spread {number(r['reference_diversity'].get('spread_ratio'))}).",
        f"**VCC 2026 suite** (cell-eval2's six metrics on counts; s = 0 at its generic baseline, 1 at its "
        f"replicate anchor): {suite.get('defined', 0)} of {suite.get('pairs', 0)} (covariate × metric) scores are "
        f"defined at these cell counts, and the suite's `avg_score` in {suite.get('avg_score_defined', 0)} of "
        f"{suite.get('runs', 0)} runs; mean defined s of the best learned model per task: {suite_best or 'n/a'} "
        f"(anchors here: {suite_anchors or 'n/a'}). "
        + (
            "The technical duplicate scores near 1, as it should (its halves are drawn like the suite's replicate "
            "halves); the placements rest only on the metrics defined at these cell counts."
            if abs(suite.get("anchors", {}).get(MAX_ANCHOR, float("nan")) - 1) < 0.25
            else "The technical duplicate does not score near the suite's replicate anchor (s ≈ 1), so at these "
            "cell counts the suite's placements are noise, not evidence."
        ),
        f"**Cost on {r['device'] or 'this machine'}:** {cost or 'n/a'}. **Licences:** {licences or 'n/a'}.",
        f"**Not applicable (not scored):** {na or 'none'}."
        + (f" **Failed:** {failed}." if failed else "")
        + (f" **Not installed:** {missing}." if missing else ""),
    ]
    return Takeaways(points, conventions=conventions(records))


def conventions(records: dict) -> list[str]:
    """The conventions the chapter's numbers depend on."""
    r = records
    return [
        f"book settings: at most {r['max_cells_per_perturbation']} cells per perturbation, few epochs and small "
        "networks (table `model_settings`): far from each paper's training budget",
        f"seeds {', '.join(map(str, r['seeds']))}: each re-draws split, halves and fit",
        _scoring_convention(r),
        f"placement (u − b)/(r − b), b = `{MIN_ANCHOR}`, r = `{MAX_ANCHOR}`",
        "VCC 2026 suite: counts of those genes recovered exactly from the log1p data (one unit per cell); "
        "predictions drawn as Poisson counts with same-covariate control library sizes (seeded); the suite's own "
        "b (generic response) and r (replicate halves, 5 splits) from the real held-out cells",
        f"the whole chapter took {number(r['seconds'], 0)} s",
        r["device"],
    ]
