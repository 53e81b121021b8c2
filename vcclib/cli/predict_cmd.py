"""``vcc predict``: a baseline's (later a model's) prediction of a split's held-out part, as an h5ad.

The file holds the predicted cells followed by the real control cells of the held-out covariates, in the
project's schema, ready for ``vcc eval``. ``--real`` also writes the matching real held-out cells (with the same
controls), so a MAX reference and the cells it is scored on travel together.

Examples
--------
vcc predict --list
vcc predict --model perturbed_mean --dataset papalexi2021_eccite_lowmoi --split unseen_perturbation -o pred.h5ad
vcc predict --model additive --dataset norman2019_mcfaline2024_devel --option study=norman19 \
    --split combo_seen_singles --save-split split.csv -o pred.h5ad --real real.h5ad
vcc predict --model technical_duplicate --dataset kang2018_ifnb_pbmc --split covariate_transfer \
    --split-param held_out=CD14+Mono -o pred.h5ad --real real.h5ad
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _pairs(values: list[str] | None, what: str) -> dict[str, object]:
    result: dict[str, object] = {}
    for item in values or []:
        if "=" not in item:
            raise ValueError(f"{what} {item!r}: use KEY=VALUE")
        key, value = item.split("=", 1)
        try:
            result[key] = int(value)
        except ValueError:
            try:
                result[key] = float(value)
            except ValueError:
                result[key] = value
    return result


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``predict`` subcommand to ``vcc``'s argparse subparsers."""
    parser = subparsers.add_parser(
        "predict",
        help="write a baseline's prediction of a split's held-out perturbations (h5ad, with real controls)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--list", action="store_true", help="list the available baselines and splits, then exit")
    parser.add_argument("--model", help="baseline (or model) name; see --list")
    parser.add_argument("--dataset", default="", help="registered dataset id (vcc data list)")
    parser.add_argument("--option", action="append", metavar="KEY=VALUE",
                        help="loader option, e.g. study=norman19 (repeatable)")
    parser.add_argument("--h5ad", default="", help="your own h5ad instead of --dataset")
    parser.add_argument("--perturbation-column", default="", help="with --h5ad: obs column of perturbations")
    parser.add_argument("--control-label", default="", help="with --h5ad: the control label")
    parser.add_argument("--split", default="", help="split generator name; see --list")
    parser.add_argument("--split-param", action="append", metavar="KEY=VALUE",
                        help="split generator parameter, e.g. test_fraction=0.3 or held_out=A172 (repeatable)")
    parser.add_argument("--split-file", default="", help="reload a saved split (CSV) instead of generating one")
    parser.add_argument("--save-split", default="", help="save the split used (CSV + JSON sidecar)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and of the held-out halves")
    parser.add_argument("--score-on", choices=("all", "half"), default="",
                        help="real cells to predict: every held-out cell (MIN default) or half B (MAX default)")
    parser.add_argument("--halves", default="",
                        help="how held-out cells are halved: random or an obs column such as replicate")
    parser.add_argument("--max-cells", type=int, default=0, help="subsample to at most N cells per group (0: all)")
    parser.add_argument("-o", "--output", default="", help="prediction h5ad to write")
    parser.add_argument("--real", default="", help="also write the matching real held-out cells + controls here")
    parser.add_argument("--force", action="store_true", help="replace existing output files")
    parser.set_defaults(func=run)
    return parser


def _print_list() -> None:
    import pandas as pd

    from vcclib.baselines import available, list_baselines
    from vcclib.splits import list_splits

    table = list_baselines()
    usable = set(available(halves=None))
    table.insert(1, "available", table["name"].isin(usable).map({True: "yes", False: "no (needs a package)"}))
    with pd.option_context("display.max_colwidth", 70, "display.width", 200):
        print("Baselines (MIN: floors; MAX: ceilings made of real held-out cells)")
        print(table[["name", "available", "side", "output", "needs", "description"]].to_string(index=False))
        print("\nSplits")
        print(list_splits().to_string(index=False))


def run(args) -> int:
    """Run ``vcc predict``; returns the exit status."""
    if args.list:
        _print_list()
        return 0
    if not args.model or not args.output or not (args.split or args.split_file):
        print("vcc predict: --model, --split (or --split-file) and -o are required (or use --list)", file=sys.stderr)
        return 2
    existing = [path for path in (args.output, args.real) if path and Path(path).exists()]
    if existing and not args.force:
        print(f"vcc predict: {', '.join(existing)} exists; choose a new path (or --force to replace it)",
              file=sys.stderr)
        return 2
    from vcclib.baselines import BASELINES, get_baseline
    from vcclib.baselines.runner import fit_predict, subsample
    from vcclib.data import load_perturbation_data
    from vcclib.splits import Split, covariate_column, make_split

    if args.model not in BASELINES:
        print(f"vcc predict: no model {args.model!r}; see `vcc predict --list`", file=sys.stderr)
        return 2
    try:
        adata = load_perturbation_data(dataset=args.dataset, h5ad_path=args.h5ad,
                                       perturbation_column=args.perturbation_column,
                                       control_label=args.control_label, **_pairs(args.option, "--option"))
        adata = subsample(adata, args.max_cells, seed=args.seed, column=covariate_column(adata))
        if args.split_file:
            split = Split.load(args.split_file)
        else:
            split = make_split(args.split, adata, seed=args.seed, **_pairs(args.split_param, "--split-param"))
        if args.save_split:
            split.save(args.save_split)
        model = get_baseline(args.model)
        score_on = args.score_on or ("half" if model.halves is not None else "all")
        halves = args.halves or model.halves or "random"
        prediction, real = fit_predict(args.model, adata, split, score_on=score_on, halves=halves,
                                       seed=args.seed, model=model)
    except (ValueError, KeyError, RuntimeError) as error:
        print(f"vcc predict: {error}", file=sys.stderr)
        return 1
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    prediction.write_h5ad(args.output)
    n_pred = int((~prediction.obs["is_control"]).sum())
    fallback = float(prediction.obs.loc[~prediction.obs["is_control"], "vcc_fallback"].mean()) if n_pred else 0.0
    print(f"wrote {args.output}: {n_pred} predicted cells ({model.output}, {model.side}) for "
          f"{prediction.obs.loc[~prediction.obs['is_control'], 'perturbation'].nunique()} perturbations + "
          f"{int(prediction.obs['is_control'].sum())} real control cells; fallback for {fallback:.0%} of cells")
    if args.real:
        Path(args.real).parent.mkdir(parents=True, exist_ok=True)
        real.write_h5ad(args.real)
        print(f"wrote {args.real}: the real held-out cells ({score_on}) + the same control cells")
    return 0
