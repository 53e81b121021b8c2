"""Evaluation of on-disk AnnData (``.h5ad``) in chunks of cells: bounded memory, the in-memory numbers.

X is never loaded whole. One pass over CSR row blocks (read with h5py: a slice of ``indptr``, then the matching
slices of ``indices`` and ``data``) checks the values, accumulates every group's pseudobulk and keeps the control
cells; the DE then runs on batches of perturbations (each batch's cells plus the control cells, at most about
``chunk_cells`` cells at a time), one more pass over the file per batch. Each perturbation's Mann–Whitney test
only reads its own cells and the control cells, so a batch gives exactly the rows the whole-file DE gives;
the pseudobulk kernel adds each block into running sums in row order, so the sums are bit-identical to
:func:`vcclib.metrics.pseudobulk.sparse_group_means` on the loaded matrix.

With ``scheduler`` (``"local"`` for a :class:`dask.distributed.LocalCluster`, or a scheduler address such as
``"tcp://10.0.0.5:8786"``) the blocks and the DE batches run as dask tasks; workers read the file themselves
(it must be at the same path on every worker). Partial sums are then added block by block, so pseudobulks agree
with the in-memory ones to float rounding (≈1e-12 relative; float32 native means ≈1e-6) rather than bit for bit.

Metrics that read every cell (energy distances, clustering) and the raw-count ``vcc2026`` profile are not
computed this way; asking for them is refused with a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from vcclib.metrics import inputs
from vcclib.metrics.h5ad import AnnDataLike, read_head
from vcclib.metrics.pseudobulk import GroupedCells, group_codes, group_order

#: cells per block read from disk, and the default size of a DE batch
BLOCK_CELLS = 20_000
CHUNK_CELLS = 200_000
SUPPORTED_NEEDS = ("bulk", "de")


class CellsNotLoaded:
    """Stands in for X of chunked evaluation: any metric that reads the cells is refused with a message."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype

    def _refuse(self, *_, **__):
        raise inputs.InputError(
            "this metric reads every cell, which chunked (on-disk) evaluation does not load; "
            "evaluate in memory or choose pseudobulk/DE metrics"
        )

    __getitem__ = __array__ = sum = astype = _refuse


@dataclass
class OnDiskCells(AnnDataLike):
    """An ``.h5ad`` file opened for chunked reading: obs, var, uns in memory, X read in row blocks."""

    path: Path
    obs: pd.DataFrame
    var: pd.DataFrame
    uns: dict
    shape: tuple
    dtype: np.dtype
    sparse: bool

    @classmethod
    def open(cls, path) -> OnDiskCells:
        import h5py

        path = Path(path)
        if not path.is_file() or path.suffix != ".h5ad":
            raise inputs.InputError(f"chunked evaluation reads .h5ad files: {path} is not one")
        with h5py.File(path, "r") as f:
            X = f["X"]
            kind = X.attrs.get("encoding-type", "array")
            if isinstance(X, h5py.Group) and kind != "csr_matrix":
                raise inputs.InputError(f"{path}: X is stored as {kind!r}; chunked evaluation reads CSR or dense X")
            sparse = isinstance(X, h5py.Group)
            shape = tuple(int(n) for n in (X.attrs["shape"] if sparse else X.shape))
            dtype = np.dtype((X["data"] if sparse else X).dtype)
            obs, var, uns = read_head(f)
        return cls(path, obs, var, uns, shape, dtype, sparse)

    def blocks(self, block_cells: int = BLOCK_CELLS, start: int = 0, stop: int | None = None):
        """Yield ``(first row, CSR block)`` over rows ``start:stop`` in order."""
        yield from iter_blocks(self.path, self.shape, block_cells, start, stop)


def read_rows(path, shape, start: int, stop: int) -> sp.csr_matrix:
    """Rows ``start:stop`` of X of an h5ad file as CSR (float types kept; others become float64)."""
    import h5py

    with h5py.File(path, "r") as f:
        X = f["X"]
        if isinstance(X, h5py.Dataset):
            block = sp.csr_matrix(X[start:stop])
        else:
            ptr = X["indptr"][start : stop + 1].astype(np.int64)
            lo, hi = int(ptr[0]), int(ptr[-1])
            block = sp.csr_matrix((X["data"][lo:hi], X["indices"][lo:hi], ptr - lo), shape=(stop - start, shape[1]))
    if block.dtype not in (np.float32, np.float64):
        block = block.astype(np.float32 if block.dtype == np.float16 else np.float64)
    if not block.has_canonical_format:
        block.sum_duplicates()
    return block


