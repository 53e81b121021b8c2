"""Every registered model fits, predicts, saves, loads and predicts the same numbers again (test mode, real mirror
data); model files are JSON + npz and refuse pickles; ``vcc train`` + ``vcc predict --model-dir`` round trip."""

from __future__ import annotations

import functools
import json
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from vcclib.data import load, validate
from vcclib.models import MODELS, Model, PredictionTask, available, get_model, storage
from vcclib.models.external.ownenv import own_environment
from vcclib.models.runner import scored_parts, subsample
from vcclib.splits import covariate_column, make_split

warnings.filterwarnings("ignore", category=UserWarning)
pytestmark = pytest.mark.mirror


@functools.cache
def _case(kind: str):
    """Small real data (at most 20 cells per group) and a split matching what a model answers."""
    dataset, study, split, params = {
        "replicate": ("papalexi2021_eccite_lowmoi", "", "unseen_perturbation", {}),
        PredictionTask.COMBINATION: ("norman2019_mcfaline2024_devel", "norman19", "combo_seen_singles", {}),
        PredictionTask.COVARIATE_TRANSFER: (
            "norman2019_mcfaline2024_devel",
            "mcfaline23",
            "covariate_transfer",
            {"held_out": "A172"},
        ),
        PredictionTask.UNSEEN_PERTURBATION: ("norman2019_mcfaline2024_devel", "norman19", "unseen_perturbation", {}),
    }[kind]
    adata = load(dataset, **({"study": study} if study else {}))
    adata = subsample(adata, 20, seed=0, column=covariate_column(adata))
    return adata, make_split(split, adata, seed=0, **params)


def _case_for(spec):
    if spec.halves == "replicate":
        return _case("replicate")
    if PredictionTask.UNSEEN_PERTURBATION in spec.tasks:
        return _case(PredictionTask.UNSEEN_PERTURBATION)
    return _case(min(spec.tasks))


def _fitted(name: str):
    spec = MODELS.get(name)
    adata, split = _case_for(spec)
    model = spec.create(test=True)
    score_on = "half" if spec.halves else "all"
    real, query_half = scored_parts(model, adata, split, score_on=score_on, halves=spec.halves or "random")
    model.fit(split.subset(adata, "train"), heldout=query_half)
    query = (
        pd.DataFrame(
            {
                "covariate": real.obs[split.covariate_column].astype(str) if split.covariate_column else "all",
                "perturbation": real.obs["perturbation"].astype(str),
            }
        )
        .value_counts()
        .rename("n_cells")
        .reset_index()
    )
    return model, query, split


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_fits_predicts_saves_loads_and_predicts_the_same(name, tmp_path):
    if name not in available(halves=None):
        pytest.skip(f"{name}: its feature source is not installed here")
    if own_environment(name):
        pytest.skip(f"{name} runs in its own environment: tests/test_models_external_ownenv.py (-m ownenv)")
    model, query, split = _fitted(name)
    first = model.predict(query)
    validate(first)
    assert set(first.obs["perturbation"].astype(str)) == set(query["perturbation"])
    assert np.isfinite(np.asarray(first.X)).all()
    directory = model.save(tmp_path / name)
    assert sorted(p.name for p in directory.iterdir()) == ["arrays.npz", "model.json"]
    with np.load(directory / "arrays.npz", allow_pickle=False) as archive:  # nothing needs unpickling
        assert all(not archive[key].dtype.hasobject for key in archive.files)
    loaded = Model.load(directory)
    assert type(loaded) is type(model) and loaded.params == model.params and loaded.name == name
    again = loaded.predict(query)
    assert np.array_equal(np.asarray(first.X), np.asarray(again.X))
    pd.testing.assert_frame_equal(first.obs, again.obs)
    assert list(first.var_names) == list(again.var_names)
    assert first.uns["vcc"] == again.uns["vcc"]
    # the fitted instance still predicts the same after saving (its sub-models were completed, not changed)
    assert np.array_equal(np.asarray(model.predict(query).X), np.asarray(first.X))


def test_random_forest_arrays_predict_exactly_what_scikit_learn_does():
    from sklearn.ensemble import RandomForestRegressor

    from vcclib.models.baselines.forest import ForestArrays

    adata, split = _case(PredictionTask.UNSEEN_PERTURBATION)
    model = get_model("random_forest").fit(split.subset(adata, "train"))
    covariate = str(model.control_means.index[0])
    deltas = model.training_deltas(covariate)
    X = model._features(covariate, deltas.index)
    forest = RandomForestRegressor(n_estimators=20, max_features=0.5, random_state=0, n_jobs=1)
    forest.fit(X.to_numpy(), deltas.to_numpy())
    query = model._features(covariate, split.test_groups()["perturbation"]).reindex(columns=X.columns, fill_value=0.0)
    arrays = ForestArrays.from_sklearn(forest)
    assert np.array_equal(arrays.predict(query.to_numpy()), forest.predict(query.to_numpy()))
    assert np.array_equal(arrays.predict(X.to_numpy()), forest.predict(X.to_numpy()))
    with pytest.raises(ValueError, match="features"):
        arrays.predict(X.to_numpy()[:, :3])


