"""Scoring the VCC 2026 suite: run it, the generic-response baseline b, the replicate anchor r, and
s = (u − b)/(r − b) (cell-eval2 0.20.0 ``baseline.py``, ``anchor.py``, ``lfc_nmae_ref.py``, ``scoring.py``).

- **Baseline**: the mean over perturbations of each perturbation's mean counts, a perturbation's own target
  gene left out of its gene's average; emitted ``dispersed`` as cell-eval2 does: for every perturbation, as
  many control cells as it has (drawn with ``numpy.random.default_rng(seed)``), each gene scaled by
  profile / control mean; the control rows keep the real control cells. Scored as an ordinary submission
  (fractional counts allowed).
- **Replicate anchor**: 5 disjoint half splits (seeds from ``SeedSequence(0)``); half B scored against half A,
  each with its own control cells; ``de_wilcoxon_lfc_nmae`` takes its gate and denominator from the full
  reference and only the two fold-change vectors from the halves. r is the mean over splits.
- **Score**: per metric ``(u − b)/(r − b)``; ``expr_mse_unbiased_capped_norm`` clamped to [0, 1],
  ``de_wilcoxon_lfc_nmae`` floored at −6, the others unclamped; a missing value scores the clamp floor (0, −6)
  or, unfloored, the metric's worst (0); the context's score is the mean of the six.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from vcclib.metrics.vcc2026 import MIN_GATE_SIZE, SCORED

N_SPLITS = 5
BASE_SEED = 0
CLAMPS = {"expr_mse_unbiased_capped_norm": (0.0, 1.0), "de_wilcoxon_lfc_nmae": (-6.0, None)}


def _grouped(adata, column: str, control: str):
    from vcclib.metrics.pseudobulk import GroupedCells

    # X keeps its float dtype (float32 counts are exact integers; every kernel accumulates in float64), so the
    # matrix is not copied
    return GroupedCells.from_labels(adata.X, adata.obs[column].astype(str).to_numpy(), control)


def context(pred, real, column: str, control: str, *, control_source: str = "real"):
    """A :class:`~vcclib.metrics.vcc2026.CountsContext` of two AnnData of raw counts."""
    from vcclib.metrics.vcc2026 import CountsContext

    return CountsContext(
        _grouped(pred, column, control),
        _grouped(real, column, control),
        np.asarray(real.var_names).astype(str),
        control_source=control_source,
    )


def nan_skipping_values(values: dict[str, pd.Series]) -> dict[str, pd.Series]:
    """cell-eval2 aggregates NaN-skipping: a NaN value is left out (counted as missing)."""
    return {name: s[~np.isnan(s.to_numpy(dtype=np.float64))] for name, s in values.items()}


def generic_baseline(real, column: str, control: str, *, seed: int = 0):
    """cell-eval2's generic-response baseline prediction (``emit="dispersed"``) for the reference ``real``."""
    import anndata as ad

    from vcclib.metrics.counts import group_sums

    labels = real.obs[column].astype(str).to_numpy()
    names, codes = np.unique(labels, return_inverse=True)
    X = sp.csr_matrix(real.X, dtype=np.float64)
    sizes = np.bincount(codes, minlength=names.size).astype(np.float64)
    means = group_sums(X, codes, names.size) / sizes[:, None]
    genes = np.asarray(real.var_names).astype(str)
    keep = names != control
    bulk, perts = means[keep], names[keep]
    total, count = bulk.sum(axis=0), np.full(genes.size, float(perts.size))
    index = {g: i for i, g in enumerate(genes)}
    for i, p in enumerate(perts):
        if p in index:
            total[index[p]] -= bulk[i, index[p]]
            count[index[p]] -= 1.0
    profile = total / count
    ctrl_rows = np.flatnonzero(labels == control)
    ctrl_X = X[ctrl_rows]
    ctrl_mean = np.asarray(ctrl_X.mean(axis=0)).ravel()
    scale = np.where(ctrl_mean <= 0, 0.0, profile / np.where(ctrl_mean <= 0, 1.0, ctrl_mean))
    rng = np.random.default_rng(seed)
    positions = [np.flatnonzero(labels == p) for p in sorted(perts.tolist())]
    source = np.concatenate([rng.integers(0, ctrl_rows.size, size=rows.size) for rows in positions])
    emitted = ctrl_X[source].copy()
    emitted.data = (emitted.data * scale[emitted.indices]).astype(np.float32)
    emitted.eliminate_zeros()
    blocks = sp.vstack([emitted, ctrl_X.astype(np.float32)], format="csr")
    where = np.concatenate(positions + [ctrl_rows])
    order = np.empty(real.n_obs, dtype=np.intp)
    order[where] = np.arange(real.n_obs)
    return ad.AnnData(X=blocks[order].tocsr(), obs=real.obs.copy(), var=real.var.copy())


