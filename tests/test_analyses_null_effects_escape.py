"""Tests of :mod:`vcclib.analyses.null_effects.escape` (Mixscape's per-cell KO / escape classes).

The mixture tests use synthetic one-dimensional two-Gaussian data with a known answer (a control-like component
N(0, 1) and a perturbed component N(4, 0.5²), 60 : 40): the patched M-step must be scikit-learn's exactly when
nothing is fixed, and must really use the fixed control variance when one is fixed. The escape-fraction test uses a
hand-made class table; the mirror test runs Mixscape on the real Papalexi 2021 ECCITE-seq data (Mixscape's own
paper), whose IFN-γ pathway knockouts have large KO shares.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.mixture import GaussianMixture

from vcclib.analyses.mixscape import patch_pertpy_mixture
from vcclib.analyses.null_effects import escape

pytest.importorskip("pertpy")


def _two_gaussians(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = np.r_[np.zeros(600, bool), np.ones(400, bool)]
    x = np.where(truth, rng.normal(4.0, 0.5, truth.size), rng.normal(0.0, 1.0, truth.size))
    return x.reshape(-1, 1), truth


def _mixture(**fixed):
    from pertpy.tools._mixscape import MixscapeGaussianMixture

    patch_pertpy_mixture()
    return MixscapeGaussianMixture(
        n_components=2,
        covariance_type="spherical",
        means_init=[[0.5], [3.0]],
        precisions_init=[1.0, 1.0],
        random_state=0,
        max_iter=100,
        **fixed,
    )


def test_patched_m_step_is_sklearns_when_nothing_is_fixed():
    X, _ = _two_gaussians()
    ours = _mixture().fit(X)
    sk = GaussianMixture(
        n_components=2,
        covariance_type="spherical",
        means_init=[[0.5], [3.0]],
        precisions_init=[1.0, 1.0],
        random_state=0,
        max_iter=100,
    ).fit(X)
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(ours, attr), getattr(sk, attr), rtol=1e-12)
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), rtol=1e-10, atol=1e-12)


def test_fixed_control_component_recovers_the_perturbed_one():
    X, truth = _two_gaussians()
    mm = _mixture(fixed_means=[0.0, None], fixed_covariances=[1.0, None]).fit(X)
    assert mm.means_[0, 0] == 0.0 and mm.covariances_[0] == 1.0
    assert mm.precisions_cholesky_[0] == 1.0  # the E-step uses the fixed variance, not a re-estimated one
    np.testing.assert_allclose(mm.means_[1, 0], 4.0, atol=0.1)
    np.testing.assert_allclose(mm.covariances_[1], 0.25, atol=0.05)
    np.testing.assert_allclose(mm.weights_, [0.6, 0.4], atol=0.03)
    assert ((mm.predict_proba(X)[:, 1] > 0.5) == truth).mean() > 0.98


def test_a_fixed_variance_is_used_by_the_e_step_even_when_it_is_not_the_estimate():
    # pertpy 1.0.3's own M-step set covariances_ but left precisions_cholesky_ at the free estimate (≈ 1 here)
    X, _ = _two_gaussians()
    mm = _mixture(fixed_means=[0.0, None], fixed_covariances=[4.0, None]).fit(X)
    np.testing.assert_allclose(mm.precisions_cholesky_[0], 0.5, rtol=1e-12)


def test_escape_fractions_count_only_classified_targets():
    labels = pd.Series(["A"] * 4 + ["B"] * 3 + ["C"] * 2 + ["NT"] * 2, index=[f"c{i}" for i in range(11)])
    classes = pd.DataFrame(
        {
            "mixscape_class": ["A KO", "A KO", "A KO", "A NP", "B NP", "B NP", "B NP", "C KO", "NP", "NT", "NT"],
            "classified": [True] * 4 + [False] * 3 + [True] * 2 + [False] * 2,
        },
        index=labels.index,
    )
    guides = pd.Series(["A1", "A1", "A2", "A2", "B1", "B1", "B1", "C1", "C1", "n1", "n2"], index=labels.index)
    per, by_guide = escape.escape_fractions(classes, labels, guides, "NT")
    assert per.loc["A", "escape_fraction"] == 0.25 and per.loc["A", "n_perturbed_cells"] == 3
    assert not per.loc["B", "classified"] and np.isnan(per.loc["B", "escape_fraction"])  # not 100% escape
    assert per.loc["C", "escape_fraction"] == 0.5  # pertpy's plain "NP" label is not a KO cell
    g = by_guide.set_index("guide")
    assert g.loc["A1", "escape_fraction"] == 0.0 and g.loc["A2", "escape_fraction"] == 0.5
    assert not g.loc["B1", "classified"]


@pytest.mark.mirror
@pytest.mark.slow
def test_papalexi_ifng_pathway_knockouts_are_mostly_perturbed():
    from vcclib.data import load

    adata = load("papalexi2021_eccite_lowmoi")
    classes = escape.mixscape_classes(adata, "perturbation", "non-targeting", split_by="replicate", seed=0)
    per, _ = escape.escape_fractions(classes, adata.obs["perturbation"].astype(str), None, "non-targeting")
    for gene in ("IFNGR1", "IFNGR2", "JAK2", "STAT1"):
        assert per.loc[gene, "classified"] and per.loc[gene, "escape_fraction"] < 0.5, gene
    assert per["classified"].sum() < len(per)  # targets with too few DE genes in the 299-gene panel
    assert per.loc[~per["classified"], "escape_fraction"].isna().all()


def test_escape_record_and_sentence_leave_unclassified_targets_out_of_the_median():
    from vcclib.analyses.null_effects.answer import _escape_points, escape_record

    table = pd.DataFrame(
        {
            "call": ["effect", "effect", "no effect", "no effect"],
            "escape_fraction": [0.2, 0.6, np.nan, 0.9],
            "classified": [True, True, False, True],
        },
        index=["A", "B", "C", "D"],
    )
    rec = escape_record(table, ["D"])
    assert rec["median_escape"] == 0.6  # over A, B, D only; C (not classified) is not a 100% escape
    assert rec["escape_n_classified"] == 3 and rec["escape_null_not_classified"] == 1
    assert list(rec["escape_ko_fraction"]) == ["A", "B", "D"]
    text = _escape_points({**rec, "dataset": "toy", "n": 4, "n_genes": 10})[0]
    assert "3 of 4 targets" in text and "A 80%" in text and "median escape 60%" in text
    assert "1 have a perturbed subpopulation" in text and "(D)" in text and "1 are not classified" in text
    none = escape_record(table.assign(classified=False, escape_fraction=np.nan), [])
    assert none["median_escape"] is None and not none["escape_ran"] and _escape_points(none) == []
    ran = escape_record(table.assign(classified=False, escape_fraction=np.nan), [], ran=True)
    assert "not classified, not 100% escape" in _escape_points({**ran, "dataset": "toy", "n": 4, "n_genes": 10})[0]
