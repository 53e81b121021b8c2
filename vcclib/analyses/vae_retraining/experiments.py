"""The chapter's runs: fit, predict and score one model on one split, and the experiments built from such runs."""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from vcclib.analyses.quiet import quietly
from vcclib.errors import VccError
from vcclib.models.base import covariates_of
from vcclib.models.benchmark import MAX_ANCHOR, MIN_ANCHOR, Task, evaluate_by_covariate, load_task_data
from vcclib.models.runner import available, predict_scored, scored_parts
from vcclib.models.spec import MODELS, get_model
from vcclib.registry import ModelKind
from vcclib.splits import Split, make_split

#: metrics scored on every run (the trustworthy ones are chosen among them by :func:`trustworthy_metrics`)
METRICS = (
    "pearson_delta",
    "discrimination_score_l1",
    "mae",
    "mse",
    "dbd_wmse",
    "dbd_r2w_delta",
    "systema_pearson_delta_pert",
    "perturbench_cosine_rank",
    "edistance_pred_real",
    "gears_frac_correct_direction_all",
)
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
    vae: dict[str, Any] = field(
        default_factory=lambda: {
            "latent_dim": 16,
            "hidden_dim": 64,
            "epochs": 60,
            "batch_size": 64,
            "patience": 8,
            "minibulk_size": 16,
            "minibulks_per_group": 8,
            "n_basal": 64,
            "progress": False,
        }
    )
    cells_vae: dict[str, Any] = field(default_factory=lambda: {"epochs": 15, "batch_size": 128, "patience": 4})
    device: str = "cpu"
    exclude_references: tuple[str, ...] = ()
    #: torch intra-op threads while the experiments run on the CPU (0: torch's default); the chapter's networks
    #: are small, and one thread per process keeps a shared machine from spinning idle threads
    cpu_threads: int = 1


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
    return {
        "effect_spread_ratio": float(spreads[0] / spreads[1]) if spreads[1] else np.nan,
        "cell_variance_ratio": float(variances[0] / variances[1]) if variances[1] else np.nan,
    }


def run_one(
    name: str, adata: AnnData, split, task: Task, *, seed: int, variant: str = REFERENCE, params: dict | None = None
) -> tuple[pd.DataFrame, dict]:
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
    info = {
        "task": task.label,
        "model": name,
        "variant": variant,
        "seed": seed,
        "seconds": round(time.perf_counter() - tick, 2),
        "fallback_share": float(prediction.obs.loc[predicted, "vcc_fallback"].mean()),
        "n_train_cells": int(split.mask(adata, "train").sum()),
        "epochs": len(history.get("epochs", [])),
        "cells_per_second": history.get("samples_per_second"),
        **prediction_diversity(prediction, real, control, split.covariate_column),
    }
    return long, info


def references(task: Task, exclude=()) -> list[str]:
    """Every MIN and MAX reference of the metrics chapter available for ``task``.

    The references and learned baselines of :mod:`vcclib.models.baselines` (the task's ``models`` list where it
    has one), less ``exclude``.
    """
    candidates = [
        n
        for n in (task.models or MODELS.names())
        if n not in set(exclude)
        if MODELS.get(n).kind in (ModelKind.MIN_REFERENCE, ModelKind.MAX_REFERENCE, ModelKind.LEARNED)
        and MODELS.get(n).cls.startswith("vcclib.models.baselines.")
    ]
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
            long, info = quietly(run_one, name, self.data(task), split, task, seed=seed, variant=variant, params=params)
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

    def vae_runs(
        self, task: Task, seed: int, variants: dict[str, tuple[str, dict]], split=None, anchors_tag: str = REFERENCE
    ) -> None:
        """VAE ``variants`` (label → (model name, parameters)) on (task, seed), with the anchors of that split."""
        split = split or make_split(task.split, self.data(task), seed=seed, **task.split_params)
        self.reference_runs(task, seed, split if anchors_tag != REFERENCE else None, anchors_tag)
        for variant, (name, extra) in variants.items():
            params = _model_params(name, self.settings, {**extra, "seed": seed})
            self._run(
                name, task, split, seed, variant if anchors_tag == REFERENCE else f"{anchors_tag}|{variant}", params
            )

    def long(self) -> pd.DataFrame:
        """Every score so far, long."""
        return pd.concat(self.scores, ignore_index=True) if self.scores else pd.DataFrame()


def loss_variants(losses) -> dict[str, tuple[str, dict]]:
    """``loss=<spec>`` → the GO-feature VAE in cells mode with that loss (everything else fixed)."""
    return {f"loss={loss}": ("cvae_go", {"loss": loss}) for loss in losses}


def feature_variants(sources) -> dict[str, tuple[str, dict]]:
    """``features=<source>`` → the pseudobulk VAE with that perturbation-shift source (``learned``: none)."""
    return {f"features={s}": ("cvae_pseudobulk", {"features": s}) for s in sources}


#: the learners of the learning curves and hypothesis splits: the pseudobulk VAE and the linear GO baseline
CURVE_LEARNERS = ("cvae_pseudobulk", "linear_go")


