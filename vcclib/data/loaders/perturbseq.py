"""Loaders for single-cell perturbation data into the project's AnnData schema (:mod:`vcclib.data.schema`)."""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from vcclib.data.loaders import loader
from vcclib.data.manifest import Manifest
from vcclib.data.schema import (
    SchemaError,
    check_finite_nonnegative,
    finalize,
    log1p_normalise,
    looks_like_counts,
)
from vcclib.errors import PathNotFoundError

PAPALEXI_CONTROL = "non-targeting"
SCEPTRE_UMI_FRACTION = 0.8  # sceptre's low-MOI default umi_fraction_threshold


def _read_rdata(path: Path) -> dict:
    import rdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdata warns about the Matrix S4 classes it returns as namespaces
        return rdata.conversion.convert(rdata.parser.parse_file(path))


def _triplet_matrix(obj) -> sp.csr_matrix:
    """An R Matrix ``dgTMatrix`` (i, j, x, Dim) as a scipy CSR matrix (rows × columns as in R)."""
    shape = tuple(int(d) for d in obj.Dim)
    return sp.coo_matrix((np.asarray(obj.x, dtype=np.float32), (obj.i, obj.j)), shape=shape).tocsr()


def assign_dominant_grna(grna_counts: sp.spmatrix, grna_ids: np.ndarray) -> pd.DataFrame:
    """Assign each cell the gRNA with the most UMIs.

    Parameters
    ----------
    grna_counts
        gRNAs × cells UMI counts.
    grna_ids
        gRNA identifiers, one per row.

    Returns
    -------
    DataFrame
        One row per cell: ``guide`` (the dominant gRNA), ``guide_umis`` (its UMIs), ``total_guide_umis``,
        ``assignment_fraction`` (guide_umis / total: the assignment's confidence), ``assignment_tied`` (another
        gRNA has as many UMIs; the first in gRNA order wins) and ``assignment_confident`` (fraction ≥ 0.8, the
        sceptre low-MOI default).
    """
    by_cell = sp.csc_matrix(grna_counts)
    dominant = np.asarray(by_cell.argmax(axis=0)).ravel()
    top = np.asarray(by_cell.max(axis=0).todense()).ravel()
    total = np.asarray(by_cell.sum(axis=0)).ravel()
    # count the gRNAs that reach the top value in each cell (ties), without densifying
    cell_of_entry = np.repeat(np.arange(by_cell.shape[1]), np.diff(by_cell.indptr))
    ties = np.bincount(cell_of_entry, weights=by_cell.data == top[cell_of_entry], minlength=by_cell.shape[1])
    fraction = np.divide(top, total, out=np.zeros_like(top, dtype=float), where=total > 0)
    return pd.DataFrame(
        {
            "guide": np.asarray(grna_ids)[dominant],
            "guide_umis": top.astype(int),
            "total_guide_umis": total.astype(int),
            "assignment_fraction": fraction,
            "assignment_tied": ties > 1,
            "assignment_confident": fraction >= SCEPTRE_UMI_FRACTION,
        }
    )


