"""The shortcuts of ``vcc eval``'s whole process against the plain expressions they replace: stacking CSR
rows without ``sp.vstack``, and DE tables written to parquet from the arrays without a DataFrame.
Synthetic matrices (method tests against a known truth)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from vcclib.metrics.pseudobulk import stack_rows


@pytest.mark.parametrize(
    "rows_a, rows_b",
    [
        (np.arange(5, 20), np.arange(0, 40)),  # runs: sliced
        (np.array([3, 1, 7]), np.array([0, 2, 39])),  # scattered: indexed
        (np.arange(0), np.arange(3, 4)),  # empty part
    ],
)
def test_stack_rows_is_vstack_of_the_row_selections(rows_a, rows_b):
    A = sp.random(50, 30, density=0.3, format="csr", random_state=1, dtype=np.float32)
    B = sp.random(40, 30, density=0.2, format="csr", random_state=2, dtype=np.float64)
    got = stack_rows([(A, rows_a), (B, rows_b)])
    want = sp.vstack([A[rows_a], B[rows_b].astype(np.float32)]).tocsr()
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.array_equal(got.toarray(), want.toarray())
    fresh = sp.csr_matrix((got.data, got.indices, got.indptr), shape=got.shape)
    assert fresh.has_canonical_format  # what the flag set on the result claims


@pytest.mark.parametrize("profile", ["vcc", "vcc2026"])
def test_de_tables_written_from_arrays_read_back_as_the_dataframes(tmp_path, profile):
    import warnings

    from metrics_fixtures import CONTROL, make_counts_pair, make_pair

    from vcclib.metrics import evaluate

    pred, real = make_counts_pair() if profile == "vcc2026" else make_pair()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the prediction's own control cells differ from the real ones
        result = evaluate(pred, real, control_label=CONTROL, profile=profile, outdir=tmp_path)
    for name, attribute in (("real_de", "de_real"), ("pred_de", "de_pred")):
        table = pd.read_parquet(tmp_path / f"{name}.parquet")
        assert len(table) > 0
        pd.testing.assert_frame_equal(table, getattr(result, attribute), check_exact=True)
