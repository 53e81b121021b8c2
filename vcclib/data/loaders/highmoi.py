"""High-MOI single-cell CRISPR screens: every cell carries several gRNAs, none is collapsed to one.

The assignment is sceptre's thresholding rule (Barry et al. 2024, ``assign_grnas(method = "thresholding")``): a
gRNA is assigned to a cell when its UMI count in that cell is at least ``grna_threshold`` (sceptre's default: 5).
Every assigned gRNA counts; the cell's ``perturbation`` label joins their targets (see :mod:`vcclib.data.schema`).
"""

from __future__ import annotations

import re
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from vcclib.data.loaders import loader
from vcclib.data.loaders._genes import map_ensembl
from vcclib.data.loaders._rda import read_rda
from vcclib.data.manifest import Manifest
from vcclib.data.schema import COMBINATION_SEPARATOR, UNASSIGNED, SchemaError, finalize

SCEPTRE_THRESHOLD = 5  # sceptre's default UMI threshold for its thresholding assignment
CONTROL = "non-targeting"
ENHANCER_SUFFIX = re.compile(r"_(top|second)_two$")


def _single_object(path: Path):
    objects = read_rda(path)
    if len(objects) != 1:
        raise SchemaError(f"{path.name}: expected one R object, found {sorted(objects)}")
    return next(iter(objects.values()))


def _triplet(obj, what: str) -> sp.csr_matrix:
    """An R ``dgTMatrix`` (slots i, j, x, Dim) as a CSR matrix, rows × columns as in R."""
    for slot in ("i", "j", "x", "Dim"):
        if not hasattr(obj, slot):
            raise SchemaError(f"{what} is not a Matrix dgTMatrix (no slot {slot!r})")
    shape = tuple(int(d) for d in obj.Dim)
    return sp.coo_matrix((np.asarray(obj.x, dtype=np.float32), (obj.i, obj.j)), shape=shape).tocsr()


def _drop_repeated_genes(counts: sp.csr_matrix, ensembl: list[str]) -> tuple[sp.csr_matrix, list[str]]:
    """Keep the first copy of each duplicated gene, after checking that the copies are identical.

    sceptre's example holds one response row per discovery pair, so a gene in two pairs appears twice.
    """
    ids = pd.Series(ensembl)
    first = ~ids.duplicated(keep="first").to_numpy()
    by_gene = counts.T.tocsr()
    for gene in ids[~first].unique():
        rows = np.flatnonzero(ids.to_numpy() == gene)
        if any((by_gene[rows[0]] != by_gene[r]).nnz for r in rows[1:]):
            raise SchemaError(f"gene {gene} appears {len(rows)} times in the response matrix with different counts")
    return counts[:, np.flatnonzero(first)].tocsr(), ids[first].tolist()


def grna_table(groups: pd.DataFrame) -> pd.DataFrame:
    """gRNA → group table with each group's target and kind (TSS positive control, candidate enhancer, NT)."""
    table = groups[["grna_id", "grna_group"]].astype(str).reset_index(drop=True)
    group = table["grna_group"]
    is_tss = group.str.endswith("_TSS")
    is_nt = group == CONTROL
    table["target"] = np.where(
        is_tss, group.str.removesuffix("_TSS"), group.str.replace(ENHANCER_SUFFIX, "", regex=True)
    )
    table.loc[is_nt, "target"] = CONTROL
    table["target_kind"] = np.select([is_tss, is_nt], ["TSS positive control", "non-targeting"], "candidate enhancer")
    return table


def assign_threshold(
    grna_counts: sp.spmatrix, grnas: pd.DataFrame, threshold: int
) -> tuple[sp.csr_matrix, pd.DataFrame]:
    """Assign every gRNA with at least ``threshold`` UMIs in a cell (sceptre's thresholding rule).

    Parameters
    ----------
    grna_counts
        cells × gRNAs UMI counts, columns in the order of ``grnas``.
    grnas
        :func:`grna_table` output.

    Returns
    -------
    assigned, labels
        cells × gRNAs boolean CSR matrix; per cell ``perturbation`` (sorted distinct targets joined by ``+``,
        non-targeting dropped beside a targeting gRNA, ``non-targeting`` when only those, ``unassigned`` when
        none), ``n_grnas`` (assigned gRNAs), ``n_perturbations`` (distinct targets, non-targeting not counted).
    """
    counts = sp.csr_matrix(grna_counts)
    assigned = counts >= threshold
    assigned = sp.csr_matrix(assigned, dtype=bool)
    targets = grnas["target"].to_numpy()
    labels, n_targets = [], []
    indptr, indices = assigned.indptr, assigned.indices
    for cell in range(assigned.shape[0]):
        hit = set(targets[indices[indptr[cell] : indptr[cell + 1]]])
        real = sorted(hit - {CONTROL})
        n_targets.append(len(real))
        labels.append(COMBINATION_SEPARATOR.join(real) if real else (CONTROL if hit else UNASSIGNED))
    frame = pd.DataFrame(
        {"perturbation": labels, "n_grnas": np.diff(indptr), "n_perturbations": np.asarray(n_targets, dtype=int)}
    )
    return assigned, frame


