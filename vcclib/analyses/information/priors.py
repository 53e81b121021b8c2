"""Prior knowledge for unseen perturbations: which feature source helps the linear baseline most.

One model, many priors: the Ahlmann-Eltze linear baseline (:class:`vcclib.models.baselines.learned.LinearModel`, gene
embedding from the training PCA) with its *perturbation* embedding taken from one prior-knowledge source — GO,
DepMap Chronos, co-essentiality, LINCS knockdown z-scores, PERISCOPE image phenotypes, a text embedding of GO
terms — or a combination (the sources' blocks z-scored and concatenated; a gene a block lacks gets zeros there).
A held-out perturbation no chosen source covers gets the training mean effect (flagged as fallback), so a
source's placement includes the price of its coverage. Each run is placed between the benchmark's MIN anchor
(``perturbed_mean``, 0) and MAX anchor (``technical_duplicate``, 1) with :func:`vcclib.models.benchmark.placement`,
for each seed of the split.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from vcclib.analyses.quiet import quietly
from vcclib.errors import VccError
from vcclib.models import features
from vcclib.models.baselines.learned import LinearModel

#: the code a stored prior benchmark depends on (see vcclib.memo)
MEMO_CODE = ("vcclib.analyses.information", "vcclib.models", "vcclib.metrics", "vcclib.splits")
PRIOR_SOURCES = (
    "go",
    "depmap",
    "coessentiality",
    "lincs",
    "periscope",
    "text",
    "go+coessentiality",
    "go+depmap+coessentiality+lincs+periscope",
)
PRIOR_METRICS = ("pearson_delta", "discrimination_score_l1", "mse_delta")
ANCHORS = ("perturbed_mean", "technical_duplicate")


class PriorError(VccError, ValueError):
    """A prior-knowledge source cannot be used (the message says why)."""


def periscope_embedding() -> pd.DataFrame:
    """PERISCOPE per gene: log1p of the significant-feature counts per stain channel and in total."""
    from vcclib.data import load

    table = load("periscope_a549")
    return np.log1p(table.astype(float))


def part_table(part: str, genes) -> pd.DataFrame:
    """Genes × dimensions of one source (no ``+``), restricted to ``genes`` where the source is global."""
    genes = sorted(set(genes))
    if part == "periscope":
        table = periscope_embedding()
        return table.loc[table.index.intersection(genes)]
    if part in features.SOURCES:
        return features.gene_embedding(part, genes)
    raise PriorError(f"unknown prior source {part!r}; use {features.SOURCES + ('periscope',)}")


def source_table(source: str, genes, parts: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Genes × dimensions for ``source`` (``+`` joins sources), each block z-scored over the genes it covers.

    ``parts`` may hold already built per-source tables (:func:`part_table` over a superset of ``genes``); they are
    restricted to ``genes`` (each gene's row of every source is computed from that gene alone, so a superset
    gives the same rows).
    """
    genes = sorted(set(genes))
    blocks = []
    for part in source.split("+"):
        if parts is not None and part in parts:
            table = parts[part]
            table = table.loc[table.index.intersection(genes)]
        else:
            table = part_table(part, genes)
        table = table.loc[~table.index.duplicated()]
        spread = table.std(axis=0).replace(0, 1).fillna(1)
        table = (table - table.mean(axis=0)) / spread if len(table) > 1 else table * 0
        table.columns = [f"{part}_{c}" for c in table.columns]
        blocks.append(table)
    if len(blocks) == 1:
        return blocks[0].astype(float)
    joined = pd.concat(blocks, axis=1)  # genes covered by any block; missing blocks are 0 (the block mean)
    return joined.fillna(0.0).astype(float)