@loader("papalexi2021", returns="anndata")
def load_papalexi2021(
    files: dict[str, Path],
    manifest: Manifest,
    *,
    min_assignment_fraction: float = 0.0,
    target_sum: float = 1e4,
) -> ad.AnnData:
    """Papalexi et al. 2021 ECCITE-seq (THP-1, CRISPR knockout, low MOI) in the schema.

    Assignment rule: each cell gets the gRNA with the most UMIs (the dominant gRNA) and that gRNA's target; its
    confidence is the dominant gRNA's share of the cell's gRNA UMIs. Every cell of this example set has ≥ 5 gRNA
    UMIs; 78 % have a share ≥ 0.8 (sceptre's low-MOI threshold, flagged in ``assignment_confident``). The gRNA
    library covers 26 targets (``uns['library_targets']``); CD274's three gRNAs are never a cell's dominant gRNA
    (at most 8 UMIs where seen), so 25 targets plus the non-targeting control have cells.

    Parameters
    ----------
    min_assignment_fraction
        Drop cells whose dominant gRNA holds less than this share of the cell's gRNA UMIs (0: keep all cells).
    target_sum
        Library size that X is normalised to before log1p.

    Returns
    -------
    AnnData
        20,729 cells × 299 genes by default: X = log1p(counts / library size × 1e4) over the 299 measured genes,
        ``layers['counts']`` raw UMIs; obs ``perturbation`` (26 targets + ``non-targeting``), ``guide``,
        assignment columns, ``replicate`` (biological replicate rep_1–rep_3), ``cell_line`` THP-1.
    """
    raw = _read_rdata(files["lowmoi_example_data.rda"])["lowmoi_example_data"]
    response = raw["response_matrix"]
    counts = _triplet_matrix(response).T.tocsr()  # cells × genes
    genes = np.asarray(response.Dimnames[0]).astype(str)
    grna = raw["grna_matrix"]
    grna_ids = np.asarray(grna.Dimnames[0]).astype(str)
    assignment = assign_dominant_grna(_triplet_matrix(grna), grna_ids)
    targets = raw["grna_target_data_frame"].set_index("grna_id")["grna_target"].astype(str)
    obs = assignment.copy()
    obs["perturbation"] = targets.reindex(obs["guide"]).to_numpy()
    obs["replicate"] = raw["extra_covariates"]["bio_rep"].astype(str).to_numpy()
    obs["cell_line"] = "THP-1"
    obs.index = [f"cell{i:05d}" for i in range(len(obs))]
    adata = ad.AnnData(X=counts, obs=obs, var=pd.DataFrame(index=pd.Index(genes, name="gene_symbol")))
    if min_assignment_fraction > 0:
        adata = adata[adata.obs["assignment_fraction"] >= min_assignment_fraction].copy()
    log1p_normalise(adata, target_sum=target_sum)
    adata.uns["library_targets"] = sorted(set(targets) - {PAPALEXI_CONTROL})
    return finalize(
        adata,
        dataset=manifest.id,
        control_label=PAPALEXI_CONTROL,
        x_scale="log1p",
        normalisation=f"log1p(UMI / library size over the 299 measured genes × {target_sum:g}); raw UMIs in layers['counts']",
        organism=manifest.organism,
        perturbation_type="CRISPRko",
    )


@loader("norman2019_mcfaline2024", returns="anndata")
def load_perturbench_devel(files: dict[str, Path], manifest: Manifest, *, study: str | None = None) -> ad.AnnData:
    """PerturBench's development set (Norman 2019 CRISPRa K562 + McFaline-Figueroa 2024 CRISPRi glioma).

    Parameters
    ----------
    study
        ``"norman19"`` or ``"mcfaline23"`` for one study; None for both.

    Returns
    -------
    AnnData
        5,961 cells × 500 HVGs (log1p-normalised by PerturBench); obs ``perturbation`` (``+`` joins double
        perturbations), ``study``, ``cell_line`` (K562, A172, T98G, U87MG), ``perturbation_type`` (CRISPRa for
        norman19, CRISPRi for mcfaline23), ``ncounts``; control label ``control``. No raw counts in the source.
    """
    adata = ad.read_h5ad(files["devel.h5ad"])
    obs = adata.obs
    new_obs = pd.DataFrame(index=obs.index.astype(str))
    new_obs["perturbation"] = obs["condition"].astype(str).to_numpy()
    new_obs["study"] = obs["dataset"].astype(str).to_numpy()
    new_obs["cell_line"] = obs["cell_type"].astype(str).replace({"k562": "K562"}).to_numpy()
    new_obs["ncounts"] = obs["ncounts"].to_numpy()
    adata = ad.AnnData(X=sp.csr_matrix(adata.X, dtype=np.float32), obs=new_obs, var=adata.var[["means"]].copy())
    adata.var.index.name = "gene_symbol"
    if not adata.obs_names.is_unique:
        adata.obs_names_make_unique()
    if study is not None:
        studies = sorted(adata.obs["study"].unique())
        if study not in studies:
            raise ValueError(f"study {study!r} is not in this dataset; studies: {studies}")
        adata = adata[adata.obs["study"] == study].copy()
    ptype = np.where(adata.obs["study"] == "norman19", "CRISPRa", "CRISPRi")
    return finalize(
        adata,
        dataset=manifest.id,
        control_label="control",
        x_scale="log1p",
        normalisation="log1p of library-size-normalised counts, as distributed by PerturBench (500 HVGs)",
        organism=manifest.organism,
        perturbation_type=pd.Series(ptype, index=adata.obs_names),
    )


