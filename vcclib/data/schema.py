"""The one AnnData schema every perturbation dataset is loaded into, and its checker.

See ``docs/schema.md`` for the written specification. In short:

obs
    ``perturbation`` (str): target gene symbols, ``+`` between the targets of a combination; control cells carry
    the dataset's control label. ``is_control`` (bool). ``guide`` (str, where known). ``cell_line`` and/or
    ``cell_type`` (str). ``dataset`` (str, the manifest id). ``perturbation_type`` (one of
    :data:`vcclib.data.manifest.PERTURBATION_TYPES`).
var
    indexed by unique gene symbol; ``ensembl_id`` where mapped.
X
    the values named by ``uns["vcc"]["x_scale"]``: ``log1p`` (log1p of library-size-normalised counts, target sum
    in ``uns["vcc"]["target_sum"]``), ``counts``, ``zscore`` or ``other``.
layers["counts"]
    raw UMI counts, where the source has them.
uns["vcc"]
    ``dataset``, ``control_label``, ``x_scale``, ``normalisation`` (one sentence), ``organism``.

Multi-guide (high-MOI) cells
    ``uns["vcc"]["moi"] == "high"`` marks a dataset whose cells carry several independent perturbations. Then
    ``perturbation`` is the ``+``-joined, sorted targets of every gRNA assigned to the cell (non-targeting gRNAs
    drop out when a targeting one is present; only non-targeting gRNAs: the control label; none: ``unassigned``),
    ``obs["n_perturbations"]`` counts the distinct targets, ``obsm["grna_counts"]`` (cells × gRNAs UMIs) and
    ``obsm["grna_assigned"]`` (cells × gRNAs bool) keep every gRNA, whose columns ``uns["grnas"]`` describes.
    Functions that need one perturbation per cell call :func:`require_single_perturbation`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from vcclib.data.manifest import PERTURBATION_TYPES
from vcclib.errors import VccError

REQUIRED_OBS = ("perturbation", "is_control", "dataset", "perturbation_type")
X_SCALES = ("log1p", "counts", "zscore", "other")
COMBINATION_SEPARATOR = "+"
UNASSIGNED = "unassigned"  # a high-MOI cell with no gRNA above the assignment threshold


class SchemaError(VccError, ValueError):
    """An AnnData does not follow the project's schema, or input data is unusable as given."""


def _values(matrix) -> np.ndarray:
    return matrix.data if sp.issparse(matrix) else np.asarray(matrix).ravel()


def check_finite_nonnegative(matrix, what: str, *, allow_negative: bool = False) -> None:
    """Raise :class:`SchemaError` when ``matrix`` holds NaN/Inf (or negative values unless allowed)."""
    values = _values(matrix)
    bad = ~np.isfinite(values)
    if bad.any():
        raise SchemaError(f"{what} holds {int(bad.sum())} non-finite values (NaN or Inf)")
    if not allow_negative and values.size and values.min() < 0:
        raise SchemaError(f"{what} holds {int((values < 0).sum())} negative values (min {values.min():g})")


def looks_like_counts(matrix, sample: int = 200_000) -> bool:
    """True when the (sampled) non-zero values are all non-negative integers."""
    values = _values(matrix)
    if values.size > sample:
        values = values[np.random.default_rng(0).choice(values.size, sample, replace=False)]
    return bool(values.size) and bool(np.all(values >= 0)) and bool(np.allclose(values, np.round(values)))


def validate(adata: AnnData) -> AnnData:
    """Check that ``adata`` follows the schema; return it unchanged.

    Raises
    ------
    SchemaError
        Listing every violation found.
    """
    problems = []
    for column in REQUIRED_OBS:
        if column not in adata.obs:
            problems.append(f"obs lacks {column!r}")
    if "cell_line" not in adata.obs and "cell_type" not in adata.obs:
        problems.append("obs needs 'cell_line' or 'cell_type'")
    meta = adata.uns.get("vcc", {})
    for key in ("dataset", "control_label", "x_scale", "normalisation", "organism"):
        if key not in meta:
            problems.append(f"uns['vcc'] lacks {key!r}")
    if meta.get("x_scale") not in X_SCALES:
        problems.append(f"uns['vcc']['x_scale'] is {meta.get('x_scale')!r}, not one of {X_SCALES}")
    if not adata.var_names.is_unique:
        dupes = adata.var_names[adata.var_names.duplicated()].unique()[:5].tolist()
        problems.append(f"var_names are not unique (e.g. {dupes})")
    if not adata.obs_names.is_unique:
        problems.append("obs_names are not unique")
    if meta.get("moi") == "high":
        for key in ("n_perturbations",):
            if key not in adata.obs:
                problems.append(f"a high-MOI dataset needs obs[{key!r}]")
        for key in ("grna_counts", "grna_assigned"):
            if key not in adata.obsm:
                problems.append(f"a high-MOI dataset needs obsm[{key!r}]")
        if "grnas" not in adata.uns:
            problems.append("a high-MOI dataset needs uns['grnas'] (the gRNA columns of obsm)")
    if not problems:
        control = meta["control_label"]
        is_control = adata.obs["is_control"].astype(bool).to_numpy()
        labelled = (adata.obs["perturbation"].astype(str) == control).to_numpy()
        if not np.array_equal(is_control, labelled):
            problems.append("is_control disagrees with perturbation == control_label")
        unknown = set(adata.obs["perturbation_type"].astype(str)) - set(PERTURBATION_TYPES)
        if unknown:
            problems.append(f"unknown perturbation_type values {sorted(unknown)}")
    if problems:
        raise SchemaError("AnnData does not follow the vcclib schema: " + "; ".join(problems))
    return adata


