"""Input validation: refuse bad prediction/real pairs with a message that says what is wrong and where."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp

from vcclib.errors import VccError

#: log1p of library-size-normalised counts stays far below this (log1p(5e8) ≈ 20), as pdex's heuristic.
LOG1P_MAX = 20.0


class InputError(VccError, ValueError):
    """A prediction or real AnnData cannot be evaluated as given (one line: what is wrong and where)."""


class ControlMismatchWarning(UserWarning):
    """The prediction's control cells differ from the real control cells."""


def _values(X) -> np.ndarray:
    return X.data if sp.issparse(X) else np.asarray(X).ravel()


def scale_of(X, sample: int = 500_000) -> str:
    """Classify X as ``"log1p"``, ``"counts"``, ``"empty"`` (all zero) or ``"other"``.

    Counts: every stored value a non-negative integer and some value above 1 or the matrix integer-valued
    throughout. log1p: some non-integer value and max below :data:`LOG1P_MAX`. Anything else (e.g.
    normalised but not logged values up to thousands) is ``"other"``.
    """
    values = _values(X)
    if values.size > sample:
        # drawn with replacement: without it numpy's choice fills an 8 MiB hash set per call (first touch
        # included) and takes twice as long; a few repeats among 500,000 draws do not change the verdict
        values = values[np.random.default_rng(0).integers(0, values.size, sample)]
    values = values[values != 0]
    if values.size == 0:
        return "empty"
    integer = bool(np.all(values == np.round(values)))
    if integer:
        return "counts"
    return "log1p" if float(values.max()) < LOG1P_MAX else "other"


def check_names(names, what: str) -> None:
    """Refuse duplicated names."""
    import pandas as pd

    index = pd.Index(names)
    if not index.is_unique:
        dupes = index[index.duplicated()].unique()[:5].tolist()
        n = int(index.duplicated().sum())
        raise InputError(f"{what} has {n} duplicated names (e.g. {dupes})")


def check_values(X, what: str) -> None:
    """Refuse NaN, Inf and negative values, saying how many and where."""
    values = _values(X)
    if values.size:
        lo, hi = values.min(), values.max()  # NaN propagates; finite bounds with lo >= 0 mean all is well
        if np.isfinite(lo) and np.isfinite(hi) and lo >= 0:
            return
    bad = ~np.isfinite(values)
    if bad.any():
        raise InputError(f"{what} holds {int(bad.sum())} non-finite values (NaN or Inf)" + _where(X, bad))
    neg = values < 0
    if neg.any():
        raise InputError(
            f"{what} holds {int(neg.sum())} negative values (min {values.min():g}); expected log1p expression"
            + _where(X, neg)
        )


def _where(X, mask_flat: np.ndarray) -> str:
    first = int(np.flatnonzero(mask_flat)[0])
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        row = int(np.searchsorted(X.indptr, first, side="right") - 1)
        col = int(X.indices[first])
    else:
        row, col = divmod(first, X.shape[1])
    return f"; first at cell {row}, gene {col}"


def check_genes(pred_genes, real_genes) -> None:
    """Refuse gene sets (or orders) that differ between the files."""
    pred_genes = np.asarray(pred_genes).astype(str)
    real_genes = np.asarray(real_genes).astype(str)
    if pred_genes.size == real_genes.size and np.array_equal(pred_genes, real_genes):
        return
    only_pred = np.setdiff1d(pred_genes, real_genes)
    only_real = np.setdiff1d(real_genes, pred_genes)
    if only_pred.size or only_real.size:
        raise InputError(
            f"genes differ between the files: {only_pred.size} only in the prediction "
            f"(e.g. {only_pred[:5].tolist()}), {only_real.size} only in the real data (e.g. {only_real[:5].tolist()})"
        )
    raise InputError("the prediction has the real data's genes in another order; reorder with pred[:, real.var_names]")


def check_scales(pred_X, real_X) -> None:
    """Both files must hold log1p values (counts in either, or values that are neither, are refused)."""
    scales = {"prediction": scale_of(pred_X), "real data": scale_of(real_X)}
    bad = {k: v for k, v in scales.items() if v in ("counts", "other")}
    if not bad:
        return
    if set(scales.values()) == {"counts", "log1p"}:
        raise InputError(
            f"counts in one file and log1p in the other ({scales}); both must be log1p of normalised counts "
            "(scanpy: sc.pp.normalize_total then sc.pp.log1p)"
        )
    parts = []
    for what, scale in bad.items():
        if scale == "counts":
            parts.append(f"the {what} holds integer counts")
        else:
            parts.append(f"the {what} is neither counts nor log1p (values up to ≥ {LOG1P_MAX:g} and non-integer)")
    raise InputError("; ".join(parts) + "; expected log1p of normalised counts in both files")


def resolve_control(real, control_label: str | None) -> str:
    """The control label: given, or ``real.uns['vcc']['control_label']``."""
    if control_label is not None:
        return str(control_label)
    meta = real.uns.get("vcc", {}) if hasattr(real, "uns") else {}
    if "control_label" in meta:
        return str(meta["control_label"])
    raise InputError("no control label given and real.uns['vcc']['control_label'] is not set")


