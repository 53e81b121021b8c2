"""Named, seeded splits of a perturbation dataset, saved to and reloaded from a file.

A split assigns each *group* of cells — a (covariate, perturbation) pair, e.g. ``("A172", "MAPK1")`` — to a
part: ``train``, ``val`` or ``test``. Control cells are never held out: every covariate's controls belong to
``train`` (a model always sees the control state of the cells it predicts). The assignment is a small table, so a
split is saved as CSV (one row per group) with a JSON sidecar (name, dataset, seed, parameters) and reloads
exactly.

>>> split = make_split("unseen_perturbation", adata, seed=0)
>>> split.save("splits/papalexi_unseen_seed0.csv")
>>> Split.load("splits/papalexi_unseen_seed0.csv").test_groups()

Generators (:data:`SPLITS`, :func:`list_splits`)
------------------------------------------------
``unseen_perturbation``
    A seeded fraction of the perturbation labels is held out in every covariate.
``covariate_transfer``
    One covariate value (cell type or line) is held out: its perturbed cells are the test part, its control
    cells and every other covariate are train (Kang 2018 cell types, McFaline-Figueroa glioma lines).
``combo_seen_singles``
    Combinations whose every single perturbation is seen in training (Norman 2019) are the test part.

A new generator is one function ``func(adata, seed=0, **params) -> Split`` decorated with
``@split_generator(name, description=..., hypothesis=...)`` in :mod:`vcclib.splits.core`.
"""

from vcclib.splits import hypotheses  # noqa: E402,F401  (registers the hypothesis splits)
from vcclib.splits.core import (
    COVARIATE_NONE,
    SPLITS,
    Split,
    SplitSpec,
    covariate_column,
    group_table,
    list_splits,
    make_split,
    split_generator,
)

__all__ = [
    "COVARIATE_NONE",
    "SPLITS",
    "Split",
    "SplitSpec",
    "covariate_column",
    "group_table",
    "list_splits",
    "make_split",
    "split_generator",
]
