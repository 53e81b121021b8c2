"""``vcc eval``: score a prediction against real data (cell-eval's results.csv / agg_results.csv format).

cell-eval's command line runs unchanged (``-ap/--adata-pred``, ``-ar/--adata-real``, ``--pert-col``,
``--control-pert``, ``--celltype-col``, ``--profile``, ``--skip-metrics``, ``--num-threads``,
``--allow-discrete``, ``-o/--outdir``); ``-o/--output`` is this command's own spelling. Only argparse is
imported here; the metrics engine and anndata are imported when the command runs.
"""

from __future__ import annotations

import argparse

PROFILE_CHOICES = ("vcc", "vcc2026", "full", "cell-eval", "minimal", "de", "anndata", "pds", "field")


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``eval`` subcommand to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "eval",
        help="score a prediction against real data",
        description="Score a predicted AnnData against the real one; writes results.csv, agg_results.csv and "
        "the DE tables (parquet unless --de-format csv) under the output folder.",
    )
    p.add_argument(
        "-ap",
        "--adata-pred",
        "--pred",
        dest="pred",
        required=True,
        help="predicted AnnData (.h5ad; log1p X, or raw counts for --profile vcc2026)",
    )
    p.add_argument("-ar", "--adata-real", "--real", dest="real", required=True, help="real AnnData (.h5ad)")
    p.add_argument(
        "--pert-col",
        default=None,
        help="obs column with perturbation labels (default: 'perturbation', else cell-eval's 'target')",
    )
    p.add_argument(
        "--control-pert",
        "--control",
        dest="control",
        default=None,
        help="control label (default: real.uns['vcc']['control_label'], else 'non-targeting')",
    )
    p.add_argument("--celltype-col", default=None, help="score each value of this obs column separately")
    p.add_argument("--profile", default="vcc", choices=PROFILE_CHOICES, help="metric profile (default: vcc)")
    p.add_argument("--metrics", default=None, help="comma-separated metric names (instead of a profile)")
    p.add_argument("--skip-metrics", default=None, help="comma-separated metric names to leave out")
    p.add_argument("--baseline", default=None, help="baseline prediction (.h5ad) to score against (VCC 2025)")
    p.add_argument(
        "--score",
        action="store_true",
        help="vcc2026: score against the generic-response baseline and the replicate anchor",
    )
    p.add_argument(
        "--de-convention",
        default="cell-eval",
        choices=["cell-eval", "vcc2025"],
        help="DE convention: cell-eval (BH per perturbation) or vcc2025 (BH across all rows)",
    )
    p.add_argument(
        "--de-format",
        default="parquet",
        choices=["parquet", "csv"],
        help="format of real_de / pred_de (default: parquet)",
    )
    p.add_argument(
        "--use-real-controls", action="store_true", help="replace the prediction's control cells by the real ones"
    )
    p.add_argument("--num-threads", type=int, default=None, help="threads for the DE kernel (default: all)")
    p.add_argument("--allow-discrete", action="store_true", help="accepted for cell-eval compatibility")
    p.add_argument(
        "--on-disk",
        "--backed",
        dest="on_disk",
        action="store_true",
        help="read the .h5ad files in chunks of cells (bounded memory; pseudobulk and DE metrics)",
    )
    p.add_argument(
        "--chunk-cells", type=int, default=None, help="--on-disk: most cells held at once for the DE (default 200000)"
    )
    p.add_argument("--dask", action="store_true", help="--on-disk: run the chunks on a dask LocalCluster")
    p.add_argument(
        "--scheduler-address",
        default=None,
        help="--on-disk: run the chunks on this dask scheduler (e.g. tcp://host:8786)",
    )
    p.add_argument(
        "-o", "--output", "--outdir", dest="outdir", required=True, help="output folder (must not hold earlier results)"
    )
    p.add_argument("--force", action="store_true", help="replace results already in the output folder")
    p.set_defaults(func=run)
    return p


def _metric_names(args):
    from vcclib.metrics.profiles import resolve

    names = list(resolve(args.profile, args.metrics.split(",") if args.metrics else None))
    if args.skip_metrics:
        skip = set(args.skip_metrics.split(","))
        names = [n for n in names if n not in skip]
    return names if (args.metrics or args.skip_metrics) else None


def _column(adata, given):
    if given:
        return given
    return "perturbation" if "perturbation" in adata.obs else "target"


def run(args) -> int:
    """Run ``vcc eval``; returns the exit status (2 on bad input, results left untouched)."""
    import sys
    import warnings
    from pathlib import Path

    from vcclib.errors import VccError

    out = Path(args.outdir)
    if (out / "results.csv").exists() and not args.force:
        print(f"vcc eval: error: {out} already holds results.csv; choose a new -o (or --force)", file=sys.stderr)
        return 2
    try:
        _small_pages()
        _reuse_freed_memory()
        if args.num_threads:
            import numba

            numba.set_num_threads(max(1, min(args.num_threads, numba.config.NUMBA_NUM_THREADS)))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = _evaluate(args)
    except VccError as error:
        print(f"vcc eval: error: {error}", file=sys.stderr)
        return 2
    for w in caught:
        if issubclass(w.category, UserWarning) and str(w.message) not in result.warnings:
            print(f"warning: {w.message}", file=sys.stderr)
    print(result.summary())
    print(f"wrote {out}/results.csv and agg_results.csv")
    return 0


