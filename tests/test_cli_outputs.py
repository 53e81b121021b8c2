"""`vcc eval` and `vcc predict` never overwrite earlier results unless told to."""

from __future__ import annotations

import pytest
from conftest import run_vcc

pytestmark = pytest.mark.mirror


def test_predict_then_eval_refuse_to_overwrite(isolated_env, tmp_path):
    pred, real, out = tmp_path / "pred.h5ad", tmp_path / "real.h5ad", tmp_path / "scores"
    predict = ["predict", "--model", "perturbed_mean", "--dataset", "norman2019_mcfaline2024_devel",
               "--option", "study=norman19", "--split", "unseen_perturbation", "--max-cells", "30",
               "-o", str(pred), "--real", str(real)]  # fmt: skip
    first = run_vcc(predict, isolated_env)
    assert first.returncode == 0, first.stderr
    before = pred.stat().st_mtime_ns
    again = run_vcc(predict, isolated_env)
    assert again.returncode == 2 and "exists" in again.stderr
    assert pred.stat().st_mtime_ns == before
    evaluate = ["eval", "--pred", str(pred), "--real", str(real), "--profile", "vcc", "-o", str(out)]
    scored = run_vcc(evaluate, isolated_env)
    assert scored.returncode == 0, scored.stderr
    results = (out / "results.csv").read_text()
    assert results.startswith("perturbation,") and "discrimination_score_l1" in results.splitlines()[0]
    refused = run_vcc(evaluate, isolated_env)
    assert refused.returncode == 2 and "already holds results.csv" in refused.stderr
    assert (out / "results.csv").read_text() == results