def validate_pair(pred, real, perturbation_column: str, control_label: str) -> None:
    """Run every check of :mod:`vcclib.metrics.inputs` on an (prediction, real) AnnData pair."""
    for what, adata in (("prediction", pred), ("real data", real)):
        if perturbation_column not in adata.obs:
            raise InputError(
                f"{what} obs lacks the perturbation column {perturbation_column!r} (has {list(adata.obs.columns)[:10]})"
            )
        labels = adata.obs[perturbation_column].astype(str)
        if control_label not in set(labels):
            raise InputError(f"control label {control_label!r} is missing from {what} obs[{perturbation_column!r}]")
        check_names(adata.var_names, f"{what} var_names (genes)")
        check_names(adata.obs_names, f"{what} obs_names (cells)")
        if adata.X is None:
            raise InputError(f"{what} has no X")
        check_values(adata.X, f"{what} X")
    check_genes(pred.var_names, real.var_names)
    check_scales(pred.X, real.X)
    pred_perts = set(pred.obs[perturbation_column].astype(str))
    real_perts = set(real.obs[perturbation_column].astype(str))
    extra = sorted(pred_perts - real_perts)
    if extra:
        raise InputError(f"{len(extra)} perturbations of the prediction are not in the real data (e.g. {extra[:5]})")
    missing = sorted(real_perts - pred_perts)
    if missing:
        warnings.warn(
            f"{len(missing)} real perturbations have no prediction and are left out (e.g. {missing[:5]})",
            UserWarning,
            stacklevel=3,
        )


def controls_differ(pred_ctrl, real_ctrl, atol: float = 1e-6) -> bool:
    """True when the prediction's control cells are not the real control cells (shape or values)."""
    if pred_ctrl.shape != real_ctrl.shape:
        return True
    a = pred_ctrl.toarray() if sp.issparse(pred_ctrl) else np.asarray(pred_ctrl)
    b = real_ctrl.toarray() if sp.issparse(real_ctrl) else np.asarray(real_ctrl)
    return not np.allclose(a, b, atol=atol, rtol=0)


#: cell-eval2's ``max_counts_per_cell`` (vcc2026 preset)
MAX_COUNTS_PER_CELL = 1e6


def row_totals(X) -> np.ndarray:
    """Total of each row, float64."""
    return np.asarray(X.sum(axis=1), dtype=np.float64).ravel()


def _has_fraction(values: np.ndarray, chunk: int = 1 << 18) -> bool:
    """Whether some value is not an integer, in cache-sized chunks (no full-size temporaries; stops early)."""
    buf = np.empty(min(chunk, values.size), dtype=values.dtype)
    for lo in range(0, values.size, chunk):
        part = values[lo : lo + chunk]
        rounded = np.round(part, out=buf[: part.size])
        if not np.array_equal(rounded, part):
            return True
    return False


def check_counts(X, what: str, *, allow_fractional: bool = False, max_per_cell: float = MAX_COUNTS_PER_CELL) -> None:
    """Refuse anything but raw counts: finite, non-negative, integral, at most ``max_per_cell`` per cell."""
    check_values(X, what)
    values = _values(X)
    if not allow_fractional and values.size and _has_fraction(values):
        frac = values != np.round(values)
        if frac.any():
            raise InputError(
                f"{what} holds {int(frac.sum())} non-integer values (e.g. {values[frac][0]:g}); the vcc2026 "
                "profile scores raw counts (log1p or normalised values are refused)" + _where(X, frac)
            )
    totals = row_totals(X)
    over = totals > max_per_cell
    if over.any():
        first = int(np.flatnonzero(over)[0])
        raise InputError(
            f"{what} has {int(over.sum())} cells with more than {max_per_cell:g} counts (cell {first}: "
            f"{totals[first]:g}); raw counts per cell are capped at {max_per_cell:g}"
        )


def validate_counts_pair(
    pred, real, perturbation_column: str, control_label: str, *, allow_fractional: bool = False
) -> None:
    """The vcc2026 submission rules: raw counts, the reference's genes in its order, its labels, its control."""
    for what, adata in (("prediction", pred), ("real data", real)):
        if perturbation_column not in adata.obs:
            raise InputError(
                f"{what} obs lacks the perturbation column {perturbation_column!r} (has {list(adata.obs.columns)[:10]})"
            )
        check_names(adata.var_names, f"{what} var_names (genes)")
        if adata.X is None:
            raise InputError(f"{what} has no X")
    check_genes(pred.var_names, real.var_names)
    pred_labels = set(pred.obs[perturbation_column].astype(str))
    real_labels = set(real.obs[perturbation_column].astype(str))
    for what, labels in (("prediction", pred_labels), ("real data", real_labels)):
        if control_label not in labels:
            raise InputError(f"control label {control_label!r} is missing from {what} obs[{perturbation_column!r}]")
    extra, missing = sorted(pred_labels - real_labels), sorted(real_labels - pred_labels)
    if extra or missing:
        raise InputError(
            f"perturbation labels must match the reference: {len(extra)} only in the prediction (e.g. {extra[:5]}), "
            f"{len(missing)} missing from it (e.g. {missing[:5]})"
        )
    check_counts(real.X, "real data X")
    check_counts(pred.X, "prediction X", allow_fractional=allow_fractional)
