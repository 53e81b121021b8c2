"""Hypothesis splits: named, seeded train/val/test designs, each built to test one claim about what a model needs.

Two kinds of data are split here:

* **cells** (a perturbation AnnData in the schema): the generators return a :class:`~vcclib.splits.core.Split`,
  exactly like the core generators;
* **labels** (tables and signature collections without cells: DepMap, pooled screens, drug signatures,
  K562/RPE1 signatures): the generators take a *label table* — one row per (``context``, ``label``) with
  ``context`` the cell line, screen, species or modality and ``label`` the perturbation (gene or drug) — and
  return a :class:`LabelSplit`, the same idea without cell counts.

Every generator is registered in :data:`~vcclib.splits.core.SPLITS` with
:func:`~vcclib.splits.core.split_generator` (so :func:`make_split` and :func:`list_splits` know it), its
``hypothesis`` field saying what it tests; :data:`DATA_KIND` says what its first argument is.

==================== ======= ===============================================================================
name                 data    hypothesis
==================== ======= ===============================================================================
more_data            cells   more training perturbations help (nested training sets: a learning curve)
added_data           cells   other cell lines' data help predict unseen perturbations of a base line
variability          cells   effects transfer to an unseen cell line / cell type (biological variability)
variability_labels   labels  signatures transfer across cell lines (K562 → RPE1)
chemical             labels  drug responses transfer to unseen drugs, or to an unseen cell line
species              labels  screen phenotypes transfer across species (mouse ↔ human, by symbol)
guide_information    cells   the guide matters: one guide's effect predicted from the target's other guides
phenotype_only       labels  phenotype-only data (DepMap, screens) predict expression quantities of unseen genes
==================== ======= ===============================================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from vcclib.errors import VccError
from vcclib.splits.core import (
    PARTS,
    Split,
    _draw,
    _new,
    covariate_column,
    covariate_transfer,
    group_table,
    split_generator,
    write_assignment,
)

#: name → ``cells`` or ``labels`` (what the generator's first argument is).
DATA_KIND: dict[str, str] = {}

LABEL_COLUMNS = ("context", "label", "part")


class SplitInputError(VccError, ValueError):
    """A hypothesis split cannot be made from the data given (the message says why)."""


def hypothesis_split(name: str, kind: str, description: str, hypothesis: str):
    """Register a hypothesis split generator (``kind`` ``cells`` or ``labels``) with the split registry."""
    register = split_generator(name, description=description, hypothesis=hypothesis)

    def wrap(func):
        DATA_KIND[name] = kind
        return register(func)

    return wrap


def list_hypothesis_splits() -> pd.DataFrame:
    """The hypothesis splits: ``name``, ``data`` (cells/labels), ``description``, ``hypothesis``."""
    from vcclib.splits.core import SPLITS

    specs = [SPLITS.get(name) for name in DATA_KIND]
    return pd.DataFrame(
        {
            "name": [s.name for s in specs],
            "data": [DATA_KIND[s.name] for s in specs],
            "description": [s.description for s in specs],
            "hypothesis": [s.hypothesis for s in specs],
        }
    )


# --------------------------------------------------------------------------------------------------------------
# The split over perturbation labels
# --------------------------------------------------------------------------------------------------------------


@dataclass
class LabelSplit:
    """An assignment of (context, label) pairs to ``train``/``val``/``test``, for data without cells.

    Parameters
    ----------
    name
        The generator's registered name.
    assignment
        Columns ``context`` (cell line, screen, species or modality), ``label`` (perturbation: gene or drug),
        ``part``; one row per pair. Pairs the split does not list are unused.
    dataset, seed, params
        What the split was made on and the generator's arguments, so it can be remade.
    """

    name: str
    assignment: pd.DataFrame
    dataset: str = ""
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        missing = set(LABEL_COLUMNS) - set(self.assignment.columns)
        if missing:
            raise SplitInputError(f"label split assignment lacks columns {sorted(missing)}")
        table = self.assignment.loc[:, list(LABEL_COLUMNS)].astype(str)
        bad = set(table["part"]) - set(PARTS)
        if bad:
            raise SplitInputError(f"unknown split parts {sorted(bad)}; use {PARTS}")
        if table.duplicated(["context", "label"]).any():
            raise SplitInputError("a (context, label) pair is assigned twice")
        self.assignment = table.sort_values(["part", "context", "label"]).reset_index(drop=True)

    def pairs(self, part: str, context: str | None = None) -> pd.DataFrame:
        """The (context, label) rows of one part (optionally of one context)."""
        rows = self.assignment[self.assignment["part"] == part]
        if context is not None:
            rows = rows[rows["context"] == context]
        return rows.reset_index(drop=True)

    def labels(self, part: str, context: str | None = None) -> list[str]:
        """Sorted distinct labels of one part (optionally of one context)."""
        return sorted(self.pairs(part, context)["label"].unique())

    def part_of(self, table: pd.DataFrame) -> pd.Series:
        """Each row's part for a table with ``context`` and ``label`` columns (``unused`` when not listed)."""
        lookup = self.assignment.set_index(["context", "label"])["part"]
        keys = pd.MultiIndex.from_arrays([table["context"].astype(str), table["label"].astype(str)])
        return pd.Series(lookup.reindex(keys).fillna("unused").to_numpy(), index=table.index, name="split_part")

    def check(self, table: pd.DataFrame) -> None:
        """Raise when ``table`` lacks a pair the split lists (the split was made on other data)."""
        have = pd.MultiIndex.from_frame(table[["context", "label"]].astype(str))
        listed = pd.MultiIndex.from_frame(self.assignment[["context", "label"]])
        missing = listed.difference(have)
        if len(missing):
            raise SplitInputError(
                f"the table lacks {len(missing)} pairs of split {self.name!r}, e.g. {list(missing[:3])}"
            )

    def summary(self) -> pd.DataFrame:
        """Pairs and distinct labels per (part, context)."""
        return (
            self.assignment.groupby(["part", "context"])
            .agg(pairs=("label", "size"), labels=("label", "nunique"))
            .reset_index()
        )

    def metadata(self) -> dict[str, Any]:
        """Name, dataset, seed and parameters (the JSON sidecar)."""
        return {
            "name": self.name,
            "dataset": self.dataset,
            "seed": int(self.seed),
            "params": self.params,
            "kind": "labels",
        }

    def save(self, path: str | Path) -> Path:
        """Write the assignment as CSV at ``path`` and the metadata as ``<path without suffix>.json``."""
        return write_assignment(self.assignment, self.metadata(), path)

    @classmethod
    def load(cls, path: str | Path) -> LabelSplit:
        """Read a split written by :meth:`save` (the JSON sidecar is optional for a hand-made CSV)."""
        path = Path(path)
        if not path.is_file():
            raise SplitInputError(f"no label split at {path}")
        assignment = pd.read_csv(path, dtype=str, keep_default_na=False)
        sidecar = path.with_suffix(".json")
        meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {"name": path.stem}
        meta.pop("kind", None)
        return cls(assignment=assignment, **meta)

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, LabelSplit)
            and self.metadata() == other.metadata()
            and self.assignment.equals(other.assignment)
        )


