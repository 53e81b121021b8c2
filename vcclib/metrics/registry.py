"""The metric registry: every metric declared once, next to its code.

A metric is a function ``func(ctx, **kwargs)`` of an :class:`~vcclib.metrics.context.EvalContext` that returns
either a :class:`pandas.Series` indexed by perturbation (perturbations it leaves out are *missing*, as in
cell-eval's long-format results) or one float (a single value that is broadcast to every perturbation, e.g.
``de_spearman_sig``). The :func:`metric` decorator records its metadata in :data:`REGISTRY`; families of
metrics (``overlap_at_{N,50,...}``) are registered in loops with different ``kwargs``, as in cell-eval.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: Conventions a metric may declare (keys of :attr:`MetricSpec.conventions`).
CONVENTION_KEYS = ("gene_space", "pseudobulk", "reference", "cells")


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
        Value of a perfect prediction (``0.0`` or ``1.0``); ``None`` when the metric is descriptive and must not
        be scored against a baseline (cell-eval's ``MetricBestValue.NONE``).
    higher_is_better
        Derived from ``best_value`` unless given.
    conventions
        Gene space, pseudobulk, reference (what Δ is taken against) and cell level used by the metric.
    source
        Where the definition was read (package and file).
    description
        One sentence.
    kwargs
        Fixed keyword arguments passed to ``func``.
    needs
        What the metric reads: ``"bulk"`` (pseudobulks), ``"de"`` (DE tables) or ``"cells"`` (single cells).
    """

    name: str
    family: str
    func: Callable[..., Any]
    best_value: float | None
    higher_is_better: bool | None
    conventions: Mapping[str, str]
    source: str
    description: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    needs: str = "bulk"

    def compute(self, ctx, **overrides):
        """Run the metric on ``ctx``; ``overrides`` replace the registered kwargs."""
        return self.func(ctx, **{**self.kwargs, **overrides})


#: name → :class:`MetricSpec`. Filled when :mod:`vcclib.metrics` is imported.
REGISTRY: dict[str, MetricSpec] = {}


def register(
    name: str,
    func: Callable[..., Any],
    *,
    family: str,
    best_value: float | None,
    source: str,
    description: str,
    conventions: Mapping[str, str] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    needs: str = "bulk",
    higher_is_better: bool | None = None,
) -> MetricSpec:
    """Add a metric to :data:`REGISTRY` (names are unique) and return its spec."""
    if name in REGISTRY:
        raise ValueError(f"metric {name!r} is already registered")
    if higher_is_better is None and best_value is not None:
        higher_is_better = best_value >= 1.0
    spec = MetricSpec(
        name=name,
        family=family,
        func=func,
        best_value=best_value,
        higher_is_better=higher_is_better,
        conventions=dict(conventions or {}),
        source=source,
        description=description,
        kwargs=dict(kwargs or {}),
        needs=needs,
    )
    REGISTRY[name] = spec
    return spec


def metric(name: str, **meta) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator form of :func:`register`: ``@metric("mae", family=..., best_value=0.0, ...)``."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        register(name, func, **meta)
        return func

    return decorate


def get_metric(name: str) -> MetricSpec:
    """The spec of ``name``; a KeyError lists the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


def list_metrics() -> pd.DataFrame:
    """One row per registered metric: name, family, best value, direction, conventions, source, description."""
    rows = []
    for spec in REGISTRY.values():
        rows.append(
            {
                "name": spec.name,
                "family": spec.family,
                "best_value": spec.best_value,
                "higher_is_better": spec.higher_is_better,
                "needs": spec.needs,
                **{key: spec.conventions.get(key, "") for key in CONVENTION_KEYS},
                "source": spec.source,
                "description": spec.description,
            }
        )
    return pd.DataFrame(rows)
