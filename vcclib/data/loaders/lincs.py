"""LINCS L1000 loaders: GCT/GCTX files, the cmapR knockdown plate, the cTRAP consensus signatures, dhimmel tables.

GCT/GCTX orientation
--------------------
A GCT file stores genes (probes) as rows and signatures/samples as columns. Every AnnData returned here follows the
AnnData convention instead: ``obs`` = samples/signatures (the GCT columns, with the column metadata), ``var`` =
genes (the GCT rows, with the row metadata), so ``X`` has shape (n GCT columns, n GCT rows).
"""

from __future__ import annotations

import gzip
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from vcclib.data.loaders import loader
from vcclib.data.schema import SchemaError, finalize

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
GCTX_MATRIX = "0/DATA/0/matrix"
GCTX_ROW_META = "0/META/ROW"
GCTX_COL_META = "0/META/COL"
CONTROL_LABEL = "control"
LANDMARK_COUNT = 978
MISSING_CODES = ("-666", "-666.0", "-666.000000", "NA", "NaN", "nan", "")


# --------------------------------------------------------------------------------------------------------------
# GCT / GCTX reader
# --------------------------------------------------------------------------------------------------------------


def is_hdf5(path: str | Path) -> bool:
    """True when the file starts with the HDF5 signature (a GCTX), whatever its extension."""
    with open(path, "rb") as handle:
        return handle.read(len(HDF5_MAGIC)) == HDF5_MAGIC


def _as_id_list(ids: Iterable | None, what: str) -> list[str] | None:
    if ids is None:
        return None
    if isinstance(ids, (str, bytes)):
        ids = [ids]
    out = [i.decode() if isinstance(i, bytes) else str(i) for i in ids]
    if len(set(out)) != len(out):
        raise ValueError(f"the selected {what} ids contain duplicates")
    return out


def _positions(all_ids: pd.Index, wanted: list[str] | None, what: str, path) -> np.ndarray:
    """Positions of ``wanted`` ids in ``all_ids`` (in the order asked for); all positions when None."""
    if wanted is None:
        return np.arange(len(all_ids))
    index = pd.Index(all_ids)
    positions = index.get_indexer(wanted)
    missing = [w for w, p in zip(wanted, positions) if p < 0]
    if missing:
        raise KeyError(f"{len(missing)} {what} ids are not in {path}: {missing[:10]}")
    return positions


def _decode(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in ("S", "O"):
        return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)
    return values


def _convert_meta(frame: pd.DataFrame) -> pd.DataFrame:
    """LINCS missing codes (-666) to NaN and numeric-looking columns to numbers, as cmapPy does."""
    for column in frame.columns:
        values = frame[column]
        if values.dtype == object:
            frame[column] = values.where(~values.astype(str).isin(MISSING_CODES), np.nan)
        elif values.dtype.kind in "if":
            frame[column] = values.where(values != -666, np.nan)
        if frame[column].dtype == object:
            try:
                frame[column] = pd.to_numeric(frame[column])
            except (ValueError, TypeError):
                pass
    return frame


