"""The :class:`Split` object, the split registry (:data:`SPLITS` of :class:`SplitSpec`) and the three generators."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from vcclib.data.schema import split_targets
from vcclib.registry import Registry

PARTS = ("train", "val", "test")
COVARIATE_NONE = "all"
COLUMNS = ("covariate", "perturbation", "part", "n_cells")


def write_assignment(assignment: pd.DataFrame, metadata: dict[str, Any], path: str | Path) -> Path:
    """Write a split's assignment as CSV at ``path`` and its metadata as ``<path without suffix>.json``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    assignment.to_csv(path, index=False)
    path.with_suffix(".json").write_text(json.dumps(metadata, indent=2, sort_keys=True))
    return path


@dataclass(frozen=True)
class SplitSpec:
    """One registered split generator.

    Attributes
    ----------
    name
        The name ``make_split`` takes (``unseen_perturbation``, ...).
    func
        ``func(adata, seed=0, **params) -> Split``.
    description
        One line: what is held out.
    hypothesis
        What a model's score on this split tests.
    """

    name: str
    func: Callable[..., Split]
    description: str
    hypothesis: str = ""


#: Every registered split generator (:class:`SplitSpec`).
SPLITS: Registry[SplitSpec] = Registry("split")


def split_generator(name: str, *, description: str, hypothesis: str = ""):
    """Decorator: register ``func(adata, seed=0, **params) -> Split`` in :data:`SPLITS` under ``name``."""
    return SPLITS.decorator(lambda func: SplitSpec(name, func, description, hypothesis))


def list_splits() -> pd.DataFrame:
    """The registered split generators: name, description, hypothesis."""
    return SPLITS.table()


def covariate_column(adata: AnnData) -> str | None:
    """The obs column that names the biological context: ``cell_line`` or ``cell_type``, whichever varies.

    Returns ``None`` when neither column exists; a constant column is still returned (one covariate value).
    """
    present = [c for c in ("cell_line", "cell_type") if c in adata.obs]
    for column in present:
        if adata.obs[column].astype(str).nunique() > 1:
            return column
    return present[0] if present else None


def _control_label(adata: AnnData) -> str:
    try:
        return str(adata.uns["vcc"]["control_label"])
    except (KeyError, TypeError) as error:
        raise ValueError("adata.uns['vcc']['control_label'] is missing: load data with vcclib.data.load") from error


def _covariate_values(adata: AnnData, column: str | None) -> pd.Series:
    if column is None:
        return pd.Series(COVARIATE_NONE, index=adata.obs_names)
    if column not in adata.obs:
        raise ValueError(f"the data have no obs column {column!r} (the split's covariate)")
    return adata.obs[column].astype(str)


def group_table(adata: AnnData, column: str | None = None, control_label: str | None = None) -> pd.DataFrame:
    """One row per (covariate, perturbation) group: ``covariate``, ``perturbation``, ``n_cells``, ``is_control``."""
    control_label = _control_label(adata) if control_label is None else control_label
    frame = pd.DataFrame(
        {
            "covariate": _covariate_values(adata, column).to_numpy(),
            "perturbation": adata.obs["perturbation"].astype(str).to_numpy(),
        }
    )
    table = frame.groupby(["covariate", "perturbation"], sort=True).size().rename("n_cells").reset_index()
    table["is_control"] = table["perturbation"] == control_label
    return table


