"""Named metric profiles (cell-eval's ``full``, ``vcc``, ``minimal``, ``de``, ``anndata``, ``pds``, plus ours)."""

from __future__ import annotations

from vcclib.errors import UnknownNameError
from vcclib.metrics.registry import REGISTRY

CE_DE = [f"{m}_at_{k}" for m in ("overlap", "precision") for k in ("N", 50, 100, 200, 500)] + [
    "de_spearman_sig",
    "de_direction_match",
    "de_spearman_lfc_sig",
    "de_sig_genes_recall",
    "de_nsig_counts_real",
    "de_nsig_counts_pred",
    "pr_auc",
    "roc_auc",
]
CE_ANNDATA = [
    "pearson_delta",
    "mse",
    "mae",
    "mse_delta",
    "mae_delta",
    "discrimination_score_l1",
    "discrimination_score_l2",
    "discrimination_score_cosine",
    "pearson_edistance",
    "clustering_agreement",
]


#: families with their own input convention, kept out of ``field``/``full`` (vcc2026 reads raw counts)
OWN_PROFILE_FAMILIES = ("cell-eval", "vcc2026")


def _field() -> list[str]:
    return [n for n, s in REGISTRY.items() if s.family not in OWN_PROFILE_FAMILIES]


class _Profiles(dict):
    """profile → metric names; ``field`` and ``full`` (every registered metric) are filled when read."""

    def __getitem__(self, name):
        if name in ("field", "full"):
            _fill()
        return super().__getitem__(name)

    def get(self, name, default=None):
        return self[name] if name in self else default

    def items(self):
        _fill()
        return super().items()

    def values(self):
        _fill()
        return super().values()


#: profile → metric names (``field`` and ``full`` are filled from the registry when read).
PROFILES: dict[str, list[str]] = _Profiles(
    {
        "vcc": ["mae", "discrimination_score_l1", "overlap_at_N"],
        "minimal": [
            "pearson_delta",
            "mse",
            "mae",
            "discrimination_score_l1",
            "overlap_at_N",
            "precision_at_N",
            "de_nsig_counts_real",
            "de_nsig_counts_pred",
        ],
        "de": CE_DE,
        "anndata": CE_ANNDATA,
        "pds": ["discrimination_score_l1"],
        "cell-eval": CE_DE + CE_ANNDATA,
        # cell-eval2 0.20.0's vcc2026 preset: the six scored metrics (raw counts) and the expression diagnostics
        "vcc2026": [
            "pds_cosine",
            "expr_mse_unbiased_capped_norm",
            "de_wilcoxon_direction_fidelity_yield_raw",
            "de_wilcoxon_direction_reach_raw",
            "de_wilcoxon_sig_jaccard",
            "de_wilcoxon_lfc_nmae",
            "expr_mse_unbiased",
            "expr_mse_unbiased_capped",
            "expr_distance_unbiased",
        ],
        "field": [],  # filled when read
        "full": [],
    }
)


def _fill() -> None:
    dict.__setitem__(PROFILES, "field", _field())
    dict.__setitem__(PROFILES, "full", CE_DE + CE_ANNDATA + _field())


def resolve(profile: str | None = None, metrics=None) -> list[str]:
    """Metric names of a profile, or the explicit list ``metrics`` (validated against the registry)."""
    _fill()
    if metrics is not None:
        names = list(metrics)
    else:
        if profile not in PROFILES:
            raise UnknownNameError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
        names = list(PROFILES[profile])
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise UnknownNameError(f"unknown metrics {unknown}; see vcclib.metrics.list_metrics()")
    return names
