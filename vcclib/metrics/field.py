"""Metrics of the other papers of the field, each in its own convention (see docs/metrics.md).

GEARS (``gears/inference.py``), PerturBench (``analysis/benchmarks/metrics.py``), Ahlmann-Eltze et al.
(linear_perturbation_prediction-Paper), Systema (``evaluation/eval_utils.py``, ``centroid_accuracy.py``) and
Diversity by Design (``analyses/common.py``). All are computed on mean-of-log1p pseudobulks; where a paper's
Δ reference is the control, it is the **real** control (those papers have no predicted control cells).
"""

from __future__ import annotations

import numpy as np

from vcclib.metrics.expression import rowwise_pearson
from vcclib.metrics.registry import register

PB = "mean of log1p over cells"
REAL_CTRL = "real control pseudobulk"


def _take(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return np.take_along_axis(a, idx, axis=1)


# GEARS --------------------------------------------------------------------------------------------------
def _gears(ctx, kind: str, de: bool = False):
    pred, real, ctrl = ctx.bulk_pred, ctx.bulk_real, np.broadcast_to(ctx.ctrl_real, ctx.bulk_real.shape)
    if de:
        idx = ctx.top_de_genes(20)
        pred, real, ctrl = _take(pred, idx), _take(real, idx), _take(ctrl, idx)
    if kind == "mse":
        return ctx.series(((pred - real) ** 2).mean(1))
    if kind == "pearson":
        return ctx.series(rowwise_pearson(pred, real))
    if kind == "pearson_delta":
        return ctx.series(rowwise_pearson(pred - ctrl, real - ctrl))
    if kind == "direction":
        return ctx.series((np.sign(pred - ctrl) == np.sign(real - ctrl)).mean(1))
    raise ValueError(kind)


_GEARS_SRC = "GEARS gears/inference.py::compute_metrics, deeper_analysis"
for _kind, _best, _desc in (
    ("mse", 0.0, "MSE of predicted and real mean expression"),
    ("pearson", 1.0, "Pearson of predicted and real mean expression"),
    ("pearson_delta", 1.0, "Pearson of (pred − ctrl) and (real − ctrl)"),
    ("direction", 1.0, "fraction of genes whose change from control has the right sign"),
):
    for _de in (False, True):
        _name = {"direction": "gears_frac_correct_direction"}.get(_kind, f"gears_{_kind}")
        _name += ("_20" if _kind == "direction" else "_de") if _de else ("_all" if _kind == "direction" else "")
        register(
            _name,
            _gears,
            family="gears",
            best_value=_best,
            source=_GEARS_SRC,
            kwargs={"kind": _kind, "de": _de},
            conventions={
                "gene_space": "top-20 DE genes (scanpy t-test vs control, |score|)" if _de else "all genes",
                "pseudobulk": PB,
                "reference": REAL_CTRL,
            },
            description=f"GEARS: {_desc}" + (" on the top-20 DE genes." if _de else " on all genes."),
        )


# PerturBench ---------------------------------------------------------------------------------------------
def _logfc(ctx, bulk):
    return np.log2(bulk + 0.1) - np.log2(ctx.ctrl_real + 0.1)


def _cosine(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


def _pb_rmse(ctx):
    return ctx.series(np.sqrt(((ctx.bulk_pred - ctx.bulk_real) ** 2).mean(1)))


def _pb_cosine_logfc(ctx):
    return ctx.series(_cosine(_logfc(ctx, ctx.bulk_pred), _logfc(ctx, ctx.bulk_real)))


def _pb_rank(ctx, kind: str = "rmse"):
    """rank of pred_j among all predictions for reference j, / N (0 best; transpose of PDS)."""
    from scipy.spatial.distance import cdist

    if kind == "rmse":
        M = np.sqrt(cdist(ctx.bulk_pred, ctx.bulk_real, "sqeuclidean") / ctx.bulk_real.shape[1])
        own = np.diag(M)[None, :]
        rank = (M < own).sum(0)
    else:
        M = 1.0 - cdist(_logfc(ctx, ctx.bulk_pred), _logfc(ctx, ctx.bulk_real), "cosine")
        own = np.diag(M)[None, :]
        rank = (M > own).sum(0)
    return ctx.series(rank / ctx.n_perts)


_PB_SRC = "perturbench analysis/benchmarks/metrics.py, aggregation.py"
register(
    "perturbench_rmse_average",
    _pb_rmse,
    family="perturbench",
    best_value=0.0,
    source=_PB_SRC,
    conventions={"gene_space": "all genes", "pseudobulk": PB, "reference": "none"},
    description="PerturBench rmse_average: RMSE of predicted and real pseudobulks.",
)
register(
    "perturbench_cosine_logfc",
    _pb_cosine_logfc,
    family="perturbench",
    best_value=1.0,
    source=_PB_SRC,
    conventions={"gene_space": "all genes", "pseudobulk": "log2(mean + 0.1)", "reference": REAL_CTRL},
    description="PerturBench cosine_logfc: cosine of log2(mean+0.1) fold changes against control.",
)
register(
    "perturbench_rmse_rank",
    _pb_rank,
    family="perturbench",
    best_value=0.0,
    source=_PB_SRC,
    min_perturbations=3,
    kwargs={"kind": "rmse"},
    conventions={"gene_space": "all genes", "pseudobulk": PB, "reference": "none"},
    description="PerturBench rmse_rank: share of predictions closer (RMSE) to the real profile than its own.",
)
register(
    "perturbench_cosine_rank",
    _pb_rank,
    family="perturbench",
    best_value=0.0,
    source=_PB_SRC,
    min_perturbations=3,
    kwargs={"kind": "cosine"},
    conventions={"gene_space": "all genes", "pseudobulk": "log2(mean + 0.1)", "reference": REAL_CTRL},
    description="PerturBench cosine_rank: share of predictions more cosine-similar (logFC) than its own.",
)


# Ahlmann-Eltze et al. ------------------------------------------------------------------------------------
def _ae(ctx, kind: str = "l2", n_genes: int = 1000):
    top = np.argsort(-ctx.ctrl_real, kind="stable")[: min(n_genes, ctx.genes.size)]
    pred, real, ctrl = ctx.bulk_pred[:, top], ctx.bulk_real[:, top], ctx.ctrl_real[top]
    if kind == "l2":
        return ctx.series(np.sqrt(((pred - real) ** 2).sum(1)))
    return ctx.series(rowwise_pearson(pred - ctrl, real - ctrl))


_AE_SRC = "const-ae/linear_perturbation_prediction-Paper"
_AE_CONV = {"gene_space": "1,000 genes most expressed in real control", "pseudobulk": PB, "reference": REAL_CTRL}
register(
    "ae_l2_top1000",
    _ae,
    family="ahlmann-eltze",
    best_value=0.0,
    source=_AE_SRC,
    kwargs={"kind": "l2"},
    conventions=_AE_CONV,
    description="Ahlmann-Eltze L2 distance of pseudobulks on the top-1,000 control genes.",
)
register(
    "ae_pearson_delta_top1000",
    _ae,
    family="ahlmann-eltze",
    best_value=1.0,
    source=_AE_SRC,
    kwargs={"kind": "pearson"},
    conventions=_AE_CONV,
    description="Ahlmann-Eltze PearsonΔ (vs control) on the top-1,000 control genes.",
)


# Systema -------------------------------------------------------------------------------------------------
def _systema_pearson(ctx, de: bool = False):
    ref = ctx.real_pert_mean
    pred, real = ctx.bulk_pred - ref, ctx.bulk_real - ref
    if not de:
        return ctx.series(rowwise_pearson(pred, real))
    # top-20 DE genes among non-dropout genes (expressed in the perturbation's real cells or control)
    scores = np.abs(ctx.ttest_real).copy()
    scores[(ctx.bulk_real <= 0) & (ctx.ctrl_real[None, :] <= 0)] = -1.0
    idx = np.argsort(-scores, axis=1, kind="stable")[:, :20]
    return ctx.series(rowwise_pearson(_take(pred, idx), _take(real, idx)))


def _centroid_accuracy(ctx):
    from scipy.spatial.distance import cdist

    D = cdist(ctx.bulk_pred, ctx.bulk_real)
    own = np.diag(D)[:, None]
    n = ctx.n_perts
    return ctx.series((D > own).sum(1) / max(n - 1, 1))


def _systematic_variation(ctx):
    a = ctx.bulk_real - ctx.ctrl_real
    b = np.broadcast_to(ctx.real_pert_mean - ctx.ctrl_real, a.shape)
    return ctx.series(_cosine(a, b))


_SY_SRC = "mlbio-epfl/systema evaluation/eval_utils.py, centroid_accuracy.py"
_SY_REF = "mean of the real perturbation pseudobulks (perturbed reference)"
register(
    "systema_pearson_delta_pert",
    _systema_pearson,
    family="systema",
    best_value=1.0,
    source=_SY_SRC,
    min_perturbations=3,
    conventions={"gene_space": "all genes", "pseudobulk": PB, "reference": _SY_REF},
    description="Systema PearsonΔ against the perturbed reference.",
)
register(
    "systema_pearson_delta_pert_de20",
    _systema_pearson,
    family="systema",
    best_value=1.0,
    source=_SY_SRC,
    min_perturbations=3,
    kwargs={"de": True},
    conventions={
        "gene_space": "top-20 non-dropout DE genes (t-test vs control)",
        "pseudobulk": PB,
        "reference": _SY_REF,
    },
    description="Systema PearsonΔ against the perturbed reference on the top-20 DE genes.",
)
register(
    "systema_centroid_accuracy",
    _centroid_accuracy,
    family="systema",
    best_value=1.0,
    source=_SY_SRC,
    min_perturbations=3,
    conventions={"gene_space": "all genes", "pseudobulk": PB, "reference": "none (centroids)"},
    description="Share of other real centroids farther from the prediction than the true centroid.",
)
register(
    "systematic_variation",
    _systematic_variation,
    family="systema",
    best_value=None,
    source=_SY_SRC,
    min_perturbations=3,
    conventions={"gene_space": "all genes", "pseudobulk": PB, "reference": REAL_CTRL},
    description="cos(μ_p − μ_ctrl, μ̄_pert − μ_ctrl) of the real data (descriptive).",
)


# Diversity by Design -------------------------------------------------------------------------------------
def _dbd_weights(ctx) -> np.ndarray:
    if "_dbd_w" not in ctx.__dict__:
        from vcclib.metrics.de import ttest_scores

        names, scores = ttest_scores(ctx.real, reference="rest", overestim_var=True)
        s = np.abs(scores[np.searchsorted(names, ctx.perts)])
        lo, hi = s.min(1, keepdims=True), s.max(1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.where(hi > lo, (s - lo) / (hi - lo), 1.0) ** 2
        w /= w.sum(1, keepdims=True)
        ctx.__dict__["_dbd_w"] = w
    return ctx.__dict__["_dbd_w"]


def _dbd(ctx, kind: str = "wmse"):
    w = _dbd_weights(ctx)
    if kind == "wmse":
        return ctx.series((w * (ctx.bulk_pred - ctx.bulk_real) ** 2).sum(1))
    ref = ctx.real_pert_mean
    t, p = ctx.bulk_real - ref, ctx.bulk_pred - ref
    tbar = (w * t).sum(1, keepdims=True)
    ss_res = (w * (t - p) ** 2).sum(1)
    ss_tot = (w * (t - tbar) ** 2).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return ctx.series(1.0 - ss_res / ss_tot)


_DBD_SRC = "shiftbioscience/diversity_by_design analyses/common.py"
_DBD_CONV = {
    "gene_space": "all genes, weighted by (min-max |t|)² of t-test_overestim_var vs rest",
    "pseudobulk": PB,
    "reference": "mean of the real perturbation pseudobulks",
}
register(
    "dbd_wmse",
    _dbd,
    family="diversity-by-design",
    best_value=0.0,
    source=_DBD_SRC,
    kwargs={"kind": "wmse"},
    min_perturbations=3,
    conventions=_DBD_CONV,
    description="Weighted MSE of pseudobulks (Diversity by Design).",
)
register(
    "dbd_r2w_delta",
    _dbd,
    family="diversity-by-design",
    best_value=1.0,
    source=_DBD_SRC,
    min_perturbations=3,
    kwargs={"kind": "r2"},
    conventions=_DBD_CONV,
    description="Weighted R² of Δ against the mean perturbation profile (Diversity by Design).",
)
