"""The VCC 2026 suite (raw counts) for the published-models chapter, whose data and models speak log1p.

The chapter's data (PerturBench's Norman 2019 / McFaline 2024 files) hold ``log1p(count · u)`` per cell, with
one scale ``u`` per cell (the normalisation's target over the cell's library size). The counts of its 500 genes
are therefore recovered exactly: :func:`count_units` finds each cell's ``u`` (the smallest non-zero
``expm1(x)`` divided by the smallest whole k that makes every ``expm1(x)/u`` a whole number) and refuses data where no such unit exists.

A model predicts log1p expression; the suite reads counts. :func:`predicted_counts` draws them as
``Poisson(expm1(x̂) / u)`` with ``u`` the unit of a control cell of the same covariate drawn at random (seeded):
the library sizes a model could know from its training controls, and no information about the held-out cells.
The technical duplicate (MAX) is made of real cells, so its counts are recovered, not drawn; the suite's own
references (the generic-response baseline b and the replicate anchor r, both from the real cells) place every
model: s = (u − b)/(r − b), 0 at the baseline and 1 at the replicate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from vcclib.metrics.inputs import InputError

#: the smallest non-zero value is tried as 1, 2, …, this many counts (a deep cell may have no gene at one count)
MAX_SMALLEST_COUNT = 16
#: ``expm1(x)/u`` closer than this to a whole number counts as one (float32 log1p of counts up to ~1e5)
INTEGRAL_TOLERANCE = 1e-2


def _dense(X) -> np.ndarray:
    return np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64)


def count_units(X) -> np.ndarray:
    """Per cell, the value ``u`` with ``expm1(x) = count · u``; raises when the data are not scaled counts.

    Raises
    ------
    InputError
        A cell whose values are not whole multiples of one unit (not log1p of scaled counts), or an empty cell.
    """
    values = np.expm1(_dense(X))
    units = np.empty(values.shape[0])
    for i, row in enumerate(values):
        positive = row[row > 0]
        if positive.size == 0:
            raise InputError(f"cell {i} has no non-zero value: its count scale cannot be recovered")
        for smallest in range(1, MAX_SMALLEST_COUNT + 1):
            unit = positive.min() / smallest
            ratio = positive / unit
            if np.abs(ratio - np.round(ratio)).max() < INTEGRAL_TOLERANCE:
                break
        else:
            raise InputError(
                f"cell {i}: expm1 of its values are not whole multiples of one unit, so they are not log1p of "
                "scaled counts and the counts cannot be recovered"
            )
        units[i] = unit
    return units


def recovered_counts(adata, units: np.ndarray | None = None):
    """``adata`` with ``X`` = its recovered integer counts (float32 CSR), ``uns['vcc']['x_scale'] = 'counts'``."""
    units = count_units(adata.X) if units is None else units
    counts = np.round(np.expm1(_dense(adata.X)) / units[:, None])
    return _with_counts(adata, counts)


def predicted_counts(
    prediction, real, column: str | None, control: str, *, seed: int, control_units: np.ndarray | None = None
):
    """Counts drawn from a log1p prediction: ``Poisson(expm1(x̂)/u)``, ``u`` a random same-covariate control unit.

    The prediction's control rows are real cells: their counts are recovered (:func:`recovered_counts`).
    ``control_units``: :func:`count_units` of ``real``'s control cells, when the caller has them already.
    """
    rng = np.random.default_rng(seed)
    is_control = (prediction.obs["perturbation"].astype(str) == control).to_numpy()
    real_control = (real.obs["perturbation"].astype(str) == control).to_numpy()
    control_units = count_units(real.X[real_control]) if control_units is None else control_units
    control_cov = (
        np.zeros(control_units.size, dtype=object)
        if column is None
        else real.obs.loc[real_control, column].astype(str).to_numpy()
    )
    pred_cov = (
        np.zeros(prediction.n_obs, dtype=object) if column is None else prediction.obs[column].astype(str).to_numpy()
    )
    expected = np.expm1(np.clip(_dense(prediction.X), 0, None))
    counts = np.empty_like(expected)
    if is_control.any():
        counts[is_control] = np.round(expected[is_control] / count_units(prediction.X[is_control])[:, None])
    for value in np.unique(pred_cov[~is_control]):
        rows = np.flatnonzero(~is_control & (pred_cov == value))
        pool = control_units[control_cov == value]
        if pool.size == 0:
            raise InputError(f"no real control cell for covariate {value!r}: no library size to draw counts with")
        units = rng.choice(pool, size=rows.size, replace=True)
        counts[rows] = rng.poisson(expected[rows] / units[:, None])
    return _with_counts(prediction, counts)


def _with_counts(adata, counts: np.ndarray):
    out = adata.copy()
    out.X = sp.csr_matrix(counts.astype(np.float32))
    out.uns["vcc"] = {**dict(adata.uns.get("vcc", {})), "x_scale": "counts"}
    return out


def suite_references(real_counts, control: str) -> dict:
    """The suite's generic-response baseline aggregate (b) and mean replicate anchor (r) of one covariate's cells."""
    from vcclib.metrics import vcc2026_score as vs
    from vcclib.metrics.evaluate import aggregate, compute_metrics

    names = list(vs.SCORED)
    full = vs.context(real_counts, real_counts, "perturbation", control)
    base_ctx = vs.context(
        vs.generic_baseline(real_counts, "perturbation", control), real_counts, "perturbation", control
    )
    base_ctx.__dict__["de_real"] = full.de_real
    base_ctx.__dict__["jk_real"] = full.jk_real
    _, base_values = compute_metrics(base_ctx, names)
    baseline = aggregate(vs.nan_skipping_values(base_values), base_ctx.n_perts).set_index("statistic").loc["mean"]
    anchor = vs.replicate_anchor(real_counts, "perturbation", control, names, full_ctx=full)
    return {"baseline": baseline.to_dict(), "replicate": anchor.groupby("metric")["value"].mean().to_dict()}


def suite_scores(pred_counts, real_counts, control: str, references: dict) -> pd.DataFrame:
    """One covariate's six metrics (u), with b, r and s = (u − b)/(r − b); the last row is ``avg_score``."""
    from vcclib.metrics import vcc2026_score as vs
    from vcclib.metrics.vcc2026_run import evaluate_counts

    result = evaluate_counts(pred_counts, real_counts, "perturbation", control, list(vs.SCORED))
    model = result.agg.set_index("statistic").loc["mean"].to_dict()
    scores = vs.score(model, references["baseline"], references["replicate"])
    rows = [
        {
            "metric": name,
            "value": float(model[name]),
            "baseline": float(references["baseline"][name]),
            "replicate": float(references["replicate"][name]),
            "score": scores[name],
        }
        for name in vs.SCORED
        if name in scores
    ]
    rows.append(
        {"metric": "avg_score", "value": np.nan, "baseline": 0.0, "replicate": 1.0, "score": scores["avg_score"]}
    )
    return pd.DataFrame(rows)