def label_table(frame: pd.DataFrame, context: str, label_column: str = "gene", **extra: str) -> pd.DataFrame:
    """A label table (``context``, ``label`` + constant ``extra`` columns) from one frame's label column."""
    if label_column not in frame.columns and label_column != "index":
        raise SplitInputError(f"no column {label_column!r} (columns: {list(frame.columns)[:10]})")
    labels = frame.index if label_column == "index" else frame[label_column]
    labels = pd.Series(labels).dropna().astype(str)
    table = pd.DataFrame({"context": context, "label": labels[labels != ""].unique()})
    for key, value in extra.items():
        table[key] = value
    return table


def signature_labels(signatures) -> pd.DataFrame:
    """The label table of a signature collection (:class:`vcclib.data.Signatures`): one row per signature,
    ``context`` = its cell line or cell type, ``label`` = its perturbation (gene or drug)."""
    keys = sorted(signatures.entries)
    return pd.DataFrame({"context": [c for _, c in keys], "label": [p for p, _ in keys]})


def _dataset_of(table) -> str:
    """The manifest id of a signature collection ('' for a label table)."""
    return str(table.dataset) if hasattr(table, "entries") and hasattr(table, "dataset") else ""


def _checked_table(table, *extra: str) -> pd.DataFrame:
    from vcclib.data.signatures import Signatures

    if isinstance(table, Signatures):
        table = signature_labels(table)
    if not isinstance(table, pd.DataFrame):
        raise SplitInputError(
            f"a label split needs a label table (DataFrame) or Signatures, not {type(table).__name__}"
        )
    missing = [c for c in ("context", "label", *extra) if c not in table.columns]
    if missing:
        raise SplitInputError(
            f"the label table lacks columns {missing}; it needs context, label"
            + (f", {', '.join(extra)}" if extra else "")
        )
    out = table.copy()
    out["context"] = out["context"].astype(str)
    out["label"] = out["label"].astype(str)
    return out.drop_duplicates(["context", "label"]).reset_index(drop=True)