def disjoint_halves(real, column: str, seed: int):
    """Two disjoint halves of every group (cell-eval2 ``ceiling._disjoint_halves``)."""
    rng = np.random.default_rng(seed)
    a, b = [], []
    for _, idx in real.obs.groupby(column, observed=True).indices.items():
        perm = rng.permutation(np.asarray(idx))
        h = perm.size // 2
        if h >= 1:
            a.append(perm[:h])
            b.append(perm[h : 2 * h])
    return real[np.concatenate(a)].copy(), real[np.concatenate(b)].copy()


def split_seeds(base_seed: int = BASE_SEED, n_splits: int = N_SPLITS) -> list[int]:
    """The replicate anchor's split seeds (cell-eval2: ``SeedSequence(base_seed).generate_state``)."""
    return [int(s) for s in np.random.SeedSequence(int(base_seed)).generate_state(n_splits)]


def _lfc_nmae_reference(full_ctx, half_a, half_b, column: str, control: str) -> float:
    """Mean over perturbations of Σ|lfc_A − lfc_B| / Σ|lfc| on the full reference's gate (≥ 10 genes)."""
    from vcclib.metrics.vcc2026_de import counts_de

    full = full_ctx.de_real
    sig = full.significant() & ~full_ctx.own_gene_de & np.isfinite(full.log2_fold_change)
    genes = full_ctx.genes
    halves = []
    for half in (half_a, half_b):
        de = counts_de(_grouped(half, column, control), genes)
        lfc = np.zeros((full.targets.size, genes.size))  # genes absent from a half's table read as 0
        rows = np.searchsorted(de.targets, full.targets)
        lfc[:, de.kept] = np.where(np.isfinite(de.log2_fold_change[rows]), de.log2_fold_change[rows], 0.0)
        halves.append(lfc[:, full.kept])
    values = []
    for i in range(full.targets.size):
        g = sig[i]
        if g.sum() < MIN_GATE_SIZE:
            continue
        den = np.abs(full.log2_fold_change[i, g]).mean()
        if np.isfinite(den) and den != 0.0:
            values.append(np.abs(halves[0][i, g] - halves[1][i, g]).mean() / den)
    return float(np.mean(values)) if values else float("nan")


def replicate_anchor(
    real,
    column: str,
    control: str,
    names=SCORED,
    *,
    base_seed: int = BASE_SEED,
    n_splits: int = N_SPLITS,
    full_ctx=None,
) -> pd.DataFrame:
    """Per split and metric, the aggregate of the reference scored against itself; columns split, seed, metric,
    value."""
    from vcclib.metrics.evaluate import compute_metrics

    rows = []
    full_ctx = full_ctx or context(real, real, column, control)
    for i, seed in enumerate(split_seeds(base_seed, n_splits)):
        half_a, half_b = disjoint_halves(real, column, seed)
        ctx = context(half_b, half_a, column, control, control_source="pred")
        split_names = [n for n in names if n != "de_wilcoxon_lfc_nmae"]
        _, values = compute_metrics(ctx, split_names)
        for name, s in nan_skipping_values(values).items():
            rows.append((i, seed, name, float(s.mean()) if s.size else float("nan")))
        if "de_wilcoxon_lfc_nmae" in names:
            rows.append(
                (i, seed, "de_wilcoxon_lfc_nmae", _lfc_nmae_reference(full_ctx, half_a, half_b, column, control))
            )
    return pd.DataFrame(rows, columns=["split", "seed", "metric", "value"])


def score(model: dict, baseline: dict, replicate: dict) -> dict[str, float]:
    """s = (u − b)/(r − b) per scored metric (clamps as cell-eval2) and ``avg_score``, their mean.

    A metric whose scale is degenerate (r − b zero or not finite: baseline and replicate tie, or either is
    undefined) has no s: it is NaN here, where cell-eval2's ``score`` refuses the baseline.
    """
    out = {}
    for name in SCORED:
        if name not in model or name not in baseline or name not in replicate:
            continue
        u, b, r = model[name], baseline[name], replicate[name]
        if not np.isfinite(np.float64(r) - b) or np.float64(r) - b == 0:
            out[name] = float("nan")
            continue
        low, high = CLAMPS.get(name, (None, None))
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (np.float64(u) - b) / (np.float64(r) - b)
        if not np.isfinite(s):
            s = low if low is not None else (0.0 - b) / (r - b)  # unusable: the floor, or the worst value (0)
        if low is not None:
            s = max(s, low)
        if high is not None:
            s = min(s, high)
        out[name] = float(s)
    out["avg_score"] = float(np.mean([out[n] for n in SCORED if n in out])) if out else float("nan")
    return out
