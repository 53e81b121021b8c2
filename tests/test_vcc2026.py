"""The vcc2026 profile against cell-eval2 0.20.0 (dev dependency), per perturbation and aggregate, and its
input validation (synthetic raw counts from tests/metrics_fixtures.py: ties, an empty DE set, perturbations
below the lfc_nmae gate size, knocked-down target genes, an all-zero gene; a zero-norm predicted effect).

cell-eval2's first call in a process spends about 45 s compiling its numba kernels; the comparisons share one
module-scoped warm-up, and the larger scenarios are marked ``slow``.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from metrics_fixtures import CONTROL, make_counts

from vcclib.errors import VccError
from vcclib.metrics import InputError, evaluate

ATOL = 1e-6


def _ours(pred, real, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return evaluate(pred, real, control_label=CONTROL, profile="vcc2026", **kw)


@pytest.fixture(scope="module")
def ce2():
    cell_eval2 = pytest.importorskip("cell_eval2")
    logging.getLogger("cell_eval2").setLevel(logging.ERROR)
    cfg = dataclasses.replace(cell_eval2.EvalConfig.from_preset("vcc2026"), pert_col="perturbation", num_threads=1)
    return cell_eval2, cfg


def _theirs(ce2, pred, real):
    cell_eval2, cfg = ce2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = cell_eval2.compute_metrics(pred.copy(), real.copy(), config=cfg)
        agg = cell_eval2.aggregate_metrics(df, metrics=None).to_pandas().set_index("metric")["mean"]
    return df.to_pandas().pivot(index="perturbation", columns="metric", values="value"), agg


def _assert_parity(ours, theirs, agg):
    mine = ours.results.set_index("perturbation")
    compared = 0
    for column in theirs.columns:
        if column not in mine.columns:
            continue
        a = mine[column].reindex(theirs.index).to_numpy(float)
        b = theirs[column].to_numpy(float)
        assert np.array_equal(np.isnan(a), np.isnan(b)), column
        assert np.allclose(a, b, atol=ATOL, rtol=0, equal_nan=True), (column, a, b)
        compared += 1
    assert compared == 8  # five per-perturbation metrics and three expression components
    means = ours.agg.set_index("statistic").loc["mean"]
    for name in (
        "pds_cosine",
        "expr_mse_unbiased_capped_norm",
        "de_wilcoxon_direction_fidelity_yield_raw",
        "de_wilcoxon_direction_reach_raw",
        "de_wilcoxon_sig_jaccard",
        "de_wilcoxon_lfc_nmae",
    ):
        assert np.isclose(means[name], agg[name], atol=ATOL, rtol=0, equal_nan=True), (name, means[name], agg[name])


def _zero_norm_pred():
    """A prediction whose G3 cells are the reference control cells: a zero-norm effect (PDS ties at 1.0)."""
    real = make_counts(seed=0)
    pred = make_counts(seed=7)
    labels = pred.obs["perturbation"].astype(str).to_numpy()
    ctrl = real[real.obs["perturbation"] == CONTROL].X
    rows = np.flatnonzero(labels == "G3")
    X = pred.X.tolil()
    X[rows] = ctrl[: rows.size]
    pred.X = sp.csr_matrix(X)
    return pred, real


def test_parity_edge_cases(ce2):
    """Ties, an empty DE set (G1), gate sizes under 10, a zero-norm effect, knocked-down targets."""
    pred, real = _zero_norm_pred()
    ours = _ours(pred, real)
    theirs, agg = _theirs(ce2, pred, real)
    _assert_parity(ours, theirs, agg)
    lfc = ours.results.set_index("perturbation")["de_wilcoxon_lfc_nmae"]
    assert lfc.isna().any() and lfc.notna().any()  # the gate-size rule drops some perturbations, not all
    assert ours.results.set_index("perturbation").loc["G1", "de_wilcoxon_sig_jaccard"] >= 0


@pytest.mark.slow
@pytest.mark.parametrize("sparse", [True, False])
def test_parity_other_designs(ce2, sparse):
    real = make_counts(seed=0, n_perts=12, n_cells=40, sparse=sparse, depth=5.0)
    pred = make_counts(seed=3, effect_seed=5, n_perts=12, n_cells=25, sparse=sparse, depth=5.0)
    _assert_parity(_ours(pred, real), *_theirs(ce2, pred, real))


@pytest.mark.slow
def test_baseline_and_anchor_match_cell_eval2(ce2):
    from cell_eval2 import build_generic_baseline
    from cell_eval2.anchor import compute_replicate_anchor

    cell_eval2, cfg = ce2
    real = make_counts(seed=0, n_cells=60, n_ctrl=120, depth=6.0)
    ours = _ours(real, real, score=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = build_generic_baseline(real.copy(), config=cfg).agg.to_pandas()
        _, anchor = compute_replicate_anchor(real.copy(), config=cfg)
    base = base.set_index("statistic").loc["mean"]
    replicate = anchor.to_pandas().set_index("metric")["replicate"]
    mine_base = ours.baseline_agg.set_index("statistic").loc["mean"]
    mine_rep = ours.anchor.groupby("metric")["value"].mean()
    for name in mine_rep.index:
        assert np.isclose(mine_rep[name], replicate[name], atol=ATOL, rtol=0), name
        assert np.isclose(mine_base[name], float(base[name]), atol=ATOL, rtol=0), name
    s = ours.scores["vcc2026"]
    assert s["expr_mse_unbiased_capped_norm"] == 1.0  # the reference itself: clamped at 1
    u = ours.agg.set_index("statistic").loc["mean"]
    for name in ("pds_cosine", "de_wilcoxon_sig_jaccard"):  # unclamped: (u − b)/(r − b)
        assert np.isclose(s[name], (u[name] - mine_base[name]) / (mine_rep[name] - mine_base[name]))


# input validation (no cell-eval2 needed) ---------------------------------------------------------------------
def test_refuses_log1p_and_fractional():
    real = make_counts(seed=0, n_perts=3)
    pred = make_counts(seed=1, n_perts=3)
    pred.X = pred.X.copy()
    pred.X.data = np.log1p(pred.X.data)
    with pytest.raises(InputError, match="non-integer values.*raw counts"):
        _ours(pred, real)


def test_refuses_negative_and_too_deep_cells():
    real = make_counts(seed=0, n_perts=3)
    pred = make_counts(seed=1, n_perts=3, sparse=False)
    pred.X[4, 5] = -1
    with pytest.raises(InputError, match="negative"):
        _ours(pred, real)
    pred = make_counts(seed=1, n_perts=3, sparse=False)
    pred.X[2, 3] = 2e6
    with pytest.raises(InputError, match=r"more than 1e\+06 counts \(cell 2"):
        _ours(pred, real)


def test_refuses_label_and_gene_mismatch():
    real = make_counts(seed=0, n_perts=3)
    pred = make_counts(seed=1, n_perts=2)
    with pytest.raises(InputError, match=r"missing from it \(e.g. \['G3'\]\)"):
        _ours(pred, real)
    pred = make_counts(seed=1, n_perts=3)
    pred = pred[:, list(pred.var_names[::-1])].copy()
    with pytest.raises(InputError, match="another order"):
        _ours(pred, real)
    pred = make_counts(seed=1, n_perts=3)
    labels = pred.obs["perturbation"].astype(str).replace({CONTROL: "G1"})
    pred.obs["perturbation"] = labels.to_numpy()
    with pytest.raises(InputError, match="control label 'non-targeting' is missing from prediction"):
        _ours(pred, real)
    assert issubclass(InputError, VccError)


def test_predicted_control_cells_are_never_read():
    """The reference's control is the origin on both sides: tampering with the predicted control changes nothing."""
    real = make_counts(seed=0, n_perts=4)
    pred = make_counts(seed=1, n_perts=4)
    tampered = pred.copy()
    rows = np.flatnonzero(tampered.obs["perturbation"] == CONTROL)
    X = tampered.X.toarray()
    X[rows] = X[rows] * 3
    tampered.X = sp.csr_matrix(X)
    a, b = _ours(pred, real).results, _ours(tampered, real).results
    assert a.equals(b)


def test_a_degenerate_scale_gives_no_score_instead_of_failing():
    """Synthetic aggregates: baseline and replicate tie on one metric and the replicate is undefined on another."""
    from vcclib.metrics import vcc2026_score as vs

    model = {name: 0.5 for name in vs.SCORED}
    baseline = {name: 0.2 for name in vs.SCORED}
    replicate = {name: 0.8 for name in vs.SCORED}
    replicate["de_wilcoxon_sig_jaccard"] = 0.2  # r == b
    replicate["pds_cosine"] = float("nan")
    out = vs.score(model, baseline, replicate)
    assert np.isnan(out["de_wilcoxon_sig_jaccard"]) and np.isnan(out["pds_cosine"])
    assert out["expr_mse_unbiased_capped_norm"] == pytest.approx(0.5)
