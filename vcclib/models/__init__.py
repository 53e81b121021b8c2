"""Models and baselines: one registry (:data:`MODELS`), one base class (:class:`Model`).

>>> from vcclib.models import get_model, list_models
>>> model = get_model("perturbed_mean").fit(split.subset(adata, "train"))
>>> prediction = model.predict(split.test_groups())          # AnnData in the project schema
>>> model.save("runs/perturbed_mean")                        # JSON + npz, no pickle
>>> Model.load("runs/perturbed_mean").predict(split.test_groups())

Every model is declared once, next to its class, with ``@register_model(name, kind=..., ...)``
(:class:`ModelSpec`: kind — MIN reference, MAX reference, learned, neural, external —, output, feature sources,
halves, optional extra, tasks, source, description, test settings). :func:`list_models` tabulates them without
importing any model package; :func:`available` keeps those whose feature sources can be built here. The chapter's
evaluation tasks are declared in ``tasks.yaml`` (:mod:`vcclib.models.tasks`).
"""

from __future__ import annotations

import pandas as pd

from vcclib.models.base import Model, group_means, normalise_query, with_controls
from vcclib.models.features import FeatureUnavailable
from vcclib.models.runner import available, fit_predict, held_out_halves
from vcclib.models.spec import (
    MODELS,
    ModelOutput,
    ModelSpec,
    PredictionTask,
    extra_installed,
    get_model,
    register_model,
)

__all__ = [
    "MODELS",
    "FeatureUnavailable",
    "Model",
    "ModelOutput",
    "ModelSpec",
    "PredictionTask",
    "available",
    "extra_installed",
    "fit_predict",
    "get_model",
    "group_means",
    "held_out_halves",
    "list_models",
    "normalise_query",
    "register_model",
    "with_controls",
]


def list_models() -> pd.DataFrame:
    """Every registered model, read from the specs (no model package is imported).

    Columns: name, kind, side, output, needs, halves, extra, tasks, source, description, params, class.
    """
    rows = []
    for spec in MODELS.specs():
        rows.append(
            {
                "name": spec.name,
                "kind": spec.kind.value,
                "side": spec.side.value,
                "output": spec.output.value,
                "needs": ",".join(spec.needs),
                "halves": spec.halves or "",
                "extra": spec.extra or "",
                "tasks": ", ".join(t.value for t in spec.tasks),
                "source": spec.source,
                "description": spec.description,
                "params": ", ".join(f"{k}={v}" for k, v in spec.params.items()),
                "class": spec.cls,
            }
        )
    return pd.DataFrame(rows)