def _label_split(name: str, table: pd.DataFrame, parts, seed: int, params: dict, dataset: str = "") -> LabelSplit:
    assignment = table.assign(part=np.asarray(parts, dtype=object))
    assignment = assignment[assignment["part"] != "unused"]
    if not (assignment["part"] == "test").any():
        raise SplitInputError(f"split {name!r} holds nothing out with these data and parameters")
    return LabelSplit(
        name=name, assignment=assignment[list(LABEL_COLUMNS)], dataset=dataset, seed=int(seed), params=params
    )


# --------------------------------------------------------------------------------------------------------------
# Splits over cells
# --------------------------------------------------------------------------------------------------------------


@hypothesis_split(
    "more_data",
    "cells",
    "a fixed held-out set of perturbations and nested training sets of growing size",
    "more training perturbations improve the prediction of unseen ones (learning curve)",
)
def more_data(adata: AnnData, seed: int = 0, train_fraction: float = 1.0, test_fraction: float = 0.3) -> Split:
    """Hold out ``test_fraction`` of the perturbation labels; train on the first ``train_fraction`` of the rest.

    The held-out labels depend on ``seed`` only (not on ``train_fraction``), and the training labels are a prefix
    of one seeded permutation, so the training sets of growing ``train_fraction`` are nested: every label of a
    smaller set is in every larger one. Unused training labels are not listed (their cells are ``unused``).
    """
    if not 0 < train_fraction <= 1:
        raise SplitInputError(f"train_fraction must be in (0, 1], not {train_fraction}")
    column = covariate_column(adata)
    table = group_table(adata, column)
    labels = sorted(table.loc[~table["is_control"], "perturbation"].unique())
    test = _draw(labels, test_fraction, np.random.default_rng(seed))
    rest = sorted(set(labels) - test)
    order = np.random.default_rng([seed, 1]).permutation(len(rest))
    n_train = max(1, int(np.ceil(train_fraction * len(rest))))
    train = {rest[i] for i in order[:n_train]}
    keep = table["is_control"] | table["perturbation"].isin(train | test)
    table = table[keep].reset_index(drop=True)
    parts = np.where(table["perturbation"].isin(test), "test", "train")
    params = {"train_fraction": train_fraction, "test_fraction": test_fraction}
    return _new("more_data", adata, table, parts, seed, params, column)


def learning_curve(
    adata: AnnData, seed: int = 0, fractions=(0.25, 0.5, 0.75, 1.0), test_fraction: float = 0.3
) -> list[Split]:
    """The ``more_data`` splits for each training fraction (one held-out set, nested training sets)."""
    return [more_data(adata, seed=seed, train_fraction=f, test_fraction=test_fraction) for f in sorted(fractions)]


@hypothesis_split(
    "added_data",
    "cells",
    "held-out perturbations of one base cell line; training adds other cell lines' data (never those perturbations)",
    "data from other cell lines improve the prediction of unseen perturbations in the base line",
)
def added_data(
    adata: AnnData, seed: int = 0, base: str = "", added=(), test_fraction: float = 0.3, column: str = "cell_line"
) -> Split:
    """Held-out perturbations of the ``base`` cell line; train: its other perturbations plus the ``added`` lines.

    The held-out perturbations are those of the ``more_data`` split of the base line's cells (they depend on
    ``seed`` only, so every stage of growing ``added`` is scored on the same groups, and the training sets are
    nested). Added cell lines contribute every group whose perturbation is not held out (their controls
    included): the held-out perturbations stay unseen in every cell line, so the test stays one of unseen
    perturbations.
    """
    if column not in adata.obs:
        raise SplitInputError(f"added-data split: no obs column {column!r}")
    lines = adata.obs[column].astype(str)
    if not base:
        raise SplitInputError(f"added-data split: name the base cell line (base=...; have {sorted(set(lines))})")
    unknown = sorted(set([base, *added]) - set(lines))
    if unknown:
        raise SplitInputError(f"added-data split: cell lines {unknown} are not in the data (have {sorted(set(lines))})")
    base_cells = adata[(lines == base).to_numpy()]
    held = set(
        more_data(base_cells, seed=seed, train_fraction=1.0, test_fraction=test_fraction).test_groups()["perturbation"]
    )
    table = group_table(adata, column)
    keep = (table["covariate"] == base) | (table["covariate"].isin(list(added)) & ~table["perturbation"].isin(held))
    table = table[keep].reset_index(drop=True)
    parts = np.where((table["covariate"] == base) & table["perturbation"].isin(held), "test", "train")
    params = {"base": base, "added": list(added), "test_fraction": test_fraction}
    return _new("added_data", adata, table, parts, seed, params, column)


