"""Arguments shared by ``vcc train`` and ``vcc predict``: which data, which split, which cells are scored."""

from __future__ import annotations

import argparse
from typing import Any


def pairs(values: list[str] | None, what: str) -> dict[str, object]:
    """``["k=v", ...]`` as a dict, numbers parsed (``--option study=norman19 --split-param test_fraction=0.3``)."""
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


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dataset``/``--option`` or ``--h5ad`` (with its columns), ``--max-cells`` and ``--seed``."""
    parser.add_argument("--dataset", default="", help="registered dataset id (vcc data list)")
    parser.add_argument(
        "--option", action="append", metavar="KEY=VALUE", help="loader option, e.g. study=norman19 (repeatable)"
    )
    parser.add_argument("--h5ad", default="", help="your own h5ad instead of --dataset")
    parser.add_argument("--perturbation-column", default="", help="with --h5ad: obs column of perturbations")
    parser.add_argument("--control-label", default="", help="with --h5ad: the control label")
    parser.add_argument("--max-cells", type=int, default=0, help="subsample to at most N cells per group (0: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, the subsample and the held-out halves")


def add_split_arguments(parser: argparse.ArgumentParser) -> None:
    """``--split``/``--split-param`` or ``--split-file``, and ``--halves``."""
    parser.add_argument("--split", default="", help="split generator name; see vcc predict --list")
    parser.add_argument(
        "--split-param",
        action="append",
        metavar="KEY=VALUE",
        help="split generator parameter, e.g. test_fraction=0.3 or held_out=A172 (repeatable)",
    )
    parser.add_argument("--split-file", default="", help="reload a saved split (CSV) instead of generating one")
    parser.add_argument(
        "--halves", default="", help="how held-out cells are halved: random or an obs column such as replicate"
    )


def data_settings(args) -> dict[str, Any]:
    """The data arguments as a JSON-able dict (stored with a trained model, to reload the same cells)."""
    return {
        "dataset": args.dataset,
        "options": pairs(args.option, "--option"),
        "h5ad": args.h5ad,
        "perturbation_column": args.perturbation_column,
        "control_label": args.control_label,
        "max_cells": int(args.max_cells),
        "seed": int(args.seed),
    }


def load_data(settings: dict[str, Any]):
    """The AnnData ``settings`` (from :func:`data_settings`) describe, subsampled as they say."""
    from vcclib.data import load_perturbation_data
    from vcclib.models.runner import subsample
    from vcclib.splits import covariate_column

    adata = load_perturbation_data(
        dataset=settings["dataset"],
        h5ad_path=settings["h5ad"],
        perturbation_column=settings["perturbation_column"],
        control_label=settings["control_label"],
        **settings["options"],
    )
    return subsample(adata, settings["max_cells"], seed=settings["seed"], column=covariate_column(adata))


def make_or_load_split(args, adata):
    """The split ``--split-file`` names (checked against the data), or the generator ``--split`` makes."""
    from vcclib.splits import Split, make_split

    if args.split_file:
        split = Split.load(args.split_file)
        split.check(adata)
        return split
    return make_split(args.split, adata, seed=args.seed, **pairs(args.split_param, "--split-param"))
