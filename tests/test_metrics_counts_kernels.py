"""The raw-count (vcc2026) kernels against their plain numpy definitions, on adversarial inputs.

The sparse jackknife sums a power series for the zero counts instead of one logarithm per (cell, gene); the
dense definition (:func:`vcclib.metrics.counts.jackknife` on an ndarray, cell-eval2's arithmetic) is the truth.
Synthetic counts (said so: a method test against a known truth).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import scipy.sparse as sp

from vcclib.metrics import counts
from vcclib.metrics.pseudobulk import GroupedCells
from vcclib.metrics.vcc2026_de import TARGET_SUM, counts_de, cpm, cpm_factor


def _adversarial(rng, case: str) -> np.ndarray:
    n, g = int(rng.integers(2, 40)), int(rng.integers(1, 60))
    D = rng.poisson(rng.gamma(0.3, 3.0, size=(1, g)), size=(n, g)).astype(np.float64)
    if case == "dominant cell":
        D[0] *= 200
    elif case == "one cell holds every count":
        D[1:] = 0
        D[0, 0] += 1
    elif case == "constant gene":
        D[:, 0] = 7
    elif case == "empty cells":
        D[: n // 2] = 0
    elif case == "two cells":
        D = D[:2]
    elif case == "deep gene":
        D[:, -1] = rng.poisson(5000, size=D.shape[0])
    return D


CASES = [
    "plain",
    "dominant cell",
    "one cell holds every count",
    "constant gene",
    "empty cells",
    "two cells",
    "deep gene",
]


@pytest.mark.parametrize("case", CASES)
def test_sparse_jackknife_equals_the_dense_definition(case):
    rng = np.random.default_rng(zlib.crc32(case.encode()))  # str hash() differs between processes
    for _ in range(40):
        D = _adversarial(rng, case)
        rows = np.arange(D.shape[0])
        dense = counts.jackknife(D, rows)
        sparse = counts.jackknife(sp.csr_matrix(D), rows)
        assert sparse == pytest.approx(dense, rel=1e-11, abs=1e-12), (case, D.shape)


def test_sparse_jackknife_on_a_realistic_group_and_the_series_cut():
    rng = np.random.default_rng(7)
    D = rng.poisson(rng.gamma(0.3, 1.5, size=(1, 3000)), size=(300, 3000)).astype(np.float32)
    X = sp.csr_matrix(D)
    rows = np.arange(300)
    dense = counts.jackknife(D, rows)
    assert counts.jackknife(X, rows) == pytest.approx(dense, rel=1e-12)
    # every cell through the gene-by-gene path gives the same number
    assert counts.jackknife_sparse(X, rows, max_argument=0.0) == pytest.approx(dense, rel=1e-12)


@pytest.mark.parametrize("n_cells", [11, 12, 40])
def test_sparse_jackknife_where_every_cell_sits_at_the_series_cut(n_cells):
    """Equal cells: δ = 1/(n − 1), so with 11 cells every zero-count argument c_g·δ is just under the 0.1 cut
    and the series of each stored count's zero term needs its most terms; 12 and 40 cells need fewer."""
    rng = np.random.default_rng(n_cells)
    row = rng.poisson(rng.gamma(0.5, 4.0, size=200)).astype(np.float64)
    row[0] = 5000.0  # one dominant gene: c_max close to 1
    D = np.tile(row, (n_cells, 1))
    for i in range(1, n_cells, 2):  # the same library, its counts on other genes
        D[i, 1:] = rng.permutation(row[1:])
    lib = D.sum(axis=1)
    delta = lib / (lib.sum() - lib)
    x = counts.BULK_TARGET_SUM * D.sum(axis=0) / lib.sum()
    assert (delta * (x / (1 + x)).max()).max() <= counts.SERIES_MAX_ARGUMENT  # the series path, for every cell
    rows = np.arange(n_cells)
    assert counts.jackknife(sp.csr_matrix(D), rows) == pytest.approx(counts.jackknife(D, rows), rel=1e-12)


def test_group_sums_and_cpm_are_the_scipy_expressions_bit_for_bit():
    rng = np.random.default_rng(3)
    D = rng.poisson(0.4, size=(500, 300)).astype(np.float32)
    D[7] = 0  # a cell without counts stays zero
    X = sp.csr_matrix(D)
    codes = rng.integers(0, 6, 500)
    M = sp.csr_matrix((np.ones(500), (codes, np.arange(500))), shape=(6, 500))
    assert np.array_equal(counts.group_sums(X, codes, 6), (M @ X.astype(np.float64)).toarray())
    lib = D.astype(np.float64).sum(axis=1)
    factor = lib / TARGET_SUM
    factor = factor + (factor == 0)
    assert np.array_equal(cpm(X).toarray(), D.astype(np.float64) / factor[:, None])
    # the CPM group means from the counts and the factors, as group_means of the CPM matrix
    from vcclib.metrics._counts_kernel import scaled_group_means
    from vcclib.metrics.pseudobulk import group_means, group_order

    order, starts = group_order(codes, 6)
    got = scaled_group_means(X.indptr, X.indices, X.data, factor, order, starts, 300)
    assert np.array_equal(got, group_means(cpm(X), codes, 6))
    assert np.array_equal(X.toarray(), D)  # the input is left as it was


