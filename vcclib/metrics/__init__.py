"""Metrics engine: every published perturbation-prediction metric, identical to the peers, much faster.

Public API: :func:`evaluate`, :data:`METRICS` (the registry; :data:`REGISTRY` is a name → spec view of it),
:func:`list_metrics`, :data:`PROFILES`, :func:`vcc2025_score`, :func:`calibrated_score`, :class:`InputError`;
submodules :mod:`~vcclib.metrics.de` (DE engine) and :mod:`~vcclib.metrics.distances`. Importing this package
loads numpy/scipy/pandas only (numba compiles the DE kernel on first use; scanpy, pertpy and cell-eval are never
imported here). The modules that register the metrics (:data:`~vcclib.metrics.registry.METRIC_MODULES`) are
imported on the first lookup of :data:`METRICS`, so every metric is listed while ``import vcclib.metrics`` stays
cheap.
"""

from vcclib.metrics.evaluate import EvaluationResult, evaluate
from vcclib.metrics.inputs import ControlMismatchWarning, InputError
from vcclib.metrics.profiles import PROFILES, resolve
from vcclib.metrics.registry import (
    METRICS,
    REGISTRY,
    MetricNeeds,
    MetricSpec,
    get_metric,
    list_metrics,
    register,
)
from vcclib.metrics.scoring import calibrated_score, vcc2025_score

__all__ = [
    "METRICS",
    "REGISTRY",
    "MetricNeeds",
    "PROFILES",
    "ControlMismatchWarning",
    "EvaluationResult",
    "InputError",
    "MetricSpec",
    "calibrated_score",
    "evaluate",
    "get_metric",
    "list_metrics",
    "register",
    "resolve",
    "vcc2025_score",
]
