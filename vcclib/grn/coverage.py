"""Which perturbations a network can carry at all: perturbed targets that are regulators of it.

A propagation predictor (:mod:`vcclib.grn.propagation`) moves a perturbation only when its target is a regulator of
the network: for an inferred network a Lambert TF that is measured (and varies) in the control cells, for a
literature network a TF with at least one signed edge to a measured gene. :func:`target_coverage` lists, per
perturbed target, which networks carry it, so a chapter can say how many TFs its evidence rests on.

High-MOI data (Gasperini 2019): :func:`single_target_cells` keeps the cells with at most one target (controls =
cells with only non-targeting gRNAs) and drops cells without an assigned gRNA, the subset that functions taking
one perturbation per cell accept (``vcclib.data.schema.require_single_perturbation``).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from anndata import AnnData

from vcclib.data.schema import UNASSIGNED, is_multi_guide, n_perturbations, split_targets

COVERAGE_COLUMNS = ("dataset", "target", "kind", "n_cells", "lambert_tf", "measured", "inferred_regulator")


def single_target_cells(adata: AnnData) -> tuple[AnnData, dict[str, int]]:
    """The cells of a high-MOI dataset with one target or only non-targeting gRNAs; other data unchanged.

    Returns
    -------
    (subset, counts)
        ``counts``: ``n_cells``, ``kept``, ``multi_target`` (dropped: several targets), ``unassigned`` (dropped:
        no gRNA above the threshold), ``controls`` (kept cells with only non-targeting gRNAs).
    """
    if not is_multi_guide(adata):
        return adata, {
            "n_cells": int(adata.n_obs),
            "kept": int(adata.n_obs),
            "multi_target": 0,
            "unassigned": 0,
            "controls": int(adata.obs["is_control"].sum()),
        }
    several = n_perturbations(adata) > 1
    unassigned = (adata.obs["perturbation"].astype(str) == UNASSIGNED).to_numpy()
    keep = ~several & ~unassigned
    subset = adata[keep].copy()
    return subset, {
        "n_cells": int(adata.n_obs),
        "kept": int(keep.sum()),
        "multi_target": int(several.sum()),
        "unassigned": int(unassigned.sum()),
        "controls": int(subset.obs["is_control"].sum()),
    }


def perturbed_targets(adata: AnnData) -> pd.DataFrame:
    """``target``, ``kind`` and ``n_cells`` of every perturbed target (high-MOI: per gRNA group target)."""
    obs = adata.obs[~adata.obs["is_control"].astype(bool).to_numpy()]
    counts: dict[str, int] = {}
    for label, n in obs["perturbation"].astype(str).value_counts().items():
        for target in split_targets(label):
            counts[target] = counts.get(target, 0) + int(n)
    kinds = {}
    if is_multi_guide(adata):
        grnas = adata.uns["grnas"]
        kinds = dict(zip(grnas["target"].astype(str), grnas["target_kind"].astype(str)))
    targets = sorted(t for t in counts if t != UNASSIGNED)
    return pd.DataFrame(
        {"target": targets, "kind": [kinds.get(t, "gene") for t in targets], "n_cells": [counts[t] for t in targets]}
    )


def target_coverage(
    data: dict[str, AnnData],
    regulators: dict[str, Sequence[str]],
    tfs: Sequence[str],
    references: dict[str, pd.DataFrame],
) -> pd.DataFrame:
    """One row per (unit, perturbed target): whether it is a TF, measured, and a regulator of each network.

    Parameters
    ----------
    data
        Per unit label, its (single-perturbation) data.
    regulators
        Per unit label, the regulators of its inferred networks (the measured, varying Lambert TFs).
    tfs
        The Lambert TF names.
    references
        Literature networks by name (:func:`vcclib.grn.literature.reference_network`).

    Returns
    -------
    DataFrame
        :data:`COVERAGE_COLUMNS` and one boolean column per reference: the target has a signed edge to a measured
        gene there.
    """
    tf_set = set(tfs)
    frames = []
    for label, adata in data.items():
        table = perturbed_targets(adata)
        if table.empty:
            continue
        measured = set(adata.var_names)
        table.insert(0, "dataset", label)
        table["lambert_tf"] = table["target"].isin(tf_set)
        table["measured"] = table["target"].isin(measured)
        table["inferred_regulator"] = table["target"].isin(set(regulators.get(label, ())))
        for name, reference in references.items():
            usable = reference[
                (reference["sign"] != 0)
                & reference["target"].isin(measured)
                & (reference["regulator"] != reference["target"])
            ]
            table[name] = table["target"].isin(set(usable["regulator"]))
        frames.append(table)
    if not frames:
        return pd.DataFrame(columns=list(COVERAGE_COLUMNS) + list(references))
    return pd.concat(frames, ignore_index=True)


def coverage_counts(coverage: pd.DataFrame, references: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per unit: perturbed targets, TFs among them, measured TFs, and targets each network carries."""
    out = {}
    for label, block in coverage.groupby("dataset", sort=False):
        row = {
            "targets": int(len(block)),
            "tfs": int(block["lambert_tf"].sum()),
            "measured_tfs": int((block["lambert_tf"] & block["measured"]).sum()),
            "inferred": int(block["inferred_regulator"].sum()),
        }
        for name in references:
            row[name] = int(block[name].sum())
        kinds = block["kind"].value_counts()
        row["kinds"] = {str(k): int(v) for k, v in kinds.items()}
        out[str(label)] = row
    return out
