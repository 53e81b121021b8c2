"""Modality × modality: what one measurement of a gene's perturbation tells about another.

Each modality gives one *named quantity* per perturbed gene (a pandas Series indexed by symbol): the effect size
of its Perturb-seq profile, the number of L1000 genes its knockdown dysregulates, its image-phenotype strength,
its essentiality, its screen phenotype strength, its co-essentiality degree, its GO annotation count. For every
ordered pair (A, B) of modalities, over the genes both measured:

* ``value``: Spearman ρ of A's and B's quantities (``statistic`` = ``spearman``), ``n`` genes;
* ``ci_low``/``ci_high``: percentile bootstrap interval over genes (``n_boot`` resamples, ranks recomputed);
* ``p_perm``: two-sided permutation p (B shuffled ``n_perm`` times; (1 + #{|ρ_perm| ≥ |ρ|}) / (1 + n_perm));
* ``unique_gain``: what A tells about B *beyond the best other modality* C (the one with the largest |ρ| with B
  among those measured on at least ``min_overlap`` genes shared by A, B and C): the partial Spearman correlation
  ρ(A, B | C), ``given`` = C. NaN when no such C exists.

Pairs sharing fewer than ``min_overlap`` genes are listed with their ``n`` and NaN values; ``small_overlap`` marks
those under ``small`` genes, where an interval is wide whatever the truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from vcclib.errors import VccError

COLUMNS = ("source", "target", "quantity_source", "quantity_target", "n", "statistic", "value", "ci_low", "ci_high",
           "p_perm", "unique_gain")


class ModalityError(VccError, ValueError):
    """A modality cannot be built or compared (the message says why)."""


@dataclass(frozen=True)
class Modality:
    """One modality: ``build()`` returns gene → quantity (higher = stronger effect / more essential)."""

    name: str
    quantity: str
    kind: str  # expression | phenotype | annotation
    context: str
    build: Callable[[], pd.Series]


MODALITIES: dict[str, Modality] = {}


def modality(name: str, quantity: str, kind: str, context: str):
    """Decorator: register a modality builder."""

    def wrap(func):
        if name in MODALITIES:
            raise ValueError(f"modality {name!r} is registered twice")
        MODALITIES[name] = Modality(name, quantity, kind, context, func)
        return func

    return wrap


def _series(values, index, name: str) -> pd.Series:
    series = pd.Series(np.asarray(values, dtype=float), index=pd.Index(index, dtype=str).str.strip(), name=name)
    series = series[np.isfinite(series.to_numpy()) & (series.index != "") & (series.index != "nan")]
    return series.groupby(level=0).mean()


# --------------------------------------------------------------------------------------------------------------
# expression modalities
# --------------------------------------------------------------------------------------------------------------


def effect_sizes(adata) -> pd.Series:
    """‖Δ‖₂ per single-gene perturbation, averaged over the covariates where the target was measured.

    Δ = pseudobulk (mean log1p) minus the covariate's control pseudobulk, over the measured genes.
    """
    from vcclib.data.schema import split_targets
    from vcclib.models.base import group_means
    from vcclib.splits import covariate_column

    control = str(adata.uns["vcc"]["control_label"])
    means = group_means(adata, covariate_column(adata))
    rows = {}
    for _, block in means.groupby(level="covariate"):
        block = block.droplevel("covariate")
        if control not in block.index:
            continue
        delta = block.drop(index=control) - block.loc[control]
        for pert, values in delta.iterrows():
            if len(split_targets(pert)) == 1:
                rows.setdefault(pert, []).append(float(np.linalg.norm(values.to_numpy())))
    return pd.Series({k: float(np.mean(v)) for k, v in rows.items()}, dtype=float)


@modality("perturbseq_papalexi", "effect size ‖Δ‖ (299 genes)", "expression", "THP-1 CRISPRko")
def _papalexi() -> pd.Series:
    from vcclib.data import load

    return effect_sizes(load("papalexi2021_eccite_lowmoi"))


@modality("perturbseq_norman", "effect size ‖Δ‖ (500 HVGs)", "expression", "K562 CRISPRa")
def _norman() -> pd.Series:
    from vcclib.data import load

    return effect_sizes(load("norman2019_mcfaline2024_devel", study="norman19"))


@modality("lincs_knockdown", "dysregulated landmark genes", "expression", "L1000 shRNA, many lines")
def _lincs_knockdown() -> pd.Series:
    from vcclib.data import fetch

    files = fetch("lincs_dhimmel")
    summary = pd.read_csv(files["dysreg-knockdown-summary.tsv"], sep="\t")
    genes = pd.read_csv(files["genes.tsv"], sep="\t", usecols=["entrez_gene_id", "symbol"])
    symbol = dict(zip(genes["entrez_gene_id"].astype(str), genes["symbol"].astype(str)))
    info = pd.read_csv(files["geneinfo.tsv.gz"], sep="\t", usecols=["pr_gene_id", "pr_gene_symbol"], dtype=str)
    symbol.update({k: v for k, v in zip(info["pr_gene_id"], info["pr_gene_symbol"]) if k not in symbol})
    names = summary["perturbagen"].astype(str).map(symbol)
    counts = summary["down-measured"] + summary["up-measured"]
    return _series(counts, names.fillna(""), "lincs_knockdown")


@modality("lincs_ctrap", "‖z‖ over 978 landmarks", "expression", "HepG2 shRNA consensus")
def _lincs_ctrap() -> pd.Series:
    from vcclib.data import load

    sig = load("lincs_ctrap_kd_consensus")
    X = np.asarray(sig.X, dtype=float)[:, sig.var["landmark"].to_numpy(dtype=bool)]
    return _series(np.linalg.norm(X, axis=1), sig.obs["perturbation"].astype(str), "lincs_ctrap")


# --------------------------------------------------------------------------------------------------------------
# phenotype modalities
# --------------------------------------------------------------------------------------------------------------


@modality("depmap_chronos", "essentiality −mean Chronos effect (58 lines)", "phenotype", "cancer lines CRISPRko")
def _chronos() -> pd.Series:
    from vcclib.data import load

    effect = load("depmap_chronos_sample")["gene_effect"]
    values = -np.nanmean(np.asarray(effect.X, dtype=float), axis=0)
    return _series(values, effect.var_names.astype(str), "depmap_chronos")


@modality("achilles_essential", "common essential (0/1, 19Q2)", "phenotype", "cancer lines CRISPRko")
def _achilles() -> pd.Series:
    from vcclib.data import load

    tables = load("depmap_achilles_19q2")
    universe = tables["guide_map"]["symbol"].dropna().astype(str).unique()
    essential = set(tables["achilles_common_essentials"]["symbol"].astype(str))
    return _series([g in essential for g in universe], universe, "achilles_essential")


@modality("coessentiality", "co-essentiality degree", "phenotype", "DepMap 19Q3 network")
def _coessentiality() -> pd.Series:
    from vcclib.data import load

    edges = load("depmap_coessentiality_19q3")
    genes = pd.concat([edges["gene_a"], edges["gene_b"]]).astype(str)
    counts = genes.value_counts()
    return _series(counts.to_numpy(), counts.index, "coessentiality")


@modality("periscope", "significant image features (Sum)", "phenotype", "A549 optical pooled CRISPRko")
def _periscope() -> pd.Series:
    from vcclib.data import load

    table = load("periscope_a549")
    return _series(table["Sum"].to_numpy(), table.index.astype(str), "periscope")


SCREEN_NAMES = {"IL2": "T-cell IL2 (Schmidt 2022)", "IFNG": "T-cell IFNG (Schmidt 2022)",
                "Carnevale22_Adenosine": "T-cell adenosine (Carnevale 2022)", "Sanchez21": "neuron tau (Sanchez 2021)"}


def _screen(key: str) -> Callable[[], pd.Series]:
    def build() -> pd.Series:
        from vcclib.data import load

        table = load("screens_biodiscoveryagent")[key]
        return _series(np.abs(table["score"].to_numpy(dtype=float)), table["gene"].astype(str), f"screen_{key}")

    return build


for _key, _context in SCREEN_NAMES.items():
    modality(f"screen_{_key}", "|screen score|", "phenotype", _context)(_screen(_key))


@modality("horlbeck_gi", "mean |GI score| over partners", "phenotype", "K562 CRISPRi pairwise")
def _horlbeck() -> pd.Series:
    from vcclib.data import load

    pairs = load("screens_biodiscoveryagent")["Horlbeck"]
    both = pd.concat([pairs[["gene_a", "score"]].rename(columns={"gene_a": "gene"}),
                      pairs[["gene_b", "score"]].rename(columns={"gene_b": "gene"})])
    strength = both.assign(score=both["score"].abs()).groupby("gene")["score"].mean()
    return _series(strength.to_numpy(), strength.index, "horlbeck_gi")


@modality("mouse_screen", "|MAGeCK LFC| (ortholog by symbol)", "phenotype", "mouse B16F10 (Pan 2018)")
def _mouse() -> pd.Series:
    from vcclib.data import load
    from vcclib.splits.hypotheses import ortholog_key

    table = load("screens_mageckflute_pan2018")["rra_gene"]
    return _series(np.abs(table["neg|lfc"].to_numpy(dtype=float)), table["id"].map(ortholog_key), "mouse_screen")


@modality("go", "GO annotations (count)", "annotation", "org.Hs.eg.db 3.16")
def _go() -> pd.Series:
    from vcclib.models.features import go_annotations

    counts = go_annotations().groupby("symbol")["go_id"].nunique()
    return _series(counts.to_numpy(), counts.index, "go")


def build_modalities(names=None) -> dict[str, pd.Series]:
    """Build the named (default: all registered) modalities.

    One whose data are absent here is left out and named, with the error, in :data:`SKIPPED`.
    """
    out = {}
    SKIPPED.clear()
    for name in (names or list(MODALITIES)):
        if name not in MODALITIES:
            raise ModalityError(f"unknown modality {name!r}; known: {sorted(MODALITIES)}")
        try:
            out[name] = MODALITIES[name].build()
        except (FileNotFoundError, KeyError, OSError) as error:  # data absent here
            SKIPPED[name] = str(error)
    return out


SKIPPED: dict[str, str] = {}


# --------------------------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------------------------


def _corr_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Pearson r of two (m × n) arrays."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


def spearman_with_uncertainty(a: np.ndarray, b: np.ndarray, n_boot: int = 500, n_perm: int = 500,
                              seed: int = 0, exact_up_to: int = 2000) -> dict[str, float]:
    """Spearman ρ, percentile bootstrap interval and permutation p.

    Bootstrap resamples are re-ranked when ``n ≤ exact_up_to``; above, the original ranks are resampled (the
    difference is of order 1/n, far below the interval's width there).
    """
    rng = np.random.default_rng(seed)
    ra, rb = rankdata(a), rankdata(b)
    rho = float(_corr_rows(ra[None], rb[None])[0])
    n = len(a)
    index = rng.integers(0, n, size=(n_boot, n))
    if n <= exact_up_to:
        boot = _corr_rows(rankdata(a[index], axis=1), rankdata(b[index], axis=1))
    else:
        boot = _corr_rows(ra[index], rb[index])
    boot = boot[np.isfinite(boot)]
    za, zb = (ra - ra.mean()) / (ra.std() or 1.0), (rb - rb.mean()) / (rb.std() or 1.0)
    perm = (za[None, :] * rng.permuted(np.tile(zb, (n_perm, 1)), axis=1)).mean(axis=1)
    p = (1 + np.sum(np.abs(perm) >= abs(rho) - 1e-12)) / (1 + n_perm) if np.isfinite(rho) else np.nan
    low, high = (np.quantile(boot, [0.025, 0.975]) if boot.size else (np.nan, np.nan))
    return {"value": rho, "ci_low": float(low), "ci_high": float(high), "p_perm": float(p)}


def partial_spearman(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    """ρ(A, B | C) on ranks: the correlation of A's and B's rank residuals after regressing out C's ranks."""
    ra, rb, rc = rankdata(a), rankdata(b), rankdata(c)
    design = np.column_stack([np.ones_like(rc), rc])

    def residual(y):
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        return y - design @ coef

    r = _corr_rows(residual(ra)[None], residual(rb)[None])[0]
    return float(r)


def modality_matrix(quantities: dict[str, pd.Series], min_overlap: int = 10, small: int = 30, n_boot: int = 500,
                    n_perm: int = 500, seed: int = 0) -> pd.DataFrame:
    """The ``modality_matrix.csv`` table (see the module docstring), one row per ordered pair of modalities."""
    names = list(quantities)
    values = pd.concat([quantities[m].rename(m) for m in names], axis=1)  # genes × modalities, NaN: absent
    present = values.notna().to_numpy()
    column = {m: i for i, m in enumerate(names)}
    rho = {}
    rows = []
    for i, source in enumerate(names):
        for target in names:
            if source == target:
                continue
            shared = present[:, column[source]] & present[:, column[target]]
            a = values[source].to_numpy()[shared]
            b = values[target].to_numpy()[shared]
            row = {"source": source, "target": target, "n": int(shared.sum()), "statistic": "spearman",
                   "value": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_perm": np.nan}
            if shared.sum() >= min_overlap and np.ptp(a) > 0 and np.ptp(b) > 0:
                row.update(spearman_with_uncertainty(a, b, n_boot, n_perm, seed=seed + i))
            rho[(source, target)] = row["value"]
            rows.append(row)
    table = pd.DataFrame(rows)
    gains, given = [], []
    for row in table.itertuples():
        pair = present[:, column[row.source]] & present[:, column[row.target]]
        best, best_c = np.nan, ""
        for other in names:
            if other in (row.source, row.target):
                continue
            strength = abs(rho.get((other, row.target), np.nan))
            if not np.isfinite(strength) or (pair & present[:, column[other]]).sum() < min_overlap:
                continue
            if not np.isfinite(best) or strength > best:
                best, best_c = strength, other
        if best_c and np.isfinite(row.value):
            shared = pair & present[:, column[best_c]]
            gains.append(partial_spearman(*(values[m].to_numpy()[shared] for m in (row.source, row.target, best_c))))
        else:
            gains.append(np.nan)
        given.append(best_c)
    table["unique_gain"] = gains
    table["given"] = given
    table["small_overlap"] = table["n"] < small
    table["quantity_source"] = table["source"].map(lambda m: MODALITIES[m].quantity if m in MODALITIES else m)
    table["quantity_target"] = table["target"].map(lambda m: MODALITIES[m].quantity if m in MODALITIES else m)
    return table[[*COLUMNS, "given", "small_overlap"]]


def coverage(quantities: dict[str, pd.Series]) -> pd.DataFrame:
    """Genes per modality and genes measured by exactly this one (what only it can say anything about)."""
    counts = pd.Series([g for q in quantities.values() for g in q.index]).value_counts()
    rows = []
    for name, series in quantities.items():
        spec = MODALITIES.get(name)
        rows.append({"modality": name, "quantity": spec.quantity if spec else "", "kind": spec.kind if spec else "",
                     "context": spec.context if spec else "", "genes": int(len(series)),
                     "only_here": int((counts.reindex(series.index) == 1).sum())})
    return pd.DataFrame(rows)


def ranked_links(matrix: pd.DataFrame, min_n: int = 30) -> pd.DataFrame:
    """Pairs ranked by |ρ| (each unordered pair once), only those with n ≥ ``min_n`` and a permutation p < 0.05."""
    table = matrix[(matrix["n"] >= min_n) & (matrix["p_perm"] < 0.05)].copy()
    table["pair"] = [tuple(sorted(p)) for p in zip(table["source"], table["target"])]
    table = table.drop_duplicates("pair").drop(columns="pair")
    return table.reindex(table["value"].abs().sort_values(ascending=False).index).reset_index(drop=True)
