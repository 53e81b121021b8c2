"""Which cells belong to which perturbation, for single-guide and multi-guide (high-MOI) data.

* Low-MOI data and designed combinations: one group per label of ``obs[perturbation_column]``; controls are the
  control label's cells.
* High-MOI data (``uns['vcc']['moi'] == 'high'``, Gasperini 2019): one group per **gRNA group** (target). A cell
  belongs to **every** group whose gRNA it carries (:func:`vcclib.data.schema.target_indicator`, gRNAs of a target
  pooled with OR, as sceptre pools a gRNA group), so groups overlap; controls are the cells carrying **only**
  non-targeting gRNAs; cells with no assigned gRNA are in no group. A group's cells may carry other targets too:
  their effects dilute into every group they are in (at random, since gRNAs are assigned independently).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vcclib.data.schema import is_multi_guide, target_indicator


@dataclass
class CellGroups:
    """Group name → positions of its cells, the control cells' positions, and how they were formed."""

    groups: dict[str, np.ndarray]
    control: np.ndarray
    rule: str
    guides: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Group names, in order."""
        return list(self.groups)


def cell_groups(adata, perturbation_column: str = "perturbation", control_label: str | None = None) -> CellGroups:
    """The perturbation groups of ``adata`` (see the module docstring for the multi-guide rule)."""
    if control_label is None:
        control_label = adata.uns["vcc"]["control_label"]
    labels = adata.obs[perturbation_column].astype(str).to_numpy()
    if is_multi_guide(adata):
        indicator = target_indicator(adata)
        grnas = adata.uns["grnas"]
        assigned = adata.obsm["grna_assigned"].tocsc()
        groups, guides = {}, {}
        for target in indicator.columns:
            if target == control_label:
                continue
            groups[target] = np.flatnonzero(indicator[target].to_numpy())
            idx = np.flatnonzero(grnas["target"].astype(str).to_numpy() == target)
            guides[target] = {
                str(grnas["grna_id"].iloc[j]): np.flatnonzero(assigned[:, j].toarray().ravel()) for j in idx
            }
        control = np.flatnonzero(labels == control_label)
        rule = (
            "high-MOI: one group per gRNA group; a cell is in every group whose gRNA it carries; controls = "
            "cells with only non-targeting gRNAs; unassigned cells left out"
        )
        return CellGroups(groups, control, rule, guides)
    if control_label not in set(labels):
        raise ValueError(f"control label {control_label!r} is missing from obs[{perturbation_column!r}]")
    groups = {p: np.flatnonzero(labels == p) for p in sorted(set(labels) - {control_label, "unassigned"})}
    guides = {}
    if "guide" in adata.obs:
        guide = adata.obs["guide"].astype(str).to_numpy()
        for p, idx in groups.items():
            guides[p] = {g: idx[guide[idx] == g] for g in sorted(set(guide[idx]))}
    return CellGroups(
        groups, np.flatnonzero(labels == control_label), "one group per label (one perturbation per cell)", guides
    )