def _read_gctx(path: Path, rows: list[str] | None, columns: list[str] | None) -> AnnData:
    import h5py

    with h5py.File(path, "r") as handle:
        for key in (GCTX_MATRIX, f"{GCTX_ROW_META}/id", f"{GCTX_COL_META}/id"):
            if key not in handle:
                raise SchemaError(f"{path} is HDF5 but not a GCTX: it lacks /{key}")
        row_ids = pd.Index(_decode(handle[f"{GCTX_ROW_META}/id"][()]))
        col_ids = pd.Index(_decode(handle[f"{GCTX_COL_META}/id"][()]))
        matrix = handle[GCTX_MATRIX]
        # GCTX stores the matrix as (n columns, n rows): one HDF5 row per sample.
        if matrix.shape != (len(col_ids), len(row_ids)):
            raise SchemaError(
                f"{path}: matrix shape {matrix.shape} does not match {len(col_ids)} column ids x {len(row_ids)} row ids"
            )
        rpos = _positions(row_ids, rows, "row", path)
        cpos = _positions(col_ids, columns, "column", path)
        # h5py needs increasing indices: read the sorted selection, then put it in the order asked for.
        rsorted, rinverse = np.unique(rpos, return_inverse=True)
        csorted, cinverse = np.unique(cpos, return_inverse=True)
        all_rows = len(rsorted) == len(row_ids)
        all_cols = len(csorted) == len(col_ids)
        block = max(1, int(2e8 // max(1, matrix.shape[1] * matrix.dtype.itemsize)))  # ~200 MB of full rows per read
        parts = []
        for start in range(0, len(csorted), block):
            chunk = csorted[start : start + block]
            if all_cols and len(csorted) <= block:
                selector = slice(None)
            elif np.all(np.diff(chunk) == 1):
                selector = slice(int(chunk[0]), int(chunk[-1]) + 1)
            else:
                selector = chunk.tolist()
            if isinstance(selector, slice) and not all_rows and len(rsorted) <= matrix.shape[1] // 2:
                data = matrix[selector, rsorted.tolist()]  # few genes over a block of samples
            else:  # whole sample rows (one HDF5 row per sample is cheap), then the genes in memory
                data = matrix[selector, :]
                if not all_rows:
                    data = data[:, rsorted]
            parts.append(np.asarray(data))
        data = np.concatenate(parts, axis=0) if parts else np.empty((0, len(rsorted)), dtype=matrix.dtype)
        data = data[cinverse][:, rinverse]

        def meta(group: str, positions: np.ndarray, sorted_positions: np.ndarray, inverse, ids) -> pd.DataFrame:
            fields = {}
            for name, dset in handle[group].items():
                if name == "id" or not hasattr(dset, "shape") or dset.ndim != 1:
                    continue
                values = dset[sorted_positions.tolist()] if len(sorted_positions) < dset.shape[0] else dset[()]
                fields[name] = _decode(np.asarray(values))[inverse]
            frame = pd.DataFrame(fields, index=pd.Index(np.asarray(ids)[positions], dtype=str))
            return _convert_meta(frame)

        var = meta(GCTX_ROW_META, rpos, rsorted, rinverse, row_ids)
        obs = meta(GCTX_COL_META, cpos, csorted, cinverse, col_ids)
        version = handle.attrs.get("version", b"GCTX1.0")
    version = version.decode() if isinstance(version, bytes) else str(version)
    adata = AnnData(X=data, obs=obs, var=var)
    adata.uns["gct"] = {"source": str(path), "format": "gctx", "version": version}
    return adata


def _open_text(path: Path):
    with open(path, "rb") as handle:
        gz = handle.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt") if gz else open(path)


def _read_gct_text(path: Path, rows: list[str] | None, columns: list[str] | None) -> AnnData:
    with _open_text(path) as handle:
        version = handle.readline().strip()
        dims_line = handle.readline().strip().split("\t")
        header = handle.readline().rstrip("\n").rstrip("\r").split("\t")
    if version not in ("#1.2", "#1.3"):
        raise SchemaError(f"{path}: first line {version!r} is not a GCT version line (#1.2 or #1.3)")
    try:
        dims = [int(x) for x in dims_line if x.strip()]
    except ValueError as error:
        raise SchemaError(f"{path}: second line {dims_line!r} is not the GCT dimensions") from error
    if version == "#1.2":
        if len(dims) != 2:
            raise SchemaError(f"{path}: a #1.2 GCT needs 2 dimensions on line 2, found {dims_line!r}")
        n_rows, n_cols = dims
        n_rhd, n_chd = 1, 0  # the Description column is the only row metadata
    else:
        if len(dims) != 4:
            raise SchemaError(f"{path}: a #1.3 GCT needs 4 dimensions on line 2, found {dims_line!r}")
        n_rows, n_cols, n_rhd, n_chd = dims
    if len(header) != 1 + n_rhd + n_cols:
        raise SchemaError(
            f"{path}: header has {len(header)} fields; expected 1 id + {n_rhd} row-metadata + {n_cols} sample columns"
        )
    row_fields = header[1 : 1 + n_rhd]
    col_ids = pd.Index(header[1 + n_rhd :])
    cpos = _positions(col_ids, columns, "column", path)
    usecols = list(range(1 + n_rhd)) + [1 + n_rhd + int(p) for p in np.unique(cpos)]
    table = pd.read_csv(
        path, sep="\t", header=None, skiprows=3, usecols=usecols, dtype=str, keep_default_na=False,
        na_values=["", "NA", "NaN", "nan"], compression="infer",
    )  # fmt: skip
    table.columns = ["id", *row_fields, *col_ids[np.unique(cpos)]]
    col_meta = table.iloc[:n_chd]
    body = table.iloc[n_chd:]
    if len(body) != n_rows:
        raise SchemaError(f"{path}: {len(body)} data rows, header promised {n_rows}")
    body = body.set_index("id")
    body.index = body.index.astype(str)
    rpos = _positions(body.index, rows, "row", path)
    body = body.iloc[rpos]
    selected_cols = list(col_ids[cpos])
    data = body[selected_cols].to_numpy(dtype=np.float32).T
    var = _convert_meta(body[row_fields].copy().astype(object))
    if version == "#1.2":
        var.columns = ["Description"]
    obs = pd.DataFrame(index=pd.Index(selected_cols, dtype=str))
    if n_chd:
        meta = col_meta.set_index("id")[selected_cols].T
        obs = _convert_meta(meta.astype(object))
        obs.columns.name = None
    var.index.name = None
    obs.index.name = None
    adata = AnnData(X=data, obs=obs, var=var)
    adata.uns["gct"] = {"source": str(path), "format": "gct", "version": version.lstrip("#")}
    return adata


def read_gct(path: str | Path, rows: Iterable[str] | None = None, columns: Iterable[str] | None = None) -> AnnData:
    """Read a GCT (text #1.2/#1.3, optionally gzipped) or GCTX (HDF5) file, or a selection of it.

    The format is detected from the first bytes (HDF5 signature), not from the extension: cmapPy's
    ``test_l1000.gctx`` is GCT 1.3 text. A GCTX is read by HDF5 hyperslabs: only the selected columns (samples)
    are read from ``/0/DATA/0/matrix`` and only the selected entries of the metadata fields, so one signature of a
    level-5 LINCS GCTX (473,647 × 12,328) costs one ~50 kB read, not the whole file.

    Parameters
    ----------
    path
        The GCT/GCTX file.
    rows
        GCT row ids (genes/probes, e.g. Entrez ids as strings in LINCS files) to keep, in this order. None: all.
    columns
        GCT column ids (signature/sample ids) to keep, in this order. None: all.

    Returns
    -------
    AnnData
        ``X``: float32 (GCTX: the stored dtype), shape (n selected columns, n selected rows) — samples × genes.
        ``obs``: the column metadata, indexed by column id. ``var``: the row metadata, indexed by row id (for #1.2 a
        ``Description`` column); LINCS's missing code -666 becomes NaN there, as in cmapPy.
        ``uns['gct']``: ``source``, ``format`` (gct|gctx), ``version``.

    Raises
    ------
    KeyError
        When a selected id is not in the file (the message lists them).
    SchemaError
        When the file is not a well-formed GCT/GCTX.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    rows_list = _as_id_list(rows, "row")
    cols_list = _as_id_list(columns, "column")
    if is_hdf5(path):
        return _read_gctx(path, rows_list, cols_list)
    return _read_gct_text(path, rows_list, cols_list)


def _pick_file(files: Mapping[str, Path], suffixes: tuple[str, ...], what: str, file: str | None) -> Path:
    if file is not None:
        if file not in files:
            raise KeyError(f"no file {file!r}; files: {sorted(files)}")
        return Path(files[file])
    candidates = [name for name in files if name.lower().endswith(suffixes)]
    if len(candidates) != 1:
        raise ValueError(
            f"expected exactly one {what} file among {sorted(files)}, found {candidates}; pass file=<name>"
        )
    return Path(files[candidates[0]])


@loader("gct", returns="anndata")
def load_gct_from_manifest(
    files: Mapping[str, Path], manifest, rows=None, columns=None, file: str | None = None, **_: object
) -> AnnData:
    """Read the manifest's GCT/GCTX file with :func:`read_gct` (samples × genes AnnData).

    Parameters
    ----------
    files, manifest
        From :func:`vcclib.data.fetch`; the manifest must hold exactly one ``.gct``/``.gctx``(``.gz``) file unless
        ``file`` names one.
    rows, columns
        Row (gene) and column (signature) ids to keep; see :func:`read_gct`.

    Returns
    -------
    AnnData
        As :func:`read_gct`, plus ``uns['vcc']`` with ``dataset``, ``organism`` and ``x_scale`` 'other' (the
        values are whatever the file holds: level 3 expression, level 4/5 z-scores, …). For lincs_cmappy_example:
        377 A375 samples × 978 landmark genes (log2 expression of drug plate LJP005).
    """
    path = _pick_file(files, (".gct", ".gctx", ".gct.gz"), "GCT/GCTX", file)
    adata = read_gct(path, rows=rows, columns=columns)
    adata.uns["vcc"] = {
        "dataset": manifest.id,
        "organism": manifest.organism,
        "x_scale": "other",
        "normalisation": "As stored in the GCT/GCTX file (see the dataset's description for its LINCS level).",
    }
    return adata


@loader("lincs_table", returns="table")
def load_lincs_table(
    files: Mapping[str, Path], manifest, file: str | None = None, missing_as_na: bool = True, **_: object
) -> pd.DataFrame:
    """A tab-separated LINCS metadata table (gene_info, cell_info, sig_info, sig_metrics, siginfo_beta…).

    Parameters
    ----------
    file
        Which file to read when the manifest lists several.
    missing_as_na
        Turn LINCS's missing-value code ``-666`` (number or text) into NA.

    Returns
    -------
    pandas.DataFrame
        The table as written (one row per line, the header's columns); gzip is detected from the content.
    """
    path = _pick_file(files, (".txt", ".tsv", ".txt.gz", ".tsv.gz"), "table", file)
    with _open_text(path) as handle:
        first = handle.readline()
    if "\t" not in first:
        raise SchemaError(f"{path}: first line has no tab; not a tab-separated LINCS table")
    table = pd.read_csv(path, sep="\t", low_memory=False, compression="gzip" if _is_gzip(path) else None)
    if missing_as_na:
        table = table.replace({-666: pd.NA, "-666": pd.NA})
    return table


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


# --------------------------------------------------------------------------------------------------------------
# R objects (cmapR, cTRAP)
# --------------------------------------------------------------------------------------------------------------


def _read_rda(path: Path) -> dict:
    import rdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "missing constructor for R class GCT/data.table"
        return rdata.read_rda(str(path))


@loader("lincs_cmapr_plate", returns="anndata")
def load_cmapr_kd_plate(files: Mapping[str, Path], manifest, **_: object) -> AnnData:
    """cmapR's ``kd_gct``: one L1000 shRNA knockdown plate (LITMUS.KD017, A549, 96 h) as a schema AnnData.

    Returns
    -------
    AnnData
        374 wells × 976 landmark genes. ``X``: differential-expression z-scores (float32, ``x_scale`` 'zscore').
        ``obs`` (index ``LITMUS.KD017:<well>``): ``perturbation`` = the target's gene symbol as measured (the
        var symbol of the target's Entrez id) for the 334 ``trt_sh`` wells (88 targets, every one a measured
        landmark gene), ``control`` for the 40 control wells; ``pert_type`` (trt_sh / ctl_vector / ctl_untrt,
        which kind of control), ``control_type`` (EMPTY_VECTOR, GFP, … or UNTREATED; empty for treated wells),
        ``guide`` (TRC shRNA clone id), ``target_entrez_id``, ``pert_iname``, ``pert_mfc_desc`` (the source's
        names, some outdated), ``pert_well``, ``pert_plate``, ``cell_line`` (A549), ``time`` ('96 h'), and the
        schema columns. ``var`` (index gene symbol): ``entrez_id``, ``gene_title``.

    Notes
    -----
    The GCT object carries no cell line; the plate is ``LITMUS.KD017_A549_96H_X1_B42`` of the CMap
    deconvolution (DPeak) challenge, whence A549 and 96 h.
    """
    path = Path(files["kd_gct.RData"])
    objects = _read_rda(path)
    if "kd_gct" not in objects:
        raise SchemaError(f"{path} holds {sorted(objects)}, not kd_gct")
    gct = objects["kd_gct"]
    for slot in ("mat", "rid", "cid", "rdesc", "cdesc"):
        if not hasattr(gct, slot):
            raise SchemaError(f"{path}: kd_gct lacks the GCT slot {slot!r}")
    matrix = np.asarray(gct.mat.values, dtype=np.float32)  # genes × wells
    rid = [str(x) for x in gct.rid]
    cid = [str(x) for x in gct.cid]
    rdesc = gct.rdesc.reset_index(drop=True)
    cdesc = gct.cdesc.reset_index(drop=True)
    needed = {"pert_type", "pert_univ_id", "pert_mfc_id", "pert_iname", "pert_plate", "pert_well"}
    if not needed <= set(cdesc.columns) or "pr_gene_symbol" not in rdesc:
        raise SchemaError(f"{path}: column metadata lacks {sorted(needed - set(cdesc.columns))} or pr_gene_symbol")
    if matrix.shape != (len(rid), len(cid)):
        raise SchemaError(f"{path}: matrix {matrix.shape} vs {len(rid)} rids × {len(cid)} cids")

    var = pd.DataFrame(
        {
            "entrez_id": [str(x) for x in rdesc["pr_gene_id"]],
            "gene_title": rdesc["pr_gene_title"].astype(str).to_numpy(),
        },
        index=pd.Index(rdesc["pr_gene_symbol"].astype(str).to_numpy(), name=None),
    )
    symbol_of_entrez = dict(zip(rid, var.index))
    pert_type = cdesc["pert_type"].astype(str)
    treated = pert_type == "trt_sh"
    target_entrez = cdesc["pert_univ_id"].astype(str).where(treated, "")
    targets = [symbol_of_entrez.get(e, "") if t else CONTROL_LABEL for e, t in zip(target_entrez, treated)]
    unknown = sorted({e for e, t, s in zip(target_entrez, treated, targets) if t and not s})
    if unknown:  # not on this plate; fall back to the source's current symbol
        targets = [s or str(d) for s, d in zip(targets, cdesc.get("pert_mfc_desc", cdesc["pert_iname"]).astype(str))]
    control_type = np.where(
        treated, "", np.where(pert_type == "ctl_untrt", "UNTREATED", cdesc["pert_iname"].astype(str))
    )
    plate = cdesc["pert_plate"].astype(str)
    obs = pd.DataFrame(
        {
            "perturbation": targets,
            "pert_type": pert_type.to_numpy(),
            "control_type": control_type,
            "guide": cdesc["pert_mfc_id"].astype(str).to_numpy(),
            "target_entrez_id": target_entrez.to_numpy(),
            "pert_iname": cdesc["pert_iname"].astype(str).to_numpy(),
            "pert_mfc_desc": cdesc.get("pert_mfc_desc", cdesc["pert_iname"]).astype(str).to_numpy(),
            "pert_well": cdesc["pert_well"].astype(str).to_numpy(),
            "pert_plate": plate.to_numpy(),
            "cell_line": "A549",
            "time": "96 h",
        },
        index=pd.Index([f"{p}:{w}" for p, w in zip(plate, cid)]),
    )
    adata = AnnData(X=matrix.T.copy(), obs=obs, var=var)
    return finalize(
        adata,
        dataset=manifest.id,
        control_label=CONTROL_LABEL,
        x_scale="zscore",
        normalisation="L1000 differential-expression z-scores of each well against its plate population "
        "(level 4, robust z-scores), landmark genes only.",
        organism="human",
        perturbation_type="shRNA",
    )


@loader("lincs_ctrap_consensus", returns="anndata")
def load_ctrap_kd_consensus(files: Mapping[str, Path], manifest, **_: object) -> AnnData:
    """cTRAP's ``cmapPerturbationsKD``: 26 level-5 consensus knockdown signatures in HepG2 (96 h).

    Returns
    -------
    AnnData
        26 signatures × 12,328 genes, ``X`` = consensus (MODZ) z-scores (float32, ``x_scale`` 'zscore').
        ``obs`` (index = LINCS signature id ``CGS001_HEPG2_96H:<gene>:1.5``): ``perturbation`` (target symbol as
        LINCS names it, some outdated, e.g. KIAA0196, SQRDL, TMEM5), ``sig_id``, ``cell_line`` 'HepG2',
        ``time`` '96 h', ``guide`` 'consensus' (CGS: consensus over several shRNAs). No control signatures.
        ``var`` (index gene symbol): ``landmark`` (bool; the first 978 rows, the order of LINCS level-5 matrices
        where the 978 measured landmarks come first, the rest are inferred genes).
    """
    path = Path(files["cmapPerturbationsKD.rda"])
    objects = _read_rda(path)
    if "cmapPerturbationsKD" not in objects:
        raise SchemaError(f"{path} holds {sorted(objects)}, not cmapPerturbationsKD")
    array = objects["cmapPerturbationsKD"]
    if getattr(array, "ndim", 0) != 2:
        raise SchemaError(f"{path}: cmapPerturbationsKD is not a matrix")
    genes = [str(g) for g in array.coords[array.dims[0]].values]
    sigs = [str(s) for s in array.coords[array.dims[1]].values]
    parts = [s.split(":") for s in sigs]
    if any(len(p) < 2 for p in parts):
        raise SchemaError(f"{path}: signature ids {sigs[:3]} are not LINCS CGS ids (<batch>:<gene>:<dose>)")
    batch = [p[0] for p in parts]
    obs = pd.DataFrame(
        {
            "perturbation": [p[1] for p in parts],
            "sig_id": sigs,
            "cell_line": ["HepG2" if "HEPG2" in b.upper() else b.split("_")[1] for b in batch],
            "time": [b.split("_")[-1].replace("H", " h") for b in batch],
            "guide": "consensus",
        },
        index=pd.Index(sigs),
    )
    var = pd.DataFrame({"landmark": np.arange(len(genes)) < LANDMARK_COUNT}, index=pd.Index(genes))
    adata = AnnData(X=np.asarray(array.values, dtype=np.float32).T.copy(), obs=obs, var=var)
    return finalize(
        adata,
        dataset=manifest.id,
        control_label=CONTROL_LABEL,
        x_scale="zscore",
        normalisation="LINCS level-5 consensus (MODZ) differential-expression z-scores over shRNAs targeting the "
        "same gene; 978 measured landmark genes plus inferred genes.",
        organism="human",
        perturbation_type="shRNA",
    )


# --------------------------------------------------------------------------------------------------------------
# dhimmel/lincs tables
# --------------------------------------------------------------------------------------------------------------

_TRUTH = {"True": True, "False": False, "true": True, "false": False, True: True, False: False}


def _boolean(series: pd.Series) -> pd.Series:
    return series.map(_TRUTH).astype("boolean")


@loader("lincs_dhimmel", returns="tables")
def load_dhimmel(files: Mapping[str, Path], manifest, **_: object) -> dict[str, pd.DataFrame]:
    """Daniel Himmelstein's processed LINCS L1000 tables.

    Returns
    -------
    dict of pandas.DataFrame
        ``geneinfo`` (36,590 rows: one per Affymetrix probe, ``pr_id``, plus genes without probes): ``pr_id``,
        ``pr_gene_id`` (Entrez; '///'-joined for ambiguous probes), ``pr_gene_symbol``, ``pr_gene_title``,
        ``is_lm``/``is_l1000``/``is_bing`` (nullable booleans), ``pr_pool_id`` and ``landmark`` (bool: is_lm is
        True; 1,171 landmark probes in this older LINCS annotation). ``cellinfo`` (2,541 rows, LINCS cell
        lines; a few cell_id values repeat). ``overexpression`` (40,642 rows: perturbagen (Entrez id of the
        overexpressed gene), entrez_gene_id, z_score, symbol, status measured/imputed, direction up/down,
        nlog10_bonferroni_pval: the significantly dysregulated genes of each consensus overexpression
        signature). ``knockdown_summary`` (4,312 rows: perturbagen and counts of down/up measured/imputed genes).
        ``genes`` (7,467 rows: entrez_gene_id, status — 978 measured landmarks, the rest imputed — symbol,
        type_of_gene, description).
    """
    names = {
        "geneinfo": "geneinfo.tsv.gz",
        "cellinfo": "cellinfo.tsv.gz",
        "overexpression": "dysreg-overexpression.tsv",
        "knockdown_summary": "dysreg-knockdown-summary.tsv",
        "genes": "genes.tsv",
    }
    missing = [n for n in names.values() if n not in files]
    if missing:
        raise KeyError(f"lincs_dhimmel files missing: {missing}")
    out = {key: pd.read_csv(files[name], sep="\t", low_memory=False) for key, name in names.items()}
    gene = out["geneinfo"]
    for column in ("is_lm", "is_l1000", "is_bing"):
        if column not in gene:
            raise SchemaError(f"geneinfo lacks column {column!r}; columns: {list(gene.columns)}")
        gene[column] = _boolean(gene[column])
    gene["landmark"] = gene["is_lm"].fillna(False).astype(bool)
    for key, column in (
        ("overexpression", "z_score"),
        ("genes", "status"),
        ("knockdown_summary", "perturbagen"),
    ):
        if column not in out[key]:
            raise SchemaError(f"{names[key]} lacks column {column!r}; columns: {list(out[key].columns)}")
    return out
