"""Bad input is refused with a message that says what is wrong and where (synthetic inputs)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from metrics_fixtures import CONTROL, make_pair

from vcclib.metrics import ControlMismatchWarning, InputError, evaluate


def _eval(pred, real, **kw):
    return evaluate(pred, real, control_label=CONTROL, profile="vcc", **kw)


def test_missing_control():
    pred, real = make_pair(n_perts=4, n_genes=20)
    with pytest.raises(InputError, match="control label 'nope' is missing from prediction"):
        evaluate(pred, real, control_label="nope")


def test_genes_differ():
    pred, real = make_pair(n_perts=4, n_genes=20)
    pred.var_names = [f"X{i}" if i < 3 else g for i, g in enumerate(pred.var_names)]
    with pytest.raises(InputError, match=r"3 only in the prediction \(e.g. \['X0', 'X1', 'X2'\]\)"):
        _eval(pred, real)


def test_duplicated_names():
    pred, real = make_pair(n_perts=4, n_genes=20)
    real.var_names = ["G0"] + list(real.var_names[1:-1]) + ["G0"]
    with pytest.raises(InputError, match="duplicated"):
        _eval(pred, real)
    pred, real = make_pair(n_perts=4, n_genes=20)
    pred.obs_names = ["same"] * pred.n_obs
    with pytest.raises(InputError, match="obs_names"):
        _eval(pred, real)


@pytest.mark.parametrize("value,msg", [(np.nan, "non-finite"), (np.inf, "non-finite"), (-1.0, "negative")])
def test_bad_values(value, msg):
    pred, real = make_pair(n_perts=4, n_genes=20, sparse=False)
    pred.X[5, 7] = value
    with pytest.raises(InputError, match=f"{msg}.*cell 5, gene 7"):
        _eval(pred, real)


def test_counts_vs_log1p():
    pred, real = make_pair(n_perts=4, n_genes=20)
    pred.X = sp.csr_matrix(np.round(np.expm1(pred.X.toarray())))
    with pytest.raises(InputError, match="counts in one file and log1p in the other"):
        _eval(pred, real)
    pred, real = make_pair(n_perts=4, n_genes=20)
    pred.X = pred.X * 30.0
    with pytest.raises(InputError, match="neither counts nor log1p"):
        _eval(pred, real)


def test_unknown_perturbation():
    pred, real = make_pair(n_perts=4, n_genes=20)
    labels = pred.obs["perturbation"].astype(str).to_numpy()
    labels[labels == "G1"] = "NOT_REAL"
    pred.obs["perturbation"] = labels
    with pytest.raises(InputError, match=r"not in the real data \(e.g. \['NOT_REAL'\]\)"):
        _eval(pred, real)


def test_control_mismatch_warns_and_option_uses_real_controls():
    pred, real = make_pair(n_perts=4, n_genes=20)
    with pytest.warns(ControlMismatchWarning, match="discrimination_score_l1"):
        _eval(pred, real)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ControlMismatchWarning)
        res = _eval(pred, real, use_real_controls=True)
    assert list(res.results.columns) == ["perturbation", "mae", "discrimination_score_l1", "overlap_at_N"]
