"""What every metric reads: grouped cells, pseudobulks, Δ and DE tables of the prediction and the real data,
computed once and cached."""

from __future__ import annotations

from functools import cached_property

import numpy as np

from vcclib.metrics.de import DEArrays, de_arrays, ttest_scores
from vcclib.metrics.pseudobulk import GroupedCells


class EvalContext:
    """Cached inputs of the metrics for one (prediction, real) pair.

    Parameters
    ----------
    pred, real
        Cells grouped by perturbation (same genes, same control label).
    genes
        Gene names (var_names).
    de_convention
        ``"cell-eval"`` or ``"vcc2025"`` (see :mod:`vcclib.metrics.de`).
    fdr_threshold
        Significance threshold of the DE metrics (cell-eval: 0.05).
    real_de
        A precomputed real DE (reused when scoring a baseline against the same real data).
    """

    def __init__(
        self,
        pred: GroupedCells,
        real: GroupedCells,
        genes,
        *,
        de_convention: str = "cell-eval",
        fdr_threshold: float = 0.05,
        real_de: DEArrays | None = None,
    ):
        self.pred = pred
        self.real = real
        self.genes = np.asarray(genes).astype(str)
        self.control = real.control
        self.de_convention = de_convention
        self.fdr_threshold = fdr_threshold
        self.perts = np.array([p for p in pred.names if p != pred.control])
        if real_de is not None:
            self.__dict__["de_real"] = real_de

    @property
    def n_perts(self) -> int:
        return int(self.perts.size)

    def series(self, values, index=None):
        """A per-perturbation Series (index: :attr:`perts` unless given)."""
        import pandas as pd

        return pd.Series(np.asarray(values, dtype=np.float64), index=self.perts if index is None else index)

    # pseudobulks (mean of log1p over cells, float64)
    @cached_property
    def bulk_real(self) -> np.ndarray:
        return self.real.mean_of(self.perts)

    @cached_property
    def bulk_pred(self) -> np.ndarray:
        return self.pred.mean_of(self.perts)

    @cached_property
    def ctrl_real(self) -> np.ndarray:
        return self.real.mean_of([self.control])[0]

    @cached_property
    def ctrl_pred(self) -> np.ndarray:
        return self.pred.mean_of([self.control])[0]

    @cached_property
    def delta_real(self) -> np.ndarray:
        """Real Δ: real pseudobulk − real control pseudobulk."""
        return self.bulk_real - self.ctrl_real

    @cached_property
    def delta_pred(self) -> np.ndarray:
        """Predicted Δ against the prediction's own control cells (cell-eval's convention)."""
        return self.bulk_pred - self.ctrl_pred

    @cached_property
    def real_pert_mean(self) -> np.ndarray:
        """Mean of the real perturbation pseudobulks (Systema's μ_pert, Diversity by Design's reference)."""
        return self.bulk_real.mean(axis=0)

    # DE
    @cached_property
    def de_real(self) -> DEArrays:
        return _subset_de(de_arrays(self.real, self.genes, self.de_convention), self.perts)

    @cached_property
    def de_pred(self) -> DEArrays:
        return _subset_de(de_arrays(self.pred, self.genes, self.de_convention), self.perts)

    @cached_property
    def ttest_real(self) -> np.ndarray:
        """scanpy t-test scores of each real perturbation against real control (perts × genes)."""
        names, scores = ttest_scores(self.real, reference="control")
        return scores[np.searchsorted(names, self.perts)]

    def top_de_genes(self, n: int = 20) -> np.ndarray:
        """Indices (perts × n) of the n genes with the largest |t| (scanpy ``rankby_abs``) per real perturbation."""
        key = f"_top_de_{n}"
        if key not in self.__dict__:
            scores = np.abs(self.ttest_real)
            n = min(n, scores.shape[1])
            self.__dict__[key] = np.argsort(-scores, axis=1, kind="stable")[:, :n]
        return self.__dict__[key]


def _subset_de(de: DEArrays, perts: np.ndarray) -> DEArrays:
    """Rows of ``de`` for ``perts`` (in that order)."""
    if de.targets.size == perts.size and np.array_equal(de.targets, perts):
        return de
    index = np.searchsorted(de.targets, perts)
    fields = {}
    for name, value in de.__dict__.items():
        if isinstance(value, np.ndarray) and value.ndim == 2 or name in ("targets", "target_membership"):
            fields[name] = value[index]
        else:
            fields[name] = value
    return DEArrays(**fields)