def test_storage_round_trips_frames_and_refuses_objects_and_pickles(tmp_path):
    index = pd.MultiIndex.from_arrays([["a", "a", "b"], ["x", "y", "x"]], names=["covariate", "perturbation"])
    state = {
        "frame": pd.DataFrame(np.arange(6.0).reshape(3, 2), index=index, columns=["g1", "g2"]),
        "series": pd.Series([1, 2, 3], index=index),
        "none": None,
        "nan": float("nan"),
        "items": {("a", 1): np.ones(2)},
        "labels": ("u", "v"),
        "index": pd.Index(["p", "q"]),
    }
    storage.write(tmp_path / "m", {"model": "toy"}, state)
    header, back = storage.read(tmp_path / "m")
    assert header["model"] == "toy"
    pd.testing.assert_frame_equal(back["frame"], state["frame"])
    pd.testing.assert_series_equal(back["series"], state["series"])
    assert back["none"] is None and np.isnan(back["nan"]) and back["labels"] == ("u", "v")
    assert np.array_equal(back["items"][("a", 1)], np.ones(2)) and list(back["index"]) == ["p", "q"]
    with pytest.raises(storage.ModelFileError, match="already holds a model"):
        storage.write(tmp_path / "m", {}, {})
    with pytest.raises(TypeError):
        storage.write(tmp_path / "objects", {}, {"x": np.array([object()], dtype=object)})
    # an npz carrying a pickled object array is refused on reading, never unpickled
    np.savez(tmp_path / "m" / "arrays.npz", a0=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(storage.ModelFileError, match="cannot be read safely"):
        storage.read(tmp_path / "m")
    document = json.loads((tmp_path / "m" / "model.json").read_text())
    (tmp_path / "m" / "model.json").write_text(json.dumps({**document, "version": 99}))
    with pytest.raises(storage.ModelFileError, match="version"):
        storage.read(tmp_path / "m")
    with pytest.raises(storage.ModelFileError, match="holds no model"):
        storage.read(tmp_path / "empty")


def test_an_unfitted_model_cannot_be_saved(tmp_path):
    with pytest.raises(RuntimeError, match="fit"):
        get_model("perturbed_mean").save(tmp_path / "x")


@pytest.mark.parametrize("name", ["linear_pca", "technical_duplicate"])
def test_vcc_train_then_predict_model_dir_equals_predict_model(name, tmp_path, capsys):
    from vcclib.cli import main

    data = [
        "--dataset",
        "papalexi2021_eccite_lowmoi",
        "--split",
        "unseen_perturbation",
        "--max-cells",
        "20",
        "--seed",
        "1",
    ]
    directory = tmp_path / "model"
    assert main(["train", "--model", name, *data, "-o", str(directory)]) == 0
    assert {"model.json", "arrays.npz", "split.csv", "split.json", "training.json"} <= {
        p.name for p in directory.iterdir()
    }
    assert (
        main(
            [
                "predict",
                "--model-dir",
                str(directory),
                "-o",
                str(tmp_path / "saved.h5ad"),
                "--real",
                str(tmp_path / "saved_real.h5ad"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "predict",
                "--model",
                name,
                *data,
                "-o",
                str(tmp_path / "direct.h5ad"),
                "--real",
                str(tmp_path / "direct_real.h5ad"),
            ]
        )
        == 0
    )
    saved, direct = ad.read_h5ad(tmp_path / "saved.h5ad"), ad.read_h5ad(tmp_path / "direct.h5ad")
    assert np.array_equal(np.asarray(saved.X), np.asarray(direct.X))
    assert list(saved.obs_names) == list(direct.obs_names)
    saved_real, direct_real = ad.read_h5ad(tmp_path / "saved_real.h5ad"), ad.read_h5ad(tmp_path / "direct_real.h5ad")
    assert list(saved_real.obs_names) == list(direct_real.obs_names)  # same scored cells (same halves)
    capsys.readouterr()
    # a trained model is never overwritten; bad input exits 2 with one line
    before = (directory / "arrays.npz").read_bytes()
    assert main(["train", "--model", name, *data, "-o", str(directory)]) == 2
    assert "exists" in capsys.readouterr().err and (directory / "arrays.npz").read_bytes() == before
    assert main(["predict", "--model-dir", str(tmp_path / "missing"), "-o", str(tmp_path / "x.h5ad")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "vcc train" in err
    assert main(["train", "--model", "nope", *data, "-o", str(tmp_path / "other")]) == 2
    assert not (tmp_path / "other").exists()
