"""The attack battery (synthetic counts on purpose: the attacks are defined against a known honest replicate)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from metrics_fixtures import CONTROL, make_counts

from vcclib.metrics import InputError, evaluate
from vcclib.metrics.attacks import (
    ATTACKS,
    SuspiciousSubmissionWarning,
    attack_table,
    log1p_normalised,
    replicate_pair,
)


@pytest.fixture(scope="module")
def real():
    return make_counts(seed=0, n_perts=8, n_cells=60, n_ctrl=120, depth=6.0)


@pytest.fixture(scope="module")
def table(real):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return attack_table(real, "perturbation", CONTROL, profiles=("vcc", "vcc2026"))


def test_table_is_tidy_and_covers_every_attack(table):
    assert list(table.columns) == ["attack", "profile", "metric", "honest", "attacked", "gamed", "by", "outcome"]
    assert set(table.attack) == set(ATTACKS) and set(table.profile) == {"vcc", "vcc2026"}
    scored = table[table.outcome == "scored"]
    assert np.all(np.isfinite(scored.attacked))
    # `by` is the improvement in the metric's better direction: gamed exactly when positive
    assert (table.gamed == (table.by > 1e-12)).all()


def test_what_is_refused_and_what_is_flagged(table):
    outcome = table.groupby(["attack", "profile"]).outcome.first()
    assert outcome["mixed_log1p", "vcc"].startswith("refused")
    assert outcome["mixed_log1p", "vcc2026"].startswith("refused: prediction X holds")
    assert "collapsed mean" in outcome["collapsed_mean", "vcc2026"]
    assert "collapsed mean" in outcome["collapsed_mean", "vcc"]
    assert "copies of the control" in outcome["control_copied", "vcc2026"]
    assert "median counts per cell" in outcome["scale_inflated", "vcc2026"]
    # vcc2026 never reads the predicted control: tampering with it changes nothing
    t = table[(table.attack == "tampered_control") & (table.profile == "vcc2026")]
    assert np.allclose(t.attacked, t.honest, equal_nan=True)


def test_tampered_control_games_cell_eval_vcc_but_is_flagged(real):
    honest, reference = replicate_pair(real, "perturbation")
    gamed = ATTACKS["tampered_control"](honest, reference, "perturbation", CONTROL, np.random.default_rng(0))
    pred, ref = log1p_normalised(gamed), log1p_normalised(reference)
    with pytest.warns(UserWarning, match="control cells differ"):
        evaluate(pred, ref, control_label=CONTROL, profile="vcc")


def test_collapsed_mean_is_flagged_by_evaluate(real):
    honest, reference = replicate_pair(real, "perturbation")
    gamed = ATTACKS["collapsed_mean"](honest, reference, "perturbation", CONTROL, np.random.default_rng(0))
    with pytest.warns(SuspiciousSubmissionWarning, match="collapsed mean"):
        res = evaluate(gamed, reference, control_label=CONTROL, profile="vcc2026")
    assert any("collapsed mean" in w for w in res.warnings)
    mixed = ATTACKS["mixed_log1p"](honest, reference, "perturbation", CONTROL, None)
    from vcclib.metrics.attacks import _as_submitted

    with pytest.raises(InputError):
        evaluate(_as_submitted(mixed, counts=True), reference, control_label=CONTROL, profile="vcc2026")