@hypothesis_split(
    "variability",
    "cells",
    "one cell line or cell type held out; its perturbations are predicted from the other contexts",
    "perturbation effects transfer to an unseen cell line or cell type",
)
def variability(adata: AnnData, seed: int = 0, held_out: str = "") -> Split:
    """Leave one context out (the three glioma lines of McFaline-Figueroa, Kang's seven cell types).

    ``held_out`` names the context (empty: one drawn with ``seed``). The held-out context's perturbations that
    were measured elsewhere are the test part; its control cells stay in train.
    """
    split = covariate_transfer(adata, seed=seed, held_out=held_out, n_held_out=1)
    split.name = "variability"
    return split


@hypothesis_split(
    "guide_information",
    "cells",
    "one guide per target held out (targets with at least min_guides guides); groups are (guide, target)",
    "guides of one target are interchangeable: a held-out guide's effect is predicted by the target's other guides",
)
def guide_information(adata: AnnData, seed: int = 0, min_guides: int = 2) -> Split:
    """Guide-level split: the covariate of each group is the guide, so each cell's part follows its guide.

    For every target with at least ``min_guides`` guides that have cells, one guide (seeded) is the test part;
    the target's other guides and every control guide are train. Targets with fewer guides are train.
    """
    if "guide" not in adata.obs:
        raise SplitInputError("guide_information needs obs['guide'] (the guide of each cell)")
    table = group_table(adata, "guide")
    table = table.rename(columns={"covariate": "guide"})
    rng = np.random.default_rng(seed)
    held = set()
    for target, rows in table[~table["is_control"]].groupby("perturbation", sort=True):
        guides = sorted(rows["guide"])
        if len(guides) >= max(2, min_guides):
            held.add((str(rng.choice(guides)), target))
    if not held:
        raise SplitInputError(f"no target has {max(2, min_guides)} guides with cells")
    keys = list(zip(table["guide"], table["perturbation"]))
    parts = np.array(["test" if key in held else "train" for key in keys], dtype=object)
    table = table.rename(columns={"guide": "covariate"})
    return _new("guide_information", adata, table, parts, seed, {"min_guides": min_guides}, "guide")


# --------------------------------------------------------------------------------------------------------------
# Splits over labels
# --------------------------------------------------------------------------------------------------------------


@hypothesis_split(
    "variability_labels",
    "labels",
    "signatures of one cell line train, the same perturbations in another cell line test (Replogle K562 → RPE1)",
    "perturbation signatures transfer across cell lines",
)
def variability_labels(
    table, seed: int = 0, train_context: str = "K562", test_context: str = "RPE1", test_fraction: float = 1.0
) -> LabelSplit:
    """Train on ``train_context``; test on the ``test_context`` labels that ``train_context`` also measured.

    ``table``: a label table or a :class:`~vcclib.data.Signatures` collection (``load("replogle2022_signatures")``:
    585 knockdowns in K562 and RPE1).

    ``test_fraction`` < 1 holds out a seeded fraction of those shared labels; the rest of ``test_context`` trains
    (a few-shot variant). Labels measured in ``test_context`` only are unused.
    """
    dataset = _dataset_of(table)
    table = _checked_table(table)
    contexts = set(table["context"])
    for context in (train_context, test_context):
        if context not in contexts:
            raise SplitInputError(f"context {context!r} is not in the table: {sorted(contexts)}")
    train_labels = set(table.loc[table["context"] == train_context, "label"])
    in_test = table["context"] == test_context
    shared = sorted(set(table.loc[in_test, "label"]) & train_labels)
    held = set(shared) if test_fraction >= 1 else _draw(shared, test_fraction, np.random.default_rng(seed))
    parts = np.where(
        table["context"] == train_context,
        "train",
        np.where(
            in_test & table["label"].isin(held),
            "test",
            np.where(in_test & table["label"].isin(shared), "train", "unused"),
        ),
    )
    parts = np.where(table["context"].isin([train_context, test_context]), parts, "unused")
    params = {"train_context": train_context, "test_context": test_context, "test_fraction": test_fraction}
    return _label_split("variability_labels", table, parts, seed, params, dataset)


