"""The metric registry: every metric declared once, next to its code, in :data:`METRICS`.

A metric is a function ``func(ctx, **kwargs)`` of an :class:`~vcclib.metrics.context.EvalContext` that returns
either a :class:`pandas.Series` indexed by perturbation (perturbations it leaves out are *missing*, as in
cell-eval's long-format results) or one float (a single value that is broadcast to every perturbation, e.g.
``de_spearman_sig``). :func:`register` (or the :func:`metric` decorator) adds a :class:`MetricSpec` to
:data:`METRICS`; families of metrics (``overlap_at_{N,50,...}``) are registered in loops with different
``kwargs``, as in cell-eval.

>>> from vcclib.metrics import METRICS
>>> METRICS.get("mae").best_value, METRICS.get("discrimination_score_l1").min_perturbations
(<BestValue.ZERO: 0.0>, 3)
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from vcclib.registry import BestValue, Registry

#: Conventions a metric may declare (keys of :attr:`MetricSpec.conventions`).
CONVENTION_KEYS = ("gene_space", "pseudobulk", "reference", "cells")

#: The modules whose import registers the metrics (imported on the first lookup of :data:`METRICS`).
METRIC_MODULES = (
    "vcclib.metrics.de_metrics",
    "vcclib.metrics.distances",
    "vcclib.metrics.expression",
    "vcclib.metrics.field",
    "vcclib.metrics.vcc2026",
)


class MetricNeeds(enum.StrEnum):
    """What a metric reads from the evaluation context."""

    BULK = "bulk"  #: pseudobulks (means of log1p per perturbation)
    DE = "de"  #: the real and predicted DE tables
    CELLS = "cells"  #: single cells
    COUNTS = "counts"  #: raw-count pseudobulks and DE (the VCC 2026 suite, cell-eval2's conventions)


@dataclass(frozen=True)
class MetricSpec:
    """Metadata and implementation of one metric.

    Attributes
    ----------
    name
        Column name in ``results.csv`` (cell-eval's name where cell-eval has the metric).
    family
        The paper or package the definition comes from (``cell-eval``, ``gears``, ``perturbench``, ...).
    func
        ``func(ctx, **kwargs)`` returning a per-perturbation Series or one float.
    best_value
        Value of a perfect prediction: :attr:`BestValue.ZERO` or :attr:`BestValue.ONE`; :attr:`BestValue.NONE`
        when the metric is descriptive and must not be scored against a baseline (cell-eval's
        ``MetricBestValue.NONE``).
    higher_is_better
        Derived from ``best_value`` unless given (None for a descriptive metric).
    conventions
        Gene space, pseudobulk, reference (what Δ is taken against) and cell level used by the metric.
    source
        Where the definition was read (package and file).
    description
        One sentence.
    kwargs
        Fixed keyword arguments passed to ``func``.
    needs
        What the metric reads (:class:`MetricNeeds`): pseudobulks, DE tables or single cells.
    min_perturbations
        The fewest non-control perturbations an evaluation group must hold for the metric to be defined: 3 for
        metrics that compare a perturbation with the others (ranks, clusters, correlations across perturbations,
        perturbed references), 1 otherwise. Evaluation per covariate leaves the metric out (NaN) below it.
    """

    name: str
    family: str
    func: Callable[..., Any]
    best_value: BestValue
    higher_is_better: bool | None
    conventions: Mapping[str, str]
    source: str
    description: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    needs: MetricNeeds = MetricNeeds.BULK
    min_perturbations: int = 1

    def compute(self, ctx, **overrides):
        """Run the metric on ``ctx``; ``overrides`` replace the registered kwargs."""
        return self.func(ctx, **{**self.kwargs, **overrides})

    @property
    def scored(self) -> bool:
        """Whether the metric has a best value (descriptive metrics such as DE-gene counts are not scored)."""
        return self.best_value is not BestValue.NONE


#: Every registered metric (:class:`MetricSpec`), in registration order.
METRICS: Registry[MetricSpec] = Registry("metric", modules=METRIC_MODULES)


def register(
    name: str,
    func: Callable[..., Any],
    *,
    family: str,
    best_value: float | None | BestValue,
    source: str,
    description: str,
    conventions: Mapping[str, str] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    needs: str | MetricNeeds = MetricNeeds.BULK,
    higher_is_better: bool | None = None,
    min_perturbations: int = 1,
) -> MetricSpec:
    """Add a metric to :data:`METRICS` (names are unique) and return its spec.

    ``best_value`` is ``0``, ``1`` or ``None`` (converted with :meth:`BestValue.of`); ``needs`` one of
    :class:`MetricNeeds` or its value.
    """
    best = BestValue.of(best_value)
    if higher_is_better is None:
        higher_is_better = best.higher_is_better
    if int(min_perturbations) < 1:
        raise ValueError(f"metric {name!r}: min_perturbations must be at least 1")
    return METRICS.add(
        MetricSpec(
            name=name,
            family=family,
            func=func,
            best_value=best,
            higher_is_better=higher_is_better,
            conventions=dict(conventions or {}),
            source=source,
            description=description,
            kwargs=dict(kwargs or {}),
            needs=MetricNeeds(needs),
            min_perturbations=int(min_perturbations),
        )
    )


def metric(name: str, **meta) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator form of :func:`register`: ``@metric("mae", family=..., best_value=0, ...)``."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        register(name, func, **meta)
        return func

    return decorate


def get_metric(name: str) -> MetricSpec:
    """The spec of ``name``; an :class:`~vcclib.errors.UnknownNameError` lists the registered names."""
    return METRICS.get(name)


def list_metrics() -> pd.DataFrame:
    """One row per registered metric: name, family, best value (None for descriptive metrics), direction,
    needs, minimum number of perturbations, conventions, source, description."""
    rows = []
    for spec in METRICS.specs():
        rows.append(
            {
                "name": spec.name,
                "family": spec.family,
                "best_value": None if not spec.scored else float(spec.best_value),
                "higher_is_better": spec.higher_is_better,
                "needs": spec.needs.value,
                "min_perturbations": spec.min_perturbations,
                **{key: spec.conventions.get(key, "") for key in CONVENTION_KEYS},
                "source": spec.source,
                "description": spec.description,
            }
        )
    return pd.DataFrame(rows)


class _RegistryMapping(Mapping[str, MetricSpec]):
    """A read-only ``name → spec`` mapping over :data:`METRICS` (``REGISTRY[name]``, ``in``, ``.get``)."""

    def __getitem__(self, name: str) -> MetricSpec:
        return METRICS.get(name)  # UnknownNameError is a KeyError

    def __iter__(self) -> Iterator[str]:
        return iter(METRICS.names())

    def __len__(self) -> int:
        return len(METRICS)

    def __contains__(self, name: object) -> bool:
        return name in METRICS


#: Read-only mapping view of :data:`METRICS` for code that indexes metrics by name (``REGISTRY["mae"]``).
REGISTRY: Mapping[str, MetricSpec] = _RegistryMapping()
