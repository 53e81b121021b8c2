"""Modalities: one named quantity per perturbed gene from each kind of measurement, registered by builder.

Each modality gives one *named quantity* per perturbed gene (a pandas Series indexed by symbol, higher = stronger
effect / more essential): the effect size of its Perturb-seq profile; Replogle 2022's per-perturbation statistics
(DEG count, energy test, knockdown in the K562 genome-wide screen; DEG count in RPE1) and its K562/RPE1 signatures
(up-set size, cross-line overlap); the number of L1000 genes its knockdown dysregulates; its image-phenotype
strength; its essentiality (DepMap Chronos, 22Q1 dependency calls, Achilles common essentials); its pooled-screen
phenotype strength (T cells, neurons of Tian 2019/2020, mouse); its co-essentiality degree; its GO annotation
count. :mod:`.matrix` compares them pairwise.

A modality's ``group`` names the measurements it comes from when several modalities share them; builders read
their data through :func:`vcclib.analyses.information.cache.load`, so a dataset several modalities share is read
once per :func:`build_modalities` call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vcclib.analyses.information.cache import load
from vcclib.errors import VccError


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
    group: str = ""  # modalities of one group are quantities of the same measurements (not compared as links)

    @property
    def source_group(self) -> str:
        """The group (the modality's own name when it has none)."""
        return self.group or self.name


MODALITIES: dict[str, Modality] = {}


def modality(name: str, quantity: str, kind: str, context: str, group: str = ""):
    """Decorator: register a modality builder.

    ``group`` names the measurements the quantity comes from when several modalities share them (Replogle's
    K562 DEG count, energy test and knockdown; DepMap's Chronos effects and dependency calls): pairs within a
    group are kept in the matrix but marked ``same_source`` and left out of the ranked links.
    """

    def wrap(func):
        if name in MODALITIES:
            raise ValueError(f"modality {name!r} is registered twice")
        MODALITIES[name] = Modality(name, quantity, kind, context, func, group)
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
    return effect_sizes(load("papalexi2021_eccite_lowmoi"))


@modality("perturbseq_norman", "effect size ‖Δ‖ (500 HVGs)", "expression", "K562 CRISPRa")
def _norman() -> pd.Series:
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
    sig = load("lincs_ctrap_kd_consensus")
    X = np.asarray(sig.X, dtype=float)[:, sig.var["landmark"].to_numpy(dtype=bool)]
    return _series(np.linalg.norm(X, axis=1), sig.obs["perturbation"].astype(str), "lincs_ctrap")


# Replogle et al. 2022 Table S2: one row per perturbation (a gene may have several, one per transcript start)
REPLOGLE_K562 = "K562_genome_wide_day8"
REPLOGLE_RPE1 = "RPE1_essential_day7"


def replogle_statistic(
    screen: str, column: str, transform: Callable[[pd.Series], pd.Series] = lambda x: x
) -> pd.Series:
    """One Table S2 statistic per targeted gene of one screen (mean over the gene's perturbations)."""
    stats = load("replogle2022_tables", tables=["statistics"])["statistics"]
    rows = stats[(stats["screen"].astype(str) == screen) & ~stats["is_control"]]
    if rows.empty:
        raise ModalityError(f"Replogle Table S2 has no screen {screen!r}")
    values = transform(pd.to_numeric(rows[column], errors="coerce").astype(float))
    return _series(values.to_numpy(), rows["target"].astype(str), f"replogle_{column}")


@modality(
    "replogle_k562_degs",
    "DEGs (Anderson–Darling, 11,258 perturbations)",
    "expression",
    "K562 CRISPRi genome-wide (Replogle 2022)",
    group="replogle_k562",
)
def _replogle_k562_degs() -> pd.Series:
    return replogle_statistic(REPLOGLE_K562, "n_degs_anderson_darling", np.log1p)


@modality(
    "replogle_k562_energy",
    "−log10 energy-test p",
    "expression",
    "K562 CRISPRi genome-wide (Replogle 2022)",
    group="replogle_k562",
)
def _replogle_k562_energy() -> pd.Series:
    return replogle_statistic(REPLOGLE_K562, "energy_test_p", lambda p: -np.log10(p.clip(lower=1e-300)))


@modality(
    "replogle_k562_knockdown",
    "knockdown (1 − fold expression of the target)",
    "expression",
    "K562 CRISPRi genome-wide (Replogle 2022)",
    group="replogle_k562",
)
def _replogle_k562_knockdown() -> pd.Series:
    return replogle_statistic(REPLOGLE_K562, "fold_knockdown", lambda f: 1.0 - f)


@modality(
    "replogle_rpe1_degs",
    "DEGs (Anderson–Darling, essential genes)",
    "expression",
    "RPE1 CRISPRi essential (Replogle 2022)",
)
def _replogle_rpe1_degs() -> pd.Series:
    return replogle_statistic(REPLOGLE_RPE1, "n_degs_anderson_darling", np.log1p)


def signature_transfer(signatures, a: str = "K562", b: str = "RPE1", top: int = 100) -> pd.Series:
    """Per perturbation measured in both contexts: Jaccard overlap of the top-``top`` genes of its two rankings."""
    out = {}
    for pert in signatures.shared_perturbations(a, b):
        x, y = signatures.top(top, pert, a), signatures.top(top, pert, b)
        out[pert] = len(x & y) / max(1, len(x | y))
    return pd.Series(out, dtype=float)


@modality(
    "replogle_signature_up",
    "significantly up genes (K562 signature)",
    "expression",
    "K562 CRISPRi signatures (Replogle 2022, sigrecon)",
    group="replogle_signatures",
)
def _replogle_signature_up() -> pd.Series:
    sig = load("replogle2022_signatures")
    perts = sig.perturbations_in("K562")
    return _series([len(sig.up(p, "K562")) for p in perts], perts, "replogle_signature_up")


@modality(
    "replogle_signature_transfer",
    "K562 ∩ RPE1 top-100 overlap (Jaccard)",
    "expression",
    "K562 and RPE1 CRISPRi signatures (Replogle 2022)",
    group="replogle_signatures",
)
def _replogle_signature_transfer() -> pd.Series:
    return signature_transfer(load("replogle2022_signatures"))


# --------------------------------------------------------------------------------------------------------------
# phenotype modalities
# --------------------------------------------------------------------------------------------------------------


@modality(
    "depmap_chronos",
    "essentiality −mean Chronos effect (58 lines)",
    "phenotype",
    "cancer lines CRISPRko",
    group="depmap",
)
def _chronos() -> pd.Series:
    effect = load("depmap_chronos_sample")["gene_effect"]
    values = -np.nanmean(np.asarray(effect.X, dtype=float), axis=0)
    return _series(values, effect.var_names.astype(str), "depmap_chronos")


def dependent_share(calls, least: str = "dependency") -> pd.Series:
    """Per gene: the share of cell lines whose call is ``least`` or stronger (missing calls left out)."""
    classes = list(calls.uns["vcc"]["classes"])
    codes = np.asarray(calls.X)
    valid = codes >= 0
    dependent = codes >= classes.index(least)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = dependent.sum(axis=0) / valid.sum(axis=0)
    genes = pd.Index(calls.var_names.astype(str)).str.split(" (", regex=False).str[0]
    return _series(share, genes, "depmap_22q1_calls")


@modality(
    "depmap_22q1_calls",
    "share of lines dependent (22Q1 calls, 1,067 lines)",
    "phenotype",
    "cancer lines CRISPRko (Chronos calls)",
    group="depmap",
)
def _depmap_calls() -> pd.Series:
    return dependent_share(load("depmap_22q1_dependency_calls", screens=["crispr"])["crispr"])


@modality("achilles_essential", "common essential (0/1, 19Q2)", "phenotype", "cancer lines CRISPRko", group="depmap")
def _achilles() -> pd.Series:
    tables = load("depmap_achilles_19q2")
    universe = tables["guide_map"]["symbol"].dropna().astype(str).unique()
    essential = set(tables["achilles_common_essentials"]["symbol"].astype(str))
    return _series([g in essential for g in universe], universe, "achilles_essential")


@modality("coessentiality", "co-essentiality degree", "phenotype", "DepMap 19Q3 network")
def _coessentiality() -> pd.Series:
    edges = load("depmap_coessentiality_19q3")
    genes = pd.concat([edges["gene_a"], edges["gene_b"]]).astype(str)
    counts = genes.value_counts()
    return _series(counts.to_numpy(), counts.index, "coessentiality")


@modality("periscope", "significant image features (Sum)", "phenotype", "A549 optical pooled CRISPRko")
def _periscope() -> pd.Series:
    table = load("periscope_a549")
    return _series(table["Sum"].to_numpy(), table.index.astype(str), "periscope")


SCREEN_NAMES = {
    "IL2": "T-cell IL2 (Schmidt 2022)",
    "IFNG": "T-cell IFNG (Schmidt 2022)",
    "Carnevale22_Adenosine": "T-cell adenosine (Carnevale 2022)",
    "Sanchez21": "neuron tau (Sanchez 2021)",
}


def _screen(key: str) -> Callable[[], pd.Series]:
    def build() -> pd.Series:
        table = load("screens_biodiscoveryagent")[key]
        return _series(np.abs(table["score"].to_numpy(dtype=float)), table["gene"].astype(str), f"screen_{key}")

    return build


for _key, _context in SCREEN_NAMES.items():
    modality(f"screen_{_key}", "|screen score|", "phenotype", _context)(_screen(_key))


TIAN_SCREENS = {
    "tian2019_survival": "iPSC neurons CRISPRi survival (Tian 2019, 2,555 genes)",
    "tian2020_survival": "iPSC neurons CRISPRi survival (Tian 2020, genome-wide)",
}


def _tian(key: str) -> Callable[[], pd.Series]:
    def build() -> pd.Series:
        table = load("tian2019_crisprbrain_screens")[key]
        return _series(-table["gene_score"].to_numpy(dtype=float), table["gene"].astype(str), key)

    return build


for _key, _context in TIAN_SCREENS.items():
    modality(
        _key.replace("_survival", "_neurons"),
        "−gene score (knockdown kills neurons)",
        "phenotype",
        _context,
        group="tian_neurons",
    )(_tian(_key))


@modality("horlbeck_gi", "mean |GI score| over partners", "phenotype", "K562 CRISPRi pairwise")
def _horlbeck() -> pd.Series:
    pairs = load("screens_biodiscoveryagent")["Horlbeck"]
    both = pd.concat(
        [
            pairs[["gene_a", "score"]].rename(columns={"gene_a": "gene"}),
            pairs[["gene_b", "score"]].rename(columns={"gene_b": "gene"}),
        ]
    )
    strength = both.assign(score=both["score"].abs()).groupby("gene")["score"].mean()
    return _series(strength.to_numpy(), strength.index, "horlbeck_gi")


@modality("mouse_screen", "|MAGeCK LFC| (ortholog by symbol)", "phenotype", "mouse B16F10 (Pan 2018)")
def _mouse() -> pd.Series:
    from vcclib.splits.hypotheses import ortholog_key

    table = load("screens_mageckflute_pan2018")["rra_gene"]
    return _series(np.abs(table["neg|lfc"].to_numpy(dtype=float)), table["id"].map(ortholog_key), "mouse_screen")


@modality("go", "GO annotations (count)", "annotation", "org.Hs.eg.db 3.16")
def _go() -> pd.Series:
    from vcclib.models.features import go_annotations

    counts = go_annotations().groupby("symbol")["go_id"].nunique()
    return _series(counts.to_numpy(), counts.index, "go")


def build_modalities(names=None) -> dict[str, pd.Series]:
    """Build the named (default: all registered) modalities, each dataset read once.

    One whose data are absent here is left out and named, with the error, in :data:`SKIPPED`; the seconds each
    took are in :data:`BUILD_SECONDS`.
    """
    import time

    from vcclib.analyses.information.cache import loaded_once

    names = list(names or MODALITIES)
    unknown = [n for n in names if n not in MODALITIES]
    if unknown:
        raise ModalityError(f"unknown modalities {unknown}; known: {sorted(MODALITIES)}")
    out = {}
    SKIPPED.clear()
    BUILD_SECONDS.clear()
    with loaded_once():
        for name in names:
            start = time.perf_counter()
            try:
                out[name] = MODALITIES[name].build()
            except (FileNotFoundError, KeyError, OSError) as error:  # data absent here
                SKIPPED[name] = str(error)
            BUILD_SECONDS[name] = round(time.perf_counter() - start, 2)
    return out


SKIPPED: dict[str, str] = {}
BUILD_SECONDS: dict[str, float] = {}