def iter_blocks(path, shape, block_cells: int, start: int = 0, stop: int | None = None):
    """Yield ``(first row, CSR block)`` of rows ``start:stop`` of an h5ad file's X, ``block_cells`` at a time."""
    stop = shape[0] if stop is None else stop
    for lo in range(start, stop, block_cells):
        hi = min(lo + block_cells, stop)
        yield lo, read_rows(path, shape, lo, hi)


def _block_sums(path, shape, lo, hi, codes, n_groups, weight, scale, what):
    """Pseudobulk contribution (float64, native dtype) of rows lo:hi (a dask task)."""
    from vcclib.metrics._mwu_kernel import group_sums_csr_into

    block = read_rows(path, shape, lo, hi)
    mean64 = np.zeros((n_groups, shape[1]))
    native = np.zeros((n_groups, shape[1]), dtype=block.dtype)
    order, starts = group_order(codes[lo:hi], n_groups)
    group_sums_csr_into(
        block.indptr, block.indices, block.data, order, starts, weight, scale.astype(block.dtype), mean64, native
    )
    inputs.check_values(block, f"{what} X")
    return mean64, native


def _scan(cells: OnDiskCells, labels, control, what, block_cells, client):
    """One pass: value checks, every group's pseudobulk, the control rows. Returns (GroupedCells, control CSR)."""
    from vcclib.metrics._mwu_kernel import group_sums_csr_into

    names, codes = group_codes(labels)
    n_groups, n_genes = names.size, cells.shape[1]
    sizes = np.bincount(codes, minlength=n_groups)
    weight = 1.0 / np.maximum(sizes, 1)
    ctrl = int(np.flatnonzero(names == control)[0])
    dtype = np.float32 if cells.dtype in (np.float16, np.float32) else np.float64
    scale = (1.0 / np.maximum(sizes, 1)).astype(dtype)
    mean64 = np.zeros((n_groups, n_genes))
    native = np.zeros((n_groups, n_genes), dtype=dtype)
    ctrl_rows = []
    bounds = [(lo, min(lo + block_cells, cells.n_obs)) for lo in range(0, cells.n_obs, block_cells)]
    if client is None:
        for lo, hi in bounds:
            block = read_rows(cells.path, cells.shape, lo, hi)
            inputs.check_values(block, f"{what} X")
            order, starts = group_order(codes[lo:hi], n_groups)
            group_sums_csr_into(block.indptr, block.indices, block.data, order, starts, weight, scale, mean64, native)
            ctrl_rows.append(block[np.flatnonzero(codes[lo:hi] == ctrl)])
    else:
        shared = client.scatter([codes, weight, scale], broadcast=True)  # sent to each worker once
        futures = [
            client.submit(
                _block_sums,
                cells.path,
                cells.shape,
                lo,
                hi,
                shared[0],
                n_groups,
                shared[1],
                shared[2],
                what,
                pure=False,
            )
            for lo, hi in bounds
        ]
        for future in futures:
            m, n = future.result()
            mean64 += m
            native += n
            del m, n
        rows = np.flatnonzero(codes == ctrl)
        ctrl_rows = [
            read_rows(cells.path, cells.shape, lo, hi)[rows[(rows >= lo) & (rows < hi)] - lo] for lo, hi in bounds
        ]
    grouped = GroupedCells(
        X=CellsNotLoaded(cells.shape, dtype), names=names, codes=codes, control=control, _means=mean64, _native=native
    )
    return grouped, sp.vstack(ctrl_rows).tocsr() if ctrl_rows else sp.csr_matrix((0, n_genes), dtype=dtype)


def _batches(grouped: GroupedCells, chunk_cells: int) -> list[list[str]]:
    """Perturbations (sorted) in consecutive batches of at most ``chunk_cells`` cells (one at least)."""
    batches, current, total = [], [], 0
    sizes = dict(zip(grouped.names, grouped.sizes))
    for name in grouped.names:
        if name == grouped.control:
            continue
        if current and total + sizes[name] > chunk_cells:
            batches.append(current)
            current, total = [], 0
        current.append(name)
        total += sizes[name]
    if current:
        batches.append(current)
    return batches