@loader("gasperini2019_highmoi", returns="anndata")
def load_gasperini2019(
    files: dict[str, Path], manifest: Manifest, *, grna_threshold: int = SCEPTRE_THRESHOLD, target_sum: float = 1e4
) -> ad.AnnData:
    """Gasperini et al. 2019 high-MOI CRISPRi in K562 (sceptre's 40,000-cell example) in the schema.

    Parameters
    ----------
    grna_threshold
        A gRNA is assigned to a cell when it has at least this many UMIs there (sceptre's default 5).
    target_sum
        X = log1p(UMI / the cell's total gene UMIs × target_sum); the total is the covariate ``gene_n_umis``
        (all genes the cell expressed), not the 355 genes kept here.

    Returns
    -------
    AnnData
        40,000 cells × 341 genes (var indexed by symbol, ``ensembl_id``; the Ensembl id where no symbol maps;
        the source's 355 rows are one per discovery pair, 14 genes twice with identical counts, kept once).
        obs: ``perturbation`` (``+``-joined targets of every assigned gRNA), ``n_perturbations``, ``n_grnas``,
        ``gene_n_umis``, ``grna_n_umis``, ``p_mito``, ``batch``, ``cell_line`` K562. obsm: ``grna_counts``
        (cells × 75 gRNAs UMIs) and ``grna_assigned`` (bool). uns: ``grnas`` (the obsm columns: grna_id,
        grna_group, target, target_kind, n_cells), ``discovery_pairs`` (sceptre's 355 cis pairs, with the gene
        symbol), ``vcc.moi = "high"``, ``vcc.assignment`` (the rule). layers['counts'] raw UMIs.
    """
    if grna_threshold < 1:
        raise SchemaError(f"grna_threshold must be a positive number of UMIs, not {grna_threshold}")
    response = _single_object(Path(files["response_matrix_highmoi.rda"]))
    counts = _triplet(response, "response_matrix_highmoi").T.tocsr()  # cells × genes
    ensembl = [str(g) for g in response.Dimnames[0]]
    counts, ensembl = _drop_repeated_genes(counts, ensembl)
    grna = _single_object(Path(files["gRNA_matrix_highmoi.rda"]))
    grna_counts = _triplet(grna, "gRNA_matrix_highmoi").T.tocsr()
    grna_ids = [str(g) for g in grna.Dimnames[0]]
    groups = grna_table(_single_object(Path(files["grna_group_data_frame_highmoi.rda"])))
    missing = sorted(set(grna_ids) - set(groups["grna_id"]))
    if missing:
        raise SchemaError(f"{len(missing)} gRNAs of the gRNA matrix have no group, e.g. {missing[:3]}")
    groups = groups.set_index("grna_id").loc[grna_ids].reset_index()
    covariates = _single_object(Path(files["covariate_data_frame_highmoi.rda"]))
    if len(covariates) != counts.shape[0] or grna_counts.shape[0] != counts.shape[0]:
        raise SchemaError(
            f"cells disagree: {counts.shape[0]} in the response matrix, {grna_counts.shape[0]} in the gRNA matrix, "
            f"{len(covariates)} covariate rows"
        )
    assigned, labels = assign_threshold(grna_counts, groups, grna_threshold)
    obs = labels.copy()
    for column in ("gene_n_umis", "grna_n_umis"):
        obs[column] = np.asarray(covariates[column], dtype=np.int64)
    obs["p_mito"] = np.asarray(covariates["p_mito"], dtype=float)
    obs["batch"] = np.asarray(covariates["batch"]).astype(str)
    obs["cell_line"] = "K562"
    obs.index = [f"cell{name}" for name in covariates.index.astype(str)]

    symbols, _ = map_ensembl(ensembl)
    names = pd.Series([s if s else e for s, e in zip(symbols, ensembl)])
    names = names.where(~names.duplicated(keep=False), pd.Series(ensembl))
    var = pd.DataFrame({"ensembl_id": ensembl}, index=pd.Index(names.to_numpy(), name="gene_symbol"))

    library = obs["gene_n_umis"].to_numpy(dtype=float)
    scale = sp.diags(np.divide(target_sum, library, out=np.zeros_like(library), where=library > 0))
    normalised = (scale @ counts).tocsr()
    normalised.data = np.log1p(normalised.data)
    adata = ad.AnnData(X=normalised.astype(np.float32), obs=obs, var=var)
    adata.layers["counts"] = counts
    adata.obsm["grna_counts"] = grna_counts.astype(np.int32)
    adata.obsm["grna_assigned"] = assigned
    groups["n_cells"] = np.asarray(assigned.sum(axis=0)).ravel().astype(int)
    adata.uns["grnas"] = groups
    pairs = _single_object(Path(files["discovery_pairs_highmoi.rda"]))
    pairs = pd.DataFrame({c: np.asarray(pairs[c]).astype(str) for c in ("response_id", "grna_group", "type")})
    pairs.insert(1, "symbol", pd.Series(var.index, index=var["ensembl_id"]).reindex(pairs["response_id"]).to_numpy())
    adata.uns["discovery_pairs"] = pairs
    adata = finalize(
        adata,
        dataset=manifest.id,
        control_label=CONTROL,
        x_scale="log1p",
        normalisation=f"log1p(UMI / the cell's total gene UMIs (covariate gene_n_umis) × {target_sum:g}); raw UMIs in layers['counts']",
        organism=manifest.organism,
        perturbation_type="CRISPRi",
        moi="high",
    )
    adata.uns["vcc"]["assignment"] = (
        f"every gRNA with >= {grna_threshold} UMIs in a cell is assigned (sceptre's thresholding rule); a cell's "
        "perturbation joins the targets of all its assigned gRNAs"
    )
    adata.uns["vcc"]["grna_threshold"] = int(grna_threshold)
    return adata
