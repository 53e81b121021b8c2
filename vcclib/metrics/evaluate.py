"""``evaluate``: score a prediction against real data on a profile of metrics, cell-eval's output format."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vcclib.metrics import inputs
from vcclib.metrics.context import EvalContext
from vcclib.metrics.pseudobulk import GroupedCells, stack_rows
from vcclib.metrics.registry import REGISTRY

DE_FORMATS = ("parquet", "csv")
AGG_STATS = ("count", "null_count", "mean", "std", "min", "25%", "50%", "75%", "max")
#: metrics whose value depends on the prediction's own control cells
CONTROL_DEPENDENT_FAMILIES = ("de",)


class _LazyFrame:
    """Dataclass field holding a DataFrame, or a DE result that is turned into one on first access.

    The long DE tables (perturbations × genes rows) are only built when read or written, so ``evaluate`` does
    not pay for them when they are not used; assigning a DataFrame (or ``None``) works as for a plain field.
    """

    def __set_name__(self, owner, name):
        self.name = "_" + name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return None  # the field's default
        value = obj.__dict__.get(self.name)
        if value is not None and not isinstance(value, pd.DataFrame) and hasattr(value, "to_frame"):
            value = value.to_frame()
            obj.__dict__[self.name] = value
        return value

    def __set__(self, obj, value):
        obj.__dict__[self.name] = value


@dataclass
class EvaluationResult:
    """Per-perturbation metrics (``results``), their aggregate (``agg``), and baseline scores (``scores``)."""

    results: pd.DataFrame
    agg: pd.DataFrame
    scores: dict = field(default_factory=dict)
    profile: str | None = None
    de_real: pd.DataFrame | None = _LazyFrame()
    de_pred: pd.DataFrame | None = _LazyFrame()
    baseline_agg: pd.DataFrame | None = None
    warnings: list = field(default_factory=list)

    def summary(self) -> str:
        """A few lines: sizes, the mean of each metric, and the scores."""
        lines = [f"{len(self.results)} perturbations, {self.results.shape[1] - 1} metrics (profile {self.profile})"]
        agg = self.agg.select_dtypes("number").assign(statistic=self.agg["statistic"])
        means = agg.groupby("statistic").mean().loc["mean"]
        width = max((len(c) for c in means.index), default=0)
        lines += [f"  {name:<{width}}  {value: .6g}" for name, value in means.items()]
        if self.scores:
            for key, label in (("vcc2025", "VCC 2025 score vs baseline"), ("vcc2026", "VCC 2026 score (u−b)/(r−b)")):
                if self.scores.get(key):
                    lines.append(f"{label}: {self.scores[key].get('avg_score', float('nan')):.4f}")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def _de(self, attribute: str):
        """The DE result itself (``de_real``/``de_pred``), before :class:`_LazyFrame` makes it a DataFrame."""
        return self.__dict__.get("_" + attribute)

    def _write_de(self, out: Path, name: str, attribute: str, de_format: str) -> None:
        """Write one DE table as ``out/name.parquet`` (or ``.csv``)."""
        raw = self._de(attribute)
        if de_format != "parquet":
            getattr(self, attribute).to_csv(out / f"{name}.csv", index=False)
            return
        # dictionary-encode the label columns only: trying it on float columns of unique values costs most of
        # the write and saves nothing
        if isinstance(raw, pd.DataFrame) or not hasattr(raw, "to_arrow"):
            table = getattr(self, attribute)
            labels = [c for c in ("target", "feature") if c in table.columns]
            table.to_parquet(out / f"{name}.parquet", index=False, use_dictionary=labels)
        else:  # straight from the arrays: no DataFrame, no Python string per row
            import pyarrow.parquet as pq

            table = raw.to_arrow()
            labels = [c for c in ("target", "feature") if c in table.column_names]
            pq.write_table(table, out / f"{name}.parquet", use_dictionary=labels)

    def write(self, outdir, de_format: str = "parquet") -> Path:
        """Write results.csv, agg_results.csv, the DE tables (real_de/pred_de, parquet or csv) and scores."""
        if de_format not in DE_FORMATS:
            raise inputs.InputError(f"DE table format {de_format!r}: use one of {', '.join(DE_FORMATS)}")
        out = Path(outdir)
        out.mkdir(parents=True, exist_ok=True)
        self.results.to_csv(out / "results.csv", index=False)
        self.agg.to_csv(out / "agg_results.csv", index=False)
        pairs = (("real_de", "de_real"), ("pred_de", "de_pred"))
        tables = [(name, attr) for name, attr in pairs if self._de(attr) is not None]
        if de_format == "parquet" and len(tables) > 1:
            # pyarrow encodes and writes without the GIL: the two tables are written at the same time
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=len(tables)) as pool:
                for job in [pool.submit(self._write_de, out, name, attr, de_format) for name, attr in tables]:
                    job.result()
        else:
            for name, attr in tables:
                self._write_de(out, name, attr, de_format)
        for key, column in (("vcc2025", "from_baseline"), ("vcc2026", "score")):
            values = self.scores.get(key)
            if values:
                name = "score.csv" if key == "vcc2025" else "score_vcc2026.csv"
                pd.DataFrame({"metric": list(values), column: list(values.values())}).to_csv(out / name, index=False)
        if self.scores:
            if self.baseline_agg is not None:
                self.baseline_agg.to_csv(out / "baseline_agg_results.csv", index=False)
        return out


def aggregate(values: dict[str, pd.Series], n_perts: int) -> pd.DataFrame:
    """polars ``describe()`` of the results as cell-eval writes it: missing values are nulls (left out), NaN
    propagates to mean/std, min/max ignore NaN, quantiles use the nearest rank."""
    table = {"statistic": list(AGG_STATS)}
    for name, series in values.items():
        v = series.to_numpy(dtype=np.float64)
        count = v.size
        finite = v[~np.isnan(v)]
        srt = np.sort(v)  # NaN last

        def q(p, srt=srt, count=count):
            return float(srt[int(np.floor(p * (count - 1) + 0.5))]) if count else np.nan

        table[name] = [
            float(count),
            float(n_perts - count),
            float(v.mean()) if count else np.nan,
            float(v.std(ddof=1)) if count > 1 else np.nan,
            float(finite.min()) if finite.size else np.nan,
            q(0.25),
            q(0.5),
            q(0.75),
            float(finite.max()) if finite.size else np.nan,
        ]
    return pd.DataFrame(table)


def read_adata(path, backed: bool = False):
    """An AnnData from ``.h5ad`` or ``.zarr`` (``backed``: h5ad opened read-only on disk)."""
    path = Path(path)
    if not path.exists():
        raise inputs.InputError(f"no such file: {path}")
    import anndata as ad

    if path.suffix == ".zarr" or path.is_dir():
        return ad.read_zarr(path)
    return ad.read_h5ad(path, backed="r" if backed else None)


def read_cells(path, ahead=None):
    """What evaluation reads of a file, with h5py alone when it can (see :mod:`vcclib.metrics.h5ad`), else
    with anndata (zarr, encodings the light reader does not know).

    ``ahead``: a future of the file's X from :func:`vcclib.h5read.read_ahead` (its ``None`` result: read here).
    """
    from vcclib.metrics.h5ad import UnsupportedEncoding
    from vcclib.metrics.h5ad import read_cells as read_h5ad_cells

    path = Path(path)
    if path.suffix == ".h5ad" and path.is_file():
        try:
            return read_h5ad_cells(path, ahead.result() if ahead is not None else None)
        except (UnsupportedEncoding, KeyError):
            pass
    return read_adata(path)


def _load(adata):
    return read_cells(adata) if isinstance(adata, str | Path) else adata


def evaluate_by_group(pred, real, group_column: str, *, outdir=None, de_format: str = "parquet", **kwargs):
    """:func:`evaluate` for each value of ``group_column`` (cell type, cell line), each with its own control
    cells; results and aggregates stacked with a ``group_column`` column first (cell-eval ``--celltype-col``)."""
    pred, real = _load(pred), _load(real)
    for what, adata in (("prediction", pred), ("real data", real)):
        if group_column not in adata.obs:
            raise inputs.InputError(f"{what} obs lacks the column {group_column!r} given as --celltype-col")
    values = sorted(set(real.obs[group_column].astype(str)))
    results, aggs, notes = [], [], []
    for value in values:
        sub_pred = pred[(pred.obs[group_column].astype(str) == value).to_numpy()]
        sub_real = real[(real.obs[group_column].astype(str) == value).to_numpy()]
        if sub_pred.n_obs == 0:
            notes.append(f"{group_column}={value}: no predicted cells; left out")
            continue
        res = evaluate(sub_pred, sub_real, **kwargs)
        results.append(res.results.assign(**{group_column: value}))
        aggs.append(res.agg.assign(**{group_column: value}))
        notes += [f"{group_column}={value}: {w}" for w in res.warnings]
    if not results:
        raise inputs.InputError(f"no value of {group_column!r} has predicted cells")
    order = lambda f: f[[group_column] + [c for c in f.columns if c != group_column]]  # noqa: E731
    result = EvaluationResult(
        results=order(pd.concat(results, ignore_index=True)),
        agg=order(pd.concat(aggs, ignore_index=True)),
        profile=kwargs.get("profile"),
        warnings=notes,
    )
    if outdir is not None:
        result.write(outdir, de_format=de_format)
    return result


def compute_metrics(ctx: EvalContext, names: list[str]) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """Run ``names`` on ``ctx``; returns (results frame, metric → Series of the values present)."""
    values: dict[str, pd.Series] = {}
    for name in names:
        out = REGISTRY[name].compute(ctx)
        if isinstance(out, pd.Series):
            values[name] = out.astype(np.float64)
        else:
            values[name] = pd.Series(np.full(ctx.n_perts, float(out)), index=ctx.perts)
    frame = pd.DataFrame({"perturbation": ctx.perts})
    for name, series in values.items():
        frame[name] = series.reindex(ctx.perts).to_numpy()
    return frame, values


def _grouped(adata, column, control, keep=None) -> GroupedCells:
    labels = adata.obs[column].astype(str).to_numpy()
    if keep is not None:
        mask = np.isin(labels, keep)
        if not mask.all():
            return GroupedCells.from_labels(adata.X[np.flatnonzero(mask)], labels[mask], control)
    return GroupedCells.from_labels(adata.X, labels, control)


def with_real_controls(pred: GroupedCells, real: GroupedCells) -> GroupedCells:
    """``pred`` with its control cells replaced by the real control cells."""
    import scipy.sparse as sp

    keep = np.flatnonzero(pred.codes != pred.control_index)
    labels = np.concatenate([pred.names[pred.codes[keep]], np.full(real.rows(real.control).size, real.control)])
    control_rows = np.sort(real.rows(real.control))
    if sp.issparse(pred.X) or sp.issparse(real.X):
        X = stack_rows([(pred.X, keep), (real.X, control_rows)])
    else:
        a, b = pred.X[keep], real.X[control_rows]
        X = np.vstack([a, np.asarray(b, dtype=a.dtype)])
    return GroupedCells.from_labels(X, labels, real.control)


def evaluate(
    pred,
    real,
    *,
    perturbation_column: str = "perturbation",
    control_label: str | None = None,
    profile: str = "vcc",
    de_convention: str = "cell-eval",
    baseline=None,
    use_real_controls: bool = False,
    outdir=None,
    metrics=None,
    score: bool = False,
    de_format: str = "parquet",
    on_disk: bool = False,
    chunk_cells: int | None = None,
    scheduler: str | None = None,
) -> EvaluationResult:
    """Score a prediction against the real data.

    Parameters
    ----------
    pred, real
        AnnData (or .h5ad paths) with log1p X, dense or scipy sparse, the same genes in the same order.
    perturbation_column
        obs column with perturbation labels (in both files).
    control_label
        Control label; defaults to ``real.uns['vcc']['control_label']``.
    profile
        Named metric set (see :data:`vcclib.metrics.PROFILES`); ignored when ``metrics`` is given.
    de_convention
        ``"cell-eval"`` (BH per perturbation) or ``"vcc2025"`` (BH across all rows, clipped fold change).
    baseline
        A baseline prediction (AnnData/path) scored the same way; fills ``scores['vcc2025']``.
    use_real_controls
        Replace the prediction's control cells by the real ones (Δ and DE of the prediction then use real
        controls). Otherwise a prediction whose control cells differ from the real ones gets a warning.
    outdir
        When given, results.csv, agg_results.csv, real_de.csv, pred_de.csv (and score.csv) are written there.
    metrics
        Explicit metric names instead of a profile.
    score
        ``vcc2026`` only: also score the generic-response baseline and the replicate anchor and fill
        ``scores['vcc2026']`` with s = (u − b)/(r − b) (six more evaluations of the reference).
    de_format
        Format of the DE tables written to ``outdir``: ``"parquet"`` (default) or ``"csv"``.
    on_disk
        ``pred`` and ``real`` are ``.h5ad`` paths read in chunks of cells, never loaded whole (bounded memory,
        the same numbers; pseudobulk and DE metrics only): see :mod:`vcclib.metrics.chunked`.
    chunk_cells
        ``on_disk``: most perturbation cells held at once for the DE (default 200,000).
    scheduler
        ``on_disk``: run the chunks as dask tasks, ``"local"`` (a LocalCluster) or a scheduler address.

    Returns
    -------
    EvaluationResult

    Raises
    ------
    InputError
        On bad input (see :mod:`vcclib.metrics.inputs`).
    """
    from vcclib.metrics.profiles import resolve
    from vcclib.metrics.scoring import vcc2025_score

    pert_col = perturbation_column
    if on_disk or scheduler is not None:
        from vcclib.metrics.chunked import CHUNK_CELLS, evaluate_on_disk

        if not all(isinstance(a, str | Path) for a in (pred, real)) or baseline is not None or score:
            raise inputs.InputError("on-disk evaluation takes two .h5ad paths, without a baseline or --score")
        return evaluate_on_disk(
            pred,
            real,
            perturbation_column=pert_col,
            control_label=control_label,
            profile=profile,
            metrics=metrics,
            de_convention=de_convention,
            use_real_controls=use_real_controls,
            chunk_cells=chunk_cells or CHUNK_CELLS,
            scheduler=scheduler,
            outdir=outdir,
            de_format=de_format,
        )
    pred, real = _load(pred), _load(real)
    for what, adata in (("vcc eval (real data)", real), ("vcc eval (prediction)", pred)):
        # high-MOI cells carry several perturbations: refused, one line (the schema module imports anndata,
        # so it is only imported for a file that declares itself high-MOI)
        if getattr(adata, "uns", {}).get("vcc", {}).get("moi") == "high":
            from vcclib.data.schema import require_single_perturbation

            require_single_perturbation(adata, what)
    control = inputs.resolve_control(real, control_label)
    names = resolve(profile, metrics)
    families = {REGISTRY[n].family == "vcc2026" for n in names}
    if families == {True}:
        from vcclib.metrics.vcc2026_run import evaluate_counts

        result = evaluate_counts(pred, real, pert_col, control, names, score=score)
        result.profile = profile if metrics is None else "custom"
        if outdir is not None:
            result.write(outdir, de_format=de_format)
        return result
    if len(families) > 1:
        raise inputs.InputError(
            "vcc2026 metrics read raw counts and the others log1p values: score them "
            "in separate runs (profile vcc2026 and another)"
        )
    inputs.validate_pair(pred, real, pert_col, control)
    pred_labels = np.unique(pred.obs[pert_col].astype(str).to_numpy())
    real_cells = _grouped(real, pert_col, control, keep=pred_labels)
    pred_cells = _grouped(pred, pert_col, control)
    notes = []
    if use_real_controls:
        pred_cells = with_real_controls(pred_cells, real_cells)
    else:
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
                f"these metrics use them: {', '.join(affected)} (pass use_real_controls=True / --use-real-controls "
                "to use the real controls)"
            )
            warnings.warn(msg, inputs.ControlMismatchWarning, stacklevel=2)
            notes.append(msg)
    from vcclib.metrics.attacks import SuspiciousSubmissionWarning, screen

    for flag in screen(pred_cells, real_cells, scale="log1p"):
        warnings.warn(flag, SuspiciousSubmissionWarning, stacklevel=2)
        notes.append(flag)
    genes = np.asarray(real.var_names).astype(str)
    ctx = EvalContext(pred_cells, real_cells, genes, de_convention=de_convention)
    frame, values = compute_metrics(ctx, names)
    agg = aggregate(values, ctx.n_perts)
    uses_de = any(REGISTRY[n].needs == "de" for n in names)
    result = EvaluationResult(
        results=frame,
        agg=agg,
        profile=profile if metrics is None else "custom",
        de_real=ctx.de_real if uses_de else None,  # DEArrays; a DataFrame on first access (_LazyFrame)
        de_pred=ctx.de_pred if uses_de else None,
        warnings=notes,
    )
    if baseline is not None:
        base = _load(baseline)
        inputs.validate_pair(base, real, pert_col, control)
        base_cells = _grouped(base, pert_col, control, keep=ctx.perts.tolist() + [control])
        if use_real_controls:
            base_cells = with_real_controls(base_cells, real_cells)
        base_ctx = EvalContext(
            base_cells,
            real_cells,
            genes,
            de_convention=de_convention,
            real_de=ctx.__dict__.get("de_real"),
        )
        _, base_values = compute_metrics(base_ctx, names)
        result.baseline_agg = aggregate(base_values, base_ctx.n_perts)
        result.scores["vcc2025"] = vcc2025_score(agg, result.baseline_agg)
    if outdir is not None:
        result.write(outdir, de_format=de_format)
    return result
