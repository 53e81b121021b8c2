"""The STATE transition model wrapper (vcclib.models.external.state): STATE's own trainer in test mode (tiny
network, 4 steps) on real Norman 2019 cells, predictions of held-out perturbations through their GO vectors,
the fallback for a perturbation without one, safe save and exact reload; the Hydra overrides STATE accepts."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

from vcclib.models import MODELS, Model
from vcclib.models.external import PACKAGES, install_state

warnings.filterwarnings("ignore")


def _require_state():
    ready, command = install_state("state")
    if not ready:
        pytest.skip(f"STATE is not installed: {command}")


def test_state_is_registered_with_its_tasks_licence_and_install_hint():
    spec = MODELS.get("state")
    assert spec.kind.value == "external" and spec.needs == ("go",)
    assert {t.value for t in spec.tasks} == {"unseen perturbation", "combination", "covariate transfer"}
    assert PACKAGES["state"].licence.startswith("CC-BY-NC-SA-4.0")
    assert install_state("state")[1] == "pip install 'vcclib[models]'"


def test_state_accepts_the_wrappers_configuration(tmp_path):
    """Every override names a key of STATE's own ``tx`` config (Hydra refuses unknown ones)."""
    _require_state()
    from state.__main__ import load_hydra_config

    from vcclib.models.external.state import _overrides

    params = {**MODELS.get("state").params, **MODELS.get("state").test_params}
    config = load_hydra_config("tx", _overrides(params, str(tmp_path), "control", seed=3))
    assert config.use_wandb is False and config.data.kwargs.num_workers == 0
    assert config.data.kwargs.embed_key == "X_hvg" and config.data.kwargs.output_space == "gene"
    assert config.training.max_steps == 4 and config.training.val_freq > config.training.max_steps
    backbone = config.model.kwargs.transformer_backbone_kwargs
    assert backbone.hidden_size == 32 and backbone.max_position_embeddings == 8 and backbone.vocab_size == 3


@pytest.fixture(scope="module")
def fitted():
    _require_state()
    from vcclib.data import load
    from vcclib.models.runner import subsample
    from vcclib.splits import covariate_column, make_split

    adata = load("norman2019_mcfaline2024_devel", study="norman19")
    adata = subsample(adata, 12, seed=0, column=covariate_column(adata))
    split = make_split("unseen_perturbation", adata, seed=0)
    tick = time.perf_counter()
    model = MODELS.get("state").create(test=True).fit(split.subset(adata, "train"))
    return model, split, time.perf_counter() - tick


@pytest.mark.mirror
def test_state_predicts_held_out_perturbations_and_reloads_exactly(fitted, tmp_path):
    model, split, _ = fitted
    query = split.test_groups()
    first = model.predict(query)
    # the held-out targets have GO vectors: answered by STATE, not the fallback
    assert first.obs["vcc_fallback"].mean() < 0.5
    X = np.asarray(first.X)
    assert np.isfinite(X).all() and (X >= 0).all()  # STATE's ReLU output in log1p gene space
    # the perturbation's vector reaches the network: two held-out perturbations get different profiles
    answered = first.obs.loc[~first.obs["vcc_fallback"].astype(bool), "perturbation"].astype(str)
    a, b = answered.unique()[:2]
    assert not np.allclose(
        X[(first.obs["perturbation"] == a).to_numpy()][0], X[(first.obs["perturbation"] == b).to_numpy()][0]
    )
    directory = model.save(tmp_path / "state")
    assert sorted(p.name for p in directory.iterdir()) == ["arrays.npz", "model.json"]
    with np.load(directory / "arrays.npz", allow_pickle=False) as archive:
        assert all(not archive[key].dtype.hasobject for key in archive.files)
    again = Model.load(directory).predict(query)
    np.testing.assert_array_equal(X, np.asarray(again.X))


@pytest.mark.mirror
def test_a_perturbation_without_a_go_vector_is_flagged_as_fallback(fitted):
    import pandas as pd

    model, split, _ = fitted
    covariate = str(split.test_groups()["covariate"].iloc[0])
    query = pd.DataFrame({"covariate": [covariate], "perturbation": ["NOT_A_GENE_XYZ"], "n_cells": [2]})
    assert model.predict(query).obs["vcc_fallback"].astype(bool).all()


@pytest.mark.mirror
def test_state_test_mode_is_fast(fitted):
    assert fitted[2] < 120  # seconds, on a shared 2-core machine (typically far less)


@pytest.mark.mirror
@pytest.mark.slow
def test_same_seed_same_numbers(fitted):
    """A second test-mode fit with the same seed predicts exactly the same profiles (CPU)."""
    model, split, _ = fitted
    from vcclib.data import load
    from vcclib.models.runner import subsample
    from vcclib.splits import covariate_column

    adata = load("norman2019_mcfaline2024_devel", study="norman19")
    adata = subsample(adata, 12, seed=0, column=covariate_column(adata))
    twin = MODELS.get("state").create(test=True).fit(split.subset(adata, "train"))
    query = split.test_groups()
    np.testing.assert_array_equal(np.asarray(model.predict(query).X), np.asarray(twin.predict(query).X))