def tagged_runs(runner: Runner, task: Task, seed: int, split: Split, tag: str, learners=CURVE_LEARNERS) -> None:
    """``learners`` on one split with that split's own MIN/MAX anchors; variants ``<tag>|<learner>``."""
    runner.reference_runs(task, seed, split, tag)
    for name in learners:
        params = _model_params(name, runner.settings, {"seed": seed})
        runner._run(name, task, split, seed, f"{tag}|{name}", params)


def more_data_runs(runner: Runner, task: Task, seed: int, fractions) -> None:
    """The curve learners on nested training sets (the ``more_data`` split: one held-out set per seed).

    Each training size has its own MIN/MAX anchors (tag ``train_fraction=<f>``).
    """
    adata = runner.data(task)
    for fraction in sorted(fractions):
        split = make_split(
            "more_data",
            adata,
            seed=seed,
            train_fraction=float(fraction),
            test_fraction=float(task.split_params.get("test_fraction", 0.3)),
        )
        tagged_runs(runner, task, seed, split, f"train_fraction={fraction:g}")


# --- more data: added datasets in a shared gene space --------------------------------------------------------
#: Norman 2019 (K562, CRISPRa) and McFaline-Figueroa 2023 (A172, T98G, U87MG; CRISPRi) share perturbench's 500
#: measured genes; the held-out perturbations are Norman's K562 ones
ADDED_DATA_TASK = Task(
    "norman2019_mcfaline2024_devel",
    "more_data",
    split_params={"test_fraction": 0.3},
    label="norman19+mcfaline23:added_data",
)
BASE_COVARIATE = "K562"
ADDED_STAGES = ((), ("A172",), ("A172", "T98G", "U87MG"))


def stage_label(added) -> str:
    """``added=none`` for the base dataset alone, else ``added=<covariates joined by +>``."""
    return "added=" + ("+".join(added) if added else "none")


def added_data_runs(runner: Runner, seed: int, stages=ADDED_STAGES, task: Task = ADDED_DATA_TASK) -> None:
    """The curve learners on the base dataset, then with each further set of cell lines added."""
    adata = runner.data(task)
    for added in stages:
        split = make_split(
            "added_data",
            adata,
            seed=seed,
            base=BASE_COVARIATE,
            added=tuple(added),
            test_fraction=float(task.split_params.get("test_fraction", 0.3)),
        )
        tagged_runs(runner, task, seed, split, stage_label(added))


# --- the other hypothesis splits over cells ------------------------------------------------------------------
#: hypothesis splits of :mod:`vcclib.splits.hypotheses` that apply to the VAE, with the data that support them
HYPOTHESIS_TASKS = (
    Task(
        "norman2019_mcfaline2024_devel", "variability", options={"study": "mcfaline23"}, label="mcfaline23:variability"
    ),
)


def hypothesis_runs(runner: Runner, task: Task, seed: int) -> None:
    """The curve learners on a hypothesis split (tag ``hypothesis=<split>``), with its own anchors."""
    split = make_split(task.split, runner.data(task), seed=seed, **task.split_params)
    tagged_runs(runner, task, seed, split, f"hypothesis={task.split}")


# --- the whole chapter ---------------------------------------------------------------------------------------
def run_experiments(
    settings: Settings,
    *,
    compare_tasks: list[Task],
    loss_task: Task | None,
    feature_task: Task,
    curve_task: Task,
    losses=("mse", "wmse", "nb", "mse+energy", "mse+grn"),
    sources=("learned", "go", "depmap+coessentiality", "lincs", "union"),
    fractions=(0.33, 0.67, 1.0),
    compare_models=("cvae_pseudobulk",),
    added_stages=ADDED_STAGES,
    hypothesis_tasks=HYPOTHESIS_TASKS,
    task_data: dict | None = None,
) -> Runner:
    """Every experiment of the chapter over ``settings.seeds``; returns the :class:`Runner` with all scores.

    ``added_stages`` empty skips the added-datasets curve, ``hypothesis_tasks`` empty the hypothesis splits;
    ``task_data`` gives the AnnData of tasks by label (a user's data); other tasks load their dataset.
    """
    runner = Runner(settings)
    runner._data.update(task_data or {})
    with torch_threads(settings.cpu_threads if settings.device == "cpu" else 0):
        for seed in settings.seeds:
            for task in compare_tasks:
                variants = {DEFAULT if i == 0 else f"{DEFAULT}:{m}": (m, {}) for i, m in enumerate(compare_models)}
                runner.vae_runs(task, seed, variants)
            runner.vae_runs(feature_task, seed, feature_variants(sources))
            if loss_task is not None:
                runner.vae_runs(loss_task, seed, loss_variants(losses))
            more_data_runs(runner, curve_task, seed, fractions)
            if added_stages:
                added_data_runs(runner, seed, added_stages)
            for task in hypothesis_tasks:
                hypothesis_runs(runner, task, seed)
    return runner


@contextmanager
def torch_threads(n: int):
    """Run with ``n`` torch intra-op threads (0 or torch absent: unchanged), restoring the number after."""
    try:
        import torch
    except ImportError:
        torch = None
    if not n or torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
