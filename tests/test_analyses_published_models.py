"""The published-models chapter's logic (vcclib.analyses.published_models) on tables with a known answer
(synthetic scores, said so per test), and GEARS' cached GO graph against GEARS' own ``make_GO``."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from vcclib.analyses import published_models as chapter
from vcclib.models import MODELS, PredictionTask

UNSEEN = "norman2019[norman19]:unseen_perturbation"


def _scores(values: dict[str, tuple[float, float]], n: int = 8, metric: str = "pearson_delta") -> pd.DataFrame:
    """Synthetic long scores: model → (level, step per perturbation) on ``n`` held-out perturbations."""
    rows = []
    for model, (level, step) in values.items():
        for p in range(n):
            rows.append(
                {
                    "task": UNSEEN,
                    "seed": 0,
                    "model": model,
                    "side": "MIN",
                    "covariate": "K562",
                    "perturbation": f"G{p}",
                    "metric": metric,
                    "value": level + step * p,
                }
            )
    return pd.DataFrame(rows)


def test_trusted_metrics_are_those_where_the_duplicate_beats_the_mean_baseline():
    """Synthetic: the duplicate beats the mean on every perturbation for PearsonΔ, loses on every one for MSE."""
    good = _scores({"perturbed_mean": (0.2, 0.0), "technical_duplicate": (0.8, 0.0)})
    bad = _scores({"perturbed_mean": (0.1, 0.0), "technical_duplicate": (0.3, 0.0)}, metric="mse")
    table = chapter.trusted_metrics(pd.concat([good, bad])).set_index("metric")
    assert table.loc["pearson_delta", "trusted"] and not table.loc["mse", "trusted"]
    assert table.loc["mse", "win_rate"] == 0.0 and table.loc["mse", "in_vcc_profile"] == False  # noqa: E712


def _chapter_tables():
    """Synthetic run: GEARS halfway, the VAE at a quarter, biolord not installed, scGen not applicable."""
    scores = _scores(
        {
            "perturbed_mean": (0.2, 0.0),
            "technical_duplicate": (0.8, 0.0),
            "gears": (0.5, 0.0),
            chapter.PROJECT_VAE: (0.35, 0.0),
            "control_mean": (0.0, 0.0),
        }
    )
    placed = chapter.placements(scores)
    summary = chapter.placement_summary(placed)
    status = pd.DataFrame(
        [
            {"task": UNSEEN, "model": m, "seed": 0, "status": "ran", "detail": ""}
            for m in ("control_mean", "perturbed_mean", "technical_duplicate", chapter.PROJECT_VAE, "gears")
        ]
        + [
            {
                "task": UNSEEN,
                "model": "biolord",
                "seed": 0,
                "status": "not installed",
                "detail": "run pip install 'vcclib[models]'",
            },
            {"task": UNSEEN, "model": "scgen", "seed": 0, "status": "not applicable", "detail": "n/a"},
        ]
    )
    cost = pd.DataFrame(
        [
            {
                "model": "gears",
                "task": UNSEEN,
                "seed": 0,
                "train_s": 12.34,
                "predict_s": 1.0,
                "peak_rss_mb": 2048.0,
                "device": "cpu",
            }
        ]
    )
    div = pd.DataFrame(
        [
            {"task": UNSEEN, "model": m, "seed": 0, "spread_ratio": s, "cosine_pred": c, "cosine_real": 0.3, "n": 8}
            for m, s, c in (("perturbed_mean", 0.0, 1.0), ("gears", 0.4, 0.7))
        ]
    )
    catalogue = pd.DataFrame({"model": ["gears", "biolord"], "licence": ["MIT", "BSD-3-Clause"]})
    return placed, summary, status, cost, div, catalogue, scores


def test_placements_table_has_the_issue_columns_and_variants():
    placed = _chapter_tables()[0]
    assert list(placed.columns[:7]) == ["task", "model", "variant", "seed", "metric", "value", "placement"]
    variants = placed.set_index("model")["variant"]
    assert variants["gears"] == "published" and variants[chapter.PROJECT_VAE] == "project"
    assert variants["perturbed_mean"] == "reference"
    assert placed.set_index("model").loc["gears", "placement"] == pytest.approx(0.5)
    assert placed.set_index("model").loc[chapter.PROJECT_VAE, "placement"] == pytest.approx(0.25)


def test_conclusions_are_computed_from_the_records():
    placed, summary, status, cost, div, catalogue, scores = _chapter_tables()
    claims = chapter.claims(summary, status)
    records = chapter.chapter_records(
        summary,
        claims,
        cost,
        div,
        status,
        trusted=chapter.trusted_metrics(scores),
        catalogue=catalogue,
        seeds=[0],
        max_cells_per_perturbation=16,
        seconds=61.0,
        device="cpu",
        tasks_table=pd.DataFrame({"task": [UNSEEN], "seed": [0], "genes": [500]}),
    )
    assert records["trusted_metrics"] == ["pearson_delta"]
    assert records["gene_spaces"] == {UNSEEN: "500"}
    assert records["versus_vae"] == [{"task": UNSEEN, "model": "gears", "placement": 0.5, "vae": 0.25}]
    assert records["not_installed"] == {"biolord": "run pip install 'vcclib[models]'"}
    text = chapter.conclusions(records).to_markdown()
    assert "1 of 1 published runs place above it" in text
    assert "gears 0.50 vs 0.25" in text
    assert "biolord (run pip install 'vcclib[models]')" in text
    assert "gears on " + UNSEEN + ": holds" in text and "{cite:p}`roohani2024_gears`" in text
    assert "scgen on " + UNSEEN in text  # not applicable, reported, not scored
    assert "gears MIT" in text and "fit ≤ 12.3 s" in text
    assert f"every measured gene (`{UNSEEN}` 500 genes)" in text
    # a different record changes the sentence: nothing is typed
    records["versus_vae"][0]["vae"] = 0.9
    assert "0 of 1 published runs" in chapter.conclusions(records).to_markdown()


def test_the_conventions_sentence_reads_each_tasks_gene_space():
    """Synthetic task table: one task of 500 genes, one whose seeds kept different genes."""
    table = pd.DataFrame({"task": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "genes": [500, 500, 1200, 1187]})
    spaces = chapter.gene_spaces(table)
    assert spaces == {"a": "500", "b": "1,187–1,200"}
    text = chapter.placement_conventions({"max_cells_per_perturbation": 16, "gene_spaces": spaces})
    assert "at most 16 cells per perturbation" in text and "(`a` 500; `b` 1,187–1,200 genes)" in text


def test_claims_are_listed_only_for_registered_models_on_their_own_metric():
    registered = set(chapter.external_models())
    assert {claim[0] for claim in chapter.CLAIMS} >= {"gears", "biolord", "scgen"}
    summary = pd.DataFrame(columns=["task", "model", "metric", "placement", "low", "high"])
    status = pd.DataFrame([{"task": UNSEEN, "model": m, "seed": 0, "status": "not installed"} for m in registered])
    table = chapter.claims(summary, status)
    assert set(table["model"]) <= registered
    unseen_claims = {c[0] for c in chapter.CLAIMS if c[1] is PredictionTask.UNSEEN_PERTURBATION} & registered
    assert set(table["model"]) == unseen_claims
    assert set(table["verdict"]) == {"not installed"}


def test_the_project_vae_runs_at_the_vae_chapters_settings():
    from vcclib.analyses.vae_retraining import Settings

    assert MODELS.get(chapter.PROJECT_VAE).kind.name == "NEURAL"
    assert chapter.vae_params() == Settings().vae
    assert chapter.vae_params(test_mode=True) == dict(MODELS.get(chapter.PROJECT_VAE).test_params)
    assert set(chapter.VCC_METRICS) <= set(chapter.METRICS)


def test_gears_go_graph_is_gears_own_and_cached(tmp_path, monkeypatch):
    """Synthetic GO annotations: the cached in-process graph equals GEARS' ``make_GO`` (its pool of workers)."""
    utils = pytest.importorskip("gears.utils", reason="GEARS is not installed: pip install 'vcclib[models]'")
    from vcclib.models.external import gears as wrapper

    monkeypatch.setenv("VCC_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    gene2go = {f"G{i}": {f"GO:{j}" for j in rng.choice(12, size=4, replace=False)} for i in range(15)}
    (tmp_path / "work" / "data").mkdir(parents=True)
    with open(tmp_path / "work" / "gene2go_all.pkl", "wb") as handle:
        pickle.dump(gene2go, handle)
    monkeypatch.chdir(tmp_path / "work")
    genes = sorted(gene2go)
    theirs = utils.make_GO(str(tmp_path / "work"), genes, "synthetic", num_workers=1, save=False)
    ours = wrapper._cached_make_go(str(tmp_path / "work"), genes, "synthetic")
    pd.testing.assert_frame_equal(ours, theirs.astype(ours.dtypes.to_dict()))
    cached = wrapper._go_graph_cache({g: gene2go[g] for g in genes})
    assert cached.exists() and cached.is_relative_to(tmp_path / "cache")
    cached.write_text("source,target,importance\nG0,G0,1.0\n")  # a second call reads the cache, not GEARS
    assert len(wrapper._cached_make_go(str(tmp_path / "work"), genes, "synthetic")) == 1


def test_peak_memory_counts_child_processes():
    """A subprocess holding ~300 MB (the own-environment models train in one) shows in the peak."""
    import subprocess
    import sys

    from vcclib.analyses.published_models import PeakMemory

    with PeakMemory() as alone:
        pass
    with PeakMemory() as with_child:
        subprocess.run([sys.executable, "-c", "import time; b = bytearray(300 * 2**20); time.sleep(0.5)"], check=True)
    assert with_child.peak_mb > alone.peak_mb + 200


@pytest.mark.mirror
def test_the_chapter_runs_on_a_users_h5ad(papalexi, tmp_path):
    """A user's h5ad (Papalexi 2021's raw counts, obs 'gene') is one unseen-perturbation task: the references
    are scored on it, and the VCC 2026 suite on its recovered counts. Cells that are not scaled counts are still
    scored, and status says why the suite is not."""
    import anndata as ad

    from vcclib.data import load_perturbation_data

    obs = pd.DataFrame({"gene": papalexi.obs["perturbation"].astype(str).to_numpy()}, index=papalexi.obs_names)
    mine = ad.AnnData(X=papalexi.layers["counts"].copy(), obs=obs, var=pd.DataFrame(index=papalexi.var_names.copy()))
    mine.write_h5ad(tmp_path / "mine.h5ad")
    user = load_perturbation_data(
        h5ad_path=str(tmp_path / "mine.h5ad"), perturbation_column="gene", control_label="non-targeting"
    )
    tasks, task_data = chapter.chapter_tasks("norman2019_mcfaline2024_devel", user_adata=user)
    assert [t.label for t in tasks] == [chapter.USER_TASK] and set(task_data) == {chapter.USER_TASK}
    settings = {"models": [], "seeds": [0], "max_cells_per_perturbation": 8, "model_params": {}, "vae": None}
    out = chapter.run_chapter(tasks, task_data=task_data, **settings)
    assert set(out["scores"]["task"]) == {chapter.USER_TASK}
    assert set(out["status"]["model"]) == set(chapter.REFERENCES) and set(out["status"]["status"]) == {"ran"}
    assert not out["vcc2026"].empty and set(out["vcc2026"]["task"]) == {chapter.USER_TASK}
    described = out["tasks"].iloc[0]
    assert described["genes"] == user.n_vars and described["perturbations"] == user.obs["perturbation"].nunique() - 1
    assert chapter.gene_spaces(out["tasks"]) == {chapter.USER_TASK: f"{user.n_vars:,}"}
    rescaled = user.copy()
    rescaled.X = rescaled.X * 1.37  # no longer log1p of scaled counts
    _, rescaled_data = chapter.chapter_tasks("", user_adata=rescaled)
    out = chapter.run_chapter(tasks, task_data=rescaled_data, **settings)
    assert set(out["scores"]["task"]) == {chapter.USER_TASK} and out["vcc2026"].empty
    assert out["status"]["detail"].str.startswith("VCC 2026 suite not scored").all()


def test_cost_records_the_device_a_runner_reported_over_the_one_asked_for():
    """An own-environment runner whose torch lacks the wrapper's device runs on the CPU and says so in its
    reports: the cost table records where the model ran, not where it was asked to."""
    from types import SimpleNamespace

    from vcclib.analyses.published_models import ran_on

    fell_back = SimpleNamespace(
        runner_reports=[{"command": "fit", "device": "cpu"}, {"command": "predict", "device": "cpu"}]
    )
    assert ran_on(fell_back, "cuda") == "cpu"
    silent = SimpleNamespace(runner_reports=[{"command": "fit"}])  # a runner that reports no device
    assert ran_on(silent, "cpu") == "cpu"
    assert ran_on(SimpleNamespace(), "cpu") == "cpu"  # an in-process model has no runner