def test_rank_sums_of_scaled_counts_are_those_of_the_logged_cpm_matrix_bit_for_bit():
    """The DE ranks log1p(x / factor) computed as the kernel gathers the counts; cell-eval2 (scanpy) ranks
    numpy's log1p of the CPM matrix: any ulp of difference would change ties. Cells whose factors differ by a
    few ulps give CPM values that are distinct but whose log1p coincide (ties only in log space)."""
    from vcclib.metrics.de import rank_sums, rank_sums_against

    rng = np.random.default_rng(4)
    D = rng.poisson(rng.gamma(0.5, 4.0, size=(1, 60)), size=(400, 60)).astype(np.float32)
    codes = np.repeat(np.arange(5), 80)
    X, factor = cpm_factor(sp.csr_matrix(D))
    factor[1::2] = factor[::2] * (1 + 4e-16 * rng.integers(0, 8, 200))  # near-equal factors in pairs
    logged = sp.csr_matrix((np.log1p(X.data / np.repeat(factor, np.diff(X.indptr))), X.indices, X.indptr))
    assert np.unique(logged.data).size < np.unique(X.data / np.repeat(factor, np.diff(X.indptr))).size
    want = rank_sums(logged, codes, 5, 0)
    got = rank_sums(X, codes, 5, 0, factor=factor)
    assert all(np.array_equal(w, g) for w, g in zip(want, got))
    # against a second matrix, its group 0 left out: the other groups' statistics are those of the stack
    stacked = rank_sums(sp.vstack([logged, logged[:240]]).tocsr(), np.concatenate([codes, codes[:240] + 5]), 8, 0)
    U, T = rank_sums_against(X, codes, 5, 0, X[:240], codes[:240], 3, factors=(factor, factor[:240]), skip_other=0)
    assert np.array_equal(U[[1, 2, 3, 4, 6, 7]], stacked[0][[1, 2, 3, 4, 6, 7]])
    assert np.array_equal(T[[1, 2, 3, 4, 6, 7]], stacked[1][[1, 2, 3, 4, 6, 7]])
    assert not U[5].any() and not T[5].any()


def test_scaled_rank_sums_rank_numpys_log1p_not_libms():
    """The quotients are logged by numpy (cell-eval2 ranks numpy's log1p of the CPM matrix), not by libm as
    numba would: the statistics are those of the numpy-logged matrix bit for bit, on one thread or two. On a CPU
    where numpy's log1p is its AVX-512 code the two logs differ on some of these values, and the libm-logged
    matrix's statistics then differ from ours (on this machine's AVX-512 CPU: 47 of 6,679 values, U by up to
    0.5); where numpy calls libm they coincide and that half of the check is skipped."""
    import math

    import numba

    from vcclib.metrics import de

    rng = np.random.default_rng(5)
    D = rng.poisson(rng.gamma(0.5, 4.0, size=(1, 40)), size=(300, 40)).astype(np.float32)
    codes = np.repeat(np.arange(3), 100)
    X, factor = cpm_factor(sp.csr_matrix(D))
    factor[1::2] = factor[::2] * (1 + 4e-16 * rng.integers(0, 8, 150))  # ties only in log space, as above
    quotients = X.data / np.repeat(factor, np.diff(X.indptr))

    def ranked(logged):
        return de.rank_sums(sp.csr_matrix((logged, X.indices, X.indptr), shape=X.shape), codes, 3, 0)

    want = ranked(np.log1p(quotients))
    threads = numba.get_num_threads()
    for n in {1, threads}:
        numba.set_num_threads(n)
        try:
            got = de.rank_sums(X, codes, 3, 0, factor=factor)
        finally:
            numba.set_num_threads(threads)
        assert all(np.array_equal(w, g) for w, g in zip(want, got))
    U, T = de.rank_sums_against(X, codes, 3, 0, X[:100], codes[:100], 1, factors=(factor, factor[:100]))
    assert np.array_equal(U[:3], want[0]) and np.array_equal(T[:3], want[1])
    libm = np.array([math.log1p(q) for q in quotients])
    if np.array_equal(libm, np.log1p(quotients)):
        pytest.skip("numpy's log1p is libm's on this CPU: the two logs cannot be told apart here")
    assert not all(np.array_equal(w, g) for w, g in zip(ranked(libm), got))


