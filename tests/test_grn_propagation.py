"""Propagation predictors and held-out regression: known answers on synthetic data (said per test), the model
interface (fit/predict, fallback flags, registration), and a literature predictor on real Papalexi data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

from vcclib.errors import VccError
from vcclib.grn.propagation import NetworkPropagation, SignedNetwork
from vcclib.models import get_model


def test_propagation_on_a_signed_chain():
    """Synthetic: A activates B (weight 1), B represses C; a knockout of A lowers B and raises C, damped."""
    edges = pd.DataFrame({"regulator": ["A", "B"], "target": ["B", "C"], "sign": [1, -1], "weight": [1.0, 1.0]})
    spread = SignedNetwork(edges, "weight").propagate({"A": -1.0}, steps=3, damping=0.5)
    assert spread["B"] == pytest.approx(-1.0) and spread["C"] == pytest.approx(0.5) and spread["A"] == 0


def test_targets_are_normalised_by_incoming_weight():
    """Synthetic: two activators of one target share it (0.5 each); unsigned edges are dropped."""
    edges = pd.DataFrame(
        {"regulator": ["A", "B", "C"], "target": ["T", "T", "T"], "sign": [1, 1, 0], "importance": [3.0, 1.0, 9.0]}
    )
    network = SignedNetwork(edges, "importance")
    assert network.propagate({"A": 1.0}, steps=1)["T"] == pytest.approx(0.75)
    assert network.n_edges == 2


def _synthetic_screen(seed: int = 0) -> AnnData:
    """Synthetic screen with a known network: STAT1 activates genes G0–G4 and IRF1 represses G5–G9 in control
    cells (co-expression); knocking out a TF moves its targets the way the network says (CRISPRko)."""
    rng = np.random.default_rng(seed)
    n, genes = 120, ["STAT1", "IRF1", "SPI1"] + [f"G{i}" for i in range(10)]
    blocks, labels = [], []
    for label, (s1, i1, sp1) in {
        "non-targeting": (0, 0, 0),
        "STAT1": (-1.5, 0, 0),
        "IRF1": (0, -1.5, 0),
        "SPI1": (0, 0, -1.5),
        "GENE_X": (0, 0, 0),
    }.items():
        stat1 = 3 + s1 + 0.5 * rng.normal(size=n)
        irf1 = 3 + i1 + 0.5 * rng.normal(size=n)
        spi1 = 3 + sp1 + 0.5 * rng.normal(size=n)
        up = 1 + 0.8 * (stat1[:, None] - 3) + 0.1 * rng.normal(size=(n, 5))
        down = 3 - 0.8 * (irf1[:, None] - 3) + 0.1 * rng.normal(size=(n, 5))
        blocks.append(np.column_stack([stat1, irf1, spi1, up, down]).clip(0))
        labels += [label] * n
    obs = pd.DataFrame({"perturbation": labels, "cell_line": "toy"}, index=[f"c{i}" for i in range(len(labels))])
    adata = AnnData(sp.csr_matrix(np.vstack(blocks).astype(np.float32)), obs=obs, var=pd.DataFrame(index=genes))
    from vcclib.data.schema import finalize

    return finalize(
        adata,
        dataset="toy",
        control_label="non-targeting",
        x_scale="log1p",
        normalisation="toy",
        organism="human",
        perturbation_type="CRISPRko",
    )


@pytest.mark.mirror
def test_inferred_network_predicts_the_held_out_tf():
    """Synthetic truth: with IRF1 and SPI1 in training, the correlation network predicts STAT1's knockout
    (targets G0–G4 down) better than the mean baseline; a non-TF target falls back."""
    adata = _synthetic_screen()
    train = adata[adata.obs["perturbation"].isin(["non-targeting", "IRF1", "SPI1"]).to_numpy()].copy()
    model = get_model("grn_correlation", max_cells=0).fit(train)
    query = pd.DataFrame({"perturbation": ["STAT1", "GENE_X"], "covariate": "toy", "n_cells": [3, 2]})
    prediction = model.predict(query)
    assert prediction.n_obs == 5 and list(prediction.var_names) == list(adata.var_names)
    flags = prediction.obs.groupby("perturbation", observed=True)["vcc_fallback"].first()
    assert not flags["STAT1"] and flags["GENE_X"]
    truth = adata[adata.obs["perturbation"] == "STAT1"].X.toarray().mean(0)
    control = adata[adata.obs["perturbation"] == "non-targeting"].X.toarray().mean(0)
    predicted = np.asarray(prediction[prediction.obs["perturbation"] == "STAT1"].X)[0]
    mean_baseline = control + model.mean_delta("toy")
    targets = slice(3, 8)
    assert np.all(predicted[targets] < control[targets])
    assert np.abs(predicted - truth)[targets].sum() < np.abs(mean_baseline - truth)[targets].sum()
    assert model.calibration["toy"]["n_training_with_signal"] >= 1


def test_bad_calibration_is_refused():
    with pytest.raises(VccError, match="calibration"):
        get_model("lit_trrust", calibration="magic")


def test_registered_under_the_baseline_registry():
    from vcclib.models import MODELS, list_models
    from vcclib.registry import ModelKind

    model = get_model("lit_dorothea")
    assert isinstance(model, NetworkPropagation) and model.params["network"] == "dorothea_ABC"
    assert get_model("grn_genie3").params["n_estimators"] == 100
    assert MODELS.get("grn_genie3").kind is ModelKind.LEARNED and MODELS.get("grn_genie3").extra == "grn"
    assert {"grn_grnboost2", "lit_trrust"} <= set(list_models()["name"])


@pytest.mark.mirror
def test_literature_predictor_on_papalexi(papalexi, tmp_path):
    """Real data: TRRUST carries STAT1 (a Papalexi target) to measured genes; a non-TF target falls back; the
    saved model (JSON + npz) predicts the same after loading."""
    from vcclib.models import Model
    from vcclib.models.runner import subsample

    adata = subsample(papalexi, 40, seed=0)
    train = adata[~adata.obs["perturbation"].isin(["STAT1", "CD86"]).to_numpy()].copy()
    model = get_model("lit_trrust").fit(train)
    prediction = model.predict(
        pd.DataFrame({"perturbation": ["STAT1", "CD86"], "covariate": "THP-1", "n_cells": [1, 1]})
    )
    flags = dict(zip(prediction.obs["perturbation"].astype(str), prediction.obs["vcc_fallback"]))
    assert flags == {"STAT1": False, "CD86": True}
    assert model.calibration["THP-1"]["scale"] > 0
    model.save(tmp_path / "lit_trrust")
    loaded = Model.load(tmp_path / "lit_trrust")
    query = pd.DataFrame({"perturbation": ["STAT1", "CD86"], "covariate": "THP-1", "n_cells": [1, 1]})
    np.testing.assert_allclose(np.asarray(loaded.predict(query).X), np.asarray(model.predict(query).X))
    assert not (tmp_path / "lit_trrust" / "model.pkl").exists()


def test_regression_prefers_true_regulators():
    """Synthetic truth: G0–G4 depend on STAT1, so STAT1 explains held-out perturbations better than random."""
    from vcclib.grn.data_eval import regression_scores, summarise_regression

    adata = _synthetic_screen(seed=1)
    edges = pd.DataFrame(
        {
            "regulator": ["STAT1"] * 5 + ["IRF1"] * 5,
            "target": [f"G{i}" for i in range(10)],
            "importance": 1.0,
            "sign": [1] * 5 + [-1] * 5,
        }
    )
    edges = pd.concat(
        [edges, pd.DataFrame({"regulator": ["SPI1"], "target": ["STAT1"], "importance": [0.1], "sign": [1]})]
    )
    table = regression_scores(edges, adata, regulators_per_target=1, n_folds=4)
    assert set(table.columns) >= {"target", "r2", "r2_random", "gain"}
    summary = summarise_regression(table[table["target"].str.startswith("G")])
    assert summary["r2"] > 0.5 and summary["gain"] > 0.3 and summary["share_better"] == 1.0
