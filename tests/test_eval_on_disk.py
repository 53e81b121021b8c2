"""On-disk (chunked) evaluation gives the in-memory numbers: pseudobulks, DE tables and metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from metrics_fixtures import CONTROL, make_pair

from vcclib.cli import main
from vcclib.metrics import evaluate
from vcclib.metrics.inputs import InputError

METRICS = [
    "mae",
    "pearson_delta",
    "discrimination_score_l1",
    "overlap_at_N",
    "precision_at_N",
    "de_nsig_counts_real",
    "de_nsig_counts_pred",
    "de_spearman_lfc_sig",
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ondisk")
    pred, real = make_pair(n_perts=7, n_genes=30)
    rng = np.random.default_rng(3)
    pred = pred[rng.permutation(pred.n_obs)].copy()  # cells out of group order: blocks mix groups
    real = real[rng.permutation(real.n_obs)].copy()
    pred = pred[(pred.obs["perturbation"] != "G7").to_numpy()].copy()  # a real perturbation left unpredicted
    pred.write_h5ad(folder / "pred.h5ad")
    real.write_h5ad(folder / "real.h5ad")
    return folder


@pytest.mark.parametrize("convention", ["cell-eval", "vcc2025"])
def test_chunks_give_the_in_memory_numbers(files, convention):
    pred, real = str(files / "pred.h5ad"), str(files / "real.h5ad")
    kwargs = dict(metrics=METRICS, de_convention=convention)
    with pytest.warns(UserWarning):
        memory = evaluate(pred, real, **kwargs)
    from vcclib.metrics.chunked import evaluate_on_disk

    with pytest.warns(UserWarning):
        disk = evaluate_on_disk(pred, real, chunk_cells=50, block_cells=37, **kwargs)  # 3 DE batches, 11 blocks
    pd.testing.assert_frame_equal(disk.results, memory.results, check_exact=True)
    pd.testing.assert_frame_equal(disk.agg, memory.agg, check_exact=True)
    pd.testing.assert_frame_equal(disk.de_real, memory.de_real, check_exact=True)
    pd.testing.assert_frame_equal(disk.de_pred, memory.de_pred, check_exact=True)


def test_dask_local_cluster_agrees(files):
    pytest.importorskip("dask.distributed")
    pred, real = str(files / "pred.h5ad"), str(files / "real.h5ad")
    with pytest.warns(UserWarning):
        memory = evaluate(pred, real, profile="vcc")
    with pytest.warns(UserWarning):
        disk = evaluate(pred, real, profile="vcc", on_disk=True, chunk_cells=60, scheduler="local")
    num = memory.results.columns[1:]
    np.testing.assert_allclose(disk.results[num], memory.results[num], rtol=1e-9, atol=1e-12)
    pd.testing.assert_frame_equal(
        disk.de_real[["target", "feature", "p_value"]], memory.de_real[["target", "feature", "p_value"]]
    )


def test_cell_level_metrics_and_bad_values_are_refused(files, tmp_path):
    pred, real = str(files / "pred.h5ad"), str(files / "real.h5ad")
    with pytest.raises(InputError, match="read every cell"):
        evaluate(pred, real, metrics=["pearson_edistance"], on_disk=True)
    import anndata as ad

    bad = ad.read_h5ad(pred)
    bad.X.data[5] = -1.0
    bad.write_h5ad(tmp_path / "bad.h5ad")
    with pytest.raises(InputError, match="prediction X"):
        evaluate(str(tmp_path / "bad.h5ad"), real, profile="vcc", on_disk=True)


def test_command_line_on_disk(files):
    out = files / "cli"
    code = main(
        [
            "eval",
            "-ap",
            str(files / "pred.h5ad"),
            "-ar",
            str(files / "real.h5ad"),
            "--control-pert",
            CONTROL,
            "--on-disk",
            "--chunk-cells",
            "80",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    mem = files / "cli_mem"
    assert main(["eval", "-ap", str(files / "pred.h5ad"), "-ar", str(files / "real.h5ad"), "-o", str(mem)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), pd.read_csv(mem / "results.csv"))