@hypothesis_split(
    "chemical",
    "labels",
    "drug × cell-line signatures (Tahoe-100M, sci-Plex): unseen drugs, or one cell line held out",
    "drug responses transfer to unseen drugs (or to an unseen cell line)",
)
def chemical(table, seed: int = 0, test_fraction: float = 0.3, held_out_context: str = "") -> LabelSplit:
    """Split drug signatures: ``context`` = cell line, ``label`` = drug.

    ``table``: a label table or a :class:`~vcclib.data.Signatures` collection (``load("sciplex2020_signatures")``:
    23 drugs × A549, K562, MCF7; ``load("tahoe100m_signatures")``: 109 drugs × 10 lines).

    ``held_out_context`` empty: a seeded ``test_fraction`` of the drugs is held out in every cell line (unseen
    drugs). Given: that cell line's drugs that were measured in another cell line are the test part (unseen
    context); its other drugs are unused.
    """
    dataset = _dataset_of(table)
    table = _checked_table(table)
    if held_out_context:
        if held_out_context not in set(table["context"]):
            raise SplitInputError(f"held_out_context {held_out_context!r} is not among {sorted(set(table['context']))}")
        held_here = table["context"] == held_out_context
        elsewhere = set(table.loc[~held_here, "label"])
        parts = np.where(~held_here, "train", np.where(table["label"].isin(elsewhere), "test", "unused"))
    else:
        drugs = sorted(table["label"].unique())
        test = _draw(drugs, test_fraction, np.random.default_rng(seed))
        parts = np.where(table["label"].isin(test), "test", "train")
    params = {"test_fraction": test_fraction, "held_out_context": held_out_context}
    return _label_split("chemical", table, parts, seed, params, dataset)


def ortholog_key(symbol: str) -> str:
    """The key that matches a mouse symbol to its human one when they share a name (``Trp53`` → ``TRP53``).

    Symbol identity in upper case is the one-to-one ortholog rule for most genes; genes renamed between the species
    (mouse Trp53 vs human TP53) do not match and are left out, which the chapters state.
    """
    return str(symbol).upper()


@hypothesis_split(
    "species",
    "labels",
    "genes screened in one species train, the same genes (by symbol) in the other species test",
    "pooled-screen phenotypes transfer across species (mouse ↔ human)",
)
def species(
    table: pd.DataFrame,
    seed: int = 0,
    train_species: str = "human",
    test_species: str = "mouse",
    test_fraction: float = 1.0,
) -> LabelSplit:
    """``context`` = species (or a screen; the ``species`` column, when present, groups screens by species).

    Test: the ``test_species`` genes whose :func:`ortholog_key` matches a ``train_species`` gene (all of them, or a
    seeded ``test_fraction``). Train: every ``train_species`` row. Unmatched genes are unused.
    """
    table = _checked_table(table)
    kind = table["species"].astype(str) if "species" in table.columns else table["context"]
    for name in (train_species, test_species):
        if name not in set(kind):
            raise SplitInputError(f"species {name!r} is not in the table: {sorted(set(kind))}")
    keys = table["label"].map(ortholog_key)
    train_keys = set(keys[kind == train_species])
    matched = (kind == test_species) & keys.isin(train_keys)
    shared = sorted(set(keys[matched]))
    held = set(shared) if test_fraction >= 1 else _draw(shared, test_fraction, np.random.default_rng(seed))
    parts = np.where(kind == train_species, "train", np.where(matched & keys.isin(held), "test", "unused"))
    params = {"train_species": train_species, "test_species": test_species, "test_fraction": test_fraction}
    return _label_split("species", table, parts, seed, params)


@hypothesis_split(
    "phenotype_only",
    "labels",
    "expression rows of a seeded fraction of genes held out; every phenotype row (DepMap, screens, imaging) trains",
    "phenotype-only measurements predict the expression response of genes never profiled",
)
def phenotype_only(table: pd.DataFrame, seed: int = 0, test_fraction: float = 0.3) -> LabelSplit:
    """``table`` needs a ``kind`` column: ``expression`` (Perturb-seq, signatures) or ``phenotype``.

    Test: the expression rows of a seeded ``test_fraction`` of the genes that have both an expression and a
    phenotype row. Train: every other row (the held-out genes' phenotypes are known inputs).
    """
    table = _checked_table(table, "kind")
    kinds = set(table["kind"].astype(str))
    if not {"expression", "phenotype"} <= kinds:
        raise SplitInputError(f"phenotype_only needs rows of kind 'expression' and 'phenotype', found {sorted(kinds)}")
    expression = table["kind"] == "expression"
    both = sorted(set(table.loc[expression, "label"]) & set(table.loc[~expression, "label"]))
    held = _draw(both, test_fraction, np.random.default_rng(seed))
    parts = np.where(expression & table["label"].isin(held), "test", "train")
    return _label_split("phenotype_only", table, parts, seed, {"test_fraction": test_fraction})
