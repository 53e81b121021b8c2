"""The GRN chapter's logic: conclusions are formatted from records, and the tables have the exact output columns
(a tiny real run: Papalexi controls, correlation network and TRRUST, one split seed)."""

from __future__ import annotations

import pytest

from vcclib.analyses import grn as chapter


@pytest.mark.mirror
def test_tiny_chapter_run_has_exact_outputs_and_conclusions(papalexi):
    from vcclib.models.runner import subsample
    from vcclib.models.tasks import Task

    data = {"papalexi": papalexi}
    networks, expressions, timings = chapter.infer_networks(data, ["correlation"], max_cells=150, max_genes={},
                                                            seed=0, n_estimators=0, n_steps=0)
    literature = chapter.literature_comparison(networks, expressions, ["trrust", "dorothea_ABC"],
                                               edges_per_target=10, n_shuffles=2, seed=0)
    assert list(literature.columns[:7]) == list(chapter.LITERATURE_COLUMNS)
    assert set(literature["method"]) == {"correlation", "correlation_degree_shuffled", "random"}
    _, regression = chapter.data_comparison(networks, data, regulators_per_target=3, seed=0, max_cells=1500)
    task = Task("papalexi2021_eccite_lowmoi", "unseen_perturbation", split_params={"test_fraction": 0.3})
    task_data = {task.label: subsample(papalexi, 15, seed=0)}
    baselines = ["perturbed_mean", "technical_duplicate"]
    make = lambda: chapter.prediction_models(["trrust"], max_cells=150, n_estimators=0, n_steps=0, seed=0,  # noqa: E731
                                             baselines=baselines)
    long, fits = chapter.score_predictions([task], task_data, make, split_seeds=[1], metrics=["pearson_delta", "mse"])
    predictions = chapter.prediction_table(long)
    assert list(predictions.columns[:5]) == list(chapter.PREDICTION_COLUMNS)
    assert set(predictions["model"]) == {"perturbed_mean", "technical_duplicate", "lit_trrust"}
    records = chapter.build_records(literature, regression, predictions, long, timings, expressions,
                                    network_models=["lit_trrust"], headline_metrics=["pearson_delta", "mse"])
    takeaways = chapter.conclusions(records)
    sentences = list(takeaways.points)
    assert "key-takeaways" in takeaways.to_markdown()
    ratio = records["literature"]["median_ratio_by_method"]["correlation"]
    assert any(f"{ratio:.2f}" in s for s in sentences)
    assert any("STAT1" in s for s in sentences)  # STAT1 is held out with seed 1 and TRRUST carries it
    assert fits.loc[fits["model"] == "lit_trrust", "scale"].iloc[0] > 0
