"""Published models in their own environments (CPA, CellFlow, scPRAM; vcclib.models.external.ownenv).

Default suite (no environment needed): the install state and the one-line refusal when an environment is
missing, the h5ad / npz exchange with a runner in both directions, a runner that fails in its environment, and
weights that would need unpickling. Opt-in (``-m ownenv``, after ``make env-cpa`` etc.): a test-mode fit,
predict, safe save and reload of each model on tiny real data from the mirror (Norman 2019 for CPA and
CellFlow, the McFaline-Figueroa 2023 cell lines of the same dataset for scPRAM's covariate transfer).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

from vcclib.models import MODELS, Model, PredictionTask
from vcclib.models.external import PACKAGES, install_state, ownenv
from vcclib.models.external._common import compact_cells

warnings.filterwarnings("ignore")
OWN_ENV = ("cpa", "cellflow", "scpram")


def _runner_exchange():
    """The runners' side of the exchange (it imports only numpy and anndata, so it loads here too)."""
    spec = importlib.util.spec_from_file_location("_exchange", ownenv.RUNNERS / "_exchange.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_train() -> AnnData:
    rng = np.random.default_rng(0)
    labels = ["control"] * 6 + ["A"] * 4 + ["A+B"] * 4
    obs = pd.DataFrame(
        {"cell_line": ["K562"] * len(labels), "perturbation": labels}, index=[f"c{i}" for i in range(14)]
    )
    obs["is_control"] = obs["perturbation"] == "control"
    adata = AnnData(
        X=rng.random((14, 5)).astype(np.float32), obs=obs, var=pd.DataFrame(index=[f"G{i}" for i in range(5)])
    )
    return compact_cells(adata, "cell_line")


@pytest.fixture
def no_envs(tmp_path, monkeypatch):
    monkeypatch.setenv("VCC_ENVS_DIR", str(tmp_path / "envs"))
    return tmp_path / "envs"


def test_own_env_models_declare_their_environment_tasks_and_licence(no_envs):
    for name in OWN_ENV:
        assert MODELS.get(name).tasks and PACKAGES[name].environment == name and PACKAGES[name].licence
        assert install_state(name) == (False, f"make env-{name}")
        assert (ownenv.ROOT / "envs" / f"{name}.txt").is_file()
        assert (ownenv.RUNNERS / f"run_{name}.py").is_file()
    assert MODELS.get("scpram").tasks == (PredictionTask.COVARIATE_TRANSFER,)
    assert PredictionTask.UNSEEN_PERTURBATION not in MODELS.get("cpa").tasks
    assert PredictionTask.UNSEEN_PERTURBATION in MODELS.get("cellflow").tasks


def test_list_shows_the_make_target_when_the_environment_is_missing(no_envs):
    code = (
        "from vcclib.cli.predict_cmd import model_table; t = model_table().set_index('name'); "
        "print(t.loc['cpa', 'installed'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env={**__import__("os").environ, "VCC_ENVS_DIR": str(no_envs)},
    )
    assert out.stdout.strip().splitlines()[-1] == "no: make env-cpa"


def test_fit_without_the_environment_is_a_one_line_error_naming_the_make_target(no_envs, tmp_path):
    from vcclib.data.schema import validate  # noqa: F401 - the model validates its input like every other

    model = MODELS.get("cpa").create(test=True)
    train = _tiny_train()
    train.obs["cell_line"] = train.obs["covariate"]
    train.obs["perturbation_type"] = "CRISPRa"
    train.uns["vcc"] = {"control_label": "control", "dataset": "tiny"}
    with pytest.raises(ownenv.EnvironmentMissing, match=r"run `make env-cpa`") as error:
        model.fit(train)
    assert "\n" not in str(error.value)
    assert not model.fitted and not no_envs.exists()


def test_exchange_round_trip_between_wrapper_and_runner(tmp_path):
    exchange = _runner_exchange()
    train = _tiny_train()
    ownenv.write_cells(train, tmp_path / "train.h5ad")
    (tmp_path / "config.json").write_text('{"params": {"x": 1}, "control_label": "control", "seed": 3}')
    work = exchange.Work(str(tmp_path))
    cells = work.cells()
    assert np.array_equal(np.asarray(cells.X), np.asarray(train.X))
    assert list(cells.obs["perturbation"].astype(str)) == list(train.obs["perturbation"].astype(str))
    assert cells.obs["is_control"].sum() == 6 and work.control == "control" and work.seed == 3
    assert exchange.split_targets("A+B") == ["A", "B"]
    # weights: named numeric arrays in both directions
    ownenv.write_weights({"layer/w": np.arange(6.0).reshape(2, 3)}, tmp_path / "weights.npz")
    assert np.array_equal(work.weights()["layer/w"], np.arange(6.0).reshape(2, 3))
    # the prediction: one profile per queried group, checked against the query
    query = pd.DataFrame({"covariate": ["K562", "K562"], "perturbation": ["A+B", "C"]})
    rows = np.vstack([np.full(5, 0.5), np.zeros(5)])
    work.write_prediction(query.to_dict("records"), rows, [True, False])
    answers = ownenv.read_prediction(tmp_path / "prediction.h5ad", query, 5)
    assert answers[("K562", "A+B")][1] and not answers[("K562", "C")][1]
    assert np.allclose(answers[("K562", "A+B")][0], 0.5)
    with pytest.raises(ownenv.RunnerFailed, match="asked 3"):
        ownenv.read_prediction(tmp_path / "prediction.h5ad", pd.concat([query, query.assign(perturbation="D")[:1]]), 5)


def test_weights_that_need_unpickling_are_refused(tmp_path):
    np.savez(tmp_path / "weights.npz", bad=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        ownenv.read_weights(tmp_path / "weights.npz")


def test_a_runner_failing_in_its_environment_is_a_one_line_error(no_envs, tmp_path):
    """An 'environment' whose python lacks the package: the runner's own error comes back as one line."""
    env = no_envs / "cpa"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").symlink_to(sys.executable)
    (env / ".installed").touch()
    assert install_state("cpa") == (True, "make env-cpa")
    work = tmp_path / "work"
    work.mkdir()
    (work / "config.json").write_text('{"params": {}, "control_label": "control", "seed": 0}')
    if importlib.util.find_spec("cpa") is not None:  # pragma: no cover - CPA never shares the project's env
        pytest.skip("cpa is importable here")
    with pytest.raises(
        ownenv.RunnerFailed, match=r"CPA fit failed in its own environment \(exit 1\): ModuleNotFoundError"
    ) as error:
        ownenv.run_runner("cpa", "fit", work, purpose="CPA")
    assert "\n" not in str(error.value)
    assert "Traceback" in (work / "runner.log").read_text()


def test_runner_environment_drops_a_notebook_plotting_backend(no_envs, tmp_path, monkeypatch):
    """A Jupyter kernel's MPLBACKEND (its inline backend, absent from the own environment) is not inherited."""
    env = no_envs / "cpa"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").symlink_to(sys.executable)
    (env / ".installed").touch()
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    seen = {}

    def fake_run(args, **kwargs):
        seen.update(kwargs["env"])
        (tmp_path / "run.json").write_text("{}")
        return subprocess.CompletedProcess(args, 0)

    monkeypatch.setattr(ownenv.subprocess, "run", fake_run)
    ownenv.run_runner("cpa", "fit", tmp_path, purpose="CPA")
    assert seen["MPLBACKEND"] == "Agg"


def test_jax_is_kept_on_the_cpu_only_when_the_wrapper_runs_there(monkeypatch):
    """JAX_PLATFORMS=cpu on cpu; on cuda JAX chooses, or keeps the platform the user set."""
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    assert ownenv.runner_env(device="cpu")["JAX_PLATFORMS"] == "cpu"
    assert "JAX_PLATFORMS" not in ownenv.runner_env(device="cuda")
    monkeypatch.setenv("JAX_PLATFORMS", "cuda")
    assert ownenv.runner_env(device="cuda")["JAX_PLATFORMS"] == "cuda"
    assert ownenv.runner_env(device="cpu")["JAX_PLATFORMS"] == "cpu"
    assert ownenv.runner_env(threads=2)["OMP_NUM_THREADS"] == "2"


def test_the_runner_gets_the_wrappers_device(no_envs, tmp_path, monkeypatch):
    """A wrapper on cuda starts its runner without JAX_PLATFORMS=cpu (fit and predict alike)."""
    env = no_envs / "cellflow"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").symlink_to(sys.executable)
    (env / ".installed").touch()
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    seen = []

    def fake_run(args, **kwargs):
        seen.append(kwargs["env"].get("JAX_PLATFORMS"))
        (tmp_path / "run.json").write_text("{}")
        return subprocess.CompletedProcess(args, 0)

    monkeypatch.setattr(ownenv.subprocess, "run", fake_run)
    ownenv.run_runner("cellflow", "fit", tmp_path, purpose="CellFlow", device="cuda")
    ownenv.run_runner("cellflow", "fit", tmp_path, purpose="CellFlow")
    assert seen == [None, "cpu"]


# --- opt-in: the real environments ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def norman():
    from vcclib.data import load
    from vcclib.models.runner import subsample
    from vcclib.splits import covariate_column, make_split

    adata = load("norman2019_mcfaline2024_devel", study="norman19")
    adata = subsample(adata, 12, seed=0, column=covariate_column(adata))
    return adata, {
        "combination": make_split("combo_seen_singles", adata, seed=0),
        "unseen": make_split("unseen_perturbation", adata, seed=0, test_fraction=0.3),
    }


@pytest.fixture(scope="module")
def cell_lines():
    from vcclib.data import load
    from vcclib.models.runner import subsample
    from vcclib.splits import covariate_column, make_split

    adata = load("norman2019_mcfaline2024_devel", study="mcfaline23")
    adata = subsample(adata, 16, seed=0, column=covariate_column(adata))
    return adata, make_split("covariate_transfer", adata, seed=0)


def _fit_predict_reload(name, adata, split, tmp_path):
    if not install_state(name)[0]:
        pytest.skip(f"{name} has no environment here: {install_state(name)[1]}")
    model = MODELS.get(name).create(test=True).fit(split.subset(adata, "train"))
    assert [r["command"] for r in model.runner_reports] == ["fit"] and model.runner_reports[0]["peak_rss_mb"] > 0
    query = split.test_groups()
    first = model.predict(query)
    assert set(first.obs["perturbation"].astype(str)) == set(query["perturbation"])
    assert np.isfinite(np.asarray(first.X)).all() and np.asarray(first.X).min() >= 0
    directory = model.save(tmp_path / name)
    assert sorted(p.name for p in directory.iterdir()) == ["arrays.npz", "model.json"]
    with np.load(directory / "arrays.npz", allow_pickle=False) as archive:  # nothing needs unpickling
        assert all(not archive[key].dtype.hasobject for key in archive.files)
    again = Model.load(directory).predict(query)
    np.testing.assert_allclose(np.asarray(first.X), np.asarray(again.X), rtol=1e-5, atol=1e-5)
    assert np.array_equal(first.obs["vcc_fallback"].to_numpy(), again.obs["vcc_fallback"].to_numpy())
    first.uns["runner_reports"] = model.runner_reports  # for the tests below
    return first


@pytest.mark.ownenv
@pytest.mark.mirror
def test_cpa_predicts_combinations_of_trained_singles(norman, tmp_path):
    adata, splits = norman
    prediction = _fit_predict_reload("cpa", adata, splits["combination"], tmp_path)
    assert not prediction.obs["vcc_fallback"].any()  # every single of a held-out pair was trained
    # the fit says where it trained: the wrapper's device where its own torch can use it, else cpu
    wanted = MODELS.get("cpa").create(test=True).device
    used = [report["device"] for report in prediction.uns["runner_reports"] if "device" in report]
    assert len(used) == 1 and set(used) <= {wanted, "cpu"}, used


@pytest.mark.ownenv
@pytest.mark.mirror
def test_cpa_flags_unseen_targets_as_fallback(norman, tmp_path):
    adata, splits = norman
    prediction = _fit_predict_reload("cpa", adata, splits["unseen"], tmp_path)
    train = set(splits["unseen"].subset(adata, "train").obs["perturbation"].astype(str))
    from vcclib.data.schema import split_targets

    trained = {t for p in train for t in split_targets(p)}
    expected = [not set(split_targets(p)) <= trained for p in prediction.obs["perturbation"].astype(str)]
    assert np.array_equal(prediction.obs["vcc_fallback"].to_numpy(), np.array(expected))


@pytest.mark.ownenv
@pytest.mark.mirror
def test_cellflow_answers_unseen_targets_through_go_embeddings(norman, tmp_path):
    adata, splits = norman
    prediction = _fit_predict_reload("cellflow", adata, splits["unseen"], tmp_path)
    assert prediction.obs["vcc_fallback"].mean() < 0.5


@pytest.mark.ownenv
@pytest.mark.mirror
def test_scpram_transfers_perturbations_to_a_held_out_cell_line(cell_lines, tmp_path):
    adata, split = cell_lines
    prediction = _fit_predict_reload("scpram", adata, split, tmp_path)
    assert not prediction.obs["vcc_fallback"].any()
    # the runner says where it ran: the wrapper's device where its own torch can use it (CPU wheel: cpu)
    wanted = MODELS.get("scpram").create(test=True).device
    used = [report["device"] for report in prediction.uns["runner_reports"]]
    assert len(used) == 2 and set(used) <= {wanted, "cpu"}, used
