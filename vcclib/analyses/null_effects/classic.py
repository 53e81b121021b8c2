"""Chapter *Which perturbations do nothing?*: a per-perturbation call of a detectable transcriptional effect.

Two tests of each perturbation against control, both from :mod:`vcclib.metrics`:

* the E-distance permutation test (:func:`vcclib.metrics.distances.etest`, pertpy convention: Euclidean distances,
  N² within-group pairs, p = max(#{E_perm > E_obs}, 1) / n_permutations) on the top principal components of all
  cells, as pertpy's ``DistanceTest`` does on ``X_pca``; control cells are subsampled to a fixed number;
* per-gene Mann–Whitney DE (:func:`vcclib.metrics.de.differential_expression`, cell-eval convention, BH within
  each perturbation) against *all* control cells.

E-test p-values are corrected across perturbations (Benjamini–Hochberg or Holm–Šidák).

The chapter's rules live here too: which effect calls rest on one test only (:func:`one_test_only`), which only
knock down their own target (:func:`knockdown_only`), the stability rerun (:func:`stability`), the records the
chapter writes (:func:`chapter_records`) and the answer written from them (:func:`conclusions`,
:func:`weak_points`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import false_discovery_control

from vcclib.analyses.takeaways import Takeaways, names, number, plural, share
from vcclib.data.schema import COMBINATION_SEPARATOR, split_targets
from vcclib.metrics.de import FC_CLIP, differential_expression
from vcclib.metrics.distances import edistance, etest

NULL_CALL, EFFECT_CALL = "no detectable effect", "effect"
#: the IFN-γ receptor → JAK → STAT axis, named in the conclusions where a dataset perturbs it (Papalexi 2021)
IFNG_PATHWAY = ("IFNGR1", "IFNGR2", "JAK2", "STAT1")
#: how ``target_log2fc`` treats zeros: the DE engine's own bounded convention (``"vcc2025"`` in vcclib.metrics.de)
TARGET_LOG2FC_CONVENTION = (
    f"target log2 fold change = log2(t / r) of the group means expm1(mean(log1p X)), with the DE engine's "
    f"vcc2025 zero convention: the fold change is clipped to [1/{FC_CLIP:g}, {FC_CLIP:g}] (0/0 → 1), so a target "
    f"with no expression in its own knockout cells reads {np.log2(1 / FC_CLIP):.2f}, not −inf"
)


def target_log2_fold_change(target_mean, ref_mean) -> np.ndarray:
    """log2 fold change of a target gene in its own cells, finite even where a mean is zero.

    Uses the DE engine's bounded convention (:mod:`vcclib.metrics.de`, ``"vcc2025"``): the fold change of the
    group means is clipped to ``[1 / FC_CLIP, FC_CLIP]`` and 0/0 counts as 1, so a gene with zero expression in
    the knockout cells gets ``log2(1 / 20) ≈ −4.32`` instead of ``−inf`` (see ``TARGET_LOG2FC_CONVENTION``).

    Parameters
    ----------
    target_mean, ref_mean
        Group means on the count scale (``expm1`` of the mean of log1p), as in the DE table.

    Returns
    -------
    numpy.ndarray
        Finite log2 fold changes in ``[−log2 FC_CLIP, log2 FC_CLIP]``.
    """
    t = np.asarray(target_mean, dtype=np.float64)
    r = np.asarray(ref_mean, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = t / r
    ratio = np.where(np.isnan(ratio), 1.0, ratio)
    return np.log2(np.clip(ratio, 1.0 / FC_CLIP, FC_CLIP))


def adjust_pvalues(p, method: str = "bh") -> np.ndarray:
    """Multiple-testing correction across perturbations.

    Parameters
    ----------
    p
        Raw p-values (NaN stays NaN and is not counted).
    method
        ``"bh"`` (Benjamini–Hochberg FDR) or ``"holm-sidak"`` (step-down Holm–Šidák, family-wise error).

    Returns
    -------
    numpy.ndarray
        Adjusted p-values, same order as ``p``.
    """
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    q = p[ok]
    if q.size == 0:
        return out
    if method == "bh":
        out[ok] = false_discovery_control(q)
    elif method == "holm-sidak":
        order = np.argsort(q)
        m = q.size
        adj = 1.0 - (1.0 - q[order]) ** (m - np.arange(m))
        adj = np.minimum(np.maximum.accumulate(adj), 1.0)
        res = np.empty(m)
        res[order] = adj
        out[ok] = res
    else:
        raise ValueError(f"correction {method!r}: use 'bh' or 'holm-sidak'")
    return out


def pca_embedding(X, n_pcs: int = 20, seed: int = 0) -> np.ndarray:
    """Top ``n_pcs`` principal components of the rows of X (centred, not scaled; scanpy's ``pp.pca`` default)."""
    from sklearn.decomposition import PCA

    n_pcs = int(min(n_pcs, X.shape[1] - 1, X.shape[0] - 1))
    X = X.astype(np.float64) if sp.issparse(X) else np.asarray(X, dtype=np.float64)
    return PCA(n_components=n_pcs, svd_solver="arpack", random_state=seed).fit_transform(X)


def _subsample(idx: np.ndarray, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    if cap is None or idx.size <= cap:
        return idx
    return np.sort(rng.choice(idx, size=cap, replace=False))


def perturbation_effects(
    adata,
    *,
    perturbation_column: str = "perturbation",
    control_label: str | None = None,
    n_pcs: int = 20,
    n_permutations: int = 1000,
    max_control_cells: int | None = 2000,
    max_cells_per_perturbation: int | None = None,
    alpha: float = 0.05,
    correction: str = "bh",
    seed: int = 0,
) -> pd.DataFrame:
    """Call, per perturbation, whether it has a detectable transcriptional effect.

    Parameters
    ----------
    adata
        AnnData with log1p X (project schema).
    perturbation_column
        obs column of perturbation labels; ``+`` joins the targets of a combination.
    control_label
        Control label; default ``adata.uns["vcc"]["control_label"]``.
    n_pcs
        Principal components (of all cells) the E-test is computed in.
    n_permutations
        Label permutations of each E-test (smallest attainable p is ``1 / n_permutations``).
    max_control_cells, max_cells_per_perturbation
        Cells drawn at random (``seed``) for the E-test: one control subsample shared by every perturbation, and
        at most this many cells of each perturbation; ``None`` keeps all. DE always uses all cells.
    alpha
        Level for the adjusted E-test p-value and for the per-gene DE FDR.
    correction
        ``"bh"`` or ``"holm-sidak"``, across perturbations (see :func:`adjust_pvalues`).
    seed
        Seed of subsampling, PCA and permutations.

    Returns
    -------
    pandas.DataFrame
        One row per perturbation (index), sorted by E-distance: ``n_cells``, ``n_cells_etest``, ``edistance``
        (pertpy convention, PCA space, vs the control subsample), ``etest_p``, ``etest_p_adj``, ``n_de_genes``
        (genes with DE FDR < ``alpha``), ``n_de_other`` (the same without the target gene(s) themselves: an effect
        beyond the knockdown), ``target_measured``, ``target_log2fc`` and ``target_fdr`` (the target
        gene's own DE row, the fold change by :func:`target_log2_fold_change`; NaN for a combination or an
        unmeasured target), ``evidence`` (``"both"``,
        ``"E-test only"``, ``"DE only"``, ``"neither"``) and ``call``. ``attrs`` holds the settings and
        ``control_split_edistance``: the E-distance between two disjoint halves of the control subsample, a
        noise floor for ``edistance``.

    Notes
    -----
    Rule: ``call`` is ``"no detectable effect"`` when ``etest_p_adj >= alpha`` **and** ``n_de_genes == 0``
    (neither test finds anything); otherwise ``"effect"``. A null call is absence of evidence at this depth,
    not evidence of absence.
    """
    if control_label is None:
        control_label = adata.uns["vcc"]["control_label"]
    labels = adata.obs[perturbation_column].astype(str).to_numpy()
    if control_label not in set(labels):
        raise ValueError(f"control label {control_label!r} is missing from obs[{perturbation_column!r}]")
    perts = sorted(set(labels) - {control_label})
    rng = np.random.default_rng(seed)

    pcs = pca_embedding(adata.X, n_pcs, seed)
    ctrl = _subsample(np.flatnonzero(labels == control_label), max_control_cells, rng)
    half = rng.permutation(ctrl)
    floor = edistance(pcs[half[: half.size // 2]], pcs[half[half.size // 2 :]], convention="pertpy")

    de = differential_expression(adata, perturbation_column, control_label, convention="cell-eval")
    sig = de["fdr"].to_numpy() < alpha
    n_de = pd.Series(sig).groupby(de["target"].to_numpy()).sum()
    is_target = [f in split_targets(t) for t, f in zip(de["target"], de["feature"], strict=True)]
    n_other = pd.Series(sig & ~np.array(is_target, dtype=bool)).groupby(de["target"].to_numpy()).sum()
    own = de.set_index(["target", "feature"])
    genes = set(map(str, adata.var_names))

    rows = []
    for i, p in enumerate(perts):
        idx = np.flatnonzero(labels == p)
        sub = _subsample(idx, max_cells_per_perturbation, rng)
        if sub.size >= 2:
            e, pval = etest(pcs[sub], pcs[ctrl], n_perms=n_permutations, seed=seed + i, convention="pertpy")
        else:
            e, pval = np.nan, np.nan
        measured = COMBINATION_SEPARATOR not in p and p in genes
        if measured:
            t_mean, r_mean, fdr = own.loc[(p, p), ["target_mean", "ref_mean", "fdr"]]
            lfc = target_log2_fold_change(t_mean, r_mean)
        else:
            lfc, fdr = np.nan, np.nan
        rows.append(
            {
                "perturbation": p,
                "n_cells": idx.size,
                "n_cells_etest": sub.size,
                "edistance": e,
                "etest_p": pval,
                "n_de_genes": int(n_de.get(p, 0)),
                "n_de_other": int(n_other.get(p, 0)),
                "target_measured": measured,
                "target_log2fc": float(lfc),
                "target_fdr": float(fdr),
            }
        )
    out = pd.DataFrame(rows).set_index("perturbation")
    out.insert(4, "etest_p_adj", adjust_pvalues(out["etest_p"], correction))
    sig_e, sig_de = out["etest_p_adj"] < alpha, out["n_de_genes"] > 0
    out["evidence"] = np.select([sig_e & sig_de, sig_e, sig_de], ["both", "E-test only", "DE only"], "neither")
    out["call"] = np.where(sig_e | sig_de, EFFECT_CALL, NULL_CALL)
    out = out.sort_values("edistance", ascending=False)
    out.attrs.update(
        n_pcs=pcs.shape[1],
        n_permutations=n_permutations,
        n_control_cells_etest=int(ctrl.size),
        n_control_cells_de=int((labels == control_label).sum()),
        alpha=alpha,
        correction=correction,
        control_split_edistance=float(floor),
        seed=seed,
        target_log2fc_convention=TARGET_LOG2FC_CONVENTION,
    )
    return out


# --- the chapter's rules ------------------------------------------------------------------------------------------


def null_calls(effects: pd.DataFrame) -> list[str]:
    """Perturbations called *no detectable effect* (neither test finds anything)."""
    return effects.index[effects["call"] == NULL_CALL].tolist()


def one_test_only(effects: pd.DataFrame) -> list[str]:
    """Effect calls that rest on one test only (E-test or DE, not both): the weaker effect calls."""
    return effects.index[(effects["call"] != NULL_CALL) & (effects["evidence"] != "both")].tolist()


def knockdown_only(effects: pd.DataFrame, alpha: float = 0.05) -> list[str]:
    """Effect calls whose only evidence is the knockdown of their own target.

    Rule: called *effect*, the target is measured and its own DE FDR is < ``alpha``, no *other* gene is DE
    (``n_de_other == 0``) and the E-test is not significant.
    """
    rule = (
        (effects["call"] != NULL_CALL)
        & effects["target_measured"].astype(bool)
        & (effects["target_fdr"] < alpha)
        & (effects["n_de_other"] == 0)
        & ~(effects["etest_p_adj"] < alpha)
    )
    return effects.index[rule].tolist()


def fragile_calls(effects: pd.DataFrame, alpha: float = 0.05) -> list[str]:
    """Perturbations whose adjusted E-test p-value lies within a factor 2 of ``alpha`` (either side)."""
    p = effects["etest_p_adj"]
    return effects.index[(p > alpha / 2) & (p < alpha * 2)].tolist()


def summarise_calls(effects: pd.DataFrame, alpha: float = 0.05) -> dict:
    """Counts and names of the calls: ``n``, ``n_effect``, ``null``, ``one_test_only``, ``knockdown_only``."""
    return {
        "n": int(len(effects)),
        "n_effect": int((effects["call"] != NULL_CALL).sum()),
        "null": null_calls(effects),
        "one_test_only": one_test_only(effects),
        "knockdown_only": knockdown_only(effects, alpha),
    }


def confident_cells(adata) -> tuple[np.ndarray, str]:
    """Cells kept for the stability rerun and its label: confidently assigned cells plus controls, where known."""
    if "assignment_confident" in adata.obs:
        keep = (
            adata.obs["assignment_confident"].astype(bool).to_numpy() | adata.obs["is_control"].astype(bool).to_numpy()
        )
        return keep, "confident cells only, seed + 1"
    return np.ones(adata.n_obs, dtype=bool), "all cells, seed + 1"


def confident_share(adata) -> float | None:
    """Share of perturbed cells with a confident guide assignment (None where the data do not say)."""
    if "assignment_confident" not in adata.obs:
        return None
    perturbed = ~adata.obs["is_control"].astype(bool)
    return float(adata.obs.loc[perturbed, "assignment_confident"].astype(bool).mean())


def stability(effects: pd.DataFrame, rerun: pd.DataFrame) -> pd.DataFrame:
    """The main calls next to a rerun's (suffix ``_rerun``), with ``stable`` = same call."""
    columns = ["n_cells", "etest_p_adj", "n_de_genes", "call"]
    table = effects[columns].join(rerun[columns], rsuffix="_rerun")
    table["stable"] = table["call"] == table["call_rerun"]
    return table


def target_fold_changes(effects: pd.DataFrame) -> pd.DataFrame:
    """Measured single targets, sorted by their own log2 fold change."""
    own = effects[effects["target_measured"].astype(bool)].sort_values("target_log2fc")
    return own[["target_log2fc", "target_fdr", "n_de_other", "call"]]


# --- records and the answer ---------------------------------------------------------------------------------------


def dataset_record(effects: pd.DataFrame, *, dataset: str, n_genes: int, n_control: int | None = None) -> dict:
    """What the conclusions quote about one dataset's calls (JSON-serialisable)."""
    alpha = float(effects.attrs.get("alpha", 0.05))
    measured = effects[effects["target_measured"].astype(bool)]
    significant = measured["target_fdr"] < alpha
    top = effects.head(4)
    floor = float(np.log2(1 / FC_CLIP))
    return {
        "dataset": dataset,
        **summarise_calls(effects, alpha),
        "largest_effects": top.index.tolist(),
        "largest_edistances": [float(v) for v in top["edistance"]],
        "control_split_edistance": float(effects.attrs["control_split_edistance"]),
        "pathway": [
            {
                "gene": g,
                "n_de_genes": int(effects.loc[g, "n_de_genes"]),
                "call": effects.loc[g, "call"],
                "evidence": effects.loc[g, "evidence"],
            }
            for g in IFNG_PATHWAY
            if g in effects.index
        ],
        "measured_targets": {
            "n": int(len(measured)),
            "n_lowered": int((significant & (measured["target_log2fc"] < 0)).sum()),
            "n_raised": int((significant & (measured["target_log2fc"] > 0)).sum()),
            "median_log2fc": float(measured["target_log2fc"].median()) if len(measured) else None,
            "n_at_floor": int(np.isclose(measured["target_log2fc"], floor).sum()),
            "fold_change_bound": float(FC_CLIP),
        },
        "n_cells_min": int(effects["n_cells"].min()),
        "n_cells_max": int(effects["n_cells"].max()),
        "smallest_perturbation": str(effects["n_cells"].idxmin()),
        "n_genes": int(n_genes),
        "n_control": None if n_control is None else int(n_control),
        "fragile": fragile_calls(effects, alpha),
        **{
            k: effects.attrs[k]
            for k in (
                "alpha",
                "correction",
                "n_pcs",
                "n_permutations",
                "n_control_cells_etest",
                "n_control_cells_de",
                "target_log2fc_convention",
            )
        },
    }


def chapter_records(
    effects: pd.DataFrame,
    stability_table: pd.DataFrame,
    *,
    dataset: str,
    n_genes: int,
    rerun_variant: str,
    confident: float | None = None,
    device: str = "",
    second: dict | None = None,
) -> dict:
    """The chapter's ``conclusions`` record: the main dataset, its stability rerun and an optional second dataset.

    Parameters
    ----------
    effects, stability_table
        Output of :func:`perturbation_effects` and :func:`stability` on the main dataset.
    dataset, n_genes
        Its name and number of measured genes.
    rerun_variant, confident
        What the rerun changed, and the share of confidently assigned perturbed cells (None: not known).
    device
        The line of :func:`vcclib.device.describe`.
    second
        :func:`dataset_record` of a second dataset, or None.
    """
    record = dataset_record(effects, dataset=dataset, n_genes=n_genes)
    record.update(
        flipped_in_rerun=stability_table.index[~stability_table["stable"]].tolist(),
        rerun_variant=rerun_variant,
        confident_share=confident,
        device=device,
    )
    if second is not None:
        record["second"] = second
    return record


def conclusions(records: dict) -> Takeaways:
    """The chapter's answer, every number formatted from ``records`` (:func:`chapter_records`)."""
    r = records
    points = [
        f"**{r['dataset']}**: {r['n_effect']} of {plural(r['n'], 'perturbation')} have a detectable effect; "
        f"**{len(r['null'])} show none** ({names(r['null'], '—')}).",
        "The largest E-distances are "
        + ", ".join(f"{g} ({number(e)})" for g, e in zip(r["largest_effects"], r["largest_edistances"], strict=True))
        + f" (control vs control: {number(r['control_split_edistance'], 3)}).",
    ]
    if r["pathway"]:
        clear = all(p["call"] == EFFECT_CALL and p["evidence"] == "both" for p in r["pathway"])
        listed = ", ".join(f"{p['gene']}: {plural(p['n_de_genes'], 'DE gene')}" for p in r["pathway"])
        points.append(
            f"The IFN-γ pathway knockouts ({listed}) "
            + ("are all clear effects (both tests)." if clear else "are not all called by both tests.")
        )
    m = r["measured_targets"]
    if m["n"]:
        text = (
            f"Of the {plural(m['n'], 'measured target')}, {m['n_lowered']} are significantly lowered in their own "
            f"cells (median log2 fold change {number(m['median_log2fc'])})"
        )
        text += f"; {m['n_raised']} significantly raised." if m["n_raised"] else "."
        if m["n_at_floor"]:
            verb = "sits" if m["n_at_floor"] == 1 else "sit"
            text += (
                f" {plural(m['n_at_floor'], 'target')} {verb} at the bound of the fold-change convention "
                f"(at least {m['fold_change_bound']:g}-fold lowered)."
            )
        points.append(text)
    text = f"{plural(len(r['one_test_only']), 'effect call')} rest on one test only ({names(r['one_test_only'], '—')})"
    if r["knockdown_only"]:
        text += (
            f"; {len(r['knockdown_only'])} of them ({names(r['knockdown_only'])}) knock down their own target "
            "and change nothing else detectably."
        )
    else:
        text += "."
    points.append(text)
    points.append(
        f"A rerun ({r['rerun_variant']}) flips {plural(len(r['flipped_in_rerun']), 'call')}: "
        f"{names(r['flipped_in_rerun'])}."
    )
    s = r.get("second")
    if s:
        points.append(
            f"**{s['dataset']}**: {s['n_effect']} of {plural(s['n'], 'perturbation')} have a detectable "
            f"effect; **{len(s['null'])} show none** ({names(s['null'], '—')}); "
            f"{len(s['one_test_only'])} are detected by one test only ({names(s['one_test_only'], '—')})."
        )
    return Takeaways(points, conventions=conventions(records))


def conventions(records: dict) -> list[str]:
    """The conventions the chapter's numbers depend on."""
    r = records
    return [
        f"E-test in {r['n_pcs']} PCs against {r['n_control_cells_etest']:,} control cells, "
        f"{r['n_permutations']:,} permutations, {r['correction'].upper()} across perturbations",
        f"DE: Mann–Whitney per gene against all {r['n_control_cells_de']:,} control cells, BH within each "
        f"perturbation, FDR < {r['alpha']}",
        r["target_log2fc_convention"],
        *([r["device"]] if r.get("device") else []),
    ]


def weak_points(records: dict) -> list[str]:
    """*Where the evidence is weak*: one sentence per limitation, numbers from ``records``."""
    r = records
    lines = [
        f"**Cell numbers.** Perturbations have {r['n_cells_min']:,}–{r['n_cells_max']:,} cells (smallest: "
        f"{r['smallest_perturbation']}); fewer cells mean less power, so a null call on a small group is the weakest "
        "kind of evidence. A null call is absence of evidence, not evidence of absence.",
        f"**Measured genes.** Only {r['n_genes']:,} genes are measured; an effect on unmeasured genes is invisible, "
        f"and only {r['measured_targets']['n']} of {r['n']} targets can be checked for knockdown.",
        f"**Control subsampling.** The E-test uses {r['n_control_cells_etest']:,} of {r['n_control_cells_de']:,} "
        f"control cells and {r['n_pcs']} PCs; its smallest attainable p-value is 1/{r['n_permutations']}, so with "
        f"{r['n']} tests the correction ({r['correction'].upper()}) decides the borderline cases (see the stability "
        "table).",
        f"**Multiple testing.** DE is corrected within each perturbation (BH over {r['n_genes']:,} genes), the E-test "
        f"across {r['n']} perturbations; calls near α = {r['alpha']} (adjusted E-test p between {r['alpha'] / 2} and "
        f"{r['alpha'] * 2}: {names(r['fragile'])}) are fragile.",
    ]
    if r.get("confident_share") is not None:
        lines.append(
            f"**Guide assignment.** {share(r['confident_share'])} of perturbed cells have a confident guide "
            "assignment; the rest dilute effects towards control (the stability rerun uses confident cells "
            "only)."
        )
    s = r.get("second")
    if s:
        lines.append(
            f"**CRISPRa targets not measured.** In {s['dataset']} the {s['n_genes']:,} measured genes exclude "
            f"the activated genes ({plural(s['measured_targets']['n'], 'single target')} measured), so "
            "activation itself cannot be checked and a null call may be a failed activation; with "
            f"{s['n_cells_min']:,}–{s['n_cells_max']:,} cells per condition and {s['n_control']:,} control "
            "cells, power is modest."
        )
    return lines
