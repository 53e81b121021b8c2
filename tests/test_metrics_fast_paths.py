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


def test_every_numba_kernel_is_cached_between_processes():
    """``cache=True`` on every kernel (a kernel without it would compile in every ``vcc eval`` process)."""
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    from vcclib.metrics import _counts_kernel, _mwu_kernel

    for module in (_mwu_kernel, _counts_kernel):
        kernels = {k: v for k, v in vars(module).items() if isinstance(v, CPUDispatcher)}
        assert kernels
        uncached = [k for k, v in kernels.items() if v._cache is None or isinstance(v._cache, NullCache)]
        assert not uncached, (module.__name__, uncached)


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["vcc", "vcc2026"])
def test_a_second_vcc_eval_process_compiles_no_kernel(tmp_path, profile):
    """Every numba kernel the command runs is cached (``cache=True``): a second process loads them all and
    compiles none (numba's cache log shows a save only when it compiled). The first run may compile."""
    import os
    import subprocess
    import sys

    from metrics_fixtures import CONTROL, make_counts_pair, make_pair

    pred, real = make_counts_pair() if profile == "vcc2026" else make_pair()
    for adata, name in ((pred, "pred"), (real, "real")):
        adata.write_h5ad(tmp_path / f"{name}.h5ad")
    env = {**os.environ, "NUMBA_DEBUG_CACHE": "1", "PYTHONWARNINGS": "ignore"}
    logs = []
    for run in ("first", "second"):
        cmd = [sys.executable, "-m", "vcclib.cli", "eval", "-ap", str(tmp_path / "pred.h5ad")]
        cmd += ["-ar", str(tmp_path / "real.h5ad"), "--control-pert", CONTROL, "--profile", profile]
        proc = subprocess.run(cmd + ["-o", str(tmp_path / run)], capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        logs.append(proc.stdout + proc.stderr)
    assert "[cache] data loaded" in logs[1]
    assert "[cache] data saved" not in logs[1], [ln for ln in logs[1].splitlines() if "saved" in ln]