@dataclass
class Split:
    """An assignment of (covariate, perturbation) groups to ``train``/``val``/``test``.

    Parameters
    ----------
    name
        The generator's registered name.
    assignment
        Columns ``covariate``, ``perturbation``, ``part``, ``n_cells``; one row per group. Control groups are
        listed with part ``train``.
    dataset, control_label, covariate_column
        What the split was made on; ``covariate_column`` is ``None`` when the data have one context only.
    seed, params
        The generator's arguments, so the split can be remade.
    """

    name: str
    assignment: pd.DataFrame
    dataset: str = ""
    control_label: str = ""
    covariate_column: str | None = None
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        missing = set(COLUMNS) - set(self.assignment.columns)
        if missing:
            raise ValueError(f"split assignment lacks columns {sorted(missing)}")
        table = self.assignment.loc[:, list(COLUMNS)].copy()
        table["covariate"] = table["covariate"].astype(str)
        table["perturbation"] = table["perturbation"].astype(str)
        table["n_cells"] = table["n_cells"].astype(int)
        bad = set(table["part"]) - set(PARTS)
        if bad:
            raise ValueError(f"unknown split parts {sorted(bad)}; use {PARTS}")
        if table.duplicated(["covariate", "perturbation"]).any():
            raise ValueError("a (covariate, perturbation) group is assigned twice")
        controls = table["perturbation"] == self.control_label
        if (table.loc[controls, "part"] != "train").any():
            raise ValueError("control cells must stay in train")
        self.assignment = table.sort_values(["part", "covariate", "perturbation"]).reset_index(drop=True)

    # --- parts -------------------------------------------------------------------------------------------
    def groups(self, part: str) -> pd.DataFrame:
        """The (covariate, perturbation, n_cells) rows of one part (controls included in ``train``)."""
        return self.assignment[self.assignment["part"] == part].reset_index(drop=True)

    def test_groups(self) -> pd.DataFrame:
        """The held-out groups: what a model must predict."""
        return self.groups("test")

    def train_perturbations(self, covariate: str | None = None) -> list[str]:
        """Non-control perturbations seen in training (optionally in one covariate)."""
        rows = self.groups("train")
        rows = rows[rows["perturbation"] != self.control_label]
        if covariate is not None:
            rows = rows[rows["covariate"] == covariate]
        return sorted(rows["perturbation"].unique())

    def part_of_cells(self, adata: AnnData) -> pd.Series:
        """Each cell's part (``train``/``val``/``test``; ``unused`` for groups the split does not list)."""
        keys = pd.MultiIndex.from_arrays(
            [_covariate_values(adata, self.covariate_column).to_numpy(), adata.obs["perturbation"].astype(str)]
        )
        lookup = pd.Series(
            self.assignment["part"].to_numpy(),
            index=pd.MultiIndex.from_frame(self.assignment[["covariate", "perturbation"]]),
        )
        parts = lookup.reindex(keys).fillna("unused").to_numpy()
        return pd.Series(parts, index=adata.obs_names, name="split_part")

    def mask(self, adata: AnnData, part: str) -> np.ndarray:
        """Boolean mask of the cells in ``part``."""
        if part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}")
        return (self.part_of_cells(adata) == part).to_numpy()

    def subset(self, adata: AnnData, part: str) -> AnnData:
        """A copy of the cells in ``part`` (``train`` includes every control cell)."""
        return adata[self.mask(adata, part)].copy()

    def controls(self, adata: AnnData, covariates: list[str] | None = None) -> AnnData:
        """The real control cells (of the given covariates, or all)."""
        mask = (adata.obs["perturbation"].astype(str) == self.control_label).to_numpy()
        if covariates is not None:
            mask &= _covariate_values(adata, self.covariate_column).isin(list(covariates)).to_numpy()
        return adata[mask].copy()

    def check(self, adata: AnnData) -> None:
        """Raise when ``adata`` lacks a group the split lists, or cell counts differ (the split was made on
        other data)."""
        table = group_table(adata, self.covariate_column, self.control_label).set_index(["covariate", "perturbation"])
        listed = self.assignment.set_index(["covariate", "perturbation"])
        missing = listed.index.difference(table.index)
        if len(missing):
            raise ValueError(f"the data lack {len(missing)} groups of split {self.name!r}, e.g. {list(missing[:3])}")
        differ = (table.loc[listed.index, "n_cells"] != listed["n_cells"]).sum()
        if differ:
            raise ValueError(f"{differ} groups have other cell counts than when split {self.name!r} was made")

    def summary(self) -> pd.DataFrame:
        """Groups and cells per part (controls counted apart)."""
        table = self.assignment.assign(
            kind=np.where(self.assignment["perturbation"] == self.control_label, "control", "perturbed")
        )
        return (
            table.groupby(["part", "kind"]).agg(groups=("perturbation", "size"), cells=("n_cells", "sum")).reset_index()
        )

    # --- files -------------------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dataset": self.dataset,
            "control_label": self.control_label,
            "covariate_column": self.covariate_column,
            "seed": int(self.seed),
            "params": self.params,
        }

    def save(self, path: str | Path) -> Path:
        """Write the assignment as CSV at ``path`` and the metadata as ``<path without suffix>.json``."""
        return write_assignment(self.assignment, self.metadata(), path)

    @classmethod
    def load(cls, path: str | Path) -> Split:
        """Read a split written by :meth:`save` (the JSON sidecar is optional for a hand-made CSV)."""
        path = Path(path)
        assignment = pd.read_csv(
            path, dtype={"covariate": str, "perturbation": str, "part": str}, keep_default_na=False
        )
        sidecar = path.with_suffix(".json")
        meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {"name": path.stem}
        return cls(assignment=assignment, **meta)

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, Split)
            and self.metadata() == other.metadata()
            and self.assignment.equals(other.assignment)
        )


