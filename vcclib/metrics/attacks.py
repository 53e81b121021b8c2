"""An attack battery: submissions that game metrics, scored on every profile against an honest submission.

Each attack turns an honest prediction of raw counts into a gamed one (the log1p profiles read
``log1p(normalize_total(counts, 1e4))`` of it). The honest submission is a technical replicate: half of each
perturbation's real cells predicting the other half (:func:`replicate_pair`). Attacks, from the field's known
loopholes (cell-eval issues #183, #184, #196, #204 and the VCC 2025 leaderboard):

``scale_inflated`` / ``scale_shrunk``
    every predicted count × 4 / × 0.25 (cells deeper or shallower than measured).
``mixed_log1p``
    half of the predicted perturbed cells written as log1p of normalised counts, half as counts.
``tampered_control``
    predicted control cells scaled × 0.5 (feeds every metric that reads the prediction's own control).
``deg_leak``
    control cells with the k most expressed genes doubled, k ∝ cells × median UMIs of the real perturbation
    (public facts that predicted the number of DE genes in VCC 2025).
``random_noise``
    Poisson draws around the control mean with random per-gene log-fold changes.
``collapsed_mean``
    every perturbed cell replaced by the mean perturbed profile (one prediction for every perturbation).
``control_copied``
    every perturbation predicted by control cells.

:func:`attack_table` returns one row per (attack, profile, metric): honest value, attacked value, whether
the attack games the metric (scores better than honest) and by how much. :func:`screen` is what
``vcc eval`` runs on every submission to flag the attacks it can detect.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

DEFAULT_PROFILES = ("vcc", "vcc2026", "full")
#: predicted effects (mean |pseudobulk − reference control|) below this share of the reference's: flagged
CONTROL_COPY_RATIO = 0.25
SEED = 0


class SuspiciousSubmissionWarning(UserWarning):
    """The prediction looks like a known way of gaming the metrics (see :func:`screen`)."""


def _dense(X) -> np.ndarray:
    return X.toarray() if sp.issparse(X) else np.asarray(X)


def _with_X(adata, X):
    out = adata.copy()
    out.X = sp.csr_matrix(np.asarray(X, dtype=np.float32))
    return out


def _labels(adata, column):
    return adata.obs[column].astype(str).to_numpy()


def log1p_normalised(counts, target_sum: float = 1e4):
    """``log1p(normalize_total(X, target_sum))`` of an AnnData of counts (float32 CSR)."""
    X = sp.csr_matrix(counts.X, dtype=np.float64)
    lib = np.asarray(X.sum(axis=1)).ravel()
    X = sp.diags(target_sum / np.where(lib > 0, lib, 1.0)) @ X
    X = sp.csr_matrix(X)
    X.data = np.log1p(X.data)
    out = counts.copy()
    out.X = X.astype(np.float32)
    return out


def replicate_pair(real, column: str, seed: int = SEED):
    """(honest prediction, reference): two disjoint halves of every group of ``real``."""
    from vcclib.metrics.vcc2026_score import disjoint_halves

    a, b = disjoint_halves(real, column, seed)
    b.obs_names = [f"pred_{i}" for i in range(b.n_obs)]
    return b, a


def scale(pred, real, column, control, rng, factor=4.0):
    """The perturbed cells' counts multiplied by ``factor`` and rounded (inflated; below 1, shrunk)."""
    labels = _labels(pred, column)
    X = _dense(pred.X).astype(np.float64)
    X[labels != control] = np.round(X[labels != control] * factor)
    return _with_X(pred, X)


def mixed_log1p(pred, real, column, control, rng):
    """Marks half of the perturbed cells as written on the other scale (applied per profile by :func:`_as_submitted`)."""
    labels = _labels(pred, column)
    out = pred.copy()
    out.uns = {**dict(pred.uns), "other_scale_rows": np.flatnonzero(labels != control)[::2]}
    return out


def tampered_control(pred, real, column, control, rng):
    """The predicted control cells' counts halved, the perturbed cells left as they are."""
    labels = _labels(pred, column)
    X = _dense(pred.X).astype(np.float64)
    X[labels == control] = np.round(X[labels == control] * 0.5)
    return _with_X(pred, X)