def test_rank_sums_do_not_depend_on_how_many_genes_are_gathered_at_a_time(monkeypatch):
    """The gather width is bounded by bytes (:func:`vcclib.metrics.de.gather_chunk`); ranking 16 genes at a
    time, the floor, gives the statistics of ranking all of them in one gather, raw and scaled alike."""
    from vcclib.metrics import de

    rng = np.random.default_rng(6)
    D = rng.poisson(rng.gamma(0.5, 4.0, size=(1, 300)), size=(500, 300)).astype(np.float32)
    codes = np.repeat(np.arange(5), 100)
    X, factor = cpm_factor(sp.csr_matrix(D))
    col_nnz = np.diff(sp.csc_matrix(X).indptr)
    assert de.gather_chunk(col_nnz, 8) == de.GATHER_CHUNK  # these genes fit in one gather's bytes
    assert de.gather_chunk(np.full(300, 1 << 22), 8) == 16  # a gene of 4M stored values: the floor
    whole = de.rank_sums(X, codes, 5, 0), de.rank_sums(X, codes, 5, 0, factor=factor)
    monkeypatch.setattr(de, "GATHER_BYTES", 1)
    narrow = de.rank_sums(X, codes, 5, 0), de.rank_sums(X, codes, 5, 0, factor=factor)
    for w, n in zip(whole, narrow):
        assert np.array_equal(w[0], n[0]) and np.array_equal(w[1], n[1])


@pytest.mark.parametrize("spacing", ["spread", "some share the top bits", "all share the top bits"])
def test_rank_sums_of_float64_values_are_scipys(spacing):
    """The radix sort of 64-bit keys over all six digits: values apart only in their last mantissa bits are
    told apart, exact ties are ties, and U and the tie term equal scipy's."""
    from scipy.stats import mannwhitneyu, rankdata

    from vcclib.metrics.de import rank_sums

    rng = np.random.default_rng(7)
    n_cells, n_genes = 240, 12
    if spacing == "spread":
        D = rng.lognormal(0.0, 1.0, size=(n_cells, n_genes))
    elif spacing == "some share the top bits":  # pairs 2^-40 apart, besides exact ties
        D = rng.integers(1, 30, size=(n_cells, n_genes)) * (1.0 + 2.0**-40 * rng.integers(0, 2, (n_cells, n_genes)))
    else:  # every value within 2^-28 of 1: distinct in the low digits only
        D = 1.0 + 2.0**-40 * rng.permutation(n_cells * n_genes).reshape(n_cells, n_genes)
    D[rng.random(D.shape) < 0.3] = 0.0
    codes = np.repeat(np.arange(4), 60)
    U, T = rank_sums(sp.csr_matrix(D), codes, 4, 0)
    for g in (1, 2, 3):
        for j in range(n_genes):
            x, y = D[codes == g, j], D[codes == 0, j]
            assert U[g, j] == mannwhitneyu(x, y).statistic
            _, t = np.unique(rankdata(np.concatenate([x, y])), return_counts=True)
            assert T[g, j] == float((t**3 - t).sum())


def test_mwu_pvalues_are_numba_mwus_bit_for_bit():
    """The p-values are those of numba-mwu (pdex's engine, behind both peers' DE) for the same U and tie terms,
    bit for bit, down to p ≈ 1e-226; a tie term that leaves no variance, or one cell against one, gives 1."""
    numba_mwu = pytest.importorskip("numba_mwu._core")
    from vcclib.metrics.de import mwu_pvalues

    rng = np.random.default_rng(1)
    n1, n2 = rng.integers(2, 400, 40).astype(float), 3000.0
    U = np.round(rng.uniform(0, 1, (40, 300)) * (n1[:, None] * n2) * 2) / 2  # halves: R1 = U + n1(n1+1)/2 exact
    T = np.round(rng.uniform(0, 1e6, (40, 300)))
    got = mwu_pvalues(U, T, n1, n2)
    stats = numba_mwu._mwu_stats_from_rank_sum
    want = [
        [stats(U[i, j] + n1[i] * (n1[i] + 1) / 2, n1[i], n2, T[i, j], True, 0)[1] for j in range(300)]
        for i in range(40)
    ]
    assert np.array_equal(got, np.array(want)) and got.min() < 1e-200
    n = n1[0] + n2
    flat = mwu_pvalues(np.full((1, 1), n1[0] * n2 / 2), np.full((1, 1), n**3 - n), n1[:1], n2)  # one tie group
    assert flat[0, 0] == 1.0 and mwu_pvalues(np.zeros((1, 1)), np.zeros((1, 1)), [1], 0.0)[0, 0] == 1.0