def make_split(name: str, adata: AnnData, seed: int = 0, **params: Any) -> Split:
    """Make the registered split ``name`` of ``adata`` with ``seed``; ``params`` go to the generator.

    An unknown ``name`` raises :class:`~vcclib.errors.UnknownNameError` (a ``KeyError``) listing the registered
    splits.
    """
    from vcclib.data.schema import require_single_perturbation

    if isinstance(adata, AnnData):  # label splits (vcclib.splits.hypotheses) take tables or signatures
        require_single_perturbation(adata, f"split {name!r}")
    return SPLITS.get(name).func(adata, seed=seed, **params)


def _new(name, adata, table, parts, seed, params, column) -> Split:
    table = table.copy()
    table["part"] = parts
    return Split(
        name=name,
        assignment=table[list(COLUMNS)],
        dataset=str(adata.uns.get("vcc", {}).get("dataset", "")),
        control_label=_control_label(adata),
        covariate_column=column,
        seed=int(seed),
        params=params,
    )


def _draw(labels: list[str], fraction: float, rng: np.random.Generator, at_least: int = 1) -> set[str]:
    labels = sorted(labels)
    if not labels:
        return set()
    n = int(round(fraction * len(labels)))
    n = min(max(n, at_least), len(labels) - 1) if len(labels) > 1 else 0
    return set(rng.choice(labels, size=n, replace=False).tolist()) if n else set()


@split_generator(
    "unseen_perturbation",
    description="a seeded fraction of perturbation labels held out in every covariate",
    hypothesis="a model predicts the effect of a perturbation it has never seen, in any cell line or type",
)
def unseen_perturbation(adata: AnnData, seed: int = 0, test_fraction: float = 0.3, val_fraction: float = 0.0) -> Split:
    """Hold out ``test_fraction`` (and ``val_fraction``) of the non-control perturbation labels.

    A label is held out in every covariate where it was measured, so no cell line has seen it.
    """
    column = covariate_column(adata)
    table = group_table(adata, column)
    labels = sorted(table.loc[~table["is_control"], "perturbation"].unique())
    rng = np.random.default_rng(seed)
    test = _draw(labels, test_fraction, rng)
    val = _draw(sorted(set(labels) - test), val_fraction, rng, at_least=0) if val_fraction > 0 else set()
    parts = np.where(
        table["perturbation"].isin(test), "test", np.where(table["perturbation"].isin(val), "val", "train")
    )
    params = {"test_fraction": test_fraction, "val_fraction": val_fraction}
    return _new("unseen_perturbation", adata, table, parts, seed, params, column)


