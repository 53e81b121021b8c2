"""``evaluate`` for the raw-count ``vcc2026`` profile (called by :func:`vcclib.metrics.evaluate`)."""

from __future__ import annotations

from vcclib.metrics import inputs


def evaluate_counts(
    pred, real, column: str, control: str, names: list[str], *, score: bool = False, allow_fractional: bool = False
):
    """Validate a raw-count pair, compute ``names`` (vcc2026 metrics), optionally score against b and r.

    Aggregates skip NaN (cell-eval2 ``aggregate_metrics``). With ``score``, ``scores['vcc2026']`` holds
    s = (u − b)/(r − b) per scored metric and ``avg_score``; ``baseline_agg`` the baseline's aggregate; and
    ``anchor`` (attribute) the per-split replicate values.
    """
    from vcclib.metrics import vcc2026_score as vs
    from vcclib.metrics.evaluate import EvaluationResult, aggregate, compute_metrics

    inputs.validate_counts_pair(pred, real, column, control, allow_fractional=allow_fractional)
    ctx = vs.context(pred, real, column, control)
    import warnings

    from vcclib.metrics.attacks import SuspiciousSubmissionWarning, screen

    ctx.share_means()  # the screen's pseudobulks from the count sums the metrics use (one pass over X less)
    flags = screen(ctx.pred, ctx.real, scale="counts")
    for flag in flags:
        warnings.warn(flag, SuspiciousSubmissionWarning, stacklevel=3)
    frame, values = compute_metrics(ctx, names)
    ctx.notes[:0] = flags
    agg = aggregate(vs.nan_skipping_values(values), ctx.n_perts)
    uses_de = any(n.startswith("de_") for n in names)
    result = EvaluationResult(
        results=frame,
        agg=agg,
        profile="vcc2026",
        warnings=list(ctx.notes),
        de_real=ctx.de_real if uses_de else None,
        de_pred=ctx.de_pred if uses_de else None,
    )
    if score:
        base = vs.generic_baseline(real, column, control)
        base_ctx = vs.context(base, real, column, control)
        base_ctx.__dict__["de_real"] = ctx.de_real
        base_ctx.__dict__["jk_real"] = ctx.jk_real
        _, base_values = compute_metrics(base_ctx, names)
        result.baseline_agg = aggregate(vs.nan_skipping_values(base_values), base_ctx.n_perts)
        anchor = vs.replicate_anchor(real, column, control, [n for n in names if n in vs.SCORED], full_ctx=ctx)
        result.anchor = anchor
        means = lambda a: a.set_index("statistic").loc["mean"].to_dict()  # noqa: E731
        replicate = anchor.groupby("metric")["value"].mean().to_dict()
        result.scores["vcc2026"] = vs.score(means(agg), means(result.baseline_agg), replicate)
        result.scores["vcc2026_reference"] = {
            f"{k}_{n}": v[n]
            for n in replicate
            for k, v in (("baseline", means(result.baseline_agg)), ("replicate", replicate))
            if n in v
        }
    return result
