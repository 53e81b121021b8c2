"""Scoring against baselines: VCC 2025 (cell-eval ``_score.py``) and the calibrated (u − b)/(r − b) score."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vcclib.metrics.registry import REGISTRY


def _means(agg) -> dict[str, float]:
    """Metric → mean from an agg DataFrame (``statistic`` column), a Series or a dict."""
    if isinstance(agg, pd.DataFrame):
        row = agg.set_index("statistic").loc["mean"] if "statistic" in agg.columns else agg.mean()
        return {k: float(v) for k, v in row.items()}
    return {k: float(v) for k, v in dict(agg).items()}


def vcc2025_score(model_agg, baseline_agg) -> dict[str, float]:
    """VCC 2025 score of a model against a baseline, per metric and ``avg_score``.

    Metrics whose best value is 0 score ``1 − u/b``; those whose best value is 1 score ``(u − b)/(1 − b)``
    (u, b: means over perturbations); NaN → 0; each clipped at 0; ``avg_score`` is their mean. Metrics with no
    best value are skipped, as cell-eval's ``score_agg_metrics``.
    """
    u, b = _means(model_agg), _means(baseline_agg)
    scores = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for name in u:
            spec = REGISTRY.get(name)
            if spec is None or not spec.scored or name not in b:
                continue
            if spec.best_value == 0.0:
                s = 1.0 - np.float64(u[name]) / np.float64(b[name])
            else:
                s = (np.float64(u[name]) - b[name]) / (1.0 - np.float64(b[name]))
            scores[name] = float(max(0.0 if np.isnan(s) else s, 0.0))
    # cell-eval lists best-value-0 metrics first, then best-value-1; the average does not depend on order
    scores["avg_score"] = float(np.mean(list(scores.values()))) if scores else float("nan")
    return scores


def calibrated_score(model, baseline, reference):
    """(u − b)/(r − b): 0 at the MIN baseline, 1 at the MAX reference (VCC 2026 style, no clipping).

    Works on floats, arrays, Series, or dicts of metric → value (keys common to all three).
    """
    if isinstance(model, dict):
        keys = [k for k in model if k in baseline and k in reference]
        return {k: calibrated_score(model[k], baseline[k], reference[k]) for k in keys}
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (np.asarray(model, dtype=float) - np.asarray(baseline, dtype=float)) / (
            np.asarray(reference, dtype=float) - np.asarray(baseline, dtype=float)
        )
    if isinstance(model, pd.Series):
        return pd.Series(out, index=model.index)
    return float(out) if np.ndim(out) == 0 else out