def _batch_de(path, shape, labels, batch, control, ctrl_X, genes, convention, block_cells):
    """DE of the perturbations in ``batch`` against the control cells (a dask task or a local call)."""
    from vcclib.metrics.de import de_arrays

    wanted = np.isin(labels, batch)
    parts = [ctrl_X]
    for lo, block in iter_blocks(path, shape, block_cells):
        keep = np.flatnonzero(wanted[lo : lo + block.shape[0]])
        if keep.size:
            parts.append(block[keep])
    X = sp.vstack([p.astype(ctrl_X.dtype) for p in parts]).tocsr()
    batch_labels = np.concatenate([np.full(ctrl_X.shape[0], control, dtype=object), labels[wanted]])
    return de_arrays(GroupedCells.from_labels(X, batch_labels, control), genes, convention)


def _concat_de(parts, convention):
    from vcclib.metrics.de import DEArrays, benjamini_hochberg

    first = parts[0]
    fields = {}
    for name, value in first.__dict__.items():
        if isinstance(value, np.ndarray) and (value.ndim == 2 or name in ("targets", "target_membership")):
            fields[name] = np.concatenate([getattr(p, name) for p in parts])
        else:
            fields[name] = value
    de = DEArrays(**fields)
    if convention == "vcc2025" and de.p_value.size:  # BH across every row, not per batch
        de.fdr = benjamini_hochberg(de.p_value.ravel()).reshape(de.p_value.shape)
    return de


def de_chunked(cells: OnDiskCells, grouped, ctrl_X, labels, genes, convention, chunk_cells, block_cells, client):
    """DE of every perturbation of ``grouped`` against ``ctrl_X``, in batches of about ``chunk_cells`` cells."""
    batches = _batches(grouped, chunk_cells)
    args = [
        (cells.path, cells.shape, labels, batch, grouped.control, ctrl_X, genes, convention, block_cells)
        for batch in batches
    ]
    if client is None:
        parts = [_batch_de(*a) for a in args]
    else:
        scattered = client.scatter([ctrl_X, labels], broadcast=True)
        futures = [
            client.submit(_batch_de, a[0], a[1], scattered[1], a[3], a[4], scattered[0], *a[6:], pure=False)
            for a in args
        ]
        parts = client.gather(futures)
    return _concat_de(parts, convention)


def dask_client(scheduler: str | None):
    """A dask.distributed Client: a LocalCluster for ``"local"``, else connected to the scheduler address."""
    from vcclib.optional import require

    distributed = require("dask.distributed", extra="grn", purpose="chunked evaluation with dask")
    if scheduler in (None, "", "local"):
        cluster = distributed.LocalCluster(processes=False, dashboard_address=None)
        return distributed.Client(cluster)
    try:
        return distributed.Client(scheduler, timeout="10s")
    except OSError as error:
        raise inputs.InputError(f"cannot reach the dask scheduler at {scheduler}: {error}") from None


