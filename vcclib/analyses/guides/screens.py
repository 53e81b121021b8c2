"""Pooled CRISPR knockout screens, guide by guide: efficacy, off-target alignments, and what correcting moves.

Two sources (both DepMap, Avana library at the Broad, KY library at the Sanger):

* **Achilles 19Q2** guide tables: CERES's per-guide efficacy and offset for 70,907 Avana sgRNAs and the sgRNA →
  gene alignments (71,143). No read counts: used for the efficacy distribution, the genes that rest on few
  effective guides, and the guides that align to several genes.
* **The Chronos sample** (read counts of 44 Avana and 23 KY cell lines over ~880 genes, copy number, and the
  Chronos authors' fitted ``gene_effect`` and ``guide_efficacy``): gene effects recomputed here with and
  without guide-efficacy weighting and copy-number correction.

The re-implementation of Chronos's ideas (:func:`gene_effects`) is deliberately small and documented, and it is
checked against the published Chronos fit rather than trusted:

1. **fold change**: reads → reads per million (+1 pseudocount, per sequence), ``log2(late / pDNA)`` against the
   mean pDNA of the same ``pDNA_batch``; replicates of a cell line averaged;
2. **guide efficacy** (Chronos: a per-guide efficacy ``e_g ∈ [0, 1]`` multiplies the gene's effect): alternating
   least squares on ``lfc_{g,c} ≈ e_g · G_{gene(g),c}`` across cell lines, ``G = Σ e_g lfc / Σ e_g²`` and
   ``e_g = clip((Σ_c G lfc + λ) / (Σ_c G² + λ), 0, 1)`` (shrunk towards 1 by λ = 0.25 × lines, as Chronos regularises its
   efficacies); without weighting every ``e_g = 1`` and ``G`` is the mean over guides;
3. **scale** per cell line: the median of the non-essential controls is 0, of the common-essential controls −1
   (DepMap's release scale);
4. **copy-number correction** (Chronos's ``alternate_CN`` and CRISPRcleanR's idea: cutting an amplified locus
   many times kills cells whatever the gene): per cell line, the trend of the gene effect of the genes *not* in
   the common-essential list against copy number (medians in copy-number bins, linearly interpolated) is
   subtracted, anchored so that a copy number of 1 moves nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

ESSENTIAL_THRESHOLD = -0.5
EFFECTIVE_GUIDE = 0.5


# --- Achilles 19Q2 -------------------------------------------------------------------------------------------
def achilles_guides(tables: dict, effective: float = EFFECTIVE_GUIDE) -> pd.DataFrame:
    """One row per Avana sgRNA with its efficacy and the genes it aligns to.

    Columns ``guide``, ``efficacy``, ``offset`` (CERES), ``n_genes`` (genes it aligns to),
    ``n_alignments``, ``genes`` (';'-joined symbols) and ``effective`` (efficacy ≥ ``effective``).
    """
    efficacy = tables["guide_efficacy"].rename(columns={"sgRNA": "guide"})
    alignments = tables["guide_map"]
    per_guide = (
        alignments.dropna(subset=["gene"])
        .groupby("sgrna")
        .agg(
            n_genes=("symbol", "nunique"),
            n_alignments=("n_alignments", "max"),
            genes=("symbol", lambda s: ";".join(sorted(set(map(str, s))))),
        )
    )
    out = efficacy.join(per_guide, on="guide")
    out["n_genes"] = out["n_genes"].fillna(0).astype(int)
    out["effective"] = out["efficacy"] >= effective
    return out


def achilles_genes(guides: pd.DataFrame, tables: dict) -> pd.DataFrame:
    """One row per gene: how many guides, effective guides and gene-specific guides it has.

    Columns ``n_guides``, ``n_effective`` (efficacy ≥ threshold), ``n_specific`` (guides aligning to
    this gene only), ``n_effective_specific``, ``n_multi_gene`` and control-list membership.
    """
    rows = guides.assign(symbol=guides["genes"].fillna("").str.split(";")).explode("symbol")
    rows = rows[rows["symbol"].astype(bool)]
    rows["specific"] = rows["n_genes"] == 1
    table = rows.groupby("symbol").agg(
        n_guides=("guide", "nunique"),
        n_effective=("effective", "sum"),
        n_specific=("specific", "sum"),
        n_multi_gene=("specific", lambda s: int((~s).sum())),
        median_efficacy=("efficacy", "median"),
    )
    specific = rows[rows["specific"]].groupby("symbol")["effective"].sum()
    table["n_effective_specific"] = specific.reindex(table.index).fillna(0).astype(int)
    table["common_essential"] = table.index.isin(set(tables["common_essentials"]["symbol"]))
    table["achilles_common_essential"] = table.index.isin(set(tables["achilles_common_essentials"]["symbol"]))
    table["nonessential"] = table.index.isin(set(tables["nonessentials"]["symbol"]))
    return table.reset_index().rename(columns={"symbol": "gene"})


def achilles_summary(guides: pd.DataFrame, genes: pd.DataFrame) -> dict:
    """The numbers the chapter quotes about Achilles 19Q2 guide efficacy and multi-gene guides."""
    e = guides["efficacy"].dropna()
    multi = guides["n_genes"] > 1
    return {
        "n_guides": int(len(guides)),
        "n_guides_with_efficacy": int(e.size),
        "efficacy_median": float(e.median()),
        "efficacy_q10": float(e.quantile(0.1)),
        "share_below_0_5": float((e < EFFECTIVE_GUIDE).mean()),
        "share_below_0_2": float((e < 0.2).mean()),
        "n_multi_gene_guides": int(multi.sum()),
        "share_multi_gene": float(multi.mean()),
        "n_multi_alignment_guides": int((guides["n_alignments"].fillna(1) > 1).sum()),
        "efficacy_median_multi_gene": float(guides.loc[multi, "efficacy"].median()),
        "efficacy_median_single_gene": float(guides.loc[guides["n_genes"] == 1, "efficacy"].median()),
        "offset_median_multi_gene": float(guides.loc[multi, "offset"].median()),
        "offset_median_single_gene": float(guides.loc[guides["n_genes"] == 1, "offset"].median()),
        "n_genes": int(len(genes)),
        "n_genes_under_2_effective": int((genes["n_effective_specific"] < 2).sum()),
        "n_genes_under_2_effective_essential": int(
            ((genes["n_effective_specific"] < 2) & genes["achilles_common_essential"]).sum()
        ),
        "n_genes_only_multi_gene_guides": int((genes["n_specific"] == 0).sum()),
        "median_guides_per_gene": float(genes["n_guides"].median()),
    }


# --- Chronos sample: fold changes ----------------------------------------------------------------------------
def guide_log_fold_changes(readcounts: AnnData, pseudocount: float = 1.0) -> pd.DataFrame:
    """log2 fold change of every late sequence against the mean pDNA of its batch (RPM + pseudocount).

    Returns sequences × sgRNAs (NaN where the read count is missing); only late time points (not ``pDNA``).
    """
    counts = pd.DataFrame(
        np.asarray(readcounts.X, dtype=float), index=readcounts.obs_names, columns=readcounts.var_names
    )
    rpm = counts.div(counts.sum(axis=1, skipna=True), axis=0) * 1e6 + pseudocount
    log_rpm = np.log2(rpm)
    obs = readcounts.obs
    is_pdna = obs["cell_line_name"].astype(str) == "pDNA"
    if "PassesQC" in obs:  # sequences that failed DepMap's QC are not used (pDNA rows are kept)
        keep = is_pdna | (obs["PassesQC"].astype(str) == "True")
        log_rpm, obs, is_pdna = log_rpm[keep.to_numpy()], obs[keep], is_pdna[keep]
    pdna = log_rpm[is_pdna.to_numpy()].groupby(obs.loc[is_pdna, "pDNA_batch"].astype(str).to_numpy()).mean()
    late = log_rpm[~is_pdna.to_numpy()]
    batches = obs.loc[~is_pdna, "pDNA_batch"].astype(str).to_numpy()
    return late - pdna.loc[batches].to_numpy()


def line_fold_changes(lfc: pd.DataFrame, readcounts: AnnData) -> pd.DataFrame:
    """Mean log fold change over the replicates of each cell line: cell lines × sgRNAs."""
    lines = readcounts.obs.loc[lfc.index, "cell_line_name"].astype(str).to_numpy()
    return lfc.groupby(lines).mean()


def usable_guide_map(guide_map: pd.DataFrame, drop_multi_alignment: bool = False) -> pd.DataFrame:
    """The sgRNA → gene map of the guides the fit uses.

    One gene per guide (Chronos's ``filter_guides``), genes with
    two or more guides; ``drop_multi_alignment`` also drops guides with several genomic alignments.
    """
    table = guide_map.dropna(subset=["gene"])
    table = table[table.groupby("sgrna")["gene"].transform("nunique") == 1].drop_duplicates("sgrna")
    if drop_multi_alignment and "nAlignments" in table:
        table = table[table["nAlignments"].fillna(1) <= 1]
    counts = table.groupby("symbol")["sgrna"].transform("size")
    return table[counts >= 2][["sgrna", "symbol", *(c for c in ("nAlignments",) if c in table)]]


# --- Chronos sample: gene effects ----------------------------------------------------------------------------
def fit_guide_efficacy(
    line_lfc: pd.DataFrame,
    guide_map: pd.DataFrame,
    n_iter: int = 20,
    prior: float = 0.25,
) -> tuple[pd.DataFrame, pd.Series]:
    """Alternating least squares for ``lfc_{g,c} ≈ e_g · G_{gene(g),c}`` (Chronos's multiplicative efficacy).

    The efficacy update is shrunk towards 1 (Chronos regularises efficacy the same way): ``e_g = (Σ_c G·lfc +
    λ) / (Σ_c G² + λ)`` with ``λ = prior × n_lines`` (the weight of a gene whose effect is √prior log2 units in
    every line), so a guide of a gene without effect, whose efficacy the data cannot tell, stays near 1. Returns ``(G, e)``: lines × genes and per-sgRNA efficacy clipped to [0, 1].
    """
    guides = [g for g in guide_map["sgrna"] if g in line_lfc.columns]
    gene_of = guide_map.set_index("sgrna").loc[guides, "symbol"]
    Y = line_lfc[guides]
    mask = Y.notna().to_numpy()
    Yv = np.nan_to_num(Y.to_numpy())
    codes, genes = pd.factorize(gene_of.to_numpy(), sort=True)
    onehot = np.zeros((len(guides), len(genes)))
    onehot[np.arange(len(guides)), codes] = 1.0
    e = np.ones(len(guides))
    lam = prior * Y.shape[0]
    for _ in range(n_iter):
        w = mask * e[None, :]
        G = (Yv * w) @ onehot / np.maximum((mask * e[None, :] ** 2) @ onehot, 1e-12)
        fitted = G @ onehot.T
        e_new = ((Yv * fitted * mask).sum(axis=0) + lam) / ((fitted**2 * mask).sum(axis=0) + lam)
        e_new = np.clip(e_new, 0.0, 1.0)
        if np.max(np.abs(e_new - e)) < 1e-6:
            e = e_new
            break
        e = e_new
    w = mask * e[None, :]
    G = (Yv * w) @ onehot / np.maximum((mask * e[None, :] ** 2) @ onehot, 1e-12)
    return (pd.DataFrame(G, index=line_lfc.index, columns=genes), pd.Series(e, index=guides, name="efficacy"))


def mean_over_guides(line_lfc: pd.DataFrame, guide_map: pd.DataFrame) -> pd.DataFrame:
    """Unweighted gene score: the mean log fold change of the gene's guides, lines × genes."""
    guides = [g for g in guide_map["sgrna"] if g in line_lfc.columns]
    gene_of = guide_map.set_index("sgrna").loc[guides, "symbol"].to_numpy()
    return line_lfc[guides].T.groupby(gene_of).mean().T


def scale_to_controls(scores: pd.DataFrame, essentials, nonessentials) -> pd.DataFrame:
    """Per cell line: non-essential median → 0, common-essential median → −1."""
    ess = [g for g in essentials if g in scores.columns]
    non = [g for g in nonessentials if g in scores.columns]
    if len(ess) < 5 or len(non) < 5:
        raise ValueError(f"too few control genes among the scores ({len(ess)} essential, {len(non)} non-essential)")
    zero = scores[non].median(axis=1)
    one = scores[ess].median(axis=1)
    return scores.sub(zero, axis=0).div((zero - one), axis=0)


def copy_number_correct(
    scores: pd.DataFrame,
    copy_number: pd.DataFrame,
    essentials,
    n_bins: int = 10,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Subtract, per cell line, the gene effect's trend against copy number (genes not common-essential).

    Returns ``(corrected, trend)``: the corrected scores (genes without copy number unchanged) and a long table
    of the fitted trend (``line``, ``cn``, ``shift``). The trend is the median gene effect in ``n_bins``
    copy-number quantile bins, interpolated linearly in copy number and shifted so that copy number 1 maps to 0.
    """
    essentials = set(essentials)
    corrected = scores.copy()
    rows = []
    for line in scores.index:
        if line not in copy_number.index:
            continue
        cn = copy_number.loc[line].reindex(scores.columns)
        ok = cn.notna() & scores.loc[line].notna()
        fit = ok & ~scores.columns.isin(essentials)
        if fit.sum() < 5 * n_bins:
            continue
        x, y = cn[fit].to_numpy(dtype=float), scores.loc[line, fit].to_numpy(dtype=float)
        edges = np.unique(np.quantile(x, np.linspace(0, 1, n_bins + 1)))
        which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
        centres = np.array([np.median(x[which == b]) for b in range(len(edges) - 1) if np.any(which == b)])
        medians = np.array([np.median(y[which == b]) for b in range(len(edges) - 1) if np.any(which == b)])
        anchor = np.interp(1.0, centres, medians)
        shift = np.interp(cn[ok].to_numpy(dtype=float), centres, medians) - anchor
        corrected.loc[line, ok] = scores.loc[line, ok].to_numpy() - shift
        rows += [{"line": line, "cn": float(c), "shift": float(m - anchor)} for c, m in zip(centres, medians)]
    return corrected, pd.DataFrame(rows)


def library_fold_changes(tables: dict, library: str) -> pd.DataFrame:
    """Cell lines × sgRNAs log fold changes of one library of the Chronos sample (QC-passing sequences)."""
    readcounts = tables[f"{library}_readcounts"]
    return line_fold_changes(guide_log_fold_changes(readcounts), readcounts)


def weighted_by(line_lfc: pd.DataFrame, guide_map: pd.DataFrame, efficacy: pd.Series) -> pd.DataFrame:
    """Gene scores with given guide efficacies: ``G = Σ e_g lfc / Σ e_g²`` (guides without one get 1)."""
    guides = [g for g in guide_map["sgrna"] if g in line_lfc.columns]
    e = efficacy.reindex(guides).fillna(1.0).clip(0, 1).to_numpy()
    gene_of = guide_map.set_index("sgrna").loc[guides, "symbol"].to_numpy()
    Y = line_lfc[guides]
    mask = Y.notna().to_numpy()
    num = pd.DataFrame(np.nan_to_num(Y.to_numpy()) * e, index=Y.index).T.groupby(gene_of).sum().T
    den = pd.DataFrame(mask * e**2, index=Y.index).T.groupby(gene_of).sum().T
    return num / den.where(den > 0)


def gene_effects(
    tables: dict,
    library: str,
    *,
    weighting: bool | pd.Series,
    cn_correct: bool,
    drop_multi_alignment: bool = False,
    n_iter: int = 20,
    lfc: pd.DataFrame | None = None,
) -> dict:
    """Gene effects of one library (``avana`` or ``ky``) of the Chronos sample under one set of choices.

    ``weighting``: False (mean over guides), True (efficacies fitted here, :func:`fit_guide_efficacy`) or a
    Series of given per-sgRNA efficacies (e.g. Chronos's published ones). Returns a dict: ``scores`` (lines ×
    genes, DepMap scale), ``efficacy`` (per sgRNA; all 1 without weighting),
    ``trend`` (copy-number trend table, empty without correction), ``guide_map`` (the guides used).
    """
    guide_map = usable_guide_map(tables[f"{library}_guide_map"], drop_multi_alignment=drop_multi_alignment)
    lfc = library_fold_changes(tables, library) if lfc is None else lfc
    if isinstance(weighting, pd.Series):
        scores, efficacy = weighted_by(lfc, guide_map, weighting), weighting
    elif weighting:
        scores, efficacy = fit_guide_efficacy(lfc, guide_map, n_iter=n_iter)
    else:
        scores = mean_over_guides(lfc, guide_map)
        efficacy = pd.Series(1.0, index=guide_map["sgrna"], name="efficacy")
    essentials = tables["common_essentials"]["symbol"]
    scores = scale_to_controls(scores, essentials, tables["nonessentials"]["symbol"])
    trend = pd.DataFrame(columns=["line", "cn", "shift"])
    if cn_correct:
        cn = pd.DataFrame(
            np.asarray(tables["copy_number"].X),
            index=tables["copy_number"].obs_names,
            columns=tables["copy_number"].var_names,
        )
        scores, trend = copy_number_correct(scores, cn, essentials)
    return {"scores": scores, "efficacy": efficacy, "trend": trend, "guide_map": guide_map, "lfc": lfc}


VARIANTS = {
    "naive": {"weighting": False, "cn_correct": False},
    "efficacy": {"weighting": True, "cn_correct": False},
    "efficacy+cn": {"weighting": True, "cn_correct": True},
}


def published_gene_effect(tables: dict) -> pd.DataFrame:
    """The Chronos authors' fitted gene effect on DepMap's scale (scaled to the same controls), lines × genes."""
    ge = tables["gene_effect"]
    frame = pd.DataFrame(np.asarray(ge.X, dtype=float), index=ge.obs_names, columns=ge.var_names)
    return scale_to_controls(frame, tables["common_essentials"]["symbol"], tables["nonessentials"]["symbol"])


def agreement(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    """Agreement of two lines × genes matrices on their shared lines and genes.

    Overall Pearson r, median per-gene
    r across lines (genes with variance), median per-line r, mean absolute difference, shared sizes.
    """
    lines = a.index.intersection(b.index)
    genes = a.columns.intersection(b.columns)
    x, y = a.loc[lines, genes], b.loc[lines, genes]
    ok = x.notna().to_numpy() & y.notna().to_numpy()
    overall = float(np.corrcoef(x.to_numpy()[ok], y.to_numpy()[ok])[0, 1]) if ok.sum() > 2 else np.nan
    per_gene = x.corrwith(y, axis=0) if len(lines) > 2 else pd.Series(dtype=float)
    per_line = x.corrwith(y, axis=1)
    return {
        "n_lines": int(len(lines)),
        "n_genes": int(len(genes)),
        "pearson_r": overall,
        "median_gene_r": float(per_gene.median()) if len(per_gene) else np.nan,
        "median_line_r": float(per_line.median()),
        "mean_abs_diff": float(np.nanmean(np.abs(x - y).to_numpy())),
    }


def essential_calls(scores: pd.DataFrame, threshold: float = ESSENTIAL_THRESHOLD) -> pd.DataFrame:
    """Boolean lines × genes: gene effect below ``threshold`` (DepMap scale: −0.5 is the usual dependency line)."""
    return scores < threshold


def calls_changed(before: pd.DataFrame, after: pd.DataFrame, threshold: float = ESSENTIAL_THRESHOLD) -> dict:
    """How many (line, gene) essentiality calls change between two gene-effect matrices (shared cells)."""
    lines, genes = before.index.intersection(after.index), before.columns.intersection(after.columns)
    x, y = before.loc[lines, genes], after.loc[lines, genes]
    ok = x.notna() & y.notna()
    a, b = essential_calls(x, threshold)[ok], essential_calls(y, threshold)[ok]
    gained = int((~a.astype(bool) & b.astype(bool) & ok).to_numpy().sum())
    lost = int((a.astype(bool) & ~b.astype(bool) & ok).to_numpy().sum())
    return {
        "n_pairs": int(ok.to_numpy().sum()),
        "calls_before": int((a.astype(bool) & ok).to_numpy().sum()),
        "calls_after": int((b.astype(bool) & ok).to_numpy().sum()),
        "gained": gained,
        "lost": lost,
        "changed": gained + lost,
    }


def cutting_toxicity(
    scores: pd.DataFrame, copy_number: pd.DataFrame, essentials, edges=(0, 0.8, 1.2, 1.5, 2.0, np.inf)
) -> pd.DataFrame:
    """Median gene effect of genes *not* common-essential in bins of relative copy number (all lines pooled).

    Cutting toxicity:    cutting an amplified region many times depletes cells even when the gene itself is not needed.
    """
    lines = scores.index.intersection(copy_number.index)
    genes = [g for g in scores.columns.intersection(copy_number.columns) if g not in set(essentials)]
    long = pd.DataFrame(
        {"effect": scores.loc[lines, genes].to_numpy().ravel(), "cn": copy_number.loc[lines, genes].to_numpy().ravel()}
    ).dropna()
    long["cn_bin"] = pd.cut(long["cn"], list(edges), right=False)
    table = long.groupby("cn_bin", observed=True).agg(
        n=("effect", "size"), median_effect=("effect", "median"), mean_effect=("effect", "mean")
    )
    return table.reset_index().assign(cn_bin=lambda f: f["cn_bin"].astype(str))


def multi_alignment_shift(tables: dict, library: str = "avana", lfc: pd.DataFrame | None = None) -> pd.DataFrame:
    """How guides with several genomic alignments move gene scores.

    Per gene with such a guide, the naive score
    with and without them (mean over lines), and the mean log fold change of the multi-aligning guides vs the
    gene's single-alignment guides.
    """
    lfc = library_fold_changes(tables, library) if lfc is None else lfc
    full = usable_guide_map(tables[f"{library}_guide_map"])
    clean = usable_guide_map(tables[f"{library}_guide_map"], drop_multi_alignment=True)
    essentials, non = tables["common_essentials"]["symbol"], tables["nonessentials"]["symbol"]
    with_multi = scale_to_controls(mean_over_guides(lfc, full), essentials, non)
    without = scale_to_controls(mean_over_guides(lfc, clean), essentials, non)
    multi = full[full["nAlignments"].fillna(1) > 1]
    genes = sorted(set(multi["symbol"]) & set(without.columns))
    mean_lfc = lfc.mean(axis=0)
    rows = []
    for gene in genes:
        guides = full[full["symbol"] == gene]
        is_multi = guides["nAlignments"].fillna(1) > 1
        rows.append(
            {
                "gene": gene,
                "n_guides": int(len(guides)),
                "n_multi_alignment": int(is_multi.sum()),
                "score_with": float(with_multi[gene].mean()),
                "score_without": float(without[gene].mean()),
                "lfc_multi": float(mean_lfc.reindex(guides.loc[is_multi, "sgrna"]).mean()),
                "lfc_single": float(mean_lfc.reindex(guides.loc[~is_multi, "sgrna"]).mean()),
            }
        )
    table = pd.DataFrame(rows)
    if len(table):
        table["shift"] = table["score_with"] - table["score_without"]
    return table
