"""Network inference: arboreto on our own Dask graph equals arboreto's own path, survives a killed worker, runs on
an existing cluster by address; the correlation and RegDiffusion peers; bad input refused."""

from __future__ import annotations

import os
import signal

import numpy as np
import pandas as pd
import pytest

from vcclib.grn.cluster import dask_client
from vcclib.grn.inference import (
    EDGE_COLUMNS,
    Expression,
    GrnInputError,
    arboreto_default_path,
    arboreto_network,
    control_expression,
    correlation_network,
    infer_network,
)


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster with two process workers, shared by the tests of this module."""
    import logging

    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
    ) as local:
        yield local


@pytest.fixture(scope="module")
def client(cluster):
    with dask_client(scheduler_address=cluster.scheduler_address) as connected:
        yield connected


@pytest.fixture(scope="module")
def papalexi_controls(papalexi):
    """150 Papalexi control cells, the 40 most variable genes, Lambert TFs among them (real mirror data)."""
    from vcclib.grn.propagation import lambert_tfs

    return control_expression(papalexi, lambert_tfs(), max_cells=150, max_genes=40, seed=0)


def synthetic(n_cells=200, seed=0) -> Expression:
    """Synthetic truth: TF_A drives G1 up, TF_B drives G2 down, G3 is noise."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n_cells), rng.normal(size=n_cells)
    g1 = 2 * a + 0.1 * rng.normal(size=n_cells)
    g2 = -2 * b + 0.1 * rng.normal(size=n_cells)
    g3 = rng.normal(size=n_cells)
    X = np.column_stack([a, b, g1, g2, g3]).astype(np.float32)
    return Expression(X=X, genes=("TF_A", "TF_B", "G1", "G2", "G3"), regulators=("TF_A", "TF_B"))


def wide_synthetic(n_cells=120, n_targets=40, seed=0) -> Expression:
    """Synthetic truth for the Dask-path tests: 4 TFs, each target a noisy linear mix of two of them."""
    rng = np.random.default_rng(seed)
    tfs = rng.normal(size=(n_cells, 4))
    mix = rng.normal(size=(4, n_targets)) * (rng.random((4, n_targets)) < 0.5)
    targets = tfs @ mix + 0.3 * rng.normal(size=(n_cells, n_targets))
    genes = tuple(f"TF{i}" for i in range(4)) + tuple(f"G{j}" for j in range(n_targets))
    return Expression(X=np.column_stack([tfs, targets]).astype(np.float32), genes=genes, regulators=genes[:4])


def test_own_graph_equals_arboreto_default_path_on_synthetic_data(client):
    """Fast parity check of the Dask path (synthetic data): the same links as arboreto's own graph."""
    data = wide_synthetic(n_targets=12)
    ours = arboreto_network(data, "grnboost2", seed=5, client=client)
    theirs = arboreto_default_path(data, "grnboost2", seed=5, client_or_address=client)
    assert len(ours) > 12
    pd.testing.assert_frame_equal(ours, theirs)


def test_killed_worker_on_synthetic_data_gives_the_same_network(client):
    """Fast worker-robustness check (synthetic data): a worker killed after the first targets finish is replaced
    and the network is unchanged."""
    _kill_mid_run_and_compare(client, wide_synthetic(), "genie3", n_estimators=30)


def _kill_mid_run_and_compare(client, expression, method, **kwargs):
    reference = arboreto_network(expression, method, seed=3, client=client, **kwargs)
    pids = client.run(os.getpid)
    victim = sorted(pids)[0]
    killed: dict[str, int] = {}

    def kill_one(done: int, total: int) -> None:
        if done == 2 and not killed:
            os.kill(pids[victim], signal.SIGKILL)
            killed["done"], killed["total"] = done, total

    again = arboreto_network(expression, method, seed=3, client=client, progress=kill_one, **kwargs)
    assert killed and killed["done"] < killed["total"]
    client.wait_for_workers(2, timeout=120)
    assert pids[victim] not in set(client.run(os.getpid).values())  # the worker really died and was replaced
    pd.testing.assert_frame_equal(reference, again)


@pytest.mark.slow
@pytest.mark.mirror
def test_own_graph_equals_arboreto_default_path(client, papalexi_controls):
    ours = arboreto_network(papalexi_controls, "grnboost2", seed=7, client=client)
    theirs = arboreto_default_path(papalexi_controls, "grnboost2", seed=7, client_or_address=client)
    assert list(ours.columns) == list(EDGE_COLUMNS)
    assert len(ours) > 100
    pd.testing.assert_frame_equal(ours, theirs)


@pytest.mark.slow
@pytest.mark.mirror
def test_killed_worker_mid_run_gives_the_same_network(client, papalexi_controls):
    _kill_mid_run_and_compare(client, papalexi_controls, "grnboost2")


def test_grnboost2_and_genie3_recover_synthetic_truth(client):
    data = synthetic()
    for method, kwargs in (("grnboost2", {}), ("genie3", {"n_estimators": 50})):
        edges = infer_network(data, method, seed=0, client=client, cache=False, **kwargs)
        top = edges.sort_values("importance", ascending=False).groupby("target").head(1).set_index("target")
        assert top.loc["G1", "regulator"] == "TF_A" and top.loc["G1", "sign"] == 1
        assert top.loc["G2", "regulator"] == "TF_B" and top.loc["G2", "sign"] == -1
        assert edges.attrs["method"] == method and not edges.attrs["cached"]


def test_cache_returns_the_same_table():
    data = synthetic(seed=1)
    first = infer_network(data, "correlation")
    second = infer_network(data, "correlation")
    assert second.attrs["cached"] and not first.attrs["cached"]
    pd.testing.assert_frame_equal(first, second)


def test_correlation_network_is_signed_pearson():
    data = synthetic()
    edges = correlation_network(data).set_index(["regulator", "target"])
    r = np.corrcoef(data.X[:, 1], data.X[:, 3])[0, 1]
    assert edges.loc[("TF_B", "G2"), "importance"] == pytest.approx(abs(r), rel=1e-6)
    assert edges.loc[("TF_B", "G2"), "sign"] == -1
    assert ("TF_A", "TF_A") not in edges.index


def test_regdiffusion_is_seeded_and_shaped():
    pytest.importorskip("regdiffusion")
    data = synthetic(n_cells=160)
    one = infer_network(data, "regdiffusion", seed=0, n_steps=30, cache=False)
    two = infer_network(data, "regdiffusion", seed=0, n_steps=30, cache=False)
    pd.testing.assert_frame_equal(one, two)
    assert set(one["regulator"]) <= {"TF_A", "TF_B"} and (one["importance"] > 0).all()


@pytest.mark.mirror
def test_control_expression_refuses_bad_input(papalexi):
    with pytest.raises(GrnInputError, match="TF list"):
        control_expression(papalexi, ["NOT_A_GENE"])
    with pytest.raises(GrnInputError, match="control cells"):
        control_expression(papalexi[:10], ["STAT1"])
    with pytest.raises(GrnInputError, match="no cell_line"):
        control_expression(_without_covariate(papalexi), ["STAT1"], covariate="THP-1")
    with pytest.raises(KeyError, match="no network method"):
        infer_network(synthetic(), "aracne")


def _without_covariate(adata):
    out = adata[:200].copy()
    del out.obs["cell_line"]
    return out


def test_unreachable_scheduler_is_a_one_line_error():
    from vcclib.grn.cluster import ClusterError

    with pytest.raises(ClusterError, match="cannot start"):
        with dask_client(scheduler_address="tcp://127.0.0.1:1", timeout="2s"):
            pass
