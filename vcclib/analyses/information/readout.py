"""Readout size: how much of a transcriptome-wide perturbation effect k measured genes recover.

Method (one dataset, one seed)
------------------------------
1. Split the perturbations (the dataset's split: unseen perturbations, or unseen cell types for Kang).
2. Learn a map from the k *measured* genes to every other gene on the training part: ridge regression
   (scikit-learn ``RidgeCV``, standardised inputs, the penalty chosen by efficient leave-one-out) over
   *metacells* — means of ``cells_per_metacell`` random cells of one training group, controls included — so the
   map learns gene–gene covariation as L1000's own inference does from profiles, not from effects.
3. Each held-out group's cells are halved (seeded). Half A is "what the k-gene assay measured": its pseudobulk on
   the k genes is kept as measured and fed to the map, which fills in the other genes. Half B is the reference.
4. The reconstructed profile is scored against half B by the metrics engine's registered metrics (Δ against the
   covariate's control mean, on every gene): ``pearson_delta``, ``mse_delta``, ``discrimination_score_l1``, and
   ``pearson_delta`` on the unmeasured genes alone (``pearson_delta_unmeasured``).

Two anchors come with every run: ``gene_choice = "none"`` (k = 0: the mean effect of the training
perturbations, the MIN anchor of the benchmark) and ``"all"`` (every gene measured in half A: a technical
duplicate, the MAX anchor). LINCS consensus signatures have no cells: the signatures themselves are the rows,
perturbations are cross-validated in folds, measured genes are given exactly, and there is no MAX anchor
(k = all is the signature itself).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from vcclib.errors import VccError

#: The numbers of measured genes the issue asks for (the landmark count and "all" are added per dataset).
K_VALUES = (10, 30, 100, 300)
#: the code a stored readout table depends on (see vcclib.memo)
MEMO_CODE = ("vcclib.analyses.information", "vcclib.models", "vcclib.metrics", "vcclib.splits")
GENE_CHOICES = ("landmark", "hvg", "random")
READOUT_METRICS = ("pearson_delta", "mse_delta", "discrimination_score_l1")
CONTROL = "__control__"
#: Ridge penalties tried by leave-one-out (on standardised inputs).
RIDGE_ALPHAS = tuple(np.logspace(-1, 5, 7))


class ReadoutError(VccError, ValueError):
    """The readout analysis cannot run on these data (the message says why)."""


@dataclass
class ReadoutDataset:
    """One dataset of the readout analysis: a perturbation AnnData (cells) or a signature AnnData (no cells)."""

    name: str
    dataset: str
    options: dict[str, Any] = field(default_factory=dict)
    split: str = "unseen_perturbation"
    split_params: dict[str, Any] = field(default_factory=lambda: {"test_fraction": 0.3})
    signatures: bool = False


DATASETS = {
    "norman19": ReadoutDataset("norman19", "norman2019_mcfaline2024_devel", {"study": "norman19"}),
    "kang": ReadoutDataset("kang", "kang2018_ifnb_pbmc", split="covariate_transfer", split_params={"n_held_out": 3}),
    "papalexi": ReadoutDataset("papalexi", "papalexi2021_eccite_lowmoi"),
    "lincs_ctrap": ReadoutDataset(
        "lincs_ctrap", "lincs_ctrap_kd_consensus", signatures=True, split="kfold", split_params={"n_folds": 5}
    ),
}


def landmark_genes() -> frozenset[str]:
    """The 978 L1000 landmark genes (dhimmel's LINCS gene table: status ``measured``), as symbols."""
    from vcclib.data import fetch

    path = fetch("lincs_dhimmel")["genes.tsv"]
    genes = pd.read_csv(path, sep="\t", usecols=["symbol", "status"])
    return frozenset(genes.loc[genes["status"] == "measured", "symbol"].astype(str))


# --------------------------------------------------------------------------------------------------------------
# scoring through the metrics engine
# --------------------------------------------------------------------------------------------------------------


def score_deltas(pred: pd.DataFrame, real: pd.DataFrame, metrics=READOUT_METRICS) -> pd.DataFrame:
    """Score predicted against real effects (perturbations × genes, Δ already taken) with the metrics engine.

    The engine's registered metric functions run on an :class:`~vcclib.metrics.context.EvalContext` whose control
    pseudobulk is zero on both sides, so its Δ are exactly the given rows (this also accepts z-scores, which
    :func:`vcclib.metrics.evaluate` refuses as non-log1p input). Returns ``perturbation``, ``metric``, ``value``.
    Metrics comparing perturbations (``discrimination_score_*``) are NaN with fewer than three rows.
    """
    from vcclib.metrics.context import EvalContext
    from vcclib.metrics.evaluate import compute_metrics
    from vcclib.metrics.pseudobulk import GroupedCells

    if not pred.index.equals(real.index) or not pred.columns.equals(real.columns):
        raise ReadoutError("prediction and reference must have the same perturbations and genes")
    labels = np.array([*map(str, pred.index), CONTROL])
    zero = np.zeros((1, pred.shape[1]))

    def grouped(frame):
        return GroupedCells.from_labels(np.vstack([frame.to_numpy(dtype=np.float64), zero]), labels, CONTROL)

    names = [m for m in metrics if len(pred) >= 3 or not m.startswith("discrimination")]
    ctx = EvalContext(grouped(pred), grouped(real), pred.columns.astype(str))
    frame, _ = compute_metrics(ctx, names)
    long = frame.melt(id_vars="perturbation", var_name="metric", value_name="value")
    return long


# --------------------------------------------------------------------------------------------------------------
# gene choice
# --------------------------------------------------------------------------------------------------------------


def hvg_ranking(adata: AnnData) -> list[str]:
    """Genes from most to least variable (scanpy ``highly_variable_genes``, Seurat flavour, on log1p cells)."""
    import scanpy as sc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = sc.pp.highly_variable_genes(adata, flavor="seurat", inplace=False)
    table.index = adata.var_names
    return table["dispersions_norm"].fillna(-np.inf).sort_values(ascending=False, kind="stable").index.tolist()


def variance_ranking(frame: pd.DataFrame) -> list[str]:
    """Genes ordered by variance across rows (the signature analogue of HVGs)."""
    return frame.var(axis=0).sort_values(ascending=False, kind="stable").index.tolist()


def gene_sets(
    genes: list[str], ranking: list[str], landmarks: frozenset[str], ks=K_VALUES, rng: np.random.Generator | None = None
) -> list[tuple[str, int, list[str]]]:
    """(gene_choice, k, measured genes) for every k below the gene count, plus all measured landmarks.

    ``landmark``: k landmarks drawn among the measured genes (all of them at k = their count); ``hvg``: the k top
    of ``ranking``; ``random``: k genes drawn with ``rng``. A k above the number of eligible genes is skipped.
    """
    rng = rng or np.random.default_rng(0)
    measured_landmarks = sorted(set(genes) & landmarks)
    n = len(genes)
    out = []
    sizes = sorted({k for k in ks if k < n} | ({len(measured_landmarks)} if 0 < len(measured_landmarks) < n else set()))
    for k in sizes:
        if k <= len(measured_landmarks):
            chosen = (
                measured_landmarks
                if k == len(measured_landmarks)
                else sorted(rng.choice(measured_landmarks, size=k, replace=False).tolist())
            )
            out.append(("landmark", k, chosen))
        out.append(("hvg", k, ranking[:k]))
        out.append(("random", k, sorted(rng.choice(genes, size=k, replace=False).tolist())))
    return out


# --------------------------------------------------------------------------------------------------------------
# the map from measured to unmeasured genes
# --------------------------------------------------------------------------------------------------------------


def fit_readout_map(
    rows: np.ndarray, measured: np.ndarray, alphas=RIDGE_ALPHAS, alpha_targets: int = 1000, seed: int = 0
):
    """Ridge from the measured columns of ``rows`` to the others; returns ``predict(measured_values)``.

    The penalty is chosen by efficient leave-one-out (scikit-learn ``RidgeCV``) on at most ``alpha_targets``
    unmeasured genes drawn with ``seed`` (one penalty for all genes, as ``RidgeCV`` itself chooses it), then one
    ``Ridge`` with that penalty is fitted on every unmeasured gene: the leave-one-out solve for every penalty over
    LINCS's 11,350 inferred genes was most of the chapter's time, and the chosen penalty is a mean over genes,
    which a thousand of them estimate well. ``alpha_targets = 0`` chooses it on all of them.
    """
    from sklearn.linear_model import Ridge, RidgeCV
    from sklearn.preprocessing import StandardScaler

    X, Y = rows[:, measured], rows[:, ~measured]
    scaler = StandardScaler().fit(X)
    Xs = scaler.transform(X)
    columns = np.arange(Y.shape[1])
    if 0 < alpha_targets < Y.shape[1]:
        columns = np.sort(np.random.default_rng([seed, 11]).choice(Y.shape[1], size=alpha_targets, replace=False))
    alpha = float(RidgeCV(alphas=alphas).fit(Xs, Y[:, columns]).alpha_)
    ridge = Ridge(alpha=alpha).fit(Xs, Y)

    def predict(values: np.ndarray) -> np.ndarray:
        full = np.empty((values.shape[0], rows.shape[1]))
        full[:, measured] = values
        full[:, ~measured] = ridge.predict(scaler.transform(values))
        return full

    predict.alpha = alpha
    return predict


def metacells(X, groups: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``size`` random cells within each group (a remainder smaller than half a metacell is dropped)."""
    rows = []
    dense = X.toarray() if sp.issparse(X) else np.asarray(X)
    for group in np.unique(groups):
        index = rng.permutation(np.flatnonzero(groups == group))
        n = max(1, int(round(len(index) / size)))
        for chunk in np.array_split(index, n):
            rows.append(dense[chunk].mean(axis=0))
    return np.vstack(rows).astype(np.float64)


def _scores(pred: pd.DataFrame, real: pd.DataFrame, measured: np.ndarray | None, metrics) -> pd.DataFrame:
    scored = score_deltas(pred, real, metrics)
    if measured is not None and (~measured).any():
        unmeasured = score_deltas(pred.loc[:, ~measured], real.loc[:, ~measured], ("pearson_delta",))
        unmeasured["metric"] = "pearson_delta_unmeasured"
        scored = pd.concat([scored, unmeasured], ignore_index=True)
    return scored


def readout_cells(
    adata: AnnData,
    spec: ReadoutDataset,
    seed: int,
    landmarks: frozenset[str],
    ks=K_VALUES,
    cells_per_metacell: int = 20,
    metrics=READOUT_METRICS,
) -> pd.DataFrame:
    """One seed of the readout analysis on a perturbation AnnData (see the module docstring)."""
    from vcclib.models.base import covariates_of
    from vcclib.models.runner import held_out_halves
    from vcclib.splits import make_split

    split = make_split(spec.split, adata, seed=seed, **spec.split_params)
    rng = np.random.default_rng([seed, 7])
    column = split.covariate_column
    control = split.control_label
    covariate = covariates_of(adata, column)
    pert = adata.obs["perturbation"].astype(str).to_numpy()
    parts = split.part_of_cells(adata).to_numpy()
    train = parts == "train"
    X = adata.X

    def dense(rows):
        block = X[rows]
        return np.asarray(block.toarray() if sp.issparse(block) else block, dtype=np.float64)

    groups = np.char.add(np.char.add(covariate.astype(str), "\x1f"), pert.astype(str))
    rows = metacells(X[train], groups[train], cells_per_metacell, rng)
    control_mean = {c: dense((covariate == c) & (pert == control)).mean(0) for c in np.unique(covariate)}
    # held-out halves
    half = held_out_halves(adata, split, seed=seed)
    test_index = np.flatnonzero(parts == "test")
    half = half.reindex(adata.obs_names[test_index]).to_numpy()
    keys = sorted(set(zip(covariate[test_index], pert[test_index])))
    query, reference, labels = [], [], []
    for cov, p in keys:
        in_group = (covariate[test_index] == cov) & (pert[test_index] == p)
        a, b = test_index[in_group & (half == "A")], test_index[in_group & (half == "B")]
        if len(a) == 0 or len(b) == 0:
            continue
        query.append(dense(a).mean(0))
        reference.append(dense(b).mean(0) - control_mean[cov])
        labels.append((cov, p))
    if len(labels) == 0:
        raise ReadoutError(f"{spec.name}: no held-out group has cells in both halves")
    genes = adata.var_names.astype(str)
    names = [p if column is None or len({c for c, _ in labels}) == 1 else f"{c}:{p}" for c, p in labels]
    ctrl = np.vstack([control_mean[c] for c, _ in labels])
    query, real = np.vstack(query), pd.DataFrame(np.vstack(reference), index=names, columns=genes)
    # MIN anchor: the training perturbations' mean effect
    train_effects = []
    for cov, p in sorted(set(zip(covariate[train], pert[train]))):
        if p != control:
            train_effects.append(dense(train & (covariate == cov) & (pert == p)).mean(0) - control_mean[cov])
    mean_effect = np.vstack(train_effects).mean(0)
    frames = []

    def add(choice, k, pred_delta, measured):
        scored = _scores(pd.DataFrame(pred_delta, index=names, columns=genes), real, measured, metrics)
        frames.append(scored.assign(gene_choice=choice, k=k))

    add("none", 0, np.tile(mean_effect, (len(names), 1)), None)
    add("all", len(genes), query - ctrl, None)
    train_adata = adata[train]
    ranking = hvg_ranking(train_adata)
    for choice, k, chosen in gene_sets(list(genes), ranking, landmarks, ks, rng):
        measured = genes.isin(chosen)
        predict = fit_readout_map(rows, measured, seed=seed)
        add(choice, k, predict(query[:, measured]) - ctrl, measured)
    table = pd.concat(frames, ignore_index=True)
    table["seed"] = seed
    table["dataset"] = spec.name
    return table


def readout_signatures(
    signatures: AnnData,
    spec: ReadoutDataset,
    seed: int,
    landmarks: frozenset[str],
    ks=K_VALUES,
    metrics=READOUT_METRICS,
) -> pd.DataFrame:
    """One seed of the readout analysis on consensus signatures (rows = signatures, folds over them).

    ``gene_choice = "l1000_inference"`` is the natural case: the 978 landmarks of the file (its ``landmark``
    column) predict the 11,350 inferred genes.
    """
    n_folds = int(spec.split_params.get("n_folds", 5))
    frame = pd.DataFrame(
        np.asarray(signatures.X, dtype=np.float64),
        index=signatures.obs["perturbation"].astype(str),
        columns=signatures.var_names.astype(str),
    )
    frame = frame.loc[~frame.index.duplicated(), ~frame.columns.duplicated()]
    if len(frame) < n_folds or len(frame) < 4:
        raise ReadoutError(f"{spec.name}: {len(frame)} signatures are too few for {n_folds} folds")
    genes = frame.columns
    rng = np.random.default_rng([seed, 7])
    fold = rng.permutation(np.arange(len(frame)) % n_folds)
    file_landmarks = (
        signatures.var["landmark"].to_numpy(dtype=bool)[~signatures.var_names.duplicated()]
        if "landmark" in signatures.var
        else genes.isin(landmarks)
    )
    ranking = variance_ranking(frame)
    sets = [("l1000_inference", int(file_landmarks.sum()), list(genes[file_landmarks]))]
    sets += [s for s in gene_sets(list(genes), ranking, landmarks, ks, rng) if s[1] != sets[0][1] or s[0] != "landmark"]
    predictions = {(c, k): np.zeros(frame.shape) for c, k, _ in sets}
    predictions[("none", 0)] = np.zeros(frame.shape)
    for f in range(n_folds):
        train, test = frame.to_numpy()[fold != f], frame.to_numpy()[fold == f]
        predictions[("none", 0)][fold == f] = train.mean(0)
        for choice, k, chosen in sets:
            measured = genes.isin(chosen)
            predictions[(choice, k)][fold == f] = fit_readout_map(train, measured, seed=seed)(test[:, measured])
    frames = []
    for (choice, k), values in predictions.items():
        chosen = next((c for ch, kk, c in sets if ch == choice and kk == k), None)
        measured = genes.isin(chosen) if chosen is not None else None
        scored = _scores(pd.DataFrame(values, index=frame.index, columns=genes), frame, measured, metrics)
        frames.append(scored.assign(gene_choice=choice, k=k))
    table = pd.concat(frames, ignore_index=True)
    table["seed"] = seed
    table["dataset"] = spec.name
    return table


def readout_size(
    names=tuple(DATASETS),
    seeds=(0, 1, 2),
    ks=K_VALUES,
    cells_per_metacell: int = 20,
    max_cells_per_group: int = 0,
    data: dict | None = None,
) -> pd.DataFrame:
    """The readout analysis over datasets and seeds.

    One row per (dataset, seed, gene_choice, k, perturbation, metric). ``data`` may hold already loaded AnnData
    by dataset name (else they are loaded, through :func:`vcclib.analyses.information.cache.load`); a name not in
    :data:`DATASETS` is user data (unseen perturbations).
    """
    from vcclib import memo

    inputs = {
        "names": list(names),
        "seeds": list(seeds),
        "ks": list(ks),
        "cells_per_metacell": cells_per_metacell,
        "max_cells_per_group": max_cells_per_group,
        "data": memo.token(data or {}),
        "datasets": memo.data_token(),
    }
    return memo.memo(
        "information.readout_size",
        lambda: _readout_size(names, seeds, ks, cells_per_metacell, max_cells_per_group, data),
        inputs=inputs,
        code=MEMO_CODE,
    )


def _readout_size(
    names, seeds, ks, cells_per_metacell: int, max_cells_per_group: int, data: dict | None
) -> pd.DataFrame:
    from vcclib.analyses.information.cache import load
    from vcclib.models.runner import subsample
    from vcclib.splits import covariate_column

    landmarks = landmark_genes()
    frames = []
    for name in names:
        adata = (data or {}).get(name)
        if name not in DATASETS and adata is None:
            raise ReadoutError(f"unknown readout dataset {name!r}; known: {sorted(DATASETS)}")
        spec = DATASETS.get(name) or ReadoutDataset(name, name)  # user data: unseen perturbations
        if adata is None:
            adata = load(spec.dataset, **spec.options)
        for seed in seeds:
            if spec.signatures:
                frames.append(readout_signatures(adata, spec, seed, landmarks, ks))
            else:
                sub = subsample(adata, max_cells_per_group, seed=seed, column=covariate_column(adata))
                frames.append(readout_cells(sub, spec, seed, landmarks, ks, cells_per_metacell))
    return pd.concat(frames, ignore_index=True)


def summarise_readout(long: pd.DataFrame) -> pd.DataFrame:
    """The ``readout_size.csv`` table: one row per (dataset, k, gene_choice, metric).

    ``value`` is the mean over held-out perturbations, then over seeds; ``sd`` over seeds, ``n_seeds`` and
    ``n_perturbations`` (median per seed).
    """
    per_seed = (
        long.groupby(["dataset", "k", "gene_choice", "metric", "seed"], sort=False)
        .agg(value=("value", "mean"), n=("value", "count"))
        .reset_index()
    )
    table = (
        per_seed.groupby(["dataset", "k", "gene_choice", "metric"], sort=False)
        .agg(value=("value", "mean"), sd=("value", "std"), n_seeds=("seed", "nunique"), n_perturbations=("n", "median"))
        .reset_index()
    )
    return table.sort_values(["dataset", "metric", "gene_choice", "k"]).reset_index(drop=True)


def placement_by_k(summary: pd.DataFrame, metric: str = "pearson_delta") -> pd.DataFrame:
    """Where each readout sits between its MIN anchor (k = 0, 0) and its MAX anchor (all genes, 1)."""
    rows = summary[summary["metric"] == metric]
    out = []
    for dataset, block in rows.groupby("dataset"):
        low = block.loc[block["gene_choice"] == "none", "value"]
        high = block.loc[block["gene_choice"] == "all", "value"]
        if low.empty or high.empty or not np.isfinite(high.iloc[0] - low.iloc[0]) or high.iloc[0] <= low.iloc[0]:
            continue
        lo, hi = float(low.iloc[0]), float(high.iloc[0])
        for _, row in block.iterrows():
            out.append(
                {
                    "dataset": dataset,
                    "gene_choice": row["gene_choice"],
                    "k": int(row["k"]),
                    "value": row["value"],
                    "placement": (row["value"] - lo) / (hi - lo),
                }
            )
    return pd.DataFrame(out)
