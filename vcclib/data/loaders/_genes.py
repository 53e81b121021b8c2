"""Gene identifier mapping shared by loaders: Ensembl gene ids to HGNC symbols via the mirror's GO/Ensembl table."""

from __future__ import annotations

import re
from functools import lru_cache

import pandas as pd

ID_MAP_DATASET = "go_human_bioc_3_16"
ENSEMBL_GENE = re.compile(r"^ENSG\d{11}(\.\d+)?$")


@lru_cache(maxsize=1)
def ensembl_to_symbol() -> dict[str, str]:
    """Ensembl gene id (unversioned) → symbol, from org.Hs.eg.db 3.16 (``go_human_bioc_3_16``'s ``id_map``).

    An Ensembl id with several symbols keeps the first in the table's order (org.Hs.eg.db lists the primary
    mapping first); the table has 40,102 rows.
    """
    from vcclib.data import fetch

    files = fetch(ID_MAP_DATASET)
    (name,) = [n for n in files if n.startswith("symbol_entrez_ensembl_")]
    table = pd.read_csv(files[name], sep="\t", dtype=str, usecols=["symbol", "ensembl_gene_id"]).dropna()
    table = table.drop_duplicates("ensembl_gene_id", keep="first")
    return dict(zip(table["ensembl_gene_id"], table["symbol"]))


def is_ensembl(identifier: str) -> bool:
    """True for a human Ensembl gene id (``ENSG`` + 11 digits, optionally versioned)."""
    return bool(ENSEMBL_GENE.match(str(identifier)))


def map_ensembl(identifiers) -> tuple[list[str | None], int]:
    """Symbols for Ensembl gene ids (version suffixes ignored); other identifiers pass through as symbols.

    Returns
    -------
    symbols, n_unmapped
        One entry per identifier (None where an Ensembl id has no symbol), and how many had none.
    """
    table = ensembl_to_symbol()
    out: list[str | None] = []
    unmapped = 0
    for identifier in identifiers:
        identifier = str(identifier)
        if is_ensembl(identifier):
            symbol = table.get(identifier.split(".", 1)[0])
            unmapped += symbol is None
            out.append(symbol)
        else:
            out.append(identifier)
    return out, unmapped
