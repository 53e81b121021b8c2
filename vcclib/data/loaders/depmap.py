"""DepMap loaders: Chronos sample data, Achilles 19Q2 guide tables, Model.csv, co-essentiality edges, release matrices.

DepMap names genes ``"SYMBOL (ENTREZ)"``; :func:`split_gene_label` splits them. Matrices of cell lines × genes come
back as AnnData with ``obs`` = cell lines (or sequenced samples) and ``var`` = genes indexed by symbol with an
``entrez_id`` column (the original label in ``depmap_label``); they are not perturbation data in the schema.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from vcclib.data.loaders import loader
from vcclib.data.schema import SchemaError
from vcclib.data.targets import column_genes, index_genes

GENE_LABEL = re.compile(r"^(?P<symbol>.+?)\s*\((?P<entrez>[^()]*)\)\s*$")


def split_gene_label(labels) -> pd.DataFrame:
    """Split DepMap ``"SYMBOL (ENTREZ)"`` labels into ``symbol`` and ``entrez_id`` (str; '' when absent)."""
    symbols, entrez = [], []
    for label in labels:
        label = "" if label is None or (isinstance(label, float) and np.isnan(label)) else str(label)
        match = GENE_LABEL.match(label)
        symbols.append(match["symbol"] if match else label)
        entrez.append(match["entrez"] if match else "")
    return pd.DataFrame({"symbol": symbols, "entrez_id": entrez})


def _gene_var(labels) -> pd.DataFrame:
    parts = split_gene_label(labels)
    index = parts["symbol"].where(~parts["symbol"].duplicated(keep=False), [str(x) for x in labels])
    return pd.DataFrame(
        {"entrez_id": parts["entrez_id"].to_numpy(), "depmap_label": [str(x) for x in labels]},
        index=pd.Index(index.to_numpy(), dtype=str),
    )


def _read_chronos_hdf5(path: Path) -> tuple[np.ndarray, list[str], list[str]]:
    """Chronos/DepMap matrix HDF5 layout: ``data`` (rows × columns), ``dim_0`` (row names), ``dim_1`` (columns)."""
    import h5py

    with h5py.File(path, "r") as handle:
        for key in ("data", "dim_0", "dim_1"):
            if key not in handle:
                raise SchemaError(f"{path} is not in the Chronos HDF5 layout (data, dim_0, dim_1): lacks {key!r}")
        data = handle["data"][()]
        rows = [x.decode() if isinstance(x, bytes) else str(x) for x in handle["dim_0"][()]]
        cols = [x.decode() if isinstance(x, bytes) else str(x) for x in handle["dim_1"][()]]
    if data.shape != (len(rows), len(cols)):
        raise SchemaError(f"{path}: data {data.shape} vs {len(rows)} dim_0 × {len(cols)} dim_1 names")
    return data, rows, cols


def _lines_by_genes(path: Path, what: str) -> AnnData:
    data, rows, cols = _read_chronos_hdf5(path)
    adata = AnnData(X=data.astype(np.float32), obs=pd.DataFrame(index=pd.Index(rows)), var=_gene_var(cols))
    adata.uns["vcc"] = {"what": what, "organism": "human"}
    return adata


def _genes_table(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path)
    if table.shape[1] != 1:
        raise SchemaError(f"{path}: expected a one-column gene list, found columns {list(table.columns)}")
    labels = table.iloc[:, 0]
    parts = split_gene_label(labels)
    return pd.DataFrame(
        {"gene": labels.astype(str).to_numpy(), "symbol": parts["symbol"], "entrez_id": parts["entrez_id"]}
    )


def _need(files: Mapping[str, Path], names) -> None:
    missing = [n for n in names if n not in files]
    if missing:
        raise KeyError(f"missing files {missing}; have {sorted(files)}")


def _require_columns(table: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise SchemaError(f"{what} lacks columns {missing}; columns: {list(table.columns)}")


def _guide_map(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path)
    _require_columns(table, ["sgrna", "gene"], path.name)
    parts = split_gene_label(table["gene"])
    table["symbol"] = parts["symbol"].to_numpy()
    table["entrez_id"] = parts["entrez_id"].to_numpy()
    genes = table.dropna(subset=["gene"]).groupby("sgrna")["gene"].nunique()
    table["n_genes"] = table["sgrna"].map(genes).fillna(0).astype(int)
    return table


def _readcounts(path: Path, sequence_map: pd.DataFrame) -> AnnData:
    data, rows, cols = _read_chronos_hdf5(path)
    _require_columns(sequence_map, ["sequence_ID"], "sequence map")
    obs = sequence_map.set_index("sequence_ID").reindex(rows)
    obs.index = obs.index.astype(str)
    obs.index.name = None
    obs = obs.astype({c: str for c in obs.columns if obs[c].dtype == object})
    adata = AnnData(X=data.astype(np.float32), obs=obs, var=pd.DataFrame(index=pd.Index(cols)))
    adata.uns["vcc"] = {
        "what": "sgRNA read counts (NaN: not measured)",
        "organism": "human",
        "x_scale": "counts",
    }
    return adata


@loader("depmap_chronos_sample", returns="tables", targets=lambda d: index_genes(d["gene_effect"]))
def load_chronos_sample(files: Mapping[str, Path], manifest, **_: object) -> dict:
    """The Chronos package's sample data and its fitted model (Dempster et al. 2021).

    Returns
    -------
    dict
        ``avana_readcounts`` AnnData 95 sequenced samples × 3,474 sgRNAs (obs = AvanaSequenceMap columns: ScreenID,
        days, pDNA_batch, cell_line_name (ACH- id; 'pDNA' for plasmid), …; X raw read counts, NaN = missing);
        ``ky_readcounts`` AnnData 65 × 4,084 (Sanger KY library); ``avana_guide_map``/``ky_guide_map``
        DataFrames (sgrna, GenomeAlignment, gene, nAlignments, DropReason, UsedByChronos + symbol, entrez_id,
        n_genes = genes the sgRNA maps to); ``avana_sequence_map``/``ky_sequence_map``; ``gene_effect`` AnnData
        58 cell lines × 887 genes (Chronos gene effect, not rescaled to DepMap's release scale; var symbol index,
        entrez_id); ``guide_efficacy`` (7,558 rows: sgrna, efficacy); ``library_effect`` (887 genes × avana/ky
        columns + symbol, entrez_id); ``growth_rate`` (155 rows: replicate_ID, library, growth_rate);
        ``common_essentials`` (323) and ``nonessentials`` (380) gene lists (gene, symbol, entrez_id);
        ``copy_number`` AnnData 58 × 898 (OmicsCNGene); ``expression`` AnnData 55 × 106 (log2(TPM+1));
        ``mutations`` (OmicsSomaticMutations: ModelID, Gene, …); ``rnai_expression_addictions`` gene list;
        ``deweirdt_guide_map``/``deweirdt_condition_map`` (the paired-guide example of the Chronos tutorial).
    """
    _need(files, ["AvanaReadcounts.hdf5", "KYReadcounts.hdf5", "gene_effect.hdf5", "guide_efficacy.csv"])
    out: dict = {}
    for lib, prefix in (("avana", "Avana"), ("ky", "KY")):
        seq = pd.read_csv(files[f"{prefix}SequenceMap.csv"])
        out[f"{lib}_sequence_map"] = seq
        out[f"{lib}_guide_map"] = _guide_map(Path(files[f"{prefix}GuideMap.csv"]))
        out[f"{lib}_readcounts"] = _readcounts(Path(files[f"{prefix}Readcounts.hdf5"]), seq)
    out["gene_effect"] = _lines_by_genes(
        Path(files["gene_effect.hdf5"]), "Chronos gene effect (cell lines × genes), not rescaled"
    )
    out["guide_efficacy"] = pd.read_csv(files["guide_efficacy.csv"])
    _require_columns(out["guide_efficacy"], ["sgrna", "efficacy"], "guide_efficacy.csv")
    library = pd.read_csv(files["library_effect.csv"])
    _require_columns(library, ["gene"], "library_effect.csv")
    parts = split_gene_label(library["gene"])
    library["symbol"], library["entrez_id"] = parts["symbol"].to_numpy(), parts["entrez_id"].to_numpy()
    out["library_effect"] = library
    out["growth_rate"] = pd.read_csv(files["growth_rate.csv"])
    out["common_essentials"] = _genes_table(Path(files["AchillesCommonEssentialControls.csv"]))
    out["nonessentials"] = _genes_table(Path(files["AchillesNonessentialControls.csv"]))
    out["copy_number"] = _lines_by_genes(Path(files["OmicsCNGene.hdf5"]), "relative copy number per gene")
    out["expression"] = _lines_by_genes(
        Path(files["OmicsExpressionProteinCodingGenesTPMLogp1.hdf5"]),
        "log2(TPM + 1) expression, protein-coding",
    )
    out["mutations"] = pd.read_csv(files["OmicsSomaticMutations.csv"])
    if "RNAiExpressionAddictions.csv" in files:
        out["rnai_expression_addictions"] = _genes_table(Path(files["RNAiExpressionAddictions.csv"]))
    if "DeWeirdtGuideMap.csv" in files:
        out["deweirdt_guide_map"] = pd.read_csv(files["DeWeirdtGuideMap.csv"])
    if "DeWeirdtConditionMap.csv" in files:
        out["deweirdt_condition_map"] = pd.read_csv(files["DeWeirdtConditionMap.csv"])
    return out


@loader("depmap_achilles_19q2", returns="tables", targets=lambda d: column_genes(d["guide_map"], "symbol"))
def load_achilles_19q2(files: Mapping[str, Path], manifest, **_: object) -> dict[str, pd.DataFrame]:
    """DepMap Achilles 19Q2 guide-level tables (Avana library, CERES era).

    Returns
    -------
    dict of pandas.DataFrame
        ``guide_efficacy`` (70,907 sgRNAs: sgRNA, offset, efficacy — CERES's per-guide offset and efficacy;
        efficacy is NaN for 994 guides in the source);
        ``guide_map`` (71,143 alignments: sgrna, genome_alignment, gene "SYMBOL (ENTREZ)", n_alignments, plus
        symbol, entrez_id and ``n_genes``: the number of distinct genes the sgRNA maps to — >1 marks
        multi-targeting guides, the off-targeting material); ``achilles_common_essentials`` (2,131 genes called
        common essential in 19Q2); ``common_essentials`` (212 genes) and ``nonessentials`` (781 genes), the
        reference positive/negative control lists (each: gene, symbol, entrez_id); ``sample_info`` (1,714 cell
        lines, DepMap_ID, names, disease, …); ``replicate_map`` (1,253 replicates: replicate_ID, DepMap_ID,
        pDNA_batch).
    """
    names = [
        "Achilles_guide_efficacy.csv", "Achilles_guide_map.csv", "Achilles_common_essentials.csv",
        "common_essentials.csv", "nonessentials.csv", "sample_info.csv", "Achilles_replicate_map.csv",
    ]  # fmt: skip
    _need(files, names)
    efficacy = pd.read_csv(files["Achilles_guide_efficacy.csv"])
    _require_columns(efficacy, ["sgRNA", "offset", "efficacy"], "Achilles_guide_efficacy.csv")
    guide_map = _guide_map(Path(files["Achilles_guide_map.csv"]))
    sample_info = pd.read_csv(files["sample_info.csv"])
    _require_columns(sample_info, ["DepMap_ID"], "sample_info.csv")
    replicate_map = pd.read_csv(files["Achilles_replicate_map.csv"])
    _require_columns(replicate_map, ["replicate_ID", "DepMap_ID"], "Achilles_replicate_map.csv")
    return {
        "guide_efficacy": efficacy,
        "guide_map": guide_map,
        "achilles_common_essentials": _genes_table(Path(files["Achilles_common_essentials.csv"])),
        "common_essentials": _genes_table(Path(files["common_essentials.csv"])),
        "nonessentials": _genes_table(Path(files["nonessentials.csv"])),
        "sample_info": sample_info,
        "replicate_map": replicate_map,
    }


@loader("depmap_model", returns="table")
def load_model_table(files: Mapping[str, Path], manifest, **_: object) -> pd.DataFrame:
    """DepMap ``Model.csv``: one row per cell model.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``ModelID`` (ACH- ids); 24Q2: 1,959 models × 42 columns (CellLineName, StrippedCellLineName,
        OncotreeLineage, OncotreePrimaryDisease, OncotreeSubtype, Sex, SangerModelID, COSMICID, RRID, …).
    """
    path = Path(files["Model.csv"]) if "Model.csv" in files else None
    if path is None:
        raise KeyError(f"no Model.csv among {sorted(files)}")
    table = pd.read_csv(path, low_memory=False)
    _require_columns(table, ["ModelID"], "Model.csv")
    if not table["ModelID"].is_unique:
        raise SchemaError("Model.csv: ModelID values repeat")
    return table.set_index("ModelID")


@loader("depmap_coessentiality", returns="table")
def load_coessentiality(files: Mapping[str, Path], manifest, **_: object) -> pd.DataFrame:
    """shinyDepMap 19Q3 co-essentiality network (Shimada et al. 2021).

    Returns
    -------
    pandas.DataFrame
        11,475 undirected edges: ``gene_a``, ``gene_b`` (symbols; the file's from/to), ``correlation`` (the
        co-essentiality correlation printed in the edge's title), ``width`` (shinyDepMap's drawing width).
    """
    (name,) = [n for n in files if n.endswith(".csv")] or [None]
    if name is None:
        raise KeyError(f"no CSV among {sorted(files)}")
    table = pd.read_csv(files[name])
    _require_columns(table, ["from", "to", "title"], name)
    correlation = pd.to_numeric(table["title"].astype(str).str.extract(r"<br />\s*([-+0-9.eE]+)")[0], errors="coerce")
    return pd.DataFrame(
        {
            "gene_a": table["from"].astype(str),
            "gene_b": table["to"].astype(str),
            "correlation": correlation,
            "width": table["width"] if "width" in table else np.nan,
        }
    )


@loader("depmap_matrix_csv", returns="anndata")
def load_matrix_csv(files: Mapping[str, Path], manifest, file: str | None = None, **_: object) -> AnnData:
    """A DepMap release matrix CSV (CRISPRGeneEffect.csv, OmicsExpression…csv, …) as cell lines × genes.

    Parameters
    ----------
    file
        Which CSV to read when the manifest lists several.

    Returns
    -------
    AnnData
        ``obs`` = the first column's ids (ModelID, ACH-…), ``var`` indexed by gene symbol (the full label where a
        symbol repeats) with ``entrez_id`` and ``depmap_label`` ("SYMBOL (ENTREZ)"); ``X`` float32 with NaN where
        the release has no value; ``uns['vcc']`` names the dataset and file.
    """
    csvs = [n for n in files if n.lower().endswith((".csv", ".csv.gz"))]
    if file is None:
        if len(csvs) != 1:
            raise ValueError(f"expected one CSV among {sorted(files)}, found {csvs}; pass file=<name>")
        file = csvs[0]
    table = pd.read_csv(files[file], index_col=0)
    if table.shape[1] == 0:
        raise SchemaError(f"{file}: no gene columns")
    labelled = split_gene_label(table.columns)["entrez_id"].astype(bool).mean()
    if labelled < 0.5:
        raise SchemaError(f"{file}: columns {list(table.columns[:3])} are not DepMap 'SYMBOL (ENTREZ)' gene labels")
    non_numeric = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if non_numeric:
        raise SchemaError(f"{file}: non-numeric columns {non_numeric[:5]}")
    obs = pd.DataFrame(index=pd.Index(table.index.astype(str), name=None))
    adata = AnnData(X=table.to_numpy(dtype=np.float32), obs=obs, var=_gene_var(table.columns))
    adata.uns["vcc"] = {
        "dataset": manifest.id,
        "file": file,
        "organism": "human",
        "what": "cell lines × genes",
    }
    return adata


DEPENDENCY_CLASSES = ("weak_dependency", "dependency", "strong_dependency")
CALL_FILES = {"crispr": "depmap_crispr.rda", "rnai": "depmap_rnai.rda"}


def _calls_matrix(frame: pd.DataFrame, prefix: str, models: pd.DataFrame) -> tuple[AnnData, dict]:
    from pandas.api.types import CategoricalDtype

    _require_columns(frame, ["gene_name", "entrez_id"], f"{prefix} calls")
    line_columns = [c for c in frame.columns if c.startswith(prefix)]
    names = [c.removeprefix(prefix) for c in line_columns]
    ccle = models["CCLEName"].dropna().astype(str)
    by_ccle = pd.Series(ccle.index, index=ccle.to_numpy())
    by_ccle = by_ccle[~by_ccle.index.duplicated(keep="first")]
    model_ids = by_ccle.reindex(names)
    dtype = CategoricalDtype(list(DEPENDENCY_CLASSES), ordered=True)
    values = frame[line_columns].to_numpy().ravel()  # one categorisation of all calls (per column: 10 s more)
    codes = pd.Categorical(values, dtype=dtype).codes.reshape(len(frame), len(line_columns)).astype(np.int8)
    unknown = sorted(set(pd.Series(values[codes.ravel() < 0]).dropna().unique()) - set(DEPENDENCY_CLASSES))
    if unknown:
        raise SchemaError(f"{prefix} calls hold unknown classes {unknown[:5]}; expected {DEPENDENCY_CLASSES}")
    obs = pd.DataFrame({"ccle_name": names, "model_id": model_ids.to_numpy()}, index=pd.Index(names))
    obs["mapped"] = obs["model_id"].notna()
    entrez = pd.Series(frame["entrez_id"]).astype(str).str.removesuffix(".0")
    symbols = pd.Series(frame["gene_name"]).astype(str)
    index = symbols.where(~symbols.duplicated(keep=False), symbols + " (" + entrez + ")")
    var = pd.DataFrame({"entrez_id": entrez.to_numpy()}, index=pd.Index(index.to_numpy(), dtype=str))
    adata = AnnData(X=codes.T.copy(), obs=obs, var=var)  # lines × genes; -1 = missing
    adata.uns["vcc"] = {
        "what": "dependency calls (lines × genes): X codes 0 weak_dependency, 1 dependency, 2 strong_dependency, -1 missing",
        "classes": list(DEPENDENCY_CLASSES),
        "organism": "human",
    }
    mapping = {"n_lines": len(names), "n_mapped": int(obs["mapped"].sum()), "rate": float(obs["mapped"].mean())}
    return adata, mapping


def dependency_frame(adata: AnnData) -> pd.DataFrame:
    """Dependency calls as a lines × genes DataFrame of ordered categoricals (NaN = missing)."""
    classes = adata.uns["vcc"]["classes"]
    columns = {
        gene: pd.Categorical.from_codes(adata.X[:, j].astype(int), categories=classes, ordered=True)
        for j, gene in enumerate(adata.var_names)
    }
    return pd.DataFrame(columns, index=adata.obs_names)


@loader(
    "depmap_dependency_calls",
    returns="tables",
    targets=lambda d: {g for key in ("crispr", "rnai") if key in d for g in d[key].var_names if " (" not in g},
)
def load_dependency_calls(
    files: Mapping[str, Path], manifest, *, screens: list[str] | tuple[str, ...] = ("crispr", "rnai")
) -> dict:
    """DepMap 22Q1 CRISPR and 19Q3 RNAi dependency calls, cell lines mapped to ModelIDs through Model.csv.

    Parameters
    ----------
    screens
        ``crispr`` and/or ``rnai`` (each file takes 10-30 s to read).

    Returns
    -------
    dict
        ``crispr`` AnnData 1,067 lines × 17,386 genes and ``rnai`` 712 × 17,023: X int8 codes of the ordered classes
        weak_dependency (0) < dependency (1) < strong_dependency (2), -1 missing (RNAi ~24 %); obs ``ccle_name``,
        ``model_id`` (ACH- id from depmap_24q2_model's Model.csv ``CCLEName``; NA when unmatched), ``mapped``;
        var indexed by symbol with ``entrez_id``. ``model_mapping``: a DataFrame, per screen, lines, mapped lines and
        the mapping rate. :func:`dependency_frame` turns a matrix into categoricals.
    """
    from vcclib.data.loaders._rda import read_rda

    unknown = sorted(set(screens) - set(CALL_FILES))
    if unknown:
        raise SchemaError(f"unknown screens {unknown}; screens: {list(CALL_FILES)}")
    from vcclib.data import load

    models = load("depmap_24q2_model")
    out: dict = {}
    rates = []
    for screen in screens:
        objects = read_rda(Path(files[CALL_FILES[screen]]))
        (frame,) = objects.values()
        out[screen], mapping = _calls_matrix(frame, f"depmap_{screen}_", models)
        rates.append({"screen": screen, **mapping})
    out["model_mapping"] = pd.DataFrame(rates)
    return out
