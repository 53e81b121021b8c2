"""The conditional VAE: likelihoods against scipy, losses with known answers, DEG weights as the metric computes
them, GRN signs, a synthetic known-truth fit (additive shifts), seeded predictions on real mirror data, and bad
input as one-line errors. (Fit/predict/save/load of every registered variant is in tests/test_models.py.)"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from vae_fixtures import additive_shifts  # noqa: E402

from vcclib.models import get_model  # noqa: E402
from vcclib.models.neural import inputs, likelihoods, losses  # noqa: E402
from vcclib.models.neural.vae import parse_loss  # noqa: E402

warnings.filterwarnings("ignore", category=UserWarning)
FAST = {"latent_dim": 4, "hidden_dim": 32, "batch_size": 128, "n_basal": 32, "progress": False, "device": "cpu"}


def test_nb_and_zinb_log_likelihoods_match_scipy():
    from scipy.stats import nbinom

    k = torch.tensor([0.0, 1.0, 3.0, 10.0, 50.0])
    mu = torch.tensor([0.5, 2.0, 3.0, 8.0, 40.0], dtype=torch.float64)
    theta = torch.tensor([1.5, 0.7, 3.0, 10.0, 2.0], dtype=torch.float64)
    ours = likelihoods.nb_log_prob(k.double(), mu, theta).numpy()
    p = (theta / (theta + mu)).numpy()
    assert np.allclose(ours, nbinom.logpmf(k.numpy(), theta.numpy(), p), atol=1e-6)
    logit = torch.tensor([-1.0, 0.0, 0.5, 2.0, -3.0], dtype=torch.float64)
    pi = torch.sigmoid(logit).numpy()
    expected = np.where(
        k.numpy() == 0,
        np.log(pi + (1 - pi) * np.exp(nbinom.logpmf(0, theta.numpy(), p))),
        np.log(1 - pi) + nbinom.logpmf(k.numpy(), theta.numpy(), p),
    )
    assert np.allclose(likelihoods.zinb_log_prob(k.double(), mu, theta, logit).numpy(), expected, atol=1e-6)


def test_nb_sampling_has_the_nb_mean_and_variance():
    generator = torch.Generator().manual_seed(0)
    mu, theta = torch.full((20000, 1), 6.0), torch.tensor([2.0])
    draws = likelihoods.sample_nb(mu, theta, generator)
    assert float(draws.mean()) == pytest.approx(6.0, rel=0.03)
    assert float(draws.var()) == pytest.approx(6.0 + 36.0 / 2.0, rel=0.06)


def test_distribution_losses_vanish_on_identical_sets_and_grow_with_a_shift():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=generator)
    y = torch.randn(200, 5, generator=generator)
    near, far = losses.energy_distance(x, y), losses.energy_distance(x, y + 2.0)
    assert abs(float(losses.energy_distance(x, x))) < 1e-3 and float(far) > float(near) + 1.0
    assert float(losses.mmd(x, y + 2.0)) > float(losses.mmd(x, y))
    groups = torch.tensor([0] * 100 + [1] * 100)
    assert float(losses.groupwise_distance(x, x, groups)) == pytest.approx(0.0, abs=1e-3)


def test_pseudobulk_error_weights_genes():
    pred = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    real = torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    groups = torch.tensor([0, 0])
    assert float(losses.pseudobulk_error(pred, real, groups, 1)) == pytest.approx((1 + 1) / 2)
    weights = torch.tensor([[2.0, 0.0]])
    assert float(losses.pseudobulk_error(pred, real, groups, 1, weights)) == pytest.approx(1.0)


def test_grn_alignment_penalises_only_wrong_directions():
    effects = torch.tensor([[-1.0, 2.0, 5.0]])
    signs = torch.tensor([[-1.0, -1.0, 0.0]])
    assert float(losses.grn_alignment(effects, signs)) == pytest.approx((0 + 2) / 2)


def test_grn_signs_flip_for_loss_of_function():
    network = pd.DataFrame({"tf": ["STAT1", "STAT1"], "target": ["IRF1", "MYC"], "sign": [1.0, -1.0]})
    ko = inputs.grn_signs(["STAT1"], ["IRF1", "MYC", "CD86"], network, "CRISPR knockout")
    assert ko.tolist() == [[-1.0, 1.0, 0.0]]
    assert inputs.grn_signs(["STAT1"], ["IRF1", "MYC", "CD86"], network, "CRISPRa").tolist() == [[1.0, -1.0, 0.0]]


def test_loss_specs_are_parsed_and_bad_ones_refused():
    assert parse_loss("mse+energy+grn") == {
        "base": "mse",
        "likelihood": "gaussian",
        "distribution": "energy",
        "grn": True,
    }
    assert parse_loss("zinb")["likelihood"] == "zinb"
    for bad in ("l1", "mse+energy+mmd", "mse+foo", ""):
        with pytest.raises(inputs.NeuralInputError):
            parse_loss(bad)
    with pytest.raises(inputs.NeuralInputError, match="unknown feature sources"):
        get_model("cvae", features="go+nonsense")


def test_the_learned_vae_recovers_known_shifts_and_adds_them_for_a_combination():
    adata, effect = additive_shifts()
    train = adata[adata.obs["perturbation"] != "A+B"].copy()
    model = get_model("cvae", epochs=200, patience=30, seed=0, **FAST).fit(train)
    query = pd.DataFrame({"covariate": "synthetic", "perturbation": ["A", "B", "A+B", "C"], "n_cells": 50})
    prediction = model.predict(query)
    control = adata[adata.obs["perturbation"] == "ctrl"].X.mean(0)
    for label in ("A", "B", "A+B"):
        delta = np.asarray(prediction[prediction.obs["perturbation"] == label].X).mean(0) - control
        assert np.corrcoef(delta, effect[label])[0, 1] > 0.9, label
    flags = prediction.obs.groupby("perturbation", observed=True)["vcc_fallback"].first()
    assert flags.to_dict() == {"A": False, "A+B": False, "B": False, "C": True}


@functools.cache
def _papalexi():
    from vcclib.data import load
    from vcclib.models.runner import subsample
    from vcclib.splits import make_split

    adata = subsample(load("papalexi2021_eccite_lowmoi"), 15, seed=0, column="cell_line")
    return adata, make_split("unseen_perturbation", adata, seed=0)


def _query(adata, split):
    test = adata[split.mask(adata, "test")]
    return (
        pd.DataFrame(
            {"covariate": test.obs["cell_line"].astype(str), "perturbation": test.obs["perturbation"].astype(str)}
        )
        .value_counts()
        .rename("n_cells")
        .reset_index()
    )


@pytest.mark.mirror
def test_same_seed_same_predictions_on_real_data_and_another_seed_differs():
    adata, split = _papalexi()
    train, query = split.subset(adata, "train"), _query(adata, split)
    runs = [get_model("cvae_go", epochs=3, seed=s, **FAST).fit(train).predict(query) for s in (1, 1, 2)]
    assert np.array_equal(np.asarray(runs[0].X), np.asarray(runs[1].X))
    assert not np.array_equal(np.asarray(runs[0].X), np.asarray(runs[2].X))
    assert runs[0].obs["vcc_fallback"].mean() < 0.5  # GO covers most Papalexi targets


@pytest.mark.mirror
@pytest.mark.parametrize("loss", ["nb", "zinb", "wmse+energy", "gaussian+mmd", "mse+grn"])
def test_every_loss_trains_on_real_counts_and_predicts_finite_cells(loss):
    adata, split = _papalexi()
    model = get_model("cvae", loss=loss, epochs=2, **FAST).fit(split.subset(adata, "train"))
    prediction = model.predict(_query(adata, split))
    assert np.isfinite(np.asarray(prediction.X)).all() and (np.asarray(prediction.X) >= 0).all()
    assert all(np.isfinite(row["val_loss"]) for row in model.history["epochs"])


@pytest.mark.mirror
def test_a_count_likelihood_without_counts_is_a_one_line_error():
    adata, split = _papalexi()
    train = split.subset(adata, "train")
    del train.layers["counts"]
    with pytest.raises(inputs.NeuralInputError, match="layers\\['counts'\\]"):
        get_model("cvae", loss="nb", epochs=1, **FAST).fit(train)
    with pytest.raises(inputs.NeuralInputError, match="pseudobulk"):
        get_model("cvae", loss="nb", pseudobulk=True, epochs=1, **FAST).fit(split.subset(adata, "train"))


@pytest.mark.mirror
def test_dbd_weights_are_the_metric_engines_weights():
    """The WMSE loss weights are the ``dbd_wmse`` metric's weights (up to the per-perturbation scale)."""
    from vcclib.metrics.context import EvalContext
    from vcclib.metrics.field import _dbd_weights
    from vcclib.metrics.pseudobulk import GroupedCells

    adata, _ = _papalexi()
    groups: dict = {}
    cells = inputs.cell_samples(
        adata, ["THP-1"], lambda a: a.obs["cell_line"].astype(str).to_numpy(), groups, "non-targeting"
    )
    ours = inputs.dbd_weights(cells, groups, "non-targeting")
    grouped = GroupedCells.from_labels(adata.X, adata.obs["perturbation"].astype(str).to_numpy(), "non-targeting")
    ctx = EvalContext(grouped, grouped, adata.var_names)
    theirs = _dbd_weights(ctx)
    for i, pert in enumerate(ctx.perts):
        row = ours[groups[("THP-1", pert)]]
        assert np.allclose(row / row.sum(), theirs[i] / theirs[i].sum(), atol=1e-5)