class PriorLinear(LinearModel):
    """The linear baseline with a fixed perturbation-embedding table (one prior source or a combination)."""

    def __init__(self, spec, table: pd.DataFrame | None = None, **params):
        super().__init__(spec, **params)
        self.table = table if table is not None else pd.DataFrame()

    @classmethod
    def for_source(cls, source: str, table: pd.DataFrame) -> PriorLinear:
        """The linear baseline (``linear_pca``'s spec, renamed ``source``) with ``table`` as perturbation embedding."""
        from dataclasses import replace

        from vcclib.models.spec import MODELS

        base = MODELS.get("linear_pca")
        spec = replace(
            base, name=source, description=f"linear baseline, perturbation embedding from {source}", needs=()
        )
        return cls(spec, table=table, **base.params)

    def _pert_space(self, perturbations, gene_space):
        return features.perturbation_embedding(perturbations, "prior", gene_space=self.table)


def prior_tasks():
    """The benchmark's tasks on unseen perturbations (where a prior about the perturbation is all there is)."""
    from vcclib.models.tasks import default_tasks

    return [
        t for t in default_tasks() if t.split in ("unseen_perturbation", "combo_seen_singles") and t.halves == "random"
    ]


def _task_targets(adata) -> list[str]:
    from vcclib.data.schema import split_targets

    control = str(adata.uns["vcc"]["control_label"])
    return sorted({t for p in adata.obs["perturbation"].astype(str).unique() if p != control for t in split_targets(p)})


