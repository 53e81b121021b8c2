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

from vcclib.errors import VccError
from vcclib.models import features
from vcclib.models.baselines.learned import LinearModel

PRIOR_SOURCES = ("go", "depmap", "coessentiality", "lincs", "periscope", "text", "go+coessentiality",
                 "go+depmap+coessentiality+lincs+periscope")
PRIOR_METRICS = ("pearson_delta", "discrimination_score_l1", "mse_delta")
ANCHORS = ("perturbed_mean", "technical_duplicate")


class PriorError(VccError, ValueError):
    """A prior-knowledge source cannot be used (the message says why)."""


def periscope_embedding() -> pd.DataFrame:
    """PERISCOPE per gene: log1p of the significant-feature counts per stain channel and in total."""
    from vcclib.data import load

    table = load("periscope_a549")
    return np.log1p(table.astype(float))


def source_table(source: str, genes) -> pd.DataFrame:
    """Genes × dimensions for ``source`` (``+`` joins sources), each block z-scored over the genes it covers."""
    genes = sorted(set(genes))
    blocks = []
    for part in source.split("+"):
        if part == "periscope":
            table = periscope_embedding()
            table = table.loc[table.index.intersection(genes)]
        elif part in features.SOURCES:
            table = features.gene_embedding(part, genes)
        else:
            raise PriorError(f"unknown prior source {part!r}; use {features.SOURCES + ('periscope',)}")
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
        spec = replace(base, name=source, description=f"linear baseline, perturbation embedding from {source}",
                       needs=())
        return cls(spec, table=table, **base.params)

    def _pert_space(self, perturbations, gene_space):
        return features.perturbation_embedding(perturbations, "prior", gene_space=self.table)


def prior_tasks():
    """The benchmark's tasks on unseen perturbations (where a prior about the perturbation is all there is)."""
    from vcclib.models.tasks import default_tasks

    return [t for t in default_tasks() if t.split in ("unseen_perturbation", "combo_seen_singles")
            and t.halves == "random"]


def prior_benchmark(tasks=None, sources=PRIOR_SOURCES, seeds=(0, 1, 2), metrics=PRIOR_METRICS,
                    max_cells_per_perturbation: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit the linear baseline with each prior on each task and seed; score; place between MIN and MAX.

    Returns
    -------
    (placed, coverage)
        ``placed``: :func:`~vcclib.models.benchmark.placement` rows plus ``seed`` and ``fallback`` (share of
        held-out perturbations the source did not cover). ``coverage``: per task and source, the share of the
        task's perturbed targets the source covers.
    """
    from vcclib.data.schema import split_targets
    from vcclib.models.benchmark import evaluate_by_covariate, load_task_data, placement
    from vcclib.models.runner import fit_predict
    from vcclib.models.spec import get_model
    from vcclib.splits import make_split

    tasks = prior_tasks() if tasks is None else tasks
    placed, cover = [], []
    for task in tasks:
        for seed in seeds:
            adata = load_task_data(task, max_cells_per_perturbation, seed)
            control = str(adata.uns["vcc"]["control_label"])
            targets = sorted({t for p in adata.obs["perturbation"].astype(str).unique() if p != control
                              for t in split_targets(p)})
            split = make_split(task.split, adata, seed=seed, **task.split_params)
            models = {name: get_model(name) for name in ANCHORS}
            for source in sources:
                try:
                    table = source_table(source, targets)
                except (features.FeatureUnavailable, FileNotFoundError, OSError) as error:
                    warnings.warn(f"prior {source!r} skipped: {error}", stacklevel=2)
                    continue
                models[source] = PriorLinear.for_source(source, table)
                if seed == seeds[0]:
                    cover.append({"task": task.label, "source": source, "targets": len(targets),
                                  "covered": float(np.mean([t in table.index for t in targets]))})
            frames = []
            for name, model in models.items():
                prediction, real = fit_predict(name, adata, split, score_on="half", halves="random", seed=seed,
                                               model=model)
                scores = evaluate_by_covariate(prediction, real, split.covariate_column, control=control,
                                               metrics=list(metrics))
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
            fb = long.groupby("baseline")["fallback"].mean()
            result["fallback"] = result["baseline"].map(fb)
            result["seed"] = seed
            placed.append(result)
    return pd.concat(placed, ignore_index=True), pd.DataFrame(cover)


def summarise_priors(placed: pd.DataFrame) -> pd.DataFrame:
    """Per (task, source, metric): mean placement over seeds, its min and max over seeds, and the fallback share."""
    rows = placed[~placed["baseline"].isin(ANCHORS)]
    return (rows.groupby(["task", "baseline", "metric"]).agg(
        placement=("placement", "mean"), low=("placement", "min"), high=("placement", "max"),
        n_seeds=("seed", "nunique"), fallback=("fallback", "mean")).reset_index()
            .rename(columns={"baseline": "source"}).sort_values(["task", "metric", "placement"],
                                                                ascending=[True, True, False]))
