"""Fit a model on a split's training part and predict its held-out part, with the matching real cells.

The scored reference ("real") and the prediction always share the same real control cells, so Δ-based
metrics see the same control on both sides.

Two ways to choose the real cells a prediction is scored on (``score_on``):

``all``
    every held-out cell (what ``vcc predict`` writes for a MIN reference or learned model by default);
``half``
    the held-out cells are halved per group (``halves="random"``: technical duplicate) or by replicate
    (``halves="replicate"``), with :func:`vcclib.splits.core.reference_halves`. Half ``A`` is given only to MAX
    references; every baseline is scored on half ``B``, so MIN and MAX scores are comparable.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from vcclib.models import features
from vcclib.models.base import Model, covariates_of, with_controls
from vcclib.models.spec import MODELS, get_model
from vcclib.registry import ModelKind
from vcclib.splits import Split
from vcclib.splits.core import reference_halves


def available(names=None, *, halves: str | None = "random") -> list[str]:
    """Registered models whose feature sources can be built here.

    MAX references are kept only if their halving matches ``halves`` (``halves=None`` keeps every MAX
    reference).
    """
    names = MODELS.names() if names is None else list(names)
    result = []
    for name in names:
        spec = MODELS.get(name)
        if any(not features.is_available(source) for source in spec.needs):
            continue
        if spec.halves is not None and halves is not None and spec.halves != halves:
            continue
        if spec.kind is ModelKind.EXTERNAL and not _external_installed(name):
            continue
        result.append(name)
    return result


def _external_installed(name: str) -> bool:
    """Whether a published model's own packages are installed (checked without importing them)."""
    from vcclib.models.external import PACKAGES, install_state

    return name not in PACKAGES or bool(install_state(name)[0])


def subsample(
    adata: AnnData, max_cells: int, seed: int = 0, column: str | None = None, control_factor: int = 4
) -> AnnData:
    """At most ``max_cells`` cells per (covariate, perturbation) group, drawn with ``seed``.

    Controls: at most ``control_factor × max_cells`` cells per covariate. ``max_cells`` 0 keeps all.
    """
    if not max_cells:
        return adata
    rng = np.random.default_rng(seed)
    control = str(adata.uns.get("vcc", {}).get("control_label", ""))
    keys = pd.Series(list(zip(covariates_of(adata, column), adata.obs["perturbation"].astype(str))))
    keep = np.zeros(adata.n_obs, dtype=bool)
    for key, positions in keys.groupby(keys).indices.items():
        cap = max_cells * control_factor if key[1] == control else max_cells
        if len(positions) > cap:
            positions = rng.choice(positions, size=cap, replace=False)
        keep[positions] = True
    return adata[keep].copy()


def held_out_halves(adata: AnnData, split: Split, *, seed: int = 0, halves: str = "random") -> pd.Series:
    """``A``/``B`` for each held-out cell (index: its obs name). ``halves``: ``random`` or an obs column."""
    test = adata[split.mask(adata, "test")]
    column = split.covariate_column
    obs = pd.DataFrame(
        {"covariate": covariates_of(test, column), "perturbation": test.obs["perturbation"].astype(str).to_numpy()},
        index=test.obs_names,
    )
    by = None
    if halves != "random":
        if halves not in test.obs:
            raise ValueError(f"halves={halves!r}: the data have no obs column {halves!r}")
        obs[halves] = test.obs[halves].astype(str).to_numpy()
        by = halves
    return reference_halves(obs, seed=seed, by=by, group_columns=("covariate", "perturbation"))


def scored_parts(
    model: Model, adata: AnnData, split: Split, *, score_on: str = "half", halves: str = "random", seed: int = 0
) -> tuple[AnnData, AnnData | None]:
    """The real held-out cells ``model`` is scored on and the query half it may read (MAX references only).

    ``score_on="half"``: the held-out cells are halved (``halves``, seeded); half ``B`` is scored and half ``A``
    is returned as the query half for a MAX reference (None for the others). ``score_on="all"``: every held-out
    cell is scored (not for MAX references).
    """
    test_mask = split.mask(adata, "test")
    if not test_mask.any():
        raise ValueError(f"split {split.name!r} holds out no cells of these data")
    test = adata[test_mask]
    if model.halves is not None and score_on != "half":
        raise ValueError(f"{model.name} is a MAX reference: it needs score_on='half'")
    if score_on == "half":
        if model.halves is not None and model.halves != halves:
            raise ValueError(f"{model.name} needs halves={model.halves!r}, not {halves!r}")
        half = held_out_halves(adata, split, seed=seed, halves=halves)
        real = test[(half == "B").to_numpy()].copy()
        query_half = test[(half == "A").to_numpy()].copy()
    elif score_on == "all":
        real, query_half = test.copy(), None
    else:
        raise ValueError("score_on must be 'half' or 'all'")
    return real, (query_half if model.halves is not None else None)


def predict_scored(
    model: Model, adata: AnnData, split: Split, real: AnnData, *, score_on: str, halves: str, seed: int
) -> tuple[AnnData, AnnData]:
    """A fitted model's prediction of the groups of ``real``, and ``real`` itself.

    Each is followed by the same real control cells of the held-out covariates (ready for
    :func:`vcclib.metrics.evaluate`).
    """
    covariates = covariates_of(real, split.covariate_column)
    query = (
        pd.DataFrame({"covariate": covariates, "perturbation": real.obs["perturbation"].astype(str).to_numpy()})
        .value_counts()
        .rename("n_cells")
        .reset_index()
        .sort_values(["covariate", "perturbation"])
    )
    prediction = model.predict(query)
    prediction.uns["vcc"]["prediction"].update(
        {
            "split": split.name,
            "split_seed": split.seed,
            "halves_seed": seed,
            "score_on": score_on,
            "halves": halves if score_on == "half" else "",
        }
    )
    controls = split.controls(adata, sorted(set(covariates)))
    real_out = with_controls(_as_prediction_like(real, model), controls)
    return with_controls(prediction, controls), real_out


def fit_predict(
    name: str,
    adata: AnnData,
    split: Split,
    *,
    score_on: str = "half",
    halves: str = "random",
    seed: int = 0,
    model: Model | None = None,
    **params,
) -> tuple[AnnData, AnnData]:
    """Fit model ``name`` on ``split``'s training cells; predict the held-out groups.

    Returns
    -------
    (prediction, real)
        Both carry the real control cells of the held-out covariates after their predicted/real cells, so they
        are ready for :func:`vcclib.metrics.evaluate`. ``real`` is half ``B`` (``score_on="half"``) or every
        held-out cell (``score_on="all"``, not for MAX references). ``prediction.obs['vcc_fallback']`` flags
        groups the model filled with its fallback.
    """
    model = model if model is not None else get_model(name, **params)
    train = split.subset(adata, "train")
    real, query_half = scored_parts(model, adata, split, score_on=score_on, halves=halves, seed=seed)
    model.fit(train, heldout=query_half)
    return predict_scored(model, adata, split, real, score_on=score_on, halves=halves, seed=seed)


def _as_prediction_like(real: AnnData, model) -> AnnData:
    """The real held-out cells with the prediction's obs columns (for concatenation with controls)."""
    out = real.copy()
    out.obs["vcc_fallback"] = False
    out.uns["vcc"] = {**model.uns_vcc}
    return out
