"""Reference tables: gene-regulatory networks, TF lists, gene sets, GO annotations, published comparisons."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from vcclib.data.loaders import loader
from vcclib.data.loaders._rda import read_rda
from vcclib.data.schema import SchemaError
from vcclib.data.targets import column_genes

TRRUST_MODES = ("Activation", "Repression", "Unknown")


def _single(files: Mapping[str, Path], suffixes: tuple[str, ...]) -> Path:
    names = [n for n in files if n.endswith(suffixes)]
    if len(names) != 1:
        raise KeyError(f"expected one {suffixes} file among {sorted(files)}, found {names}")
    return Path(files[names[0]])


def _check(table: pd.DataFrame, columns, what: str) -> pd.DataFrame:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise SchemaError(f"{what} lacks columns {missing}; columns: {list(table.columns)}")
    return table


@loader("trrust", returns="table")
def load_trrust(files: Mapping[str, Path], manifest, **_: object) -> pd.DataFrame:
    """TRRUST v2 human TF → target regulations (Han et al. 2018).

    The original file has no header; the mirrored copy's owner added ``TF Target Regulation Reference``. Both are
    read (a first line whose third field is not a regulation mode is taken as a header).

    Returns
    -------
    pandas.DataFrame
        9,396 rows: ``tf``, ``target`` (symbols), ``mode`` (Activation / Repression / Unknown), ``pmids``
        (PubMed ids joined by ';', as in the source). 795 distinct TFs.
    """
    path = _single(files, (".tsv", ".txt"))
    with open(path) as handle:
        first = handle.readline().rstrip("\r\n").split("\t")
    has_header = len(first) >= 3 and first[2] not in TRRUST_MODES
    table = pd.read_csv(
        path, sep="\t", header=None, skiprows=1 if has_header else 0, names=["tf", "target", "mode", "pmids"],
        dtype=str,
    )  # fmt: skip
    if table[["tf", "target", "mode"]].isna().any().any():
        raise SchemaError(f"{path.name}: rows without TF, target or mode; not a TRRUST table (TF, target, mode, PMIDs)")
    bad = sorted(set(table["mode"]) - set(TRRUST_MODES))
    if bad:
        raise SchemaError(f"{path.name}: unknown regulation modes {bad[:5]}")
    return table


@loader("dorothea", returns="table")
def load_dorothea(files: Mapping[str, Path], manifest, **_: object) -> pd.DataFrame:
    """DoRothEA human regulons (Garcia-Alonso et al. 2019), from the R package's ``dorothea_hs``.

    Returns
    -------
    pandas.DataFrame
        454,504 rows: ``tf``, ``confidence`` (A most to E least confident), ``target``, ``mor`` (mode of
        regulation: +1 activation, -1 repression).
    """
    path = _single(files, (".rda", ".RData", ".rdata"))
    objects = read_rda(path)  # the project's one R reader (fast XDR decode, rdata fallback)
    if len(objects) != 1:
        raise SchemaError(f"{path.name}: expected one R object, found {sorted(objects)}")
    table = next(iter(objects.values()))
    if not isinstance(table, pd.DataFrame):
        raise SchemaError(f"{path.name}: the R object is not a data frame")
    table.columns = [str(c) for c in table.columns]
    table = _check(table, ["tf", "confidence", "target", "mor"], path.name).reset_index(drop=True)
    for column in ("tf", "confidence", "target"):
        table[column] = table[column].astype(str)
    table["mor"] = table["mor"].astype(float)
    return table


@loader("lambert_tfs", returns="table")
def load_lambert_tfs(files: Mapping[str, Path], manifest, **_: object) -> pd.DataFrame:
    """Lambert et al. 2018 human transcription factors (TF_names_v_1.01.txt).

    Returns
    -------
    pandas.DataFrame
        1,639 rows, one column ``gene`` (HGNC symbols or Ensembl-style clone names such as AC008770.3).
    """
    path = _single(files, (".txt",))
    with open(path) as handle:
        names = [line.strip() for line in handle]
    names = [n for n in names if n]
    if any("\t" in n or " " in n for n in names):
        raise SchemaError(f"{path.name}: expected one name per line")
    return pd.DataFrame({"gene": names})


@loader("msigdb_gmt", returns="table")
def load_gmt(files: Mapping[str, Path], manifest, as_frame: bool = False, **_: object):
    """Gene sets from a GMT file (e.g. MSigDB Hallmark v7.0: 50 sets).

    Parameters
    ----------
    as_frame
        False (default): ``dict`` set name → list of gene symbols (file order). True: a long DataFrame with
        columns ``gene_set``, ``gene``, ``description`` (one row per membership; Hallmark v7.0: 7,322 rows).
    """
    path = _single(files, (".gmt",))
    sets: dict[str, list[str]] = {}
    descriptions: dict[str, str] = {}
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            fields = line.rstrip("\r\n").split("\t")
            if not fields or not fields[0]:
                continue
            if len(fields) < 3:
                raise SchemaError(f"{path.name} line {number}: a GMT line needs name, description and genes")
            if fields[0] in sets:
                raise SchemaError(f"{path.name} line {number}: gene set {fields[0]!r} repeats")
            sets[fields[0]] = [g for g in fields[2:] if g]
            descriptions[fields[0]] = fields[1]
    if not as_frame:
        return sets
    rows = [(name, gene, descriptions[name]) for name, genes in sets.items() for gene in genes]
    return pd.DataFrame(rows, columns=["gene_set", "gene", "description"])


@loader("go_human", returns="tables")
def load_go_human(files: Mapping[str, Path], manifest, **_: object) -> dict[str, pd.DataFrame]:
    """Human GO annotations and the GO graph, exported from Bioconductor org.Hs.eg.db / GO.db 3.16.

    Returns
    -------
    dict of pandas.DataFrame
        ``gene2go`` (348,116 rows: entrez_id (str), symbol, go_id, evidence, ontology BP/CC/MF, go_term; 20,728
        symbols); ``go_parents`` (85,716 child → parent links: ontology, child, parent, relationship (isa,
        part_of, regulates, …), child_term); ``id_map`` (40,102 rows: entrez_id, symbol, ensembl_gene_id — one
        gene can have several Ensembl ids and vice versa).
    """
    spec = {
        "gene2go": ("gene2go_", ["entrez_id", "symbol", "go_id", "evidence", "ontology", "go_term"]),
        "go_parents": ("go_terms_and_parents_", ["ontology", "child", "parent", "relationship"]),
        "id_map": ("symbol_entrez_ensembl_", ["entrez_id", "symbol", "ensembl_gene_id"]),
    }
    out = {}
    for key, (prefix, columns) in spec.items():
        names = [n for n in files if n.startswith(prefix)]
        if len(names) != 1:
            raise KeyError(f"expected one {prefix}* file among {sorted(files)}")
        table = pd.read_csv(files[names[0]], sep="\t", dtype=str, keep_default_na=False, na_values=[""])
        out[key] = _check(table, columns, names[0])
    return out


@loader("dann2025", returns="table", targets=lambda frame: column_genes(frame, "target_contrast_gene_name"))
def load_dann2025(files: Mapping[str, Path], manifest, **_: object) -> pd.DataFrame:
    """Dann et al. 2025: per-target agreement of CRISPRi Perturb-seq effects between K562 and primary CD4+ T cells.

    Returns
    -------
    pandas.DataFrame
        5,640 rows (one per target gene × T-cell condition Rest / Stim8hr / Stim48hr): ``target_contrast_gene_name``,
        ``logfc_pearson_r`` and ``logfc_pearson_pval`` (correlation of the target's log-fold-change profiles in
        K562 vs T cells), ``random_r1..3`` (random-pair null), ``comparison``, ``condition``,
        ``donor_correlation_mean``, ``n_degs_MASH_<K562|Rest|Stim48hr|Stim8hr>`` (DEG counts). The file's unnamed
        row-number column is dropped.
    """
    path = _single(files, (".csv",))
    table = pd.read_csv(path)
    if table.columns[0].startswith("Unnamed") or table.columns[0] == "":
        table = table.drop(columns=table.columns[0])
    return _check(table, ["target_contrast_gene_name", "logfc_pearson_r", "condition"], path.name)