def prior_benchmark(
    tasks=None, sources=PRIOR_SOURCES, seeds=(0, 1, 2), metrics=PRIOR_METRICS, max_cells_per_perturbation: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit the linear baseline with each prior on each task and seed; score; place between MIN and MAX.

    Each task's data are read once (through :func:`vcclib.analyses.information.cache.load`) and subsampled per
    seed; each source's table is built once over the targets of every task (the text embedding is the slow one).

    Returns
    -------
    (placed, coverage)
        ``placed``: :func:`~vcclib.models.benchmark.placement` rows plus ``seed`` and ``fallback`` (share of
        held-out perturbations the source did not cover). ``coverage``: per task and source, the share of the
        task's perturbed targets the source covers.
    """
    from vcclib import memo

    inputs = {
        "tasks": repr(tasks),
        "sources": list(sources),
        "seeds": list(seeds),
        "metrics": list(metrics),
        "max_cells_per_perturbation": max_cells_per_perturbation,
        "datasets": memo.data_token(),
    }
    return memo.memo(
        "information.prior_benchmark",
        lambda: _prior_benchmark(tasks, sources, seeds, metrics, max_cells_per_perturbation),
        inputs=inputs,
        code=MEMO_CODE,
    )


def _prior_benchmark(
    tasks, sources, seeds, metrics, max_cells_per_perturbation: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    from vcclib.analyses.information.cache import load, loaded_once
    from vcclib.models.benchmark import evaluate_by_covariate, placement
    from vcclib.models.runner import fit_predict, subsample
    from vcclib.models.spec import get_model
    from vcclib.splits import covariate_column, make_split

    tasks = prior_tasks() if tasks is None else tasks
    placed, cover = [], []
    with loaded_once():
        full = {task.label: load(task.dataset, **task.options) for task in tasks}
        targets = {label: _task_targets(adata) for label, adata in full.items()}
        union = sorted(set().union(*targets.values())) if targets else []
        parts: dict[str, pd.DataFrame] = {}
        for part in sorted({p for source in sources for p in source.split("+")}):
            try:
                parts[part] = quietly(part_table, part, union)  # the text encoder draws a progress bar
            except (features.FeatureUnavailable, FileNotFoundError, OSError) as error:
                warnings.warn(f"prior {part!r} skipped: {error}", stacklevel=2)
        usable = [s for s in sources if all(p in parts for p in s.split("+"))]
        tables = {(task.label, s): source_table(s, targets[task.label], parts) for task in tasks for s in usable}
        for task in tasks:
            for source in usable:
                table = tables[(task.label, source)]
                cover.append(
                    {
                        "task": task.label,
                        "source": source,
                        "targets": len(targets[task.label]),
                        "covered": float(np.mean([t in table.index for t in targets[task.label]])),
                    }
                )
            adata_full = full[task.label]
            for seed in seeds:
                adata = subsample(
                    adata_full, max_cells_per_perturbation, seed=seed, column=covariate_column(adata_full)
                )
                placed.append(
                    _place_one(
                        task,
                        adata,
                        seed,
                        usable,
                        tables,
                        metrics,
                        make_split,
                        get_model,
                        fit_predict,
                        evaluate_by_covariate,
                        placement,
                    )
                )
    return pd.concat(placed, ignore_index=True), pd.DataFrame(cover)


def _place_one(
    task, adata, seed, sources, tables, metrics, make_split, get_model, fit_predict, evaluate_by_covariate, placement
) -> pd.DataFrame:
    control = str(adata.uns["vcc"]["control_label"])
    split = make_split(task.split, adata, seed=seed, **task.split_params)
    models = {name: get_model(name) for name in ANCHORS}
    for source in sources:
        models[source] = PriorLinear.for_source(source, tables[(task.label, source)])
    frames = []
    for name, model in models.items():
        prediction, real = fit_predict(name, adata, split, score_on="half", halves="random", seed=seed, model=model)
        scores = evaluate_by_covariate(prediction, real, split.covariate_column, control=control, metrics=list(metrics))
        long = scores.melt(id_vars=["covariate", "perturbation"], var_name="metric", value_name="value")
        fallback = prediction.obs.groupby("perturbation", observed=True)["vcc_fallback"].mean()
        long["fallback"] = long["perturbation"].map(fallback)
        long["baseline"] = name
        long["side"] = str(getattr(model.side, "value", model.side))
        long["task"] = task.label
        frames.append(long)
    long = pd.concat(frames, ignore_index=True)
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    result = placement(long)
    result["fallback"] = result["baseline"].map(long.groupby("baseline")["fallback"].mean())
    result["seed"] = seed
    return result


def summarise_priors(placed: pd.DataFrame) -> pd.DataFrame:
    """Per (task, source, metric): mean placement over seeds, its min and max over seeds, and the fallback share."""
    rows = placed[~placed["baseline"].isin(ANCHORS)]
    return (
        rows.groupby(["task", "baseline", "metric"])
        .agg(
            placement=("placement", "mean"),
            low=("placement", "min"),
            high=("placement", "max"),
            n_seeds=("seed", "nunique"),
            fallback=("fallback", "mean"),
        )
        .reset_index()
        .rename(columns={"baseline": "source"})
        .sort_values(["task", "metric", "placement"], ascending=[True, True, False])
    )


def anchor_diagnosis(placed: pd.DataFrame) -> pd.DataFrame:
    """Per (task, metric): the MIN and MAX anchors' mean scores over seeds and in how many seeds they are ordered.

    A placement exists only where the MAX anchor (a technical duplicate) scores better than the MIN anchor (the
    mean effect); ``ordered_seeds`` < ``n_seeds`` says where, and the scores say by how much it failed.
    """
    rows = placed[placed["baseline"].isin(ANCHORS)]
    if rows.empty:
        return pd.DataFrame(columns=["task", "metric", "min_score", "max_score", "ordered_seeds", "n_seeds"])
    wide = rows.pivot_table(index=["task", "metric", "seed"], columns="baseline", values="score").reset_index()
    ordered = rows.drop_duplicates(["task", "metric", "seed"]).set_index(["task", "metric", "seed"])["anchors_ordered"]
    wide["ordered"] = ordered.reindex(pd.MultiIndex.from_frame(wide[["task", "metric", "seed"]])).to_numpy(dtype=bool)
    return (
        wide.groupby(["task", "metric"])
        .agg(
            min_score=(ANCHORS[0], "mean"),
            max_score=(ANCHORS[1], "mean"),
            ordered_seeds=("ordered", "sum"),
            n_seeds=("seed", "nunique"),
        )
        .reset_index()
    )
