"""Imaging (optical pooled screen) loaders."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from vcclib.data.loaders import loader
from vcclib.data.schema import SchemaError
from vcclib.data.targets import index_genes

PERISCOPE_CHANNELS = ("Mito", "ConA", "WGA", "DAPI", "Phalloidin")


@loader("periscope", returns="table", targets=index_genes)
def load_periscope(files: Mapping[str, Path], manifest, **_: object) -> pd.DataFrame:
    """PERISCOPE A549 optical pooled CRISPR-knockout screen: phenotype strength per gene knockout.

    Returns
    -------
    pandas.DataFrame
        1,339 gene knockouts (index ``gene``, symbols) × 6 integer columns: for each stain channel — ``Mito``
        (MitoTracker), ``ConA`` (concanavalin A, ER), ``WGA`` (wheat germ agglutinin, Golgi/membranes), ``DAPI``
        (nucleus), ``Phalloidin`` (actin) — the number of whole-cell image features significantly changed by the
        knockout relative to non-targeting controls, and ``Sum``: the source's total of significant features,
        which is NOT the sum of the five channel columns (it differs by -24 to +30 on the mirrored file, so it
        presumably also counts features not attributed to a single channel); use it as given.
    """
    (name,) = [n for n in files if n.endswith((".tsv", ".txt"))] or [None]
    if name is None:
        raise KeyError(f"no TSV among {sorted(files)}")
    table = pd.read_csv(files[name], sep="\t")
    expected = ["Gene", *PERISCOPE_CHANNELS, "Sum"]
    if list(table.columns) != expected:
        raise SchemaError(f"{name}: columns {list(table.columns)}, expected {expected}")
    table = table.rename(columns={"Gene": "gene"}).set_index("gene")
    if not table.index.is_unique:
        raise SchemaError(f"{name}: gene names repeat")
    return table.astype("int64")
