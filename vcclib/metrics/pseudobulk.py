"""Cells grouped by perturbation, and their pseudobulks (means over cells), sparse-aware.

A sparse X is never densified or copied: one numba pass over its CSR rows (visited in group order) gives every
group's float64 pseudobulk and, in the same pass, the mean in X's own dtype that pdex computes for fold changes
(see :func:`vcclib.metrics._mwu_kernel.group_sums_csr`, which reproduces the arithmetic of the scipy calls, so
results are bit-identical to ``indicator @ X.astype(float64)`` and ``X[rows].mean(axis=0)``). Dense X uses the
indicator product. Only the (groups × genes) results are dense.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp


def as_float_matrix(X):
    """X as CSR (when sparse) or a C-ordered ndarray; float16 and integer data become float32/float64."""
    if sp.issparse(X):
        if not isinstance(X, sp.csr_matrix):
            X = sp.csr_matrix(X)  # a CSR matrix is kept as is (its canonical-format flag is then checked once)
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float32 if X.dtype == np.float16 else np.float64)
        if not X.has_canonical_format:  # sorted column indices, no duplicates: what the kernels read
            X = X.copy()
            X.sum_duplicates()
        return X
    X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float32 if X.dtype == np.float16 else np.float64)
    return X


def stack_rows(parts) -> sp.csr_matrix:
    """One canonical CSR matrix of the rows ``rows`` of each ``(X, rows)`` in ``parts``, in that order.

    Each X is sparse (made a canonical float CSR matrix by :func:`as_float_matrix`, a no-op for what
    :class:`GroupedCells` holds); the values take the first matrix's dtype. A run of consecutive rows is copied
    as one slice of the CSR arrays (no scipy row indexing, no ``sp.vstack``, which costs about a second at 30
    million stored values); other row sets are indexed by scipy.
    """
    indptr, indices, data = [np.zeros(1, dtype=np.int64)], [], []
    offset = 0
    dtype = None
    for X, rows in parts:
        X = as_float_matrix(sp.csr_matrix(X) if not sp.issparse(X) else X)
        dtype = dtype or X.dtype
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and rows[-1] - rows[0] == rows.size - 1 and np.all(np.diff(rows) == 1):
            lo, hi = X.indptr[rows[0]], X.indptr[rows[-1] + 1]
            ptr, idx, val = X.indptr[rows[0] : rows[-1] + 2] - lo, X.indices[lo:hi], X.data[lo:hi]
        else:
            sub = X[rows]
            ptr, idx, val = sub.indptr, sub.indices, sub.data
        indptr.append(ptr[1:].astype(np.int64) + offset)
        indices.append(idx)
        data.append(val.astype(dtype, copy=False))
        offset += int(ptr[-1])
    ptr = np.concatenate(indptr)
    index_dtype = np.int32 if offset < np.iinfo(np.int32).max else np.int64
    n_genes = parts[0][0].shape[1]
    out = sp.csr_matrix(
        (np.concatenate(data), np.concatenate(indices).astype(index_dtype, copy=False), ptr.astype(index_dtype)),
        shape=(ptr.size - 1, n_genes),
    )
    out.has_canonical_format = True
    return out


def group_codes(labels) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique labels and each cell's code into them."""
    labels = np.asarray(labels).astype(str)
    names, codes = np.unique(labels, return_inverse=True)
    return names, codes.astype(np.int64)


def indicator(codes: np.ndarray, n_groups: int, *, normalise: bool = True) -> sp.csr_matrix:
    """(groups × cells) matrix with 1/n_g (or 1) at each cell of group g."""
    n = codes.size
    counts = np.bincount(codes, minlength=n_groups).astype(np.float64)
    weights = 1.0 / counts[codes] if normalise else np.ones(n)
    return sp.csr_matrix((weights, (codes, np.arange(n))), shape=(n_groups, n))


def group_order(codes: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Cells sorted by group (ascending within a group) and the groups' offsets into that order."""
    order = np.argsort(codes, kind="stable").astype(np.int64)
    starts = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(codes, minlength=n_groups), out=starts[1:])
    return order, starts


def sparse_group_means(X, codes: np.ndarray, n_groups: int, order=None, starts=None):
    """(float64 means, means in X's dtype) per group of a sparse X, in one pass (see the module docstring)."""
    from vcclib.metrics._mwu_kernel import group_sums_csr

    X = as_float_matrix(X)
    if order is None:
        order, starts = group_order(codes, n_groups)
    sizes = np.diff(starts)
    with np.errstate(divide="ignore"):
        scale = (1.0 / np.maximum(sizes, 1)).astype(X.dtype)
    return group_sums_csr(X.indptr, X.indices, X.data, order, starts, X.shape[1], scale)


