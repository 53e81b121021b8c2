"""``vcc train``: fit a registered model on a split's training part and save it (JSON + npz, no pickle).

The directory holds the fitted model (``model.json``, ``arrays.npz``), the split (``split.csv`` + ``split.json``)
and how the data were read (``training.json``), so ``vcc predict --model-dir DIR`` reloads the same cells and
predicts exactly what the fitted model did. An existing directory is never overwritten.

Examples
--------
vcc train --model linear_go --dataset papalexi2021_eccite_lowmoi --split unseen_perturbation -o models/linear_go
vcc train --model random_forest --dataset norman2019_mcfaline2024_devel --option study=norman19 \
    --split combo_seen_singles --test -o models/rf_tiny
vcc predict --model-dir models/linear_go -o pred.h5ad
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from vcclib.cli.model_args import (
    add_data_arguments,
    add_split_arguments,
    data_settings,
    load_data,
    make_or_load_split,
)
from vcclib.errors import VccError

TRAINING_FILE = "training.json"
SPLIT_FILE = "split.csv"


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to ``vcc``'s argparse subparsers."""
    parser = subparsers.add_parser(
        "train",
        help="fit a registered model on a split's training part and save it to a new directory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="registered model name; see vcc predict --list")
    add_data_arguments(parser)
    add_split_arguments(parser)
    parser.add_argument("--test", action="store_true", help="the model's tiny test settings (seconds to fit)")
    parser.add_argument("-o", "--output", required=True, help="new directory to save the model in")
    parser.set_defaults(func=run)
    return parser


def _fail(message: str, status: int = 2) -> int:
    print(f"vcc train: {message}", file=sys.stderr)
    return status


def run(args) -> int:
    """Run ``vcc train``; returns the exit status (2: bad input, 1: the run failed)."""
    output = Path(args.output)
    if output.exists():
        return _fail(f"{output} exists; choose a new directory (a trained model is never overwritten)")
    if not (args.split or args.split_file):
        return _fail("--split (or --split-file) is required")
    from vcclib.models import MODELS

    if args.model not in MODELS:
        return _fail(f"no model {args.model!r}; see `vcc predict --list`")
    try:
        model, split, training = _fit(args)
        _save(model, split, training, output)
    except VccError as error:
        return _fail(str(error))
    except (ValueError, KeyError, RuntimeError) as error:
        return _fail(str(error), 1)
    n_train = len(split.train_perturbations())
    print(
        f"wrote {output}: {model.name} ({model.kind.value}) fitted on {n_train} training perturbations of split "
        f"{split.name!r}; predict with `vcc predict --model-dir {output} -o pred.h5ad`"
    )
    return 0


def _fit(args):
    from vcclib.models import get_model
    from vcclib.models.runner import scored_parts

    settings = data_settings(args)
    adata = load_data(settings)
    split = make_or_load_split(args, adata)
    model = get_model(args.model, test=args.test)
    score_on = "half" if model.halves is not None else "all"
    halves = args.halves or model.halves or "random"
    _, query_half = scored_parts(model, adata, split, score_on=score_on, halves=halves, seed=args.seed)
    model.fit(split.subset(adata, "train"), heldout=query_half)
    training = {"model": model.name, "test": bool(args.test), "data": settings, "score_on": score_on, "halves": halves}
    return model, split, training


def _save(model, split, training, output: Path) -> None:
    """Write everything into a temporary sibling directory, then move it to ``output`` in one step."""
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        model.save(staging)
        split.save(staging / SPLIT_FILE)
        (staging / TRAINING_FILE).write_text(json.dumps(training, indent=2, sort_keys=True))
        staging.rename(output)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