@loader("kang2018", returns="anndata")
def load_kang2018(files: dict[str, Path], manifest: Manifest) -> ad.AnnData:
    """Kang et al. 2018 PBMCs, IFN-β stimulated vs control (scGen's validation split).

    Returns
    -------
    AnnData
        1,975 cells × 6,998 genes, log1p-normalised as distributed by scGen; ``perturbation`` is ``IFNB`` for
        stimulated cells and ``control`` otherwise; ``cell_type`` has 7 types; perturbation_type ``cytokine``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scGen's file is in an old anndata layout; the reader converts it
        adata = ad.read_h5ad(files["valid.h5ad"])
    obs = pd.DataFrame(index=adata.obs_names.astype(str))
    obs["perturbation"] = np.where(adata.obs["condition"].astype(str) == "stimulated", "IFNB", "control")
    obs["cell_type"] = adata.obs["cell_type"].astype(str).to_numpy()
    obs["n_counts"] = adata.obs["n_counts"].to_numpy()
    var = pd.DataFrame(index=pd.Index(adata.var_names.astype(str), name="gene_symbol"))
    result = ad.AnnData(X=sp.csr_matrix(adata.X, dtype=np.float32), obs=obs, var=var)
    return finalize(
        result,
        dataset=manifest.id,
        control_label="control",
        x_scale="log1p",
        normalisation="log1p of library-size-normalised counts, as distributed by scGen (valid.h5ad)",
        organism=manifest.organism,
        perturbation_type="cytokine",
    )


#: What a cell without a perturbation label is called when it is kept (``keep_unassigned=True``).
UNASSIGNED_LABEL = "unassigned"
#: Labels that mean "no perturbation assigned" (compared case-insensitively after stripping blanks).
MISSING_LABELS = ("", "nan", "none", "na", "<na>", "null")


def unassigned_cells(labels: pd.Series) -> np.ndarray:
    """True for cells whose perturbation label is missing: NaN/None, or text such as ``""``, ``"nan"``, ``"NA"``.

    Parameters
    ----------
    labels
        One perturbation label per cell, as read from the user's obs column.

    Returns
    -------
    numpy.ndarray of bool
    """
    text = labels.astype(object).where(labels.notna(), "").astype(str).str.strip().str.lower()
    return (labels.isna() | text.isin(MISSING_LABELS)).to_numpy()


def _library_sizes(adata: ad.AnnData, column: str) -> np.ndarray:
    """The ``obs[column]`` library sizes, checked: numeric, finite, positive, at least each cell's panel total."""
    if column not in adata.obs:
        raise SchemaError(f"library size column {column!r} is not in obs; obs columns: {list(adata.obs.columns)}")
    sizes = pd.to_numeric(adata.obs[column], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(sizes) | (sizes <= 0)
    if bad.any():
        raise SchemaError(
            f"obs[{column!r}] has {int(bad.sum())} cells with a missing, non-numeric or non-positive library size"
        )
    panel = np.asarray(adata.X.sum(axis=1)).ravel()
    short = sizes < panel - 1e-6
    if short.any():
        raise SchemaError(
            f"obs[{column!r}] is smaller than the counts over the measured genes in {int(short.sum())} cells "
            f"(e.g. {sizes[short][0]:g} < {panel[short][0]:g}); it cannot be those cells' library size"
        )
    return sizes


def _normalise_by_library_size(adata: ad.AnnData, sizes: np.ndarray, target_sum: float) -> None:
    """X ← log1p(counts / sizes × target_sum), raw counts kept in ``layers['counts']``.

    scanpy's ``normalize_total`` always divides by the total over the genes in the matrix; a targeted panel needs
    the library size measured over the whole transcriptome, hence this small kernel.
    """
    counts = adata.X.copy()
    adata.layers["counts"] = counts
    scale = (target_sum / sizes).astype(np.float64)
    if sp.issparse(counts):
        normalised = sp.csr_matrix(sp.diags(scale) @ sp.csr_matrix(counts, dtype=np.float64))
        normalised.data = np.log1p(normalised.data)
        adata.X = normalised.astype(np.float32)
    else:
        adata.X = np.log1p(np.asarray(counts, dtype=np.float64) * scale[:, None]).astype(np.float32)


def from_anndata(
    adata: ad.AnnData,
    *,
    perturbation_column: str,
    control_label: str,
    dataset: str = "user",
    perturbation_type: str = "CRISPRi",
    cell_line: str | None = None,
    cell_type_column: str | None = None,
    guide_column: str | None = None,
    organism: str = "human",
    x_scale: str | None = None,
    library_size_column: str | None = None,
    target_sum: float = 1e4,
    keep_unassigned: bool = False,
) -> ad.AnnData:
    """Map any perturbation AnnData into the schema, refusing bad input with a clear message.

    Parameters
    ----------
    adata
        The user's data: cells × genes, counts or log1p values.
    perturbation_column
        obs column naming each cell's perturbation (targets joined by ``+`` for combinations).
    control_label
        The value of that column on control cells.
    dataset, perturbation_type, cell_line, organism
        Bookkeeping written into obs and ``uns['vcc']``.
    cell_type_column, guide_column
        obs columns copied to the schema's ``cell_type`` and ``guide``.
    x_scale
        ``"counts"`` or ``"log1p"``; guessed from the values when None. Counts are normalised to
        log1p(counts / library size × ``target_sum``), the raw counts kept in ``layers['counts']``.
    library_size_column
        obs column holding each cell's library size (e.g. the whole-transcriptome UMI count of a targeted
        panel). Used instead of the total over the genes in the file, which for a panel is the panel's own
        total. Only for counts.
    target_sum
        The library size counts are scaled to before log1p.
    keep_unassigned
        Cells whose perturbation label is missing (NaN, ``""``, ``"nan"``, ``"NA"`` …) are excluded by default,
        with a warning giving their number (also in ``uns['vcc']['n_unassigned_excluded']``). True keeps them,
        labelled :data:`UNASSIGNED_LABEL` and flagged ``obs['is_unassigned']``, so that they are never taken
        for a perturbation called "nan".

    Returns
    -------
    AnnData
        In the schema; ``uns['vcc']`` records ``n_unassigned_excluded``, ``n_unassigned_kept`` and, for counts,
        ``library_size`` (which total normalised each cell) and ``target_sum``.

    Raises
    ------
    SchemaError
        Missing perturbation column, absent control label (naming the labels that exist), duplicated gene names,
        negative or non-finite values, an unusable library size column.
    """
    if perturbation_column not in adata.obs:
        raise SchemaError(
            f"perturbation column {perturbation_column!r} is not in obs; obs columns: {list(adata.obs.columns)}"
        )
    if x_scale not in (None, "counts", "log1p"):
        raise SchemaError(f"x_scale must be 'counts' or 'log1p', not {x_scale!r}")
    raw_labels = adata.obs[perturbation_column]
    unassigned = unassigned_cells(raw_labels)
    labels = raw_labels.astype(str).str.strip()
    labels[unassigned] = UNASSIGNED_LABEL
    if control_label not in set(labels[~unassigned]):
        present = labels[~unassigned].value_counts()
        shown = ", ".join(f"{name!r} ({n})" for name, n in present.head(15).items())
        more = f" and {len(present) - 15} more" if len(present) > 15 else ""
        raise SchemaError(
            f"control label {control_label!r} is absent from obs[{perturbation_column!r}]; labels there: {shown}{more}"
        )
    if UNASSIGNED_LABEL in set(labels[~unassigned]):
        raise SchemaError(
            f"obs[{perturbation_column!r}] uses {UNASSIGNED_LABEL!r} as a label; vcclib reserves it for cells without one"
        )
    if not adata.var_names.is_unique:
        dupes = adata.var_names[adata.var_names.duplicated()].unique()
        raise SchemaError(f"{len(dupes)} duplicated gene names, e.g. {list(dupes[:5])}; make them unique first")
    check_finite_nonnegative(adata.X, "X")
    n_unassigned = int(unassigned.sum())
    if n_unassigned and not keep_unassigned:
        warnings.warn(
            f"{n_unassigned:,} of {adata.n_obs:,} cells have no label in obs[{perturbation_column!r}] (NaN or "
            "empty) and were excluded; keep_unassigned=True keeps them as 'unassigned'",
            UserWarning,
            stacklevel=2,
        )
        result = adata[~unassigned].copy()
        labels = labels[~unassigned]
    else:
        result = adata.copy()
    result.obs["perturbation"] = labels.to_numpy()
    if keep_unassigned:
        result.obs["is_unassigned"] = unassigned
    if guide_column:
        result.obs["guide"] = result.obs[guide_column].astype(str)
    if cell_type_column:
        result.obs["cell_type"] = result.obs[cell_type_column].astype(str)
    if "cell_line" not in result.obs and "cell_type" not in result.obs:
        result.obs["cell_line"] = cell_line or "unknown"
    elif cell_line:
        result.obs["cell_line"] = cell_line
    scale = x_scale or ("counts" if looks_like_counts(result.X) else "log1p")
    library = {}
    if scale == "counts":
        if library_size_column:
            _normalise_by_library_size(result, _library_sizes(result, library_size_column), target_sum)
            source = f"obs[{library_size_column!r}]"
        else:
            log1p_normalise(result, target_sum=target_sum)
            source = f"the total over the {result.n_vars:,} genes in the file"
        normalisation = (
            f"log1p(counts / library size × {target_sum:g}) computed by vcclib, library size = {source}; "
            "raw counts in layers['counts']"
        )
        library = {"library_size": source, "target_sum": float(target_sum)}
    else:
        if library_size_column:
            raise SchemaError("library_size_column applies to counts; X holds log1p values (x_scale='log1p')")
        normalisation = "log1p values as given by the user"
    finalized = finalize(
        result,
        dataset=dataset,
        control_label=control_label,
        x_scale="log1p",
        normalisation=normalisation,
        organism=organism,
        perturbation_type=perturbation_type,
    )
    finalized.uns["vcc"].update(
        perturbation_column=perturbation_column,
        n_unassigned_excluded=0 if keep_unassigned else n_unassigned,
        n_unassigned_kept=n_unassigned if keep_unassigned else 0,
        **library,
    )
    return finalized


def load_user_h5ad(path: str | Path, *, perturbation_column: str, control_label: str, **options) -> ad.AnnData:
    """Read the user's own h5ad and map it into the schema (see :func:`from_anndata` for the options).

    Raises
    ------
    PathNotFoundError
        When there is no file at ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise PathNotFoundError(f"no h5ad file at {path}")
    options.setdefault("dataset", path.stem)
    return from_anndata(
        ad.read_h5ad(path), perturbation_column=perturbation_column, control_label=control_label, **options
    )


@loader(
    "h5ad",
    returns="anndata",
    options=(
        "perturbation_column",
        "control_label",
        "dataset",
        "perturbation_type",
        "cell_line",
        "cell_type_column",
        "guide_column",
        "organism",
        "x_scale",
        "library_size_column",
        "target_sum",
        "keep_unassigned",
    ),
)
def load_h5ad_from_manifest(files: dict[str, Path], manifest: Manifest, **options) -> ad.AnnData:
    """Generic loader for a full-scale h5ad dataset; the manifest's ``loader_options`` name its columns."""
    settings = {**manifest.loader_options, **options}
    h5ad_files = [path for name, path in files.items() if name.endswith(".h5ad")]
    if len(h5ad_files) != 1:
        raise ValueError(f"{manifest.id}: expected one .h5ad file, found {sorted(files)}; pass file=NAME")
    settings.setdefault("dataset", manifest.id)
    settings.setdefault("organism", manifest.organism)
    if manifest.perturbation_type:
        settings.setdefault("perturbation_type", manifest.perturbation_type[0])
    if manifest.cell_lines and len(manifest.cell_lines) == 1:
        settings.setdefault("cell_line", manifest.cell_lines[0])
    return load_user_h5ad(h5ad_files[0], **settings)
