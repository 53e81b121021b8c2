"""Reference tables: gene-regulatory networks, TF lists, gene sets, GO annotations, published comparisons."""

from __future__ import annotations

import struct
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from vcclib.data.loaders import loader
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
        raise SchemaError(
            f"{path.name}: rows without TF, target or mode; not a TRRUST table (TF, target, mode, PMIDs)"
        )
    bad = sorted(set(table["mode"]) - set(TRRUST_MODES))
    if bad:
        raise SchemaError(f"{path.name}: unknown regulation modes {bad[:5]}")
    return table


class _XDR:
    """A minimal reader of R's XDR serialisation, enough for an .rda holding plain data frames.

    The ``rdata`` package parses DoRothEA's 1.4 M strings in about a minute; this reader does it in seconds. It
    raises ``NotImplementedError`` on anything else (ALTREP, environments, closures…), and callers fall back to
    ``rdata``.
    """

    def __init__(self, raw: bytes):
        self.buf = raw
        self.pos = 0
        self.refs: list = []

    def int(self) -> int:
        (value,) = struct.unpack_from(">i", self.buf, self.pos)
        self.pos += 4
        return value

    def length(self) -> int:
        n = self.int()
        if n == -1:
            high, low = self.int(), self.int()
            n = (high << 32) + low
        return n

    def item(self):
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if kind == 254:  # NILVALUE
            return None
        if kind == 255:  # REFSXP
            index = flags >> 8 or self.int()
            return self.refs[index - 1]
        if kind == 1:  # SYMSXP
            name = self.item()
            self.refs.append(name)
            return name
        if kind == 9:  # CHARSXP
            n = self.int()
            if n == -1:
                return None
            value = self.buf[self.pos : self.pos + n].decode("utf-8", errors="replace")
            self.pos += n
            return value
        if kind == 2:  # LISTSXP: a (tagged) pairlist -> dict
            out = {}
            while kind == 2:
                attributes = self.item() if has_attr else None
                del attributes
                tag = self.item() if has_tag else f"_{len(out)}"
                out[tag] = self.item()
                flags = self.int()
                kind, has_attr, has_tag = flags & 0xFF, bool(flags & (1 << 9)), bool(flags & (1 << 10))
            if kind != 254:
                raise NotImplementedError(f"pairlist ending in SEXP type {kind}")
            return out
        if kind in (10, 13, 14, 16, 19):
            n = self.length()
            if kind == 14:
                value = np.frombuffer(self.buf, dtype=">f8", count=n, offset=self.pos).astype(float)
                self.pos += 8 * n
            elif kind in (10, 13):
                value = np.frombuffer(self.buf, dtype=">i4", count=n, offset=self.pos).astype(np.int64)
                self.pos += 4 * n
            else:
                value = [self.item() for _ in range(n)]
            attributes = self.item() if has_attr else {}
            return (kind, value, attributes or {})
        raise NotImplementedError(f"SEXP type {kind}")


def _fast_rda_frames(path: Path) -> dict[str, pd.DataFrame]:
    """Data frames of an .rda file, read with :class:`_XDR` (NotImplementedError for anything else)."""
    import bz2
    import gzip
    import lzma

    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    elif raw[:3] == b"BZh":
        raw = bz2.decompress(raw)
    elif raw[:6] == b"\xfd7zXZ\x00":
        raw = lzma.decompress(raw)
    if raw[:5] not in (b"RDX2\n", b"RDX3\n") or raw[5:7] != b"X\n":
        raise NotImplementedError("not an XDR .rda file")
    reader = _XDR(raw)
    reader.pos = 7
    version = reader.int()
    reader.int(), reader.int()
    if version == 3:
        encoding_length = reader.int()
        reader.pos += encoding_length
    objects = reader.item()
    frames = {}
    for name, (kind, columns, attributes) in objects.items():
        names = attributes.get("names", (None, None))[1]
        if kind != 19 or names is None:
            raise NotImplementedError(f"{name} is not a data frame")
        data = {}
        for column, (ckind, values, _attrs) in zip(names, columns):
            if ckind == 16:
                data[column] = pd.array(values, dtype="string").astype(object)
            elif ckind == 14:
                data[column] = values
            else:
                raise NotImplementedError(f"column {column} of SEXP type {ckind}")
        frames[name] = pd.DataFrame(data)
    return frames


@loader("dorothea", returns="table")
def load_dorothea(files: Mapping[str, Path], manifest, **_: object) -> pd.DataFrame:
    """DoRothEA human regulons (Garcia-Alonso et al. 2019), from the R package's ``dorothea_hs``.

    Returns
    -------
    pandas.DataFrame
        454,504 rows: ``tf``, ``confidence`` (A most to E least confident), ``target``, ``mor`` (mode of
        regulation: +1 activation, -1 repression).
    """
    import rdata

    path = _single(files, (".rda", ".RData", ".rdata"))
    try:
        objects = _fast_rda_frames(path)
    except (NotImplementedError, ValueError, KeyError, TypeError, struct.error):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            objects = rdata.read_rda(str(path))
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
