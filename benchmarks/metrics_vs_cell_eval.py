"""Run vcclib.metrics and cell-eval 0.8.2 on identical synthetic inputs; print times, ratio, largest differences.

Sizes (perturbations × cells + control cells × genes, log1p, sparse CSR float32):
small 20 × 200 + 1,000 × 2,000; medium 50 × 300 + 3,000 × 8,000; large 200 × 300 + 5,000 × 8,000.
Synthetic data (``_inputs.py``: Poisson counts with per-perturbation effects, library-size normalised, log1p).

    .venv/bin/python benchmarks/metrics_vs_cell_eval.py --sizes small,medium --profile vcc
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _inputs import CONTROL, SIZES, log1p_normalised, make_counts  # noqa: E402  (the shared synthetic inputs)


def make(n_perts, n_cells, n_ctrl, n_genes, seed, effect_seed=1):
    """log1p AnnData of a design (see ``_inputs.py``)."""
    return log1p_normalised(make_counts(n_perts, n_cells, n_ctrl, n_genes, seed, effect_seed))


def run_ours(pred, real, profile):
    from vcclib.metrics import evaluate

    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evaluate(pred, real, control_label=CONTROL, profile=profile)
    return time.perf_counter() - t, res.results.set_index("perturbation").sort_index()


def run_cell_eval(pred, real, profile):
    from cell_eval import MetricsEvaluator

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        ev = MetricsEvaluator(
            pred.copy(), real.copy(), control_pert=CONTROL, pert_col="perturbation", num_threads=2, outdir=tmp
        )
        results, _ = ev.compute(profile=profile, write_csv=False)
        elapsed = time.perf_counter() - t
    return elapsed, results.to_pandas().set_index("perturbation").sort_index()


def warm_up():
    """Compile both engines' numba kernels on a tiny input so timings exclude JIT compilation."""
    pred, real = make(3, 20, 40, 50, 1), make(3, 20, 40, 50, 0)
    run_ours(pred, real, "vcc")
    run_cell_eval(pred, real, "vcc")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="small,medium", help="comma-separated: small, medium, large")
    parser.add_argument("--profile", default="vcc", help="cell-eval profile to compare (vcc, full, de, ...)")
    parser.add_argument("--skip-cell-eval", action="store_true", help="time vcclib only")
    args = parser.parse_args(argv)
    warm_up()
    for size in args.sizes.split(","):
        n_perts, n_cells, n_ctrl, n_genes = SIZES[size]
        real = make(n_perts, n_cells, n_ctrl, n_genes, seed=0)
        pred = make(n_perts, n_cells, n_ctrl, n_genes, seed=1, effect_seed=2)
        t_ours, ours = run_ours(pred, real, args.profile)
        print(
            f"[{size}] {n_perts} perts × {n_cells} cells + {n_ctrl} control × {n_genes} genes, profile {args.profile}"
        )
        print(f"  vcclib.metrics: {t_ours:8.2f} s")
        if args.skip_cell_eval:
            continue
        t_ce, theirs = run_cell_eval(pred, real, args.profile)
        print(f"  cell-eval:      {t_ce:8.2f} s   ratio {t_ce / t_ours:6.1f}×")
        for col in theirs.columns:
            if col in ours.columns:
                a, b = ours[col].to_numpy(float), theirs[col].to_numpy(float)
                both = ~(np.isnan(a) & np.isnan(b))
                diff = np.nanmax(np.abs(a[both] - b[both])) if both.any() else 0.0
                print(f"    max |Δ| {col:<32} {diff:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