def group_means(X, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean of X's rows per group, float64, shape (groups × genes)."""
    if sp.issparse(X):
        return sparse_group_means(X, codes, n_groups)[0]
    M = indicator(codes, n_groups)
    return np.asarray(M @ np.asarray(X, dtype=np.float64))


def group_mean_var(X, codes: np.ndarray, n_groups: int, ddof: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per-group mean and variance (``ddof`` as in numpy), float64."""
    mean = group_means(X, codes, n_groups)
    if sp.issparse(X):
        Xsq = X.astype(np.float64).multiply(X.astype(np.float64)).tocsr()
    else:
        Xsq = np.asarray(X, dtype=np.float64) ** 2
    mean_sq = group_means(Xsq, codes, n_groups)
    n = np.bincount(codes, minlength=n_groups).astype(np.float64)[:, None]
    var = (mean_sq - mean**2) * n / np.maximum(n - ddof, 1)
    var[(n - ddof).ravel() <= 0] = np.nan
    return mean, np.maximum(var, 0)


@dataclass
class GroupedCells:
    """One AnnData's cells grouped by perturbation.

    Attributes
    ----------
    X
        CSR matrix or ndarray (cells × genes), log1p values.
    names
        Sorted group labels (control included).
    codes
        Each cell's index into ``names``.
    control
        The control label.
    """

    X: object
    names: np.ndarray
    codes: np.ndarray
    control: str
    _means: np.ndarray | None = field(default=None, repr=False)
    _rows: dict | None = field(default=None, repr=False)
    _native: np.ndarray | None = field(default=None, repr=False)
    _order: tuple | None = field(default=None, repr=False)

    @classmethod
    def from_labels(cls, X, labels, control: str) -> GroupedCells:
        names, codes = group_codes(labels)
        return cls(X=as_float_matrix(X), names=names, codes=codes, control=control)

    @property
    def control_index(self) -> int:
        return int(np.flatnonzero(self.names == self.control)[0])

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.codes, minlength=self.names.size)

    def order(self) -> tuple[np.ndarray, np.ndarray]:
        """(cells sorted by group, group offsets), see :func:`group_order`; cached."""
        if self._order is None:
            self._order = group_order(self.codes, self.names.size)
        return self._order

    def means(self) -> np.ndarray:
        """Pseudobulk (mean log1p) of every group, float64 (groups × genes); cached."""
        if self._means is None:
            if sp.issparse(self.X):
                self._means, self._native = sparse_group_means(self.X, self.codes, self.names.size, *self.order())
            else:
                self._means = group_means(self.X, self.codes, self.names.size)
        return self._means

    def set_means(self, means: np.ndarray) -> None:
        """Use ``means`` (groups × genes, float64) as the pseudobulks :meth:`means` returns, e.g. exact count sums
        over group sizes computed anyway (saves a pass over X)."""
        self._means = np.asarray(means, dtype=np.float64)

    def native_means(self) -> np.ndarray:
        """Mean of every group accumulated in X's own dtype as ``X[rows].mean(axis=0)`` (pdex); cached."""
        if self._native is None:
            if sp.issparse(self.X):
                _, self._native = sparse_group_means(self.X, self.codes, self.names.size, *self.order())
            else:
                X = self.X
                out = np.empty((self.names.size, X.shape[1]), dtype=X.dtype)
                for i, name in enumerate(self.names):
                    out[i] = np.asarray(X[self.rows(name)].mean(axis=0)).ravel()
                self._native = out
        return self._native

    def rows(self, label: str) -> np.ndarray:
        """Row indices of the cells of ``label``."""
        if self._rows is None:
            order, bounds = self.order()
            self._rows = {name: order[bounds[i] : bounds[i + 1]] for i, name in enumerate(self.names)}
        return self._rows[label]

    def cells(self, label: str, dense: bool = True) -> np.ndarray:
        """The cells of ``label`` (dense float64 by default)."""
        sub = self.X[self.rows(label)]
        if dense:
            return sub.toarray().astype(np.float64) if sp.issparse(sub) else np.asarray(sub, dtype=np.float64)
        return sub

    def mean_of(self, labels) -> np.ndarray:
        """Pseudobulks of ``labels`` in that order."""
        index = np.searchsorted(self.names, np.asarray(labels))
        return self.means()[index]
