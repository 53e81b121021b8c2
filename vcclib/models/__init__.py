"""Baselines: the MIN and MAX references every score is placed between, with the same interface as models.

>>> from vcclib.baselines import get_baseline, list_baselines
>>> model = get_baseline("perturbed_mean").fit(split.subset(adata, "train"))
>>> prediction = model.predict(split.test_groups())          # AnnData in the project schema

Each baseline is declared once (``@register``) with its metadata: ``side`` (MIN: a floor; MAX: a ceiling made
of real held-out cells), ``output`` (``pseudobulk`` repeated per cell, or ``cells``), ``source`` and ``needs``
(prior-knowledge feature sources). :func:`list_baselines` tabulates them; :func:`available` drops those whose
sources cannot be built here (the ``text`` source needs an optional package).
"""

from vcclib.baselines import learned, simple  # noqa: F401  (registration side effects)
from vcclib.baselines.base import (
    BASELINES,
    Baseline,
    get_baseline,
    group_means,
    list_baselines,
    normalise_query,
    with_controls,
)
from vcclib.baselines.features import FeatureUnavailable
from vcclib.baselines.runner import available, fit_predict, held_out_halves

__all__ = [
    "BASELINES",
    "Baseline",
    "FeatureUnavailable",
    "available",
    "fit_predict",
    "get_baseline",
    "group_means",
    "held_out_halves",
    "list_baselines",
    "normalise_query",
    "with_controls",
]
