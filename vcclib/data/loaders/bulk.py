"""Bulk RNA-seq perturbation loaders (one obs row per sequenced sample)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from vcclib.data.loaders import loader
from vcclib.data.schema import SchemaError, finalize, log1p_normalise

CONTROL_LABEL = "control"
CPM = 1e6


def _read_rda(path: Path) -> dict:
    import rdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return rdata.read_rda(str(path))


def _unique_names(names) -> list[str]:
    """Repeated names get '-1', '-2'… suffixes (the first keeps its name), like AnnData's var_names_make_unique."""
    seen: dict[str, int] = {}
    out = []
    for name in map(str, names):
        if name in seen:
            seen[name] += 1
            out.append(f"{name}-{seen[name]}")
        else:
            seen[name] = 0
            out.append(name)
    return out


@loader("encode_shrna", returns="anndata")
def load_encode_eif4g1(files: Mapping[str, Path], manifest, **_: object) -> AnnData:
    """ENCODE ENCSR509LIV: EIF4G1 shRNA knockdown in HepG2, bulk RNA-seq gene counts (via cTRAP).

    Returns
    -------
    AnnData
        4 samples (shRNA1, shRNA2, control1, control2) × 15,082 genes. ``layers['counts']``: the raw gene
        counts (ENCODE RSEM expected counts, hg19/GENCODE V19); ``X``: log1p(counts per million), target sum 1e6
        (``uns['vcc']['target_sum']``). ``obs``: ``perturbation`` (EIF4G1 or ``control``), ``replicate``,
        ``cell_line`` HepG2, ``encode_file`` (ENCODE file accession of the knockdown quantifications; empty for the
        controls, which come from the control experiment ENCSR042QTH), ``library_size`` and the schema columns.
        ``var`` (index gene symbol; repeated symbols made unique with '-1', '-2'…): ``transcript_ids``.
    """
    for name in ("counts.rda", "ENCODEmetadata.rda"):
        if name not in files:
            raise KeyError(f"missing {name}; have {sorted(files)}")
    counts = _read_rda(Path(files["counts.rda"])).get("counts")
    meta = _read_rda(Path(files["ENCODEmetadata.rda"])).get("ENCODEmetadata")
    if not isinstance(counts, pd.DataFrame) or "gene_id" not in counts:
        raise SchemaError("counts.rda does not hold a 'counts' data frame with a gene_id column")
    samples = [c for c in counts.columns if c.startswith(("shRNA", "control"))]
    if not any(s.startswith("shRNA") for s in samples) or not any(s.startswith("control") for s in samples):
        raise SchemaError(f"counts.rda: expected shRNA* and control* sample columns, found {list(counts.columns)}")
    matrix = counts[samples].to_numpy(dtype=np.float32).T
    var = pd.DataFrame(
        {"transcript_ids": counts.get("transcript_id(s)", pd.Series([""] * len(counts))).astype(str).to_numpy()},
        index=pd.Index(counts["gene_id"].astype(str).to_numpy()),
    )
    target = "EIF4G1"
    cell_line = "HepG2"
    accession: dict[str, str] = {}
    if isinstance(meta, pd.DataFrame):
        if "Experiment target" in meta and meta["Experiment target"].notna().any():
            target = str(meta["Experiment target"].dropna().iloc[0])
        if "Biosample term name" in meta and meta["Biosample term name"].notna().any():
            cell_line = str(meta["Biosample term name"].dropna().iloc[0])
        if {"Biological replicate(s)", "File accession"} <= set(meta.columns):
            for rep, acc in zip(meta["Biological replicate(s)"].astype(str), meta["File accession"].astype(str)):
                accession[f"shRNA{rep.strip()}"] = acc
    obs = pd.DataFrame(
        {
            "perturbation": [target if s.startswith("shRNA") else CONTROL_LABEL for s in samples],
            "replicate": [s.removeprefix("shRNA").removeprefix("control") for s in samples],
            "cell_line": cell_line,
            "encode_file": [accession.get(s, "") for s in samples],
            "library_size": matrix.sum(axis=1),
        },
        index=pd.Index(samples),
    )
    var.index = pd.Index(_unique_names(var.index))
    adata = AnnData(X=matrix, obs=obs, var=var)
    log1p_normalise(adata, target_sum=CPM)
    adata = finalize(
        adata,
        dataset=manifest.id,
        control_label=CONTROL_LABEL,
        x_scale="log1p",
        normalisation="log1p of counts per million (each sample's counts / its total × 1e6); raw counts in "
        "layers['counts'].",
        organism="human",
        perturbation_type="shRNA",  # the controls are control-shRNA samples (ENCSR042QTH)
    )
    adata.uns["vcc"]["target_sum"] = CPM
    return adata
