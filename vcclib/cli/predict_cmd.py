"""``vcc predict``: a registered model's prediction of a split's held-out part, as an h5ad.

The file holds the predicted cells followed by the real control cells of the held-out covariates, in the
project's schema, ready for ``vcc eval``. ``--real`` also writes the matching real held-out cells (with the same
controls), so a MAX reference and the cells it is scored on travel together. ``--model-dir`` predicts with a
model saved by ``vcc train`` (same data, same split, same halves) instead of fitting one.

Examples
--------
vcc predict --list
vcc predict --model perturbed_mean --dataset papalexi2021_eccite_lowmoi --split unseen_perturbation -o pred.h5ad
vcc predict --model additive --dataset norman2019_mcfaline2024_devel --option study=norman19 \
    --split combo_seen_singles --save-split split.csv -o pred.h5ad --real real.h5ad
vcc predict --model technical_duplicate --dataset kang2018_ifnb_pbmc --split covariate_transfer \
    --split-param held_out=CD14+Mono -o pred.h5ad --real real.h5ad
vcc train --model linear_go --dataset papalexi2021_eccite_lowmoi --split unseen_perturbation -o models/linear_go
vcc predict --model-dir models/linear_go -o pred.h5ad --real real.h5ad
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vcclib.cli.model_args import (
    add_data_arguments,
    add_split_arguments,
    data_settings,
    load_data,
    make_or_load_split,
)
from vcclib.errors import VccError


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``predict`` subcommand to ``vcc``'s argparse subparsers."""
    parser = subparsers.add_parser(
        "predict",
        help="write a model's prediction of a split's held-out perturbations (h5ad, with real controls)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--list", action="store_true", help="list the registered models and splits, then exit")
    parser.add_argument("--model", help="registered model name; see --list")
    parser.add_argument("--model-dir", default="", help="a model saved by `vcc train` (instead of --model)")
    add_data_arguments(parser)
    add_split_arguments(parser)
    parser.add_argument("--save-split", default="", help="save the split used (CSV + JSON sidecar)")
    parser.add_argument(
        "--score-on",
        choices=("all", "half"),
        default="",
        help="real cells to predict: every held-out cell (MIN default) or half B (MAX default)",
    )
    parser.add_argument("-o", "--output", default="", help="prediction h5ad to write")
    parser.add_argument("--real", default="", help="also write the matching real held-out cells + controls here")
    parser.add_argument("--force", action="store_true", help="replace existing output files")
    parser.set_defaults(func=run)
    return parser


def _installed(extra: str | None, name: str = "") -> str:
    from vcclib.models import extra_installed
    from vcclib.models.external import PACKAGES, install_state

    if name in PACKAGES:  # a published model: its own packages, whichever extra or environment holds them
        ready, command = install_state(name)
        return "yes" if ready else f"no: {command}"
    state = extra_installed(extra)
    if state is None:
        return f"unknown (extra {extra!r} not declared by this install)"
    return "yes" if state else f"no: pip install 'vcclib[{extra}]'"


def model_table():
    """The ``--list`` table of models: name, kind, side, output, extra, installed, tasks, description."""
    import pandas as pd

    from vcclib.models import MODELS

    rows = [
        {
            "name": s.name,
            "kind": s.kind.value,
            "side": s.side.value,
            "output": s.output.value,
            "extra": s.extra or "",
            "installed": _installed(s.extra, s.name),
            "tasks": ", ".join(t.value for t in s.tasks),
            "description": s.description,
        }
        for s in MODELS.specs()
    ]
    return pd.DataFrame(rows)


def _print_list() -> None:
    import pandas as pd

    from vcclib.splits import list_splits

    with pd.option_context("display.max_colwidth", 70, "display.width", 250):
        print(
            "Models (MIN: floors; MAX: ceilings made of real held-out cells; learned: fitted on the training "
            "perturbations)"
        )
        print(model_table().to_string(index=False))
        print("\nSplits")
        print(list_splits().to_string(index=False))