def is_multi_guide(adata: AnnData) -> bool:
    """True for a high-MOI dataset: cells carry several independent perturbations (``uns['vcc']['moi']``)."""
    return adata.uns.get("vcc", {}).get("moi") == "high"


def n_perturbations(adata: AnnData) -> np.ndarray:
    """Distinct perturbations per cell: ``obs['n_perturbations']`` for high-MOI data, else 1 (0 for controls).

    A designed combination (``KLF1+MAP2K6`` in Norman 2019) counts as one perturbation: every cell with that label
    received exactly that combination, so it is one condition of the experiment.
    """
    if is_multi_guide(adata):
        return adata.obs["n_perturbations"].to_numpy(dtype=int)
    return (~adata.obs["is_control"].to_numpy(dtype=bool)).astype(int)


def require_single_perturbation(adata: AnnData, what: str) -> AnnData:
    """Refuse multi-guide cells for a function that takes one perturbation per cell; return ``adata`` unchanged.

    Parameters
    ----------
    what
        The refusing function, named in the message (e.g. ``"splits.make_split"``).

    Raises
    ------
    SchemaError
        One line: how many cells carry several perturbations, and what to do instead.
    """
    if not is_multi_guide(adata):
        return adata
    counts = n_perturbations(adata)
    several = int((counts > 1).sum())
    if several:
        dataset = adata.uns.get("vcc", {}).get("dataset", "this dataset")
        raise SchemaError(
            f"{what} takes one perturbation per cell, but {several:,} of {adata.n_obs:,} cells of {dataset} carry "
            "several (high-MOI); subset to adata[adata.obs['n_perturbations'] <= 1] or test each gRNA against the "
            "rest with obsm['grna_assigned']"
        )
    return adata


def target_indicator(adata: AnnData) -> pd.DataFrame:
    """Cells × targets boolean table of a high-MOI dataset: True where any gRNA of that target was assigned.

    The gRNAs of one target are pooled with OR, as sceptre pools a gRNA group.
    """
    if not is_multi_guide(adata):
        raise SchemaError("target_indicator needs a high-MOI dataset (uns['vcc']['moi'] == 'high')")
    grnas = adata.uns["grnas"]
    assigned = sp.csc_matrix(adata.obsm["grna_assigned"])
    targets = pd.Index(pd.unique(grnas["target"].astype(str)))
    columns = {}
    for target in targets:
        idx = np.flatnonzero(grnas["target"].astype(str).to_numpy() == target)
        columns[target] = np.asarray(assigned[:, idx].sum(axis=1)).ravel() > 0
    return pd.DataFrame(columns, index=adata.obs_names)


def split_targets(perturbation: str) -> list[str]:
    """Target symbols of a perturbation label (``"KLF1+MAP2K6"`` → ``["KLF1", "MAP2K6"]``)."""
    return [t for t in str(perturbation).split(COMBINATION_SEPARATOR) if t]


def finalize(
    adata: AnnData,
    *,
    dataset: str,
    control_label: str,
    x_scale: str,
    normalisation: str,
    organism: str,
    perturbation_type: str | pd.Series,
    moi: str | None = None,
) -> AnnData:
    """Fill the schema's bookkeeping columns and ``uns['vcc']``, make names unique, then :func:`validate`."""
    obs = adata.obs
    obs["perturbation"] = obs["perturbation"].astype(str)
    obs["is_control"] = (obs["perturbation"] == control_label).to_numpy()
    obs["dataset"] = dataset
    obs["perturbation_type"] = perturbation_type
    for column in ("perturbation", "dataset", "perturbation_type", "cell_line", "cell_type", "guide"):
        if column in obs:
            obs[column] = obs[column].astype(str).astype("category")
    adata.uns["vcc"] = {
        "dataset": dataset,
        "control_label": control_label,
        "x_scale": x_scale,
        "normalisation": normalisation,
        "organism": organism,
    }
    if moi is not None:
        adata.uns["vcc"]["moi"] = moi
    return validate(adata)


def log1p_normalise(adata: AnnData, target_sum: float = 1e4) -> AnnData:
    """Keep raw counts in ``layers['counts']`` and set X to log1p(counts / library size × target_sum)."""
    import scanpy as sc

    counts = adata.X.copy()
    adata.layers["counts"] = counts
    sc.pp.normalize_total(adata, target_sum=target_sum)
    sc.pp.log1p(adata)
    adata.uns.pop("log1p", None)
    return adata
