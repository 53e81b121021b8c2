"""Gene regulatory network inference on control cells: GRNBoost2 and GENIE3 (arboreto) on Dask, and two peers.

Methods (:data:`METHODS`)
-------------------------
``grnboost2``, ``genie3``
    arboreto 0.1.6's regressions (stochastic gradient boosting with its out-of-bag early stopping; random
    forests), one per target gene on the regulators, importances as arboreto computes them.
``correlation``
    |Pearson r| between regulator and target over the same cells (the simplest co-expression network).
``regdiffusion``
    RegDiffusion (Zhu & Slonim 2024, PyPI ``regdiffusion``): a diffusion model whose learnt adjacency is the
    network; its rows are restricted to the regulators.

Every method returns the same edge table (:data:`EDGE_COLUMNS`): ``regulator``, ``target``, ``importance``
(≥ 0, the ranking score) and ``sign`` (+1/−1: the sign of the Pearson correlation of the pair in the same cells,
how SCENIC signs GRNBoost2 links; arboreto's importances are unsigned).

How arboreto runs here, and why
-------------------------------
arboreto 0.1.6 breaks on dask/distributed 2026 in two places of its *orchestration*: ``algo._prepare_client``
starts ``LocalCluster(diagnostics_port=None)`` (a removed keyword: TypeError) and ``core.create_graph`` builds an
empty ``from_delayed([])`` meta frame that dask-expr refuses. Its *per-target* functions (``core.clean``,
``core.fit_model``, ``core.to_links_df``, with the regressor settings ``SGBM_KWARGS``/``RF_KWARGS`` and the
early-stop monitor) work unchanged. :func:`arboreto_network` therefore calls those per-target functions through
its own ``dask.distributed`` task graph: one task per target, the expression matrix scattered once to every
worker. This is chosen over a monkeypatch of the two call sites because it (1) changes nothing global in
arboreto, (2) surfaces a failed regression as an error, where arboreto's ``infer_partial_network`` retries and
then silently returns an empty frame, (3) lets a lost worker's tasks be recomputed by the scheduler (each task is
a pure function of scattered data) so a killed worker does not change the result, and (4) reports progress. The
result equals arboreto's own path link for link (same functions, same seed; ``tests/test_grn_inference.py``).
:func:`arboreto_compat` is the runtime shim of the two call sites, used only to run arboreto's own path for that
parity test and for ``benchmarks/grn_scaling.py``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from vcclib.errors import UnknownNameError, VccError
from vcclib.grn.cluster import current_client, dask_client

METHODS = ("grnboost2", "genie3", "correlation", "regdiffusion")
EDGE_COLUMNS = ("regulator", "target", "importance", "sign")
_CACHE: dict[str, pd.DataFrame] = {}
_CACHE_SIZE = 64
#: the code a stored network depends on (vcclib.memo recomputes when it changes)
MEMO_CODE = ("vcclib.grn.inference", "vcclib.grn.cluster")


class GrnInputError(VccError):
    """Expression data that network inference cannot use (no regulators, too few cells, unknown method)."""


@dataclass(frozen=True)
class Expression:
    """The matrix a network is inferred from.

    Attributes
    ----------
    X
        Cells × genes, float32, dense (log1p values).
    genes
        Column names of ``X``; every gene is a target.
    regulators
        The candidate regulators: the genes of ``genes`` that are in the TF list.
    description
        Where the cells came from (dataset, covariate, subsampling), for tables.
    """

    X: np.ndarray
    genes: tuple[str, ...]
    regulators: tuple[str, ...]
    description: str = ""

    @property
    def token(self) -> str:
        """A content hash of the matrix and names (the inference cache key)."""
        digest = hashlib.sha1(np.ascontiguousarray(self.X).tobytes())
        digest.update("\x1f".join(self.genes).encode())
        digest.update("\x1e".join(self.regulators).encode())
        return digest.hexdigest()

    @property
    def regulator_index(self) -> np.ndarray:
        """Column positions of the regulators in ``X``."""
        position = {g: i for i, g in enumerate(self.genes)}
        return np.array([position[r] for r in self.regulators], dtype=int)


def control_expression(
    adata: AnnData,
    tfs: Sequence[str],
    *,
    covariate: str | None = None,
    max_cells: int = 0,
    max_genes: int = 0,
    seed: int = 0,
    min_cells: int = 20,
) -> Expression:
    """The control cells of ``adata`` (one covariate value, or all) as an :class:`Expression`.

    Parameters
    ----------
    tfs
        Transcription factor names (e.g. Lambert 2018); those among the kept genes are the regulators.
    covariate
        A value of the data's covariate column (cell type or line); None: every control cell.
    max_cells
        Subsample at most this many control cells (seeded; 0: all).
    max_genes
        Keep the ``max_genes`` genes most variable in these cells (0: every gene). Genes constant in these cells
        are always dropped (no regression can be fit on them).
    """
    from vcclib.splits import covariate_column

    if "is_control" not in adata.obs:
        raise GrnInputError("the data lack obs['is_control']: load them with vcclib.data.load")
    mask = adata.obs["is_control"].astype(bool).to_numpy()
    column = covariate_column(adata)
    if covariate is not None:
        if column is None:
            raise GrnInputError(f"covariate {covariate!r} given but the data have no cell_line/cell_type column")
        mask &= (adata.obs[column].astype(str) == covariate).to_numpy()
    positions = np.flatnonzero(mask)
    if len(positions) < min_cells:
        raise GrnInputError(
            f"{len(positions)} control cells{' of ' + covariate if covariate else ''}: "
            f"network inference needs at least {min_cells}"
        )
    if max_cells and len(positions) > max_cells:
        positions = np.sort(np.random.default_rng(seed).choice(positions, size=max_cells, replace=False))
    X = adata.X[positions]
    X = np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float32)
    variance = X.var(axis=0)
    keep = np.flatnonzero(variance > 0)
    if max_genes and len(keep) > max_genes:
        keep = np.sort(keep[np.argsort(-variance[keep], kind="stable")[:max_genes]])
    genes = tuple(str(g) for g in adata.var_names[keep])
    tf_set = set(tfs)
    regulators = tuple(g for g in genes if g in tf_set)
    if not regulators:
        raise GrnInputError(f"none of the {len(genes)} kept genes is in the TF list: no regulator to infer from")
    dataset = str(adata.uns.get("vcc", {}).get("dataset", ""))
    description = f"{dataset}{':' + covariate if covariate else ''} controls, {len(positions)} cells"
    return Expression(X=np.ascontiguousarray(X[:, keep]), genes=genes, regulators=regulators, description=description)


# --- arboreto on our own task graph -------------------------------------------------------------------------
def _arboreto_settings(method: str, n_estimators: int | None) -> tuple[str, dict]:
    from arboreto.core import RF_KWARGS, SGBM_KWARGS

    if method == "grnboost2":
        kwargs = dict(SGBM_KWARGS)
        regressor = "GBM"
    elif method == "genie3":
        kwargs = dict(RF_KWARGS)
        regressor = "RF"
    else:  # pragma: no cover - guarded by the caller
        raise UnknownNameError(f"no arboreto method {method!r}")
    if n_estimators:
        kwargs["n_estimators"] = int(n_estimators)
    return regressor, kwargs


def _regress_target(
    regressor: str,
    kwargs: dict,
    X: np.ndarray,
    regulator_index: np.ndarray,
    regulator_names: list[str],
    target_index: int,
    target_name: str,
    early_stop: int,
    seed: int,
) -> pd.DataFrame:
    """One arboreto regression: target ~ regulators (minus the target itself); its links with importance > 0."""
    from arboreto.core import clean, fit_model, to_links_df

    matrix, names = clean(X[:, regulator_index], list(regulator_names), target_name)
    if matrix.shape[1] == 0:
        return pd.DataFrame(
            {"TF": pd.Series(dtype=str), "target": pd.Series(dtype=str), "importance": pd.Series(dtype=float)}
        )
    model = fit_model(regressor, kwargs, matrix, X[:, target_index], early_stop, seed)
    return to_links_df(regressor, kwargs, model, names, target_name)


def arboreto_network(
    expression: Expression,
    method: str = "grnboost2",
    *,
    seed: int = 0,
    client=None,
    n_estimators: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """GRNBoost2 or GENIE3 through arboreto's per-target functions on a Dask task graph (see the module notes).

    Parameters
    ----------
    method
        ``grnboost2`` or ``genie3``.
    seed
        The regressors' random state (arboreto passes the same seed to every target's regression).
    client
        A ``distributed.Client``; None: the process's default client, else a LocalCluster for this call.
    n_estimators
        Override arboreto's number of trees (GENIE3: 1,000; GRNBoost2: up to 5,000 with early stopping).
    progress
        Called as ``progress(done, total)`` after each finished target (in this process).

    Returns
    -------
    DataFrame
        :data:`EDGE_COLUMNS`, sorted by importance (descending; ties by regulator, target).
    """
    client = client or current_client()
    if client is None:
        with dask_client() as own:
            return arboreto_network(
                expression, method, seed=seed, client=own, n_estimators=n_estimators, progress=progress
            )
    from distributed import as_completed

    regressor, kwargs = _arboreto_settings(method, n_estimators)
    from arboreto.core import EARLY_STOP_WINDOW_LENGTH

    data = client.scatter(expression.X, broadcast=True, hash=False)
    reg_index = expression.regulator_index
    reg_names = list(expression.regulators)
    futures = {
        client.submit(
            _regress_target,
            regressor,
            kwargs,
            data,
            reg_index,
            reg_names,
            j,
            gene,
            EARLY_STOP_WINDOW_LENGTH,
            seed,
            pure=False,
        ): j
        for j, gene in enumerate(expression.genes)
    }
    frames: dict[int, pd.DataFrame] = {}
    try:
        for done, future in enumerate(as_completed(futures), start=1):
            frames[futures[future]] = future.result()
            if progress is not None:
                progress(done, len(futures))
    finally:
        client.cancel(list(futures) + [data])
    links = pd.concat([frames[j] for j in sorted(frames)], ignore_index=True)
    links = links.rename(columns={"TF": "regulator"})
    return _finish(links, expression)


@contextmanager
def arboreto_compat():
    """Runtime shim so arboreto 0.1.6's own ``grnboost2``/``genie3`` run on dask/distributed 2026.

    Patches, for the duration of the block only, the two call sites that break (upstream aertslab/arboreto#38,
    fixed in #39 but unreleased): ``LocalCluster(diagnostics_port=None)`` becomes
    ``LocalCluster(dashboard_address=None)``, and ``from_delayed([])`` returns an empty frame of the given meta.
    Used for the parity test and the benchmark against arboreto's own path; inference itself uses
    :func:`arboreto_network`, which needs no patch.
    """
    import arboreto.algo as algo
    import arboreto.core as core
    import dask.dataframe as dd

    original_from_delayed, original_cluster = core.from_delayed, algo.LocalCluster

    def from_delayed(dfs, meta=None, **kwargs):
        if not len(dfs):
            return dd.from_pandas(meta, npartitions=1)
        return original_from_delayed(dfs, meta=meta, **kwargs)

    def local_cluster(*args, diagnostics_port=None, **kwargs):
        kwargs.setdefault("dashboard_address", None)
        return original_cluster(*args, **kwargs)

    core.from_delayed, algo.LocalCluster = from_delayed, local_cluster
    try:
        yield
    finally:
        core.from_delayed, algo.LocalCluster = original_from_delayed, original_cluster


def arboreto_default_path(
    expression: Expression, method: str = "grnboost2", *, seed: int = 0, client_or_address="local"
) -> pd.DataFrame:
    """Arboreto's own ``grnboost2``/``genie3`` (its graph, its client handling) under :func:`arboreto_compat`."""
    import arboreto.algo as algo

    frame = pd.DataFrame(expression.X, columns=list(expression.genes))
    func = {"grnboost2": algo.grnboost2, "genie3": algo.genie3}[method]
    with arboreto_compat():
        links = func(frame, tf_names=list(expression.regulators), client_or_address=client_or_address, seed=seed)
    return _finish(links.rename(columns={"TF": "regulator"}), expression)


# --- peers ---------------------------------------------------------------------------------------------------
def _correlations(expression: Expression) -> np.ndarray:
    """Pearson r, regulators × genes (0 where a column is constant)."""
    X = expression.X.astype(np.float64)
    Z = X - X.mean(axis=0)
    norms = np.sqrt((Z**2).sum(axis=0))
    Z = np.divide(Z, norms, out=np.zeros_like(Z), where=norms > 0)
    return Z[:, expression.regulator_index].T @ Z


def _dense_to_edges(scores: np.ndarray, expression: Expression) -> pd.DataFrame:
    regs = np.repeat(np.array(expression.regulators, dtype=object), len(expression.genes))
    targets = np.tile(np.array(expression.genes, dtype=object), len(expression.regulators))
    links = pd.DataFrame({"regulator": regs, "target": targets, "importance": np.abs(scores).ravel()})
    links = links[(links["regulator"] != links["target"]) & (links["importance"] > 0)]
    return _finish(links, expression)


def correlation_network(expression: Expression) -> pd.DataFrame:
    """|Pearson r| of every regulator–target pair over the cells (sign: the sign of r)."""
    return _dense_to_edges(_correlations(expression), expression)


def regdiffusion_network(
    expression: Expression, *, seed: int = 0, n_steps: int = 1000, device: str = "cpu"
) -> pd.DataFrame:
    """RegDiffusion's learnt adjacency (rows: regulators) as edges; the package's defaults apart from ``n_steps``.

    Its progress bar is switched off for the call (the package gives no option for that).
    """
    from functools import partial
    from unittest import mock

    import tqdm
    from regdiffusion import RegDiffusionTrainer

    batch = min(128, expression.X.shape[0])
    with mock.patch("regdiffusion.trainer.tqdm", partial(tqdm.tqdm, disable=True)):
        trainer = RegDiffusionTrainer(expression.X, n_steps=n_steps, batch_size=batch, seed=seed, device=device)
        trainer.train()
    adjacency = np.asarray(trainer.model.get_adj(), dtype=np.float64)  # genes × genes, row regulates column
    return _dense_to_edges(adjacency[expression.regulator_index], expression)


# --- one entry point -----------------------------------------------------------------------------------------
def _finish(links: pd.DataFrame, expression: Expression) -> pd.DataFrame:
    """Edge table with signs, deterministic order and float64 importances."""
    links = links[["regulator", "target", "importance"]].astype(
        {"regulator": str, "target": str, "importance": np.float64}
    )
    r = _correlations(expression)
    reg_pos = {g: i for i, g in enumerate(expression.regulators)}
    gene_pos = {g: i for i, g in enumerate(expression.genes)}
    corr = r[links["regulator"].map(reg_pos).to_numpy(), links["target"].map(gene_pos).to_numpy()]
    links = links.assign(sign=np.where(corr < 0, -1, 1).astype(np.int8))
    links = links.sort_values(["importance", "regulator", "target"], ascending=[False, True, True], kind="mergesort")
    return links.reset_index(drop=True)


def infer_network(
    expression: Expression,
    method: str,
    *,
    seed: int = 0,
    client=None,
    n_estimators: int | None = None,
    n_steps: int = 1000,
    device: str = "cpu",
    cache: bool = True,
) -> pd.DataFrame:
    """The network of ``method`` (:data:`METHODS`) on ``expression``.

    Repeated calls with the same inputs and settings return the cached table (``attrs['seconds']`` is the time of the computation, ``attrs['cached']``).
    GRNBoost2, GENIE3 and RegDiffusion networks are also kept on disk between runs (:func:`vcclib.memo.memo`,
    keyed by the matrix's content, the settings, this module's source and the library versions).

    ``n_estimators`` applies to the arboreto methods, ``n_steps``/``device`` to regdiffusion, ``client`` to the
    arboreto methods (see :func:`arboreto_network`).
    """
    if method not in METHODS:
        raise UnknownNameError(f"no network method {method!r}; methods: {', '.join(METHODS)}")
    settings = {
        "grnboost2": (n_estimators,),
        "genie3": (n_estimators,),
        "correlation": (),
        "regdiffusion": (n_steps, device),
    }[method]
    key = hashlib.sha1(repr((method, seed, settings, expression.token)).encode()).hexdigest()
    if cache and key in _CACHE:
        hit = _CACHE[key].copy()
        hit.attrs = {**_CACHE[key].attrs, "cached": True}
        return hit

    def compute() -> pd.DataFrame:
        start = time.perf_counter()
        if method in ("grnboost2", "genie3"):
            edges = arboreto_network(expression, method, seed=seed, client=client, n_estimators=n_estimators)
        elif method == "correlation":
            edges = correlation_network(expression)
        else:
            edges = regdiffusion_network(expression, seed=seed, n_steps=n_steps, device=device)
        edges.attrs = {
            "method": method,
            "seconds": time.perf_counter() - start,
            "cached": False,
            "n_cells": int(expression.X.shape[0]),
            "n_genes": len(expression.genes),
            "n_regulators": len(expression.regulators),
            "description": expression.description,
        }
        return edges

    if cache and method != "correlation":  # the slow methods are also kept on disk (vcclib.memo)
        from vcclib import memo

        inputs = {"method": method, "seed": seed, "settings": settings, "expression": expression.token}
        on_disk = memo.stored("grn.infer_network", inputs=inputs, code=MEMO_CODE)
        edges = memo.memo("grn.infer_network", compute, inputs=inputs, code=MEMO_CODE)
        edges.attrs["cached"] = on_disk
    else:
        edges = compute()
    if cache:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = edges.copy()
        _CACHE[key].attrs = dict(edges.attrs)
    return edges
