"""Published-model wrappers (vcclib.models.external): listing imports no model package, GEARS' labels, the
chapter's mode-collapse diagnostics on synthetic effects with a known answer, and a test-mode run (tiny real
data, one epoch) of every installed published model: fit, predict, fallback flags, safe save and reload."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

from vcclib.analyses import published_models as chapter
from vcclib.models import MODELS, Model, PredictionTask
from vcclib.models.external import PACKAGES, install_state
from vcclib.models.external.gears import condition_label
from vcclib.registry import ModelKind

warnings.filterwarnings("ignore")
EXTERNAL = [s.name for s in MODELS.specs() if s.kind is ModelKind.EXTERNAL]


def test_every_external_model_declares_tasks_licence_and_install_state():
    assert {"gears", "biolord", "scgen"} <= set(EXTERNAL)
    for name in EXTERNAL:
        spec = MODELS.get(name)
        assert spec.tasks and name in PACKAGES and PACKAGES[name].licence
        ready, command = install_state(name)
        assert isinstance(ready, bool) and command.startswith(("pip install", "make env-"))
    assert MODELS.get("scgen").tasks == (PredictionTask.COVARIATE_TRANSFER,)
    assert PredictionTask.COVARIATE_TRANSFER not in MODELS.get("gears").tasks


def test_listing_imports_no_model_package():
    code = (
        "import sys; from vcclib.cli.predict_cmd import model_table; t = model_table(); "
        "print(t.set_index('name').loc['gears', 'installed']); "
        "print(sorted(m for m in ('gears', 'torch', 'torch_geometric', 'biolord', 'scvi', 'pertpy', 'jax') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    installed, imported = out.stdout.strip().splitlines()[-2:]
    assert imported == "[]"
    assert installed == ("yes" if install_state("gears")[0] else "no: pip install 'vcclib[models]'")


def test_gears_condition_labels():
    assert condition_label("non-targeting", "non-targeting") == "ctrl"
    assert condition_label("KLF1", "non-targeting") == "KLF1+ctrl"
    assert condition_label("KLF1+MAP2K6", "non-targeting") == "KLF1+MAP2K6"


def _cells(deltas: np.ndarray, n: int = 3) -> AnnData:
    """Synthetic pseudobulk cells: controls at 1, each perturbation at 1 + its Δ (known diversity)."""
    rows, labels = [np.ones(deltas.shape[1])] * n, ["ctrl"] * n
    for i, d in enumerate(deltas):
        rows += [1 + d] * n
        labels += [f"P{i}"] * n
    return AnnData(
        np.asarray(rows), obs=pd.DataFrame({"perturbation": labels}, index=[str(i) for i in range(len(rows))])
    )


def test_diversity_of_collapsed_and_faithful_predictions():
    """Synthetic: a prediction equal to the truth has spread 1; one shared effect has spread 0 and cosine 1."""
    rng = np.random.default_rng(0)
    real = rng.normal(size=(5, 40))
    faithful = chapter.diversity(_cells(real), _cells(real), None, "ctrl")
    assert faithful["spread_ratio"] == pytest.approx(1.0)
    assert faithful["cosine_pred"] == pytest.approx(faithful["cosine_real"])
    collapsed = chapter.diversity(_cells(np.tile(real.mean(0), (5, 1))), _cells(real), None, "ctrl")
    assert collapsed["spread_ratio"] == pytest.approx(0.0, abs=1e-9)
    assert collapsed["cosine_pred"] == pytest.approx(1.0)


def test_placements_and_claims_on_a_known_table():
    """Synthetic scores: the model sits halfway between the anchors on every perturbation → placement 0.5."""
    rows = []
    for p in range(6):
        for model, value in (("perturbed_mean", 0.2), ("technical_duplicate", 0.8), ("gears", 0.5)):
            rows.append(
                {
                    "task": "norman2019[norman19]:unseen_perturbation",
                    "seed": 0,
                    "model": model,
                    "side": "MAX" if model == "technical_duplicate" else "MIN",
                    "covariate": "K562",
                    "perturbation": f"G{p}",
                    "metric": "pearson_delta",
                    "value": value + 0.01 * p,
                }
            )
    placed = chapter.placements(pd.DataFrame(rows))
    gears = placed[placed["model"] == "gears"].iloc[0]
    assert gears["placement"] == pytest.approx(0.5) and gears["low"] == pytest.approx(0.5)
    status = pd.DataFrame(
        [{"task": "norman2019[norman19]:unseen_perturbation", "model": "gears", "seed": 0, "status": "ran"}]
    )
    verdicts = chapter.claims(chapter.placement_summary(placed), status)
    assert verdicts.loc[verdicts["model"] == "gears", "verdict"].tolist() == ["holds"]


@pytest.fixture(scope="module")
def norman():
    from vcclib.data import load
    from vcclib.models.runner import subsample
    from vcclib.splits import covariate_column, make_split

    adata = load("norman2019_mcfaline2024_devel", study="norman19")
    adata = subsample(adata, 12, seed=0, column=covariate_column(adata))
    return adata, make_split("unseen_perturbation", adata, seed=0)


@pytest.mark.mirror
@pytest.mark.parametrize("name", ["gears", "biolord"])
def test_unseen_perturbation_models_predict_held_out_targets_and_reload_safely(name, norman, tmp_path):
    if not install_state(name)[0]:
        pytest.skip(f"{name} is not installed: {install_state(name)[1]}")
    adata, split = norman
    params = {"graph_genes": chapter._targets(adata)} if name == "gears" else {}
    model = MODELS.get(name).create(test=True, **params).fit(split.subset(adata, "train"))
    query = split.test_groups()
    first = model.predict(query)
    # the held-out targets are in GEARS' graph / have GO vectors: answered by the model, not the fallback
    assert first.obs["vcc_fallback"].mean() < 0.5
    assert np.isfinite(np.asarray(first.X)).all()
    directory = model.save(tmp_path / name)
    assert sorted(p.name for p in directory.iterdir()) == ["arrays.npz", "model.json"]
    again = Model.load(directory).predict(query)
    np.testing.assert_allclose(np.asarray(first.X), np.asarray(again.X), rtol=1e-5, atol=1e-6)


@pytest.mark.mirror
def test_a_task_a_model_cannot_answer_is_reported_not_scored(norman):
    task = chapter.Task(
        "norman2019_mcfaline2024_devel",
        "unseen_perturbation",
        options={"study": "norman19"},
        split_params={"test_fraction": 0.3},
    )
    out = chapter.run_chapter([task], models=["scgen"], seeds=[0], max_cells_per_perturbation=8, model_params={})
    status = out["status"].set_index("model")["status"]
    assert status["scgen"] == "not applicable"
    assert "scgen" not in set(out["scores"]["model"])
    assert status["perturbed_mean"] == "ran"
