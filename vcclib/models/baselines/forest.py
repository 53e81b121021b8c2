"""A fitted scikit-learn random forest (regression) as plain arrays: predicts the same numbers, stores safely.

scikit-learn persists estimators with pickle only. The random-forest baseline instead keeps each tree's node
arrays (children, split feature, threshold, missing-value direction, leaf values) and predicts by walking them,
with scikit-learn's arithmetic: features cast to float32, ``x <= threshold`` compared in float64, the trees'
leaf values summed in tree order in float64 and divided by the number of trees. The result equals
``RandomForestRegressor.predict`` bit for bit (tested). Identical leaf-value rows (a leaf that holds one training
perturbation has that perturbation's Δ) are stored once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

_LEAF = -1


@dataclass(frozen=True)
class ForestArrays:
    """The trees of a fitted ``RandomForestRegressor``, flattened.

    Attributes
    ----------
    offsets
        ``offsets[t]:offsets[t + 1]`` are tree ``t``'s nodes in the arrays below.
    left, right
        Children of each node (tree-local positions; -1 at a leaf).
    feature, threshold, missing_left
        The split of each internal node: go left when ``x[feature] <= threshold`` (NaN: when ``missing_left``).
    leaf_row
        Each leaf's row in ``values`` (-1 at internal nodes).
    values
        Distinct leaf predictions (rows × outputs).
    """

    offsets: np.ndarray
    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    leaf_row: np.ndarray
    values: np.ndarray
    n_features: int

    @classmethod
    def from_sklearn(cls, forest) -> ForestArrays:
        """The arrays of a fitted :class:`sklearn.ensemble.RandomForestRegressor`."""
        trees = [estimator.tree_ for estimator in forest.estimators_]
        sizes = [tree.node_count for tree in trees]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        left = np.concatenate([tree.children_left for tree in trees]).astype(np.int64)
        right = np.concatenate([tree.children_right for tree in trees]).astype(np.int64)
        feature = np.concatenate([tree.feature for tree in trees]).astype(np.int64)
        threshold = np.concatenate([tree.threshold for tree in trees]).astype(np.float64)
        missing = np.concatenate(
            [np.asarray(getattr(tree, "missing_go_to_left", np.zeros(tree.node_count))) for tree in trees]
        ).astype(bool)
        values = np.concatenate([tree.value[:, :, 0] for tree in trees]).astype(np.float64)
        is_leaf = left == _LEAF
        unique, rows = np.unique(values[is_leaf], axis=0, return_inverse=True)
        leaf_row = np.full(len(left), -1, dtype=np.int64)
        leaf_row[is_leaf] = rows.ravel()
        return cls(offsets, left, right, feature, threshold, missing, leaf_row, unique, int(forest.n_features_in_))

    @property
    def n_trees(self) -> int:
        """The number of trees in the forest."""
        return len(self.offsets) - 1

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The forest's prediction for the rows of ``X`` (samples × outputs, float64)."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"the forest was fitted on {self.n_features} features, got X of shape {X.shape}")
        rows = np.arange(len(X))
        total = np.zeros((len(X), self.values.shape[1]), dtype=np.float64)
        for t in range(self.n_trees):
            start = self.offsets[t]
            node = np.zeros(len(X), dtype=np.int64)
            while True:
                at = start + node
                active = self.left[at] != _LEAF
                if not active.any():
                    break
                at_active = at[active]
                x = X[rows[active], self.feature[at_active]]
                go_left = np.where(np.isnan(x), self.missing_left[at_active], x <= self.threshold[at_active])
                node[active] = np.where(go_left, self.left[at_active], self.right[at_active])
            total += self.values[self.leaf_row[start + node]]
        total /= self.n_trees
        return total

    def to_state(self) -> dict[str, Any]:
        """The arrays as a dict (for :mod:`vcclib.models.storage`)."""
        return {
            "offsets": self.offsets,
            "left": self.left,
            "right": self.right,
            "feature": self.feature,
            "threshold": self.threshold,
            "missing_left": self.missing_left,
            "leaf_row": self.leaf_row,
            "values": self.values,
            "n_features": self.n_features,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ForestArrays:
        """The forest :meth:`to_state` described."""
        return cls(**{key: state[key] for key in cls.__dataclass_fields__})