def _small_pages() -> None:
    """Let numpy fault this command's arrays in 4 KiB pages instead of transparent huge pages.

    numpy asks the kernel for huge pages on every array of 4 MiB or more (``madvise``). Where the kernel reports
    freed memory to a virtual machine's host (virtio-balloon free-page reporting, as on the 2-core machine the
    budgets are set on), those huge pages are taken from reported memory, and each first touch faults it back
    in from the host: a fresh GiB cost 3.1–3.7 s there in huge pages against 0.5–0.8 s in small ones, most of a
    ``vcc eval`` run's wall time. On a bare machine huge pages save little at these sizes. A
    ``NUMPY_MADVISE_HUGEPAGE`` the user set is kept; the switch is numpy's own and lasts for this process only.
    """
    import os

    import numpy as np

    switch = getattr(np._core.multiarray, "_set_madvise_hugepage", None)
    if switch is not None and os.environ.get("NUMPY_MADVISE_HUGEPAGE") is None:
        switch(False)


#: glibc ``mallopt`` parameters (malloc.h) and the values this command sets
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # glibc's ceiling for this setting (64-bit)
TRIM_THRESHOLD = 1 << 30


def _reuse_freed_memory() -> None:
    """Let glibc's malloc serve this command's arrays again from memory they freed, instead of the kernel's.

    By default glibc maps every block over a moving threshold (128 KiB at first, at most 32 MiB) afresh and
    unmaps it when it is freed, and gives the top of its heap back above a trim threshold: an array of a few MiB
    made per chunk or per metric is then faulted in page by page each time. Under :func:`_small_pages`' reported
    memory each fault costs microseconds. On the medium benchmark design this setting saves about 13,000 faults
    in a ``vcc2026`` run (253k → 240k; 47,000 before the rank-sum kernel's gather buffer was bounded, see
    :data:`vcclib.metrics.de.GATHER_BYTES`) and 20,000 in a ``vcc`` run. Blocks up to 32 MiB now come from the
    heap, and up to 1 GiB of freed heap is kept for reuse (the peak resident memory did not grow in those runs).
    glibc only; a ``MALLOC_MMAP_THRESHOLD_``,
    ``MALLOC_TRIM_THRESHOLD_`` or ``GLIBC_TUNABLES`` the user set is kept, and the setting lasts for this
    process only.
    """
    import ctypes
    import os

    if any(os.environ.get(v) for v in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")):
        return
    try:
        libc = ctypes.CDLL(None)
        if not hasattr(libc, "gnu_get_libc_version"):  # not glibc (musl, macOS): its allocator differs
            return
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    except (OSError, AttributeError):
        pass


def _start_numba() -> None:
    """Set up numba's CPU target now, while the input files are read ahead.

    It is about 0.6 s of Python work once per process (numba's typing and lowering registries); otherwise the
    first kernel call pays for it after the read. Does nothing where numba's internals differ from what this
    expects: the first call then sets it up as before.
    """
    try:
        from numba.core.registry import cpu_target

        cpu_target.target_context.refresh()
    except (ImportError, AttributeError):
        pass


def _evaluate(args):
    on_disk = args.on_disk or args.dask or args.scheduler_address
    ahead = {}
    if not on_disk:
        from vcclib.h5read import read_ahead, stored_encoding

        ahead = read_ahead([args.real, args.pred])  # read on a second core while the main thread imports
        if stored_encoding(args.real) == "csr_matrix":  # every profile runs numba kernels on a sparse X
            _start_numba()
    from vcclib.metrics import evaluate
    from vcclib.metrics.evaluate import read_cells

    if on_disk:
        from vcclib.metrics.chunked import OnDiskCells

        pred, real = str(args.pred), str(args.real)
        head = OnDiskCells.open(real)  # obs, var and uns only
        column, meta = _column(head, args.pert_col), head.uns
    else:
        real, pred = read_cells(args.real, ahead.get(str(args.real))), read_cells(args.pred, ahead.get(str(args.pred)))
        column = _column(real, args.pert_col)
        meta = real.uns
    control = args.control
    if control is None and "control_label" not in meta.get("vcc", {}):
        control = "non-targeting"  # cell-eval's default
    common = dict(
        perturbation_column=column,
        control_label=control,
        profile=args.profile,
        de_convention=args.de_convention,
        use_real_controls=args.use_real_controls,
        metrics=_metric_names(args),
        score=args.score,
        de_format=args.de_format,
    )
    if on_disk:
        if args.celltype_col:
            from vcclib.metrics.inputs import InputError

            raise InputError("--celltype-col is not available with --on-disk")
        scheduler = args.scheduler_address or ("local" if args.dask else None)
        return evaluate(
            pred,
            real,
            outdir=args.outdir,
            on_disk=True,
            chunk_cells=args.chunk_cells,
            scheduler=scheduler,
            baseline=args.baseline,
            **common,
        )
    if args.celltype_col:
        from vcclib.metrics.evaluate import evaluate_by_group

        return evaluate_by_group(pred, real, args.celltype_col, outdir=args.outdir, **common)
    return evaluate(pred, real, baseline=args.baseline, outdir=args.outdir, **common)


def main(argv=None) -> int:
    """Stand-alone entry (``python -m vcclib.cli.eval_cmd``)."""
    parser = argparse.ArgumentParser(prog="vcc")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
