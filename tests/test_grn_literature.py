"""Literature networks and the scores against them: known answers on synthetic rankings (said per test), the
degree-preserving null, and the real TRRUST / DoRothEA tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vcclib.grn.literature import (
    ReferenceError,
    candidates,
    degree_preserving_shuffle,
    evaluate_networks,
    reference_network,
    score_ranking,
)

REGS = ["R1", "R2", "R3", "R4"]
GENES = [f"G{i}" for i in range(30)] + REGS


def test_perfect_and_reversed_rankings():
    """Synthetic: the positives ranked first give AUPR = AUROC = early precision = 1; ranked last, AUROC 0."""
    universe = candidates(REGS, GENES)
    positives = universe[:10]
    best_first = pd.DataFrame({"regulator": universe.get_level_values(0), "target": universe.get_level_values(1)})
    perfect = score_ranking(best_first, positives, universe)
    assert perfect["aupr"] == pytest.approx(1.0) and perfect["auroc"] == pytest.approx(1.0)
    assert perfect["early_precision"] == 1.0
    assert perfect["aupr_random"] == pytest.approx(10 / len(universe))
    worst = score_ranking(best_first.iloc[::-1], positives, universe)
    assert worst["auroc"] == pytest.approx(0.0) and worst["early_precision"] == 0.0


def test_degree_preserving_shuffle_keeps_degrees_and_rewires():
    """Synthetic: 120 random edges; every regulator's out-degree and target's in-degree survive, edges change."""
    rng = np.random.default_rng(0)
    universe = candidates(REGS, GENES)
    pick = rng.choice(len(universe), size=60, replace=False)
    edges = pd.DataFrame(
        {"regulator": universe.get_level_values(0)[pick], "target": universe.get_level_values(1)[pick]}
    )
    shuffled = degree_preserving_shuffle(edges, np.random.default_rng(1))
    assert shuffled["regulator"].value_counts().equals(edges["regulator"].value_counts())
    assert (shuffled["target"].value_counts().sort_index() == edges["target"].value_counts().sort_index()).all()
    assert not shuffled.duplicated().any() and (shuffled["regulator"] != shuffled["target"]).all()
    overlap = len(set(map(tuple, shuffled.to_numpy())) & set(map(tuple, edges.to_numpy())))
    assert overlap < len(edges) * 0.8


def test_reference_recovered_by_itself_beats_the_nulls():
    """Synthetic: a network that ranks the reference's edges first beats random and its degree-shuffled null."""
    rng = np.random.default_rng(2)
    universe = candidates(REGS, GENES)
    truth = universe[rng.choice(len(universe), size=25, replace=False)]
    reference = pd.DataFrame(
        {"regulator": truth.get_level_values(0), "target": truth.get_level_values(1), "sign": 1, "weight": 1.0}
    )
    scores = rng.random(len(universe)) + universe.isin(truth) * 2
    edges = pd.DataFrame(
        {
            "regulator": universe.get_level_values(0),
            "target": universe.get_level_values(1),
            "importance": scores,
            "sign": 1,
        }
    )
    table = evaluate_networks(
        {"oracle": edges},
        {"toy": reference},
        dataset="toy",
        regulators=REGS,
        genes=GENES,
        edges_per_target=2,
        n_shuffles=3,
        seed=0,
    ).set_index("method")
    assert list(table.columns[:6]) == ["dataset", "reference", "aupr", "auroc", "aupr_random", "early_precision"]
    assert table.loc["oracle", "aupr"] == pytest.approx(1.0)
    assert table.loc["random", "aupr"] < 0.5 and table.loc["oracle_degree_shuffled", "aupr"] < 0.6


@pytest.mark.mirror
def test_real_references_signed_and_by_confidence():
    trrust = reference_network("trrust")
    assert set(trrust["sign"]) == {-1, 0, 1} and not trrust.duplicated(["regulator", "target"]).any()
    pairs = trrust.set_index(["regulator", "target"])["sign"]
    assert pairs[("STAT1", "CXCL10")] == -1  # Repression + Unknown: the known mode
    assert pairs[("STAT1", "IRF1")] == 0  # Activation and Repression both listed: contradictory
    a = reference_network("dorothea_A")
    abc = reference_network("dorothea_ABC")
    assert 0 < len(a) < len(abc) and set(a["weight"]) == {1.0} and set(abc["sign"]) <= {-1, 1}
    with pytest.raises(ReferenceError, match="confidence levels"):
        reference_network("dorothea_AZ")
    with pytest.raises(ReferenceError, match="no literature network"):
        reference_network("regnetwork")