def test_counts_de_ranks_only_what_the_kept_genes_need():
    """Ranking every gene and then keeping the > 5 CPM ones gives the table of ranking the kept columns alone."""
    from vcclib.metrics.de import mwu_pvalues, rank_sums

    rng = np.random.default_rng(5)
    D = rng.poisson(rng.gamma(0.3, 1.5, size=(1, 400)), size=(600, 400)).astype(np.float32)
    labels = np.array(["ctrl"] * 200 + [f"P{i % 4}" for i in range(400)])
    cells = GroupedCells.from_labels(sp.csr_matrix(D), labels, "ctrl")
    de = counts_de(cells, [f"g{i}" for i in range(400)])
    assert 0 < de.kept.size < 400
    logged = cpm(cells.X)[:, de.kept]
    logged.data = np.log1p(logged.data)
    U, T = rank_sums(sp.csr_matrix(logged), cells.codes, cells.names.size, cells.control_index, *cells.order())
    keep = np.flatnonzero(cells.names != "ctrl")
    p = mwu_pvalues(U[keep], T[keep], cells.sizes[keep], float(cells.sizes[cells.control_index]))
    assert np.array_equal(de.p_value, p)


def test_jackknife_of_every_group_in_one_kernel_call_equals_each_group_alone():
    """jackknife_groups on a sparse X (one parallel kernel over all groups, order unsorted within groups, a
    group of one cell, an empty group, a subset of groups) gives the dense definition group by group."""
    rng = np.random.default_rng(11)
    D = rng.poisson(rng.gamma(0.3, 2.0, size=(1, 80)), size=(130, 80)).astype(np.float32)
    D[5] *= 300  # a dominant cell: its group takes the gene-by-gene path for that cell
    codes = np.concatenate([np.zeros(60, int), np.ones(1, int), np.full(69, 3)])  # group 2 is empty
    rng.shuffle(codes)
    order = np.concatenate([rng.permutation(np.flatnonzero(codes == g)) for g in range(4)])
    starts = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=4))])
    X = sp.csr_matrix(D)
    got = counts.jackknife_groups(X, order, starts)
    want = np.array([counts.jackknife(D, np.flatnonzero(codes == g)) for g in range(4)])
    assert got[1] == 0.0 and got[2] == 0.0
    assert got == pytest.approx(want, rel=1e-11, abs=1e-12)
    subset = counts.jackknife_groups(X, order, starts, groups=[3])
    assert subset[3] == got[3] and subset[0] == 0.0


def test_counts_de_pair_equals_the_stacked_tables_bit_for_bit():
    """One rank-sum pass over the real and the predicted matrix (read in place) gives exactly the tables of the
    real cells alone and of the prediction stacked onto the real control cells (the path it replaces), also with
    the prediction's controls interleaved among its cells, in another label order and with 64-bit indices; and
    so does the pass over the real control cells alone (what the baseline's context ranks)."""
    from vcclib.metrics.evaluate import with_real_controls
    from vcclib.metrics.vcc2026 import _control_only
    from vcclib.metrics.vcc2026_de import counts_de_pair

    rng = np.random.default_rng(11)
    genes = [f"g{i}" for i in range(300)]
    D = rng.poisson(rng.gamma(0.3, 1.5, size=(1, 300)), size=(500, 300)).astype(np.float32)
    real = GroupedCells.from_labels(
        sp.csr_matrix(D), np.array(["ctrl"] * 150 + [f"P{i % 5}" for i in range(350)]), "ctrl"
    )
    E = rng.poisson(rng.gamma(0.3, 1.5, size=(1, 300)), size=(420, 300)).astype(np.float32)
    E[:, 7] = 3  # a gene tied everywhere in the prediction
    pred_X = sp.csr_matrix(E)
    pred_X.indices, pred_X.indptr = pred_X.indices.astype(np.int64), pred_X.indptr.astype(np.int64)
    pred_labels = np.array([("ctrl" if i % 6 == 0 else f"P{(i * 7) % 5}") for i in range(420)])
    pred = GroupedCells.from_labels(pred_X, pred_labels, "ctrl")
    de_real, de_pred = counts_de_pair(pred, real, genes)
    _, against_controls = counts_de_pair(pred, _control_only(real), genes)  # the baseline context's path
    alone, stacked = counts_de(real, genes), counts_de(with_real_controls(pred, real), genes)
    for ours, truth in ((de_real, alone), (de_pred, stacked), (against_controls, stacked)):
        assert np.array_equal(ours.targets, truth.targets) and np.array_equal(ours.kept, truth.kept)
        for name in ("p_value", "p_adj", "log2_fold_change", "target_mean", "ref_mean"):
            assert np.array_equal(getattr(ours, name), getattr(truth, name), equal_nan=True), name