def _fail(message: str, status: int = 2) -> int:
    print(f"vcc predict: {message}", file=sys.stderr)
    return status


def run(args) -> int:
    """Run ``vcc predict``; returns the exit status (2: bad input, 1: the run failed)."""
    if args.list:
        _print_list()
        return 0
    if args.model_dir and args.model:
        return _fail("give --model or --model-dir, not both")
    if not args.output:
        return _fail("-o/--output is required (or use --list)")
    if not args.model_dir and (not args.model or not (args.split or args.split_file)):
        return _fail("--model and --split (or --split-file), or --model-dir, are required (or use --list)")
    existing = [path for path in (args.output, args.real) if path and Path(path).exists()]
    if existing and not args.force:
        return _fail(f"{', '.join(existing)} exists; choose a new path (or --force to replace it)")
    from vcclib.models import MODELS

    if args.model and args.model not in MODELS:
        return _fail(f"no model {args.model!r}; see `vcc predict --list`")
    try:
        if args.model_dir:
            prediction, real, model, score_on = _predict_saved(args)
        else:
            prediction, real, model, score_on = _fit_and_predict(args)
    except VccError as error:
        return _fail(str(error))
    except (ValueError, KeyError, RuntimeError) as error:
        return _fail(str(error), 1)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    prediction.write_h5ad(args.output)
    predicted = ~prediction.obs["is_control"]
    n_pred = int(predicted.sum())
    fallback = float(prediction.obs.loc[predicted, "vcc_fallback"].mean()) if n_pred else 0.0
    print(
        f"wrote {args.output}: {n_pred} predicted cells ({model.output}, {model.side}) for "
        f"{prediction.obs.loc[predicted, 'perturbation'].nunique()} perturbations + "
        f"{int(prediction.obs['is_control'].sum())} real control cells; fallback for {fallback:.0%} of cells"
    )
    if args.real:
        Path(args.real).parent.mkdir(parents=True, exist_ok=True)
        real.write_h5ad(args.real)
        print(f"wrote {args.real}: the real held-out cells ({score_on}) + the same control cells")
    return 0


def _fit_and_predict(args):
    from vcclib.models import get_model
    from vcclib.models.runner import fit_predict

    adata = load_data(data_settings(args))
    split = make_or_load_split(args, adata)
    if args.save_split:
        split.save(args.save_split)
    model = get_model(args.model)
    score_on = args.score_on or ("half" if model.halves is not None else "all")
    halves = args.halves or model.halves or "random"
    prediction, real = fit_predict(
        args.model, adata, split, score_on=score_on, halves=halves, seed=args.seed, model=model
    )
    return prediction, real, model, score_on


def _predict_saved(args):
    """Load a ``vcc train`` directory, reload its data and split, predict the scored held-out cells."""
    from vcclib.cli.train_cmd import SPLIT_FILE, TRAINING_FILE
    from vcclib.models import Model
    from vcclib.models.runner import predict_scored, scored_parts
    from vcclib.models.storage import ModelFileError
    from vcclib.splits import Split

    directory = Path(args.model_dir)
    settings_path = directory / TRAINING_FILE
    if not settings_path.is_file():
        raise ModelFileError(f"{directory} was not written by `vcc train` ({TRAINING_FILE} missing)")
    training = json.loads(settings_path.read_text())
    model = Model.load(directory)
    adata = load_data(training["data"])
    split = Split.load(directory / SPLIT_FILE)
    split.check(adata)
    if args.save_split:
        split.save(args.save_split)
    score_on = args.score_on or training["score_on"]
    halves, seed = training["halves"], training["data"]["seed"]
    real, _ = scored_parts(model, adata, split, score_on=score_on, halves=halves, seed=seed)
    prediction, real = predict_scored(model, adata, split, real, score_on=score_on, halves=halves, seed=seed)
    return prediction, real, model, score_on
