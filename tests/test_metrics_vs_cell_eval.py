"""Per-perturbation agreement with cell-eval 0.8.2 (the pinned test dependency) on synthetic inputs.

The inputs (tests/metrics_fixtures.py) are synthetic on purpose: small, seeded, with swapped labels, an all-zero
gene, a constant gene, ties everywhere (log1p of small integers), a perturbation with no DE genes, in sparse
and dense form.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest
from metrics_fixtures import CONTROL, make_pair

from vcclib.metrics import evaluate
from vcclib.metrics.de import differential_expression

cell_eval = pytest.importorskip("cell_eval")

SKIP_EXACT = {"clustering_agreement"}  # Leiden is randomised in igraph; compared loosely below


def _cell_eval(pred, real, tmp_path, profile="full"):
    logging.getLogger("cell_eval").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = cell_eval.MetricsEvaluator(
            adata_pred=pred.copy(),
            adata_real=real.copy(),
            control_pert=CONTROL,
            pert_col="perturbation",
            num_threads=1,
            outdir=str(tmp_path / "ce"),
        )
        results, agg = ev.compute(profile=profile, write_csv=False, break_on_error=True)
    return ev, results.to_pandas().set_index("perturbation").sort_index(), agg.to_pandas()


def _compare(ours: pd.DataFrame, theirs: pd.DataFrame, atol=1e-6, min_common=20):
    ours = ours.set_index("perturbation").sort_index()
    common = [c for c in theirs.columns if c in ours.columns and c not in SKIP_EXACT]
    assert len(common) >= min_common
    assert list(ours.index) == list(theirs.index)
    bad = {}
    for c in common:
        a, b = ours[c].to_numpy(float), theirs[c].to_numpy(float)
        same_nan = np.isnan(a) == np.isnan(b)
        close = np.isclose(a, b, atol=atol, rtol=0, equal_nan=True)
        if not (same_nan.all() and close.all()):
            bad[c] = (a.tolist(), b.tolist())
    assert not bad, bad


@pytest.mark.parametrize("sparse", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_full_profile_matches_cell_eval(sparse, tmp_path):
    pred, real = make_pair(sparse=sparse)
    ev, theirs, agg = _cell_eval(pred, real, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = evaluate(pred, real, control_label=CONTROL, profile="cell-eval")
    _compare(ours.results, theirs)
    # aggregate (polars describe) of the metrics both compute
    theirs_mean = agg.set_index("statistic").loc["mean"]
    ours_mean = ours.agg.set_index("statistic").loc["mean"]
    for c in theirs_mean.index:
        if c in ours_mean.index and c not in SKIP_EXACT:
            assert np.isclose(ours_mean[c], float(theirs_mean[c]), atol=1e-6, equal_nan=True), c
    assert 0 <= ours.results["clustering_agreement"].iloc[0] <= 1
    # DE tables: p-values, FDR, fold changes
    for mode, adata in (("real", real), ("pred", pred)):
        de_theirs = getattr(ev.de_comparison, mode).data.to_pandas()
        de_ours = differential_expression(adata, "perturbation", CONTROL)
        m = de_ours.merge(de_theirs, on=["target", "feature"], suffixes=("", "_ce"))
        assert len(m) == len(de_ours) == len(de_theirs)
        for col in ("p_value", "fdr", "log2_fold_change"):
            a = m[col].to_numpy(np.float32).astype(float)  # cell-eval stores Float32
            b = m[f"{col}_ce"].to_numpy(float)
            assert np.allclose(a, b, atol=1e-6, rtol=0, equal_nan=True), col
        # p-values to cell-eval's Float32 bits (atol alone would accept any two p-values below 1e-6)
        assert np.array_equal(m["p_value"].to_numpy(np.float32), m["p_value_ce"].to_numpy(np.float32)), mode


def test_no_significant_genes_anywhere(tmp_path):
    """A prediction equal to control everywhere: no predicted DE genes, so every overlap is 0."""
    pred, real = make_pair(sparse=True, n_perts=4, n_genes=30)
    ctrl_rows = np.flatnonzero(pred.obs["perturbation"] == CONTROL)
    rng = np.random.default_rng(3)
    pred.X = pred.X[rng.choice(ctrl_rows, pred.n_obs)]
    _, theirs, _ = _cell_eval(pred, real, tmp_path, profile="de")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = evaluate(pred, real, control_label=CONTROL, profile="de")
    _compare(ours.results, theirs, min_common=15)


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_edistance_adversarial_inputs_bit_exact(sparse, dtype, tmp_path):
    """Near-duplicate cells, a two-cell group, a constant gene and a far perturbation: pearson_edistance equals
    cell-eval's to float64 precision (it reproduces scikit-learn's arithmetic, float32 rounding included)."""
    from metrics_fixtures import make_adversarial

    real, pred = make_adversarial(0, sparse=sparse, dtype=dtype), make_adversarial(5, sparse=sparse, dtype=dtype)
    _, theirs, _ = _cell_eval(pred, real, tmp_path, profile="anndata")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = evaluate(pred, real, control_label=CONTROL, metrics=["pearson_edistance", "mae", "pearson_delta"])
    a = ours.results.set_index("perturbation").sort_index()
    assert abs(a["pearson_edistance"].iloc[0] - theirs["pearson_edistance"].iloc[0]) <= 1e-15
    for c in ("mae", "pearson_delta"):
        assert np.allclose(a[c], theirs[c], atol=1e-6, rtol=0), c  # pseudobulks: cell-eval sums float32