def _control_cells(pred, real, column, control, rng):
    ctrl = _dense(real.X[np.flatnonzero(_labels(real, column) == control)]).astype(np.float64)
    labels = _labels(pred, column)
    X = ctrl[rng.integers(0, ctrl.shape[0], size=labels.size)]
    X[labels == control] = _dense(pred.X[np.flatnonzero(labels == control)])
    return X, labels, ctrl


def control_copied(pred, real, column, control, rng):
    """Every perturbation predicted as copies of control cells."""
    X, _, _ = _control_cells(pred, real, column, control, rng)
    return _with_X(pred, X)


def deg_leak(pred, real, column, control, rng):
    """Control cells with the top genes doubled, as many per perturbation as its cells × median UMIs predict
    of its DEG count (the leak)."""
    X, labels, ctrl = _control_cells(pred, real, column, control, rng)
    real_labels = _labels(real, column)
    R = sp.csr_matrix(real.X)
    umis = np.asarray(R.sum(axis=1)).ravel()
    perts = [p for p in np.unique(real_labels) if p != control]
    signal = np.array([(real_labels == p).sum() * np.median(umis[real_labels == p]) for p in perts])
    order = np.argsort(-ctrl.mean(0))
    k = np.round(signal / signal.max() * 0.3 * X.shape[1]).astype(int)
    for p, kp in zip(perts, k):
        rows = np.flatnonzero(labels == p)
        X[np.ix_(rows, order[:kp])] *= 2.0
    return _with_X(pred, X)


def random_noise(pred, real, column, control, rng):
    """Poisson draws around the control mean with random log-normal effects per perturbation."""
    labels = _labels(pred, column)
    mu = _dense(real.X[np.flatnonzero(_labels(real, column) == control)]).mean(0)
    X = _dense(pred.X).astype(np.float64)
    for p in np.unique(labels[labels != control]):
        rows = np.flatnonzero(labels == p)
        X[rows] = rng.poisson(mu * np.exp(rng.normal(0, 0.5, mu.size)), size=(rows.size, mu.size))
    return _with_X(pred, X)


def collapsed_mean(pred, real, column, control, rng):
    """Every perturbation predicted as the mean over all perturbations."""
    labels = _labels(pred, column)
    X = _dense(pred.X).astype(np.float64)
    perturbed = labels != control
    X[perturbed] = np.round(X[perturbed].mean(0))
    return _with_X(pred, X)


ATTACKS = {
    "scale_inflated": lambda *a: scale(*a, factor=4.0),
    "scale_shrunk": lambda *a: scale(*a, factor=0.25),
    "mixed_log1p": mixed_log1p,
    "tampered_control": tampered_control,
    "deg_leak": deg_leak,
    "random_noise": random_noise,
    "collapsed_mean": collapsed_mean,
    "control_copied": control_copied,
}


def _run(pred_counts, real_counts, profile, column, control):
    """Aggregate means of ``profile`` (None when the submission is refused, with the message)."""
    from vcclib.errors import VccError
    from vcclib.metrics import evaluate

    counts = profile == "vcc2026"
    pred = _as_submitted(pred_counts, counts)
    real = real_counts if counts else log1p_normalised(real_counts)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = evaluate(pred, real, perturbation_column=column, control_label=control, profile=profile)
    except VccError as error:
        return None, f"refused: {error}"
    flags = list(dict.fromkeys([str(w.message) for w in caught if issubclass(w.category, UserWarning)] + res.warnings))
    return res.agg.set_index("statistic").loc["mean"], flags


def _as_submitted(pred_counts, counts: bool):
    """The file a submitter would send: counts (vcc2026) or log1p of normalised counts, with the rows an
    attack marked as ``other_scale_rows`` written on the other scale."""
    rows = np.asarray(pred_counts.uns.get("other_scale_rows", []), dtype=int)
    out = pred_counts if counts else log1p_normalised(pred_counts)
    if rows.size:
        other = log1p_normalised(pred_counts) if counts else pred_counts
        X = _dense(out.X).astype(np.float32)
        X[rows] = _dense(other.X[rows])
        out = _with_X(out, X)
    return out