@split_generator(
    "covariate_transfer",
    description="cell types or lines held out: predict their perturbations from the others",
    hypothesis="a perturbation's effect measured in some cell types or lines transfers to another",
)
def covariate_transfer(adata: AnnData, seed: int = 0, held_out: str = "", n_held_out: int = 1) -> Split:
    """Hold out the perturbed cells of one or more covariate values (cell types or lines).

    ``held_out`` names them (comma-separated); empty: ``n_held_out`` values drawn with ``seed``. Only the held-out
    covariates' perturbations that were measured in a kept covariate are test groups (a perturbation seen
    nowhere cannot be transferred); the held-out covariates' other perturbations are not used. Their control
    cells stay in train.
    """
    column = covariate_column(adata)
    if column is None or adata.obs[column].astype(str).nunique() < 2:
        raise ValueError("covariate_transfer needs data with two or more cell types or lines")
    table = group_table(adata, column)
    covariates = sorted(table["covariate"].unique())
    rng = np.random.default_rng(seed)
    if held_out:
        held = [h.strip() for h in str(held_out).split(",") if h.strip()]
    else:
        eligible = [c for c in covariates if not table[(table["covariate"] == c) & ~table["is_control"]].empty]
        if not 1 <= n_held_out < len(eligible):
            raise ValueError(f"n_held_out must be between 1 and {len(eligible) - 1}")
        held = sorted(rng.choice(eligible, size=n_held_out, replace=False).tolist())
    unknown = set(held) - set(covariates)
    if unknown:
        raise ValueError(f"held_out {sorted(unknown)} not among the values of obs[{column!r}]: {covariates}")
    kept = ~table["covariate"].isin(held)
    elsewhere = set(table.loc[kept & ~table["is_control"], "perturbation"])
    in_held_out = ~kept & ~table["is_control"]
    test = in_held_out & table["perturbation"].isin(elsewhere)
    if not test.any():
        raise ValueError("no perturbation of the held-out covariates was measured elsewhere")
    table = table[~(in_held_out & ~test)]
    parts = np.where(test[table.index], "test", "train")
    return _new("covariate_transfer", adata, table, parts, seed, {"held_out": ",".join(held)}, column)


@split_generator(
    "combo_seen_singles",
    description="combinations whose single perturbations were all seen are held out",
    hypothesis="a combination's effect follows from its singles' effects (additively or through interactions)",
)
def combo_seen_singles(adata: AnnData, seed: int = 0, test_fraction: float = 1.0) -> Split:
    """Hold out combinations (``A+B``) whose every single (``A``, ``B``) is measured; all singles train.

    ``test_fraction`` < 1 holds out a seeded fraction of those combinations (the rest train). Combinations with
    an unmeasured single stay in train.
    """
    column = covariate_column(adata)
    table = group_table(adata, column)
    parts = np.array(["train"] * len(table), dtype=object)
    rng = np.random.default_rng(seed)
    for _, rows in table.groupby("covariate"):
        singles = set(rows.loc[~rows["is_control"], "perturbation"])
        combos = [p for p in singles if len(split_targets(p)) > 1]
        eligible = sorted(p for p in combos if all(t in singles for t in split_targets(p)))
        if test_fraction < 1:
            chosen = _draw(eligible, test_fraction, rng)
        else:
            chosen = set(eligible)
        held = rows.index[rows["perturbation"].isin(chosen)]
        parts[held] = "test"
    if not (parts == "test").any():
        raise ValueError("no combination has all its single perturbations measured")
    return _new("combo_seen_singles", adata, table, parts, seed, {"test_fraction": test_fraction}, column)


def reference_halves(
    obs: pd.DataFrame, seed: int = 0, by: str | None = None, group_columns: tuple[str, ...] = ("perturbation",)
) -> pd.Series:
    """Split held-out cells into a query half ``A`` and a scored reference half ``B``, per group.

    Parameters
    ----------
    obs
        The held-out cells' obs.
    by
        ``None``: each group's cells are halved at random (technical duplicate). An obs column (e.g.
        ``replicate``): the values of that column are halved at random (seeded) over the whole data, so ``A``
        and ``B`` never share a replicate (biological replicate). Groups present on one side only get ``B``.
    """
    rng = np.random.default_rng(seed)
    halves = pd.Series("B", index=obs.index, dtype=object)
    if by is None:
        keys = obs[list(group_columns)].astype(str).agg("\x1f".join, axis=1)
        for _, index in keys.groupby(keys).groups.items():
            index = np.asarray(index)
            order = rng.permutation(len(index))
            halves.loc[index[order[: len(index) // 2]]] = "A"
        return halves
    values = sorted(obs[by].astype(str).unique())
    if len(values) < 2:
        raise ValueError(f"obs[{by!r}] has one value: no replicate to predict another")
    chosen = set(rng.permutation(values)[: len(values) // 2].tolist())
    halves[obs[by].astype(str).isin(chosen).to_numpy()] = "A"
    return halves
