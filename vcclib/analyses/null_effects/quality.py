"""Cell death and poor readouts: per perturbation, cell-quality shifts against control and depletion.

Per cell: total UMIs, genes detected and the mitochondrial fraction, each from an obs column named by parameter
or computed from ``layers['counts']`` (UMIs, genes detected over the measured genes; mito from ``MT-`` genes when
at least :data:`MIN_MITO_GENES` are measured). A signal that is neither present nor computable is skipped, with a
note. Per perturbation: the shift against control (log2 ratio of medians for UMIs and genes, difference of means
for the mito fraction), a Mann–Whitney p-value and BH across perturbations.

Depletion: cells observed per perturbation against the cells expected if every guide were as well represented as
the median non-targeting guide (no plasmid counts are available, so uniform library representation is assumed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import false_discovery_control, mannwhitneyu

MIN_MITO_GENES = 5
#: with fewer measured genes, UMIs and genes detected summed over the panel measure the panel's expression (which a
#: transcriptional effect on the panel moves), not the cell's quality: such signals are refused for the dying flag
MIN_TRANSCRIPTOME_GENES = 5000
SIGNALS = ("total_umis", "genes_detected", "mito_fraction")


def quality_signals(
    adata, umi_column: str = "", genes_column: str = "", mito_column: str = ""
) -> tuple[pd.DataFrame, list[str]]:
    """Per-cell quality signals and notes on what was skipped or how each was computed."""
    obs, notes, out = adata.obs, [], {}
    counts = adata.layers["counts"] if "counts" in adata.layers else None
    if counts is not None and not sp.issparse(counts):
        counts = sp.csr_matrix(counts)
    for name, column in (("total_umis", umi_column), ("genes_detected", genes_column), ("mito_fraction", mito_column)):
        if column:
            if column not in obs:
                notes.append(f"{name}: obs column {column!r} is absent, skipped")
                continue
            out[name] = obs[column].to_numpy(dtype=float)
            notes.append(f"{name}: obs[{column!r}]")
        elif name == "total_umis" and counts is not None:
            out[name] = np.asarray(counts.sum(1)).ravel()
            notes.append(f"total_umis: sum of layers['counts'] over the {adata.n_vars:,} measured genes")
        elif name == "genes_detected" and counts is not None:
            out[name] = np.diff(counts.tocsr().indptr).astype(float)
            notes.append(f"genes_detected: measured genes with ≥ 1 UMI (of {adata.n_vars:,})")
        elif name == "mito_fraction" and counts is not None:
            mito = np.asarray(adata.var_names.str.upper().str.startswith("MT-"))
            if mito.sum() >= MIN_MITO_GENES:
                total = np.asarray(counts.sum(1)).ravel()
                out[name] = np.asarray(counts[:, mito].sum(1)).ravel() / np.maximum(total, 1)
                notes.append(f"mito_fraction: {int(mito.sum())} MT- genes of layers['counts']")
            else:
                notes.append(f"mito_fraction: not measured ({int(mito.sum())} MT- genes), skipped")
        else:
            notes.append(f"{name}: no obs column given and no layers['counts'], skipped")
    return pd.DataFrame(out, index=adata.obs_names), notes


def usable_signals(notes: list[str], n_genes: int) -> tuple[list[str], list[str]]:
    """Signals fit for the dying-cell flag, and one reason per refused signal.

    A signal from an obs column (a per-cell summary of the whole transcriptome from the source) is usable; one
    computed from ``layers['counts']`` is usable only when at least :data:`MIN_TRANSCRIPTOME_GENES` genes are
    measured. On a targeted panel (Papalexi's 299 genes, an HVG subset) the UMIs of the measured genes fall or rise
    with the perturbation's effect on them, so a flag from them would mark strong effects, not dying cells.
    """
    usable, refused = [], []
    for name in SIGNALS:
        note = next((n for n in notes if n.startswith(f"{name}:")), "")
        if not note or "skipped" in note:
            continue
        if "layers['counts']" in note or "measured genes" in note:
            if n_genes < MIN_TRANSCRIPTOME_GENES:
                refused.append(
                    f"{name} refused for the dying-cell flag: computed over {n_genes:,} measured genes "
                    f"(fewer than {MIN_TRANSCRIPTOME_GENES:,}), it measures the panel's expression, not "
                    "the cell's quality"
                )
                continue
        usable.append(name)
    return usable, refused


def quality_shifts(
    signals: pd.DataFrame, groups: dict[str, np.ndarray], control: np.ndarray, alpha: float = 0.05
) -> pd.DataFrame:
    """Per group: shift of each signal against control, its Mann–Whitney p and BH q (across groups)."""
    rows = {g: {} for g in groups}
    for name in signals.columns:
        values = signals[name].to_numpy(dtype=float)
        ref = values[control]
        pvals = {}
        for g, idx in groups.items():
            x = values[idx]
            if not len(x):
                rows[g][f"{name}_shift" if name == "mito_fraction" else f"{name}_log2_shift"] = np.nan
            elif name == "mito_fraction":
                rows[g][f"{name}_shift"] = float(np.mean(x) - np.mean(ref))
            else:
                rows[g][f"{name}_log2_shift"] = float(np.log2(max(np.median(x), 1e-9) / max(np.median(ref), 1e-9)))
            pvals[g] = float(mannwhitneyu(x, ref).pvalue) if len(x) >= 3 else np.nan
        p = pd.Series(pvals)
        q = pd.Series(np.nan, index=p.index)
        ok = p.notna()
        if ok.any():
            q[ok] = false_discovery_control(p[ok])
        for g in groups:
            rows[g][f"{name}_q"] = float(q[g])
    return pd.DataFrame.from_dict(rows, orient="index")


def dying_flag(
    shifts: pd.DataFrame, alpha: float = 0.05, umi_log2: float = -0.25, mito_shift: float = 0.01, signals=SIGNALS
) -> pd.Series:
    """Flag groups whose surviving cells look low-quality or dying.

    Significantly fewer UMIs or genes (log2 shift ≤ ``umi_log2``) or a higher mito fraction (≥ ``mito_shift``), at
    BH q < ``alpha``, from the ``signals`` named (default all; see :func:`usable_signals`). No usable signal: NaN.
    """
    present = [s for s in signals if f"{s}_q" in shifts]
    if not present:
        return pd.Series(np.nan, index=shifts.index, dtype=object)
    flag = pd.Series(False, index=shifts.index)
    for name in ("total_umis", "genes_detected"):
        if name in present and f"{name}_log2_shift" in shifts:
            flag |= (shifts[f"{name}_log2_shift"] <= umi_log2) & (shifts[f"{name}_q"] < alpha)
    if "mito_fraction" in present and "mito_fraction_shift" in shifts:
        flag |= (shifts["mito_fraction_shift"] >= mito_shift) & (shifts["mito_fraction_q"] < alpha)
    return flag


def depletion(guides: dict[str, dict[str, np.ndarray]], control_guides: dict[str, np.ndarray] | None) -> pd.DataFrame:
    """Observed vs expected cells per perturbation from guide representation (uniform library assumed).

    Expected = number of guides × median cells per non-targeting guide; ``depletion_z`` is the log ratio in units
    of the non-targeting guides' spread of log cell counts (robust: MAD × 1.4826). Empty when guides are unknown.
    """
    if not guides or not control_guides:
        return pd.DataFrame(columns=["n_guides", "cells_observed", "cells_expected", "depletion_ratio", "depletion_z"])
    nt = np.array([len(v) for v in control_guides.values()], dtype=float)
    nt = nt[nt > 0]
    med = float(np.median(nt))
    log_nt = np.log(nt)
    spread = float(np.median(np.abs(log_nt - np.median(log_nt))) * 1.4826) or float(np.std(log_nt)) or 1.0
    rows = {}
    for g, per_guide in guides.items():
        counts = np.array([len(v) for v in per_guide.values()], dtype=float)
        observed = float(len(np.unique(np.concatenate(list(per_guide.values()))))) if per_guide else 0.0
        expected = med * len(counts)
        per_guide_log = np.log(np.maximum(counts, 0.5)) - np.log(med)
        rows[g] = {
            "n_guides": len(counts),
            "cells_observed": observed,
            "cells_expected": expected,
            "depletion_ratio": observed / expected if expected else np.nan,
            "depletion_z": float(np.mean(per_guide_log) / spread),
        }
    return pd.DataFrame.from_dict(rows, orient="index")
