"""Score network predictors next to the baselines: same tasks, splits, halves, metrics and MIN/MAX placement.

:func:`vcclib.models.benchmark.run_task` makes each model from its registered name; the network predictors
carry settings a chapter chooses (cells and trees for inference), so :func:`score_models` takes model
*instances* and otherwise runs exactly the same steps (``fit_predict`` on the split's training part, scored on
half ``B`` of the held-out cells with ``evaluate_by_covariate``). Its long table has run_task's columns, so
:func:`vcclib.models.benchmark.placement` places the predictors between ``perturbed_mean`` (0) and the
technical duplicate (1).
"""

from __future__ import annotations

import pandas as pd
from anndata import AnnData

from vcclib.models.base import Model
from vcclib.models.benchmark import score_model
from vcclib.models.spec import get_model
from vcclib.models.tasks import Task
from vcclib.splits import make_split


def score_models(
    task: Task, models: dict[str, Model | str], adata: AnnData, *, seed: int = 0, profile: str = "full", metrics=None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit, predict and score each model (an instance, or a registered baseline name) on one task.

    Returns
    -------
    (long, fits)
        ``long``: run_task's columns (``task``, ``dataset``, ``split``, ``halves``, ``baseline``, ``side``,
        ``covariate``, ``perturbation``, ``metric``, ``value``, ``fallback``, ``seconds``); ``fits``: one row
        per model with its fit time and, for network predictors, the calibration per covariate.
    """
    split = make_split(task.split, adata, seed=seed, **task.split_params)
    control = str(adata.uns["vcc"]["control_label"])
    frames, fits = [], []
    for name, model in models.items():
        model = get_model(model) if isinstance(model, str) else model
        scored = score_model(
            task, adata, split, name, model, control=control, seed=seed, profile=profile, metrics=metrics
        )
        if scored is None:
            continue
        long, fitted = scored
        seconds = float(long["seconds"].iloc[0]) if len(long) else fitted
        frames.append(long)
        for covariate, values in getattr(model, "calibration", {"": {}}).items():
            fits.append(
                {
                    "task": task.label,
                    "model": name,
                    "covariate": covariate,
                    "fit_predict_s": fitted,
                    "total_s": seconds,
                    **values,
                }
            )
    table = pd.concat(frames, ignore_index=True)
    for position, (key, value) in enumerate(
        (("task", task.label), ("dataset", task.dataset), ("split", task.split), ("halves", task.halves))
    ):
        table.insert(position, key, value)
    table["value"] = pd.to_numeric(table["value"], errors="coerce")
    return table, pd.DataFrame(fits)
