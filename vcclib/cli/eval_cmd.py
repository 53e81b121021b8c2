"""``vcc eval``: score a prediction against real data (cell-eval's results.csv / agg_results.csv format)."""

from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``eval`` subcommand to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "eval",
        help="score a prediction against real data",
        description="Score pred.h5ad against real.h5ad; writes OUTDIR/results.csv and OUTDIR/agg_results.csv.",
    )
    p.add_argument("--pred", required=True, help="predicted AnnData (.h5ad, log1p X)")
    p.add_argument("--real", required=True, help="real AnnData (.h5ad, log1p X)")
    p.add_argument("--pert-col", default="perturbation", help="obs column with perturbation labels")
    p.add_argument("--control", default=None, help="control label (default: real.uns['vcc']['control_label'])")
    p.add_argument("--profile", default="vcc", help="metric profile: vcc, full, de, cell-eval, minimal, ...")
    p.add_argument("--metrics", default=None, help="comma-separated metric names (instead of a profile)")
    p.add_argument("--baseline", default=None, help="baseline prediction (.h5ad) to score against (VCC 2025)")
    p.add_argument("--de-convention", default="cell-eval", choices=["cell-eval", "vcc2025"],
                   help="DE convention: cell-eval (BH per perturbation) or vcc2025 (BH across all rows)")
    p.add_argument("--use-real-controls", action="store_true",
                   help="replace the prediction's control cells by the real ones")
    p.add_argument("-o", "--outdir", required=True, help="output folder (must not hold earlier results)")
    p.add_argument("--force", action="store_true", help="replace results already in OUTDIR")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """Run ``vcc eval``; returns the exit status (2 on bad input)."""
    import sys
    import warnings
    from pathlib import Path

    from vcclib.metrics import InputError, evaluate

    if (Path(args.outdir) / "results.csv").exists() and not args.force:
        print(f"vcc eval: error: {args.outdir} already holds results.csv; choose a new -o (or --force)",
              file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = evaluate(
                args.pred,
                args.real,
                pert_col=args.pert_col,
                control=args.control,
                profile=args.profile,
                de_convention=args.de_convention,
                baseline=args.baseline,
                use_real_controls=args.use_real_controls,
                outdir=args.outdir,
                metrics=args.metrics.split(",") if args.metrics else None,
            )
    except (InputError, ValueError) as error:
        print(f"vcc eval: error: {error}", file=sys.stderr)
        return 2
    for w in caught:
        if issubclass(w.category, UserWarning) and str(w.message) not in result.warnings:
            print(f"warning: {w.message}", file=sys.stderr)
    print(result.summary())
    print(f"wrote {args.outdir}/results.csv and agg_results.csv")
    return 0


def main(argv=None) -> int:
    """Stand-alone entry (``python -m vcclib.cli.eval_cmd``)."""
    parser = argparse.ArgumentParser(prog="vcc")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
