"""Modality × modality: what one measurement of a gene's perturbation tells about another.

For every ordered pair (A, B) of modalities (:mod:`.modalities`), over the genes both measured:

* ``value``: Spearman ρ of A's and B's quantities (``statistic`` = ``spearman``), ``n`` genes;
* ``ci_low``/``ci_high``: percentile bootstrap interval over genes (``n_boot`` resamples, ranks recomputed);
* ``p_perm``: two-sided permutation p (B shuffled ``n_perm`` times; (1 + #{|ρ_perm| ≥ |ρ|}) / (1 + n_perm));
* ``unique_gain``: what A tells about B *beyond the best other modality* C (the one with the largest |ρ| with B
  among those measured on at least ``min_overlap`` genes shared by A, B and C, and of neither A's nor B's group):
  the partial Spearman correlation ρ(A, B | C), ``given`` = C. NaN when no such C exists.

Pairs sharing fewer than ``min_overlap`` genes are listed with their ``n`` and NaN values; ``small_overlap`` marks
those under ``small`` genes, where an interval is wide whatever the truth; ``same_source`` marks two quantities of
the same measurements (one group), which are kept but not ranked as links.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from vcclib.analyses.information.modalities import MODALITIES
from vcclib.memo import memoised

COLUMNS = (
    "source",
    "target",
    "quantity_source",
    "quantity_target",
    "n",
    "statistic",
    "value",
    "ci_low",
    "ci_high",
    "p_perm",
    "unique_gain",
)


# --------------------------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------------------------


def _corr_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Pearson r of two (m × n) arrays."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


def spearman_with_uncertainty(
    a: np.ndarray, b: np.ndarray, n_boot: int = 500, n_perm: int = 500, seed: int = 0, exact_up_to: int = 2000
) -> dict[str, float]:
    """Spearman ρ, percentile bootstrap interval and permutation p.

    Bootstrap resamples are re-ranked when ``n ≤ exact_up_to``; above, the original ranks are resampled (the
    difference is of order 1/n, far below the interval's width there).
    """
    rng = np.random.default_rng(seed)
    ra, rb = rankdata(a), rankdata(b)
    rho = float(_corr_rows(ra[None], rb[None])[0])
    n = len(a)
    index = rng.integers(0, n, size=(n_boot, n))
    if n <= exact_up_to:
        boot = _corr_rows(rankdata(a[index], axis=1), rankdata(b[index], axis=1))
    else:
        boot = _corr_rows(ra[index], rb[index])
    boot = boot[np.isfinite(boot)]
    za, zb = (ra - ra.mean()) / (ra.std() or 1.0), (rb - rb.mean()) / (rb.std() or 1.0)
    perm = (za[None, :] * rng.permuted(np.tile(zb, (n_perm, 1)), axis=1)).mean(axis=1)
    p = (1 + np.sum(np.abs(perm) >= abs(rho) - 1e-12)) / (1 + n_perm) if np.isfinite(rho) else np.nan
    low, high = np.quantile(boot, [0.025, 0.975]) if boot.size else (np.nan, np.nan)
    return {"value": rho, "ci_low": float(low), "ci_high": float(high), "p_perm": float(p)}


def partial_spearman(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    """ρ(A, B | C) on ranks: the correlation of A's and B's rank residuals after regressing out C's ranks."""
    ra, rb, rc = rankdata(a), rankdata(b), rankdata(c)
    design = np.column_stack([np.ones_like(rc), rc])

    def residual(y):
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        return y - design @ coef

    r = _corr_rows(residual(ra)[None], residual(rb)[None])[0]
    return float(r)


def _group(name: str) -> str:
    return MODALITIES[name].source_group if name in MODALITIES else name


@memoised("information.modality_matrix", ("vcclib.analyses.information.matrix",))
def modality_matrix(
    quantities: dict[str, pd.Series],
    min_overlap: int = 10,
    small: int = 30,
    n_boot: int = 500,
    n_perm: int = 500,
    seed: int = 0,
) -> pd.DataFrame:
    """The ``modality_matrix.csv`` table (see the module docstring), one row per ordered pair of modalities.

    ρ, its interval and p are symmetric, so each unordered pair is computed once (seeded by its position) and
    written in both directions; ``unique_gain`` is directional. ``same_source`` marks pairs of one group (two
    quantities of the same measurements); the conditioning modality of ``unique_gain`` is never of the source's
    or the target's group.
    """
    names = list(quantities)
    values = pd.concat([quantities[m].rename(m) for m in names], axis=1)  # genes × modalities, NaN: absent
    present = values.notna().to_numpy()
    column = {m: i for i, m in enumerate(names)}
    stats: dict[tuple[str, str], dict] = {}
    for i, source in enumerate(names):
        for j, target in enumerate(names[i + 1 :], start=i + 1):
            shared = present[:, i] & present[:, j]
            a = values[source].to_numpy()[shared]
            b = values[target].to_numpy()[shared]
            row = {"n": int(shared.sum()), "value": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_perm": np.nan}
            if shared.sum() >= min_overlap and np.ptp(a) > 0 and np.ptp(b) > 0:
                row.update(spearman_with_uncertainty(a, b, n_boot, n_perm, seed=seed + i * len(names) + j))
            stats[(source, target)] = stats[(target, source)] = row
    rows = [
        {"source": s, "target": t, "statistic": "spearman", **stats[(s, t)]} for s in names for t in names if s != t
    ]
    table = pd.DataFrame(rows)
    gains, given = [], []
    for row in table.itertuples():
        pair = present[:, column[row.source]] & present[:, column[row.target]]
        groups = {_group(row.source), _group(row.target)}
        best, best_c = np.nan, ""
        for other in names:
            if other in (row.source, row.target) or _group(other) in groups:
                continue
            strength = abs(stats[(other, row.target)]["value"])
            if not np.isfinite(strength) or (pair & present[:, column[other]]).sum() < min_overlap:
                continue
            if not np.isfinite(best) or strength > best:
                best, best_c = strength, other
        if best_c and np.isfinite(row.value):
            shared = pair & present[:, column[best_c]]
            gains.append(partial_spearman(*(values[m].to_numpy()[shared] for m in (row.source, row.target, best_c))))
        else:
            gains.append(np.nan)
        given.append(best_c)
    table["unique_gain"] = gains
    table["given"] = given
    table["small_overlap"] = table["n"] < small
    table["same_source"] = [_group(a) == _group(b) for a, b in zip(table["source"], table["target"])]
    table["quantity_source"] = table["source"].map(lambda m: MODALITIES[m].quantity if m in MODALITIES else m)
    table["quantity_target"] = table["target"].map(lambda m: MODALITIES[m].quantity if m in MODALITIES else m)
    return table[[*COLUMNS, "given", "small_overlap", "same_source"]]


def coverage(quantities: dict[str, pd.Series]) -> pd.DataFrame:
    """Genes per modality and genes measured by exactly this one (what only it can say anything about)."""
    counts = pd.Series([g for q in quantities.values() for g in q.index]).value_counts()
    rows = []
    for name, series in quantities.items():
        spec = MODALITIES.get(name)
        rows.append(
            {
                "modality": name,
                "quantity": spec.quantity if spec else "",
                "kind": spec.kind if spec else "",
                "context": spec.context if spec else "",
                "genes": int(len(series)),
                "only_here": int((counts.reindex(series.index) == 1).sum()),
            }
        )
    return pd.DataFrame(rows)


def ranked_links(matrix: pd.DataFrame, min_n: int = 30) -> pd.DataFrame:
    """Pairs ranked by |ρ| (each unordered pair once): n ≥ ``min_n``, permutation p < 0.05, not ``same_source``."""
    keep = (matrix["n"] >= min_n) & (matrix["p_perm"] < 0.05)
    if "same_source" in matrix:
        keep &= ~matrix["same_source"].astype(bool)
    table = matrix[keep].copy()
    table["pair"] = [tuple(sorted(p)) for p in zip(table["source"], table["target"])]
    table = table.drop_duplicates("pair").drop(columns="pair")
    return table.reindex(table["value"].abs().sort_values(ascending=False).index).reset_index(drop=True)


def best_partners(matrix: pd.DataFrame, min_n: int = 30) -> pd.DataFrame:
    """For each modality, the other modality (of another group) it is most strongly linked to.

    Among pairs with n ≥ ``min_n`` and permutation p < 0.05; a modality without such a pair is absent.
    """
    keep = (matrix["n"] >= min_n) & (matrix["p_perm"] < 0.05)
    if "same_source" in matrix:
        keep &= ~matrix["same_source"].astype(bool)
    table = matrix[keep].copy()
    if table.empty:
        return table[["source", "target", "value", "ci_low", "ci_high", "n", "p_perm"]]
    table["strength"] = table["value"].abs()
    best = table.loc[table.groupby("source")["strength"].idxmax()]
    return (
        best[["source", "target", "value", "ci_low", "ci_high", "n", "p_perm"]]
        .sort_values("value", key=np.abs, ascending=False)
        .reset_index(drop=True)
    )
