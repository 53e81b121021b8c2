"""Tests of :mod:`vcclib.analyses.metrics_and_baselines` (the metrics chapter's tables, records and conclusions).

Synthetic long scores with a known answer: on two tasks the technical duplicate (MAX) beats the mean baseline
(MIN) on PearsonΔ for every perturbation, and ties it on MAE, so PearsonΔ must separate (win rate 1) and MAE must
"reward the mean" (win rate 0.5); ``linear_go`` sits halfway between the anchors on PearsonΔ (placement 0.5).
"""

from __future__ import annotations

import pandas as pd
import pytest

from vcclib.analyses.metrics_and_baselines import (
    chapter_records,
    conclusions,
    fallback_by_baseline,
    key_scores,
    separation_tables,
    skipped_note,
)
from vcclib.models.benchmark import headline, placement

VALUES = {  # baseline -> (pearson_delta, mae)
    "perturbed_mean": (0.2, 0.10),
    "technical_duplicate": (0.8, 0.10),
    "linear_go": (0.5, 0.12),
    "control_mean": (0.0, 0.15),
}
SIDES = {"technical_duplicate": "MAX"}


def _scores() -> pd.DataFrame:
    rows = []
    for task in ("toy:unseen_perturbation", "toy:combo_seen_singles"):
        for pert in ("P1", "P2", "P3"):
            for baseline, (pd_value, mae) in VALUES.items():
                for metric, value in (("pearson_delta", pd_value), ("mae", mae)):
                    rows.append(
                        {
                            "task": task,
                            "dataset": "toy",
                            "split": task.split(":")[1],
                            "halves": "random",
                            "baseline": baseline,
                            "side": SIDES.get(baseline, "MIN"),
                            "covariate": "all",
                            "perturbation": pert,
                            "metric": metric,
                            "value": value,
                            "fallback": 0.5 if baseline == "linear_go" else 0.0,
                        }
                    )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def tables():
    scores = _scores()
    placed = placement(scores)
    pooled, by_task = separation_tables(scores, placed)
    variation = pd.DataFrame({"dataset": ["toy"] * 3, "cosine": [0.9, 0.8, 0.7], "share_explained": [0.5, 0.4, 0.3]})
    return scores, placed, pooled, by_task, variation


def test_separation_and_placement_have_the_known_answer(tables):
    scores, placed, pooled, by_task, _ = tables
    rate = pooled.set_index("metric")["win_rate"]
    assert rate["pearson_delta"] == 1.0 and rate["mae"] == 0.5
    assert pooled.set_index("metric").loc["pearson_delta", "separates"]
    assert set(by_task["task"]) == set(scores["task"])
    linear = placed[(placed["baseline"] == "linear_go") & (placed["metric"] == "pearson_delta")]
    assert linear["placement"].tolist() == pytest.approx([0.5, 0.5])
    key = key_scores(placed, scores)
    assert key.loc[("toy:unseen_perturbation", "linear_go"), "fallback_share"] == 0.5
    assert fallback_by_baseline(scores)["linear_go"] == 0.5


def test_conclusions_are_written_from_the_headline_record(tables):
    scores, placed, pooled, _, variation = tables
    numbers = headline(scores, placed, pooled, variation)
    records = chapter_records(
        numbers,
        max_cells_per_perturbation=100,
        seed=0,
        seconds=12.3,
        skipped=["knn_text"],
        fallback=fallback_by_baseline(scores),
        skipped_runs=["toy: x skipped (no data)"],
        device="device: cpu (no GPU path)",
    )
    takeaways = conclusions(records)
    text = "\n".join(takeaways.points)
    assert "toy: median cosine 0.80, median share explained 0.40 (n = 3)" in text
    assert "(win rate ≥ 0.8): pearson_delta" in text and "PearsonΔ: win rate 1.00" in text
    assert "MAE: win rate 0.50" in text and "mode-collapse critique" in text
    assert "toy:unseen_perturbation: mean baseline 0.20 vs ceiling 0.80" in text
    assert "The ceiling beats the mean on every task." in text
    assert "linear_go (PearsonΔ 0.50, placement 0.50)" in text
    assert any("seed 0" in c for c in takeaways.conventions) and "device: cpu (no GPU path)" in takeaways.conventions
    note = skipped_note(records)
    assert "knn_text" in note and "linear_go 50%" in note and "toy: x skipped" in note