def attack_table(
    real, column: str, control: str, *, profiles=DEFAULT_PROFILES, attacks=None, seed: int = SEED
) -> pd.DataFrame:
    """Run every attack through every profile against the honest replicate of ``real`` (raw counts).

    Returns
    -------
    DataFrame
        ``attack, profile, metric, honest, attacked, gamed, by`` (``by``: improvement over honest in the
        metric's better direction, positive when gamed), plus ``outcome`` (``scored``, ``flagged: …`` or
        ``refused: …``: what ``vcc eval`` says about the attacked submission).
    """
    from vcclib.metrics.registry import REGISTRY

    honest, reference = replicate_pair(real, column, seed)
    rows = []
    for profile in profiles:
        base, honest_flags = _run(honest, reference, profile, column, control)
        for name, attack in ATTACKS.items():
            if attacks is not None and name not in attacks:
                continue
            gamed_pred = attack(honest, reference, column, control, np.random.default_rng(seed))
            values, note = _run(gamed_pred, reference, profile, column, control)
            if values is None:
                outcome = note
            else:  # flags the honest replicate also gets (its own control cells) are not the attack's
                new = [f for f in note if f not in honest_flags]
                outcome = f"flagged: {'; '.join(new)}" if new else "scored"
            for metric in base.index:
                spec = REGISTRY.get(metric)
                higher = None if spec is None or spec.best_value is None else spec.higher_is_better
                attacked = np.nan if values is None else float(values.get(metric, np.nan))
                delta = attacked - float(base[metric])
                by = delta if higher else -delta if higher is not None else np.nan
                rows.append(
                    {
                        "attack": name,
                        "profile": profile,
                        "metric": metric,
                        "honest": float(base[metric]),
                        "attacked": attacked,
                        "gamed": bool(np.isfinite(by) and by > 1e-12),
                        "by": by,
                        "outcome": outcome,
                    }
                )
    return pd.DataFrame(rows)


def screen(pred_groups, real_groups, *, scale: str) -> list[str]:
    """Flags for a submission (grouped cells of prediction and reference): what the battery can detect.

    - scale: predicted cells much deeper or shallower than the reference's (median library ratio outside
      [1/2, 2]; counts) or a pseudobulk out of the reference's range (log1p);
    - collapsed mean: every predicted perturbation has the same profile;
    - control copied: predicted perturbation profiles indistinguishable from the predicted control.
    Mixed counts/log1p files and non-count values are refused earlier (:mod:`vcclib.metrics.inputs`); a
    tampered predicted control is flagged by the control check of :func:`vcclib.metrics.evaluate`.
    """
    flags = []
    pred_perts = [p for p in pred_groups.names if p != pred_groups.control]
    if len(pred_perts) < 2:
        return flags
    bulk = pred_groups.mean_of(pred_perts)
    spread = np.abs(bulk - bulk.mean(0)).max()
    if spread <= 1e-9 * max(1.0, np.abs(bulk).max()):
        flags.append(
            "every predicted perturbation has the same profile (a collapsed mean): PDS-type metrics "
            "are at chance and DE metrics reward no perturbation-specific information"
        )
    real_ctrl = real_groups.mean_of([real_groups.control])[0]
    real_bulk = real_groups.mean_of([p for p in real_groups.names if p != real_groups.control])
    real_effect = np.abs(real_bulk - real_ctrl).mean()
    pred_effect = np.abs(bulk - real_ctrl).mean()  # against the reference's control, as vcc2026
    if real_effect > 0 and pred_effect < CONTROL_COPY_RATIO * real_effect:
        flags.append(
            f"predicted effects are {pred_effect / real_effect:.2%} of the reference's: the perturbations "
            "look like copies of the control"
        )
    if scale == "counts":
        lib_p = np.median(np.asarray(pred_groups.X.sum(axis=1)).ravel())
        lib_r = np.median(np.asarray(real_groups.X.sum(axis=1)).ravel())
        if lib_r > 0 and not 0.5 <= lib_p / lib_r <= 2.0:
            flags.append(
                f"predicted cells hold {lib_p / lib_r:.2f}× the reference's median counts per cell "
                "(inflated or shrunk scale)"
            )
    else:
        ratio = (np.abs(bulk).mean() + 1e-12) / (np.abs(real_bulk).mean() + 1e-12)
        if not 0.5 <= ratio <= 2.0:
            flags.append(
                f"predicted pseudobulks are {ratio:.2f}× the reference's on average (inflated or shrunk scale)"
            )
    return flags
