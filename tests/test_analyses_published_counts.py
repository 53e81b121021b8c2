"""Counts for the VCC 2026 suite in the published-models chapter (vcclib.analyses.published_counts).

Synthetic counts with a known scale per cell (said so per test) check the exact recovery and the refusal of
data that are not scaled counts; the chapter's real data (PerturBench's Norman 2019 file on the mirror) check
that its counts are recovered as whole numbers.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from vcclib.analyses import published_counts as counts
from vcclib.analyses import published_models as chapter
from vcclib.metrics.inputs import InputError


def _scaled(seed: int = 0, n: int = 40, genes: int = 30, control: int = 20):
    """Synthetic: Poisson counts, each cell scaled by 1e4 / its library size, log1p (float32, as distributed)."""
    rng = np.random.default_rng(seed)
    raw = rng.poisson(rng.gamma(1.0, 3.0, genes), size=(n, genes)).astype(float)
    raw[:, 0] += 1  # every cell has a count
    units = 1e4 / raw.sum(1)
    labels = ["control"] * control + [f"G{i % 4}" for i in range(n - control)]
    obs = pd.DataFrame({"perturbation": labels}, index=[f"c{i}" for i in range(n)])
    X = np.log1p(raw * units[:, None]).astype(np.float32)
    return ad.AnnData(X=sp.csr_matrix(X), obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(genes)])), raw


def test_counts_are_recovered_exactly_from_log1p_of_scaled_counts():
    adata, raw = _scaled()
    recovered = counts.recovered_counts(adata)
    np.testing.assert_array_equal(recovered.X.toarray(), raw)
    assert recovered.uns["vcc"]["x_scale"] == "counts"


def test_a_cell_whose_smallest_count_is_two_still_gets_its_unit():
    adata, raw = _scaled()
    X = adata.X.toarray().astype(np.float64)
    units = np.expm1(X[0])[raw[0] > 0] / raw[0][raw[0] > 0]
    doubled = raw[0] * 2 + (raw[0] > 0)  # smallest count ≥ 3, odd and even counts mixed
    X[0] = np.log1p(doubled * units[0])
    found = counts.count_units(X)
    assert found[0] == pytest.approx(units[0], rel=1e-9)


def test_values_that_are_not_scaled_counts_are_refused():
    adata, _ = _scaled()
    X = adata.X.toarray()
    X[3, :5] = [0.1, 0.37, 0.52, 0.9, 1.3]
    with pytest.raises(InputError, match="cell 3.*not log1p of scaled counts"):
        counts.count_units(X)
    with pytest.raises(InputError, match="cell 0 has no non-zero value"):
        counts.count_units(np.zeros((2, 4)))


def test_predicted_counts_are_seeded_and_follow_the_prediction():
    adata, raw = _scaled()
    first = counts.predicted_counts(adata, adata, None, "control", seed=3).X.toarray()
    again = counts.predicted_counts(adata, adata, None, "control", seed=3).X.toarray()
    other = counts.predicted_counts(adata, adata, None, "control", seed=4).X.toarray()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    np.testing.assert_array_equal(first[:20], raw[:20])  # control rows are real cells: recovered, not drawn
    assert np.all(first == np.round(first)) and first.min() >= 0
    assert np.corrcoef(first[20:].mean(0), raw[20:].mean(0))[0, 1] > 0.8


def test_a_prediction_without_controls_for_its_covariate_is_refused():
    adata, _ = _scaled()
    adata.obs["cell_line"] = ["A"] * 20 + ["B"] * 20
    with pytest.raises(InputError, match="no real control cell for covariate 'B'"):
        counts.predicted_counts(adata, adata, "cell_line", "control", seed=0)


def test_suite_summary_counts_defined_scores_and_names_the_best_learned_model():
    """Synthetic suite table: GEARS defined on 2 of 2 metrics, the VAE on 1 of 2."""
    rows = []
    for model, values in (("gears", [0.4, 0.6]), (chapter.PROJECT_VAE, [0.2, np.nan]), ("perturbed_mean", [0, 0])):
        for metric, s in zip(("pds_cosine", "de_wilcoxon_sig_jaccard"), values):
            rows.append({"task": "t", "seed": 0, "model": model, "covariate": "all", "metric": metric, "score": s})
        rows.append(
            {"task": "t", "seed": 0, "model": model, "covariate": "all", "metric": "avg_score", "score": np.nan}
        )
    summary = chapter.vcc2026_summary(pd.DataFrame(rows))
    gears = summary.set_index("model").loc["gears"]
    assert (gears["defined"], gears["pairs"]) == (2, 2) and gears["mean_defined_score"] == pytest.approx(0.5)
    records = chapter._suite_records(summary, {"gears", chapter.PROJECT_VAE})
    assert records["best"] == {"t": {"model": "gears", "score": 0.5}}
    assert (records["defined"], records["pairs"]) == (5, 6)


@pytest.mark.mirror
def test_the_chapter_data_hold_whole_counts():
    from vcclib.models.benchmark import load_task_data

    task = chapter.chapter_tasks("norman2019_mcfaline2024_devel")[0][0]
    adata = load_task_data(task, 8, 0)
    recovered = counts.recovered_counts(adata).X
    assert recovered.nnz > 0 and np.all(recovered.data == np.round(recovered.data)) and recovered.data.min() >= 1
    np.testing.assert_allclose(
        np.log1p(recovered.toarray() * counts.count_units(adata.X)[:, None]), adata.X.toarray(), atol=1e-5
    )
