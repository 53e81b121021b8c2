"""The GRN chapter's logic: conclusions are formatted from records, the tables have the exact output columns
(a tiny real run: Papalexi controls, correlation network and TRRUST, one split seed), and the coverage counts
(which perturbed targets a network can carry) on real Papalexi and Gasperini high-MOI data."""

from __future__ import annotations

import pytest

from vcclib.analyses import grn as chapter


@pytest.mark.mirror
def test_tiny_chapter_run_has_exact_outputs_and_conclusions(papalexi):
    from vcclib.grn.coverage import target_coverage
    from vcclib.grn.literature import reference_network
    from vcclib.grn.propagation import lambert_tfs
    from vcclib.models.runner import subsample
    from vcclib.models.tasks import Task

    task = Task("papalexi2021_eccite_lowmoi", "unseen_perturbation", split_params={"test_fraction": 0.3})
    task_data = {task.label: subsample(papalexi, 15, seed=0)}
    unit = chapter.default_units(["papalexi2021_eccite_lowmoi"])[0]
    data, reductions = chapter.load_units([unit], reuse={unit.key: task_data[task.label]})
    assert data["papalexi"] is task_data[task.label] and reductions == {}
    networks, expressions, timings = chapter.infer_networks(
        data, ["correlation"], max_cells=150, max_genes={}, seed=0, n_estimators=0, n_steps=0
    )
    literature = chapter.literature_comparison(
        networks, expressions, ["trrust", "dorothea_ABC"], edges_per_target=10, n_shuffles=2, seed=0
    )
    assert list(literature.columns[:7]) == list(chapter.LITERATURE_COLUMNS)
    assert set(literature["method"]) == {"correlation", "correlation_degree_shuffled", "random"}
    _, regression = chapter.data_comparison(networks, data, regulators_per_target=3, seed=0, max_cells=1500)
    baselines = ["perturbed_mean", "technical_duplicate"]

    def make(_task):
        return chapter.prediction_models(
            ["correlation", "trrust"], max_cells=150, n_estimators=0, n_steps=0, seed=0, baselines=baselines
        )

    long, fits = chapter.score_predictions([task], task_data, make, split_seeds=[1], metrics=["pearson_delta", "mse"])
    assert timings["cached"].eq(False).all()
    predictions = chapter.prediction_table(long)
    assert list(predictions.columns[:5]) == list(chapter.PREDICTION_COLUMNS)
    assert set(predictions["model"]) == {"perturbed_mean", "technical_duplicate", "grn_correlation", "lit_trrust"}
    coverage = target_coverage(
        data, {"papalexi": expressions["papalexi"].regulators}, lambert_tfs(), {"trrust": reference_network("trrust")}
    )
    records = chapter.build_records(
        literature,
        regression,
        predictions,
        long,
        timings,
        expressions,
        network_models=["grn_correlation", "lit_trrust"],
        headline_metrics=["pearson_delta", "mse"],
        coverage=coverage,
        references=["trrust"],
    )
    takeaways = chapter.conclusions(records)
    sentences = list(takeaways.points)
    assert "key-takeaways" in takeaways.to_markdown()
    assert sentences[0].startswith("**Answer")
    ratio = records["literature"]["median_ratio_by_method"]["correlation"]
    assert any(f"{ratio:.2f}" in s for s in sentences)
    counts = records["coverage"]["papalexi"]
    assert counts["measured_tfs"] == 3 and f"{counts['tfs']} TFs, 3 measured TFs" in sentences[2]
    assert records["coverage_targets"]["papalexi"]["inferred_regulator"] == ["STAT1", "STAT2", "STAT3"]
    assert fits.loc[fits["model"] == "lit_trrust", "scale"].iloc[0] > 0


@pytest.mark.mirror
def test_gasperini_single_target_cells_and_coverage():
    """Gasperini 2019 high-MOI: multi-target and unassigned cells dropped, the subset passes the single-perturbation
    check, and none of its 25 targets (10 TSS, 15 enhancers) is a TF any network could carry."""
    from vcclib.data import load, require_single_perturbation
    from vcclib.grn.coverage import coverage_counts, single_target_cells, target_coverage
    from vcclib.grn.literature import reference_network
    from vcclib.grn.propagation import lambert_tfs

    adata = load("gasperini2019_highmoi")
    subset, counts = single_target_cells(adata)
    assert counts["multi_target"] == 370 and counts["unassigned"] == 32473
    assert counts["kept"] == adata.n_obs - 370 - 32473 == subset.n_obs
    assert counts["controls"] == int(subset.obs["is_control"].sum()) > 2000
    require_single_perturbation(subset, "test")
    references = {"trrust": reference_network("trrust"), "dorothea_ABC": reference_network("dorothea_ABC")}
    coverage = target_coverage({"gasperini": subset}, {"gasperini": ["STAT1"]}, lambert_tfs(), references)
    summary = coverage_counts(coverage, list(references))["gasperini"]
    assert summary["targets"] == 25 and summary["tfs"] == 0 and summary["inferred"] == 0
    assert summary["trrust"] == summary["dorothea_ABC"] == 0
    assert summary["kinds"] == {"candidate enhancer": 15, "TSS positive control": 10}