def evaluate_on_disk(
    pred_path,
    real_path,
    *,
    perturbation_column="perturbation",
    control_label=None,
    profile="vcc",
    metrics=None,
    de_convention="cell-eval",
    use_real_controls=False,
    chunk_cells: int = CHUNK_CELLS,
    block_cells: int = BLOCK_CELLS,
    scheduler: str | None = None,
    outdir=None,
    de_format="parquet",
):
    """:func:`vcclib.metrics.evaluate` on two ``.h5ad`` files read in chunks (see the module docstring).

    Parameters
    ----------
    chunk_cells
        Most cells (plus the control cells) held at once for the DE.
    block_cells
        Rows read from disk at a time.
    scheduler
        ``None``: in this process. ``"local"``: a dask LocalCluster. Otherwise a dask scheduler address.
    """
    import warnings

    from vcclib.metrics.context import EvalContext
    from vcclib.metrics.evaluate import EvaluationResult, aggregate, compute_metrics
    from vcclib.metrics.profiles import resolve
    from vcclib.metrics.registry import REGISTRY

    names = resolve(profile, metrics)
    unsupported = [n for n in names if REGISTRY[n].needs.value not in SUPPORTED_NEEDS]
    if unsupported:
        raise inputs.InputError(
            f"chunked evaluation computes pseudobulk and DE metrics; these read every cell or "
            f"raw counts: {', '.join(unsupported[:8])}"
        )
    if use_real_controls:
        raise inputs.InputError("--use-real-controls is not available in chunked evaluation")
    pred, real = OnDiskCells.open(pred_path), OnDiskCells.open(real_path)
    control = inputs.resolve_control(real, control_label)
    for what, cells in (("prediction", pred), ("real data", real)):
        if perturbation_column not in cells.obs:
            raise inputs.InputError(f"{what} obs lacks the perturbation column {perturbation_column!r}")
        if control not in set(cells.obs[perturbation_column].astype(str)):
            raise inputs.InputError(f"control label {control!r} is missing from {what} obs[{perturbation_column!r}]")
        inputs.check_names(cells.var_names, f"{what} var_names (genes)")
        inputs.check_names(cells.obs_names, f"{what} obs_names (cells)")
    inputs.check_genes(pred.var_names, real.var_names)
    sample = min(BLOCK_CELLS, pred.n_obs, real.n_obs)
    inputs.check_scales(read_rows(pred.path, pred.shape, 0, sample), read_rows(real.path, real.shape, 0, sample))
    pred_labels = pred.obs[perturbation_column].astype(str).to_numpy()
    real_labels = real.obs[perturbation_column].astype(str).to_numpy()
    extra = sorted(set(pred_labels) - set(real_labels))
    if extra:
        raise inputs.InputError(
            f"{len(extra)} perturbations of the prediction are not in the real data (e.g. {extra[:5]})"
        )
    notes = []
    missing = sorted(set(real_labels) - set(pred_labels))
    if missing:
        warnings.warn(
            f"{len(missing)} real perturbations have no prediction and are left out (e.g. {missing[:5]})",
            UserWarning,
            stacklevel=2,
        )
    keep = np.isin(real_labels, np.unique(pred_labels))
    real_kept = np.where(keep, real_labels, "")  # cells of unpredicted perturbations: one ignored group
    client = dask_client(scheduler) if scheduler is not None else None
    try:
        pred_cells, pred_ctrl = _scan(pred, pred_labels, control, "prediction", block_cells, client)
        real_all, real_ctrl = _scan(real, real_kept, control, "real data", block_cells, client)
        real_cells = _drop_group(real_all, "") if not keep.all() else real_all
        differ = pred_cells.sizes[pred_cells.control_index] != real_cells.sizes[real_cells.control_index] or not (
            np.allclose(pred_cells.mean_of([control]), real_cells.mean_of([control]), atol=1e-6, rtol=0)
        )
        affected = [
            n
            for n in names
            if REGISTRY[n].needs == "de" or "own control" in REGISTRY[n].conventions.get("reference", "")
        ]
        if differ and affected:
            msg = (
                "the prediction's control cells differ from the real control cells; the predicted Δ and DE of "
                f"these metrics use them: {', '.join(affected)}"
            )
            warnings.warn(msg, inputs.ControlMismatchWarning, stacklevel=2)
            notes.append(msg)
        from vcclib.metrics.attacks import SuspiciousSubmissionWarning, screen

        for flag in screen(pred_cells, real_cells, scale="log1p"):
            warnings.warn(flag, SuspiciousSubmissionWarning, stacklevel=2)
            notes.append(flag)
        genes = np.asarray(real.var_names).astype(str)
        ctx = EvalContext(pred_cells, real_cells, genes, de_convention=de_convention)
        uses_de = any(REGISTRY[n].needs == "de" for n in names)
        if uses_de:
            from vcclib.metrics.context import _subset_de

            ctx.__dict__["de_real"] = _subset_de(
                de_chunked(
                    real, real_cells, real_ctrl, real_labels, genes, de_convention, chunk_cells, block_cells, client
                ),
                ctx.perts,
            )
            ctx.__dict__["de_pred"] = _subset_de(
                de_chunked(
                    pred, pred_cells, pred_ctrl, pred_labels, genes, de_convention, chunk_cells, block_cells, client
                ),
                ctx.perts,
            )
    finally:
        if client is not None:
            cluster = client.cluster
            client.close()
            if cluster is not None:
                cluster.close()
    frame, values = compute_metrics(ctx, names)
    result = EvaluationResult(
        results=frame,
        agg=aggregate(values, ctx.n_perts),
        profile=profile if metrics is None else "custom",
        de_real=ctx.de_real if uses_de else None,
        de_pred=ctx.de_pred if uses_de else None,
        warnings=notes,
    )
    if outdir is not None:
        result.write(outdir, de_format=de_format)
    return result


def _drop_group(grouped: GroupedCells, name: str) -> GroupedCells:
    """``grouped`` without group ``name`` (pseudobulks kept; codes of its cells become -1, never read)."""
    index = int(np.flatnonzero(grouped.names == name)[0])
    keep = np.arange(grouped.names.size) != index
    remap = np.cumsum(keep) - 1
    codes = remap[grouped.codes[grouped.codes != index]]  # X is not loaded: codes only give the group sizes
    return GroupedCells(
        X=grouped.X,
        names=grouped.names[keep],
        codes=codes,
        control=grouped.control,
        _means=grouped._means[keep],
        _native=grouped._native[keep],
    )
