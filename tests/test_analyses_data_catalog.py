"""Tests of :mod:`vcclib.analyses.data_catalog` (the catalog chapter's rules, records and conclusions).

Synthetic gene sets with a known answer (one genome-wide library of 6,000 genes, three focused screens whose
overlaps are fixed by construction), a hand-made catalog table, and a small AnnData in the project schema; one
test reads the real Papalexi data from the mirror.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

from vcclib.analyses.data_catalog import (
    GENOME_WIDE,
    availability_counts,
    cells_per_perturbation,
    chapter_records,
    conclusions,
    focused_pairs,
    genome_wide_datasets,
    shared_targets,
)
from vcclib.data.summary import overlap_long


@pytest.fixture()
def gene_sets() -> dict[str, set[str]]:
    return {
        "genome_wide": {f"G{i}" for i in range(6000)},
        "screen_a": {f"G{i}" for i in range(0, 40)},
        "screen_b": {f"G{i}" for i in range(25, 60)},  # shares G25–G39 (15 genes) with screen_a
        "screen_c": {"G100", "G101", "X1"},  # shares nothing with a or b
    }


def _focus() -> AnnData:
    labels = ["ctrl"] * 50 + ["G0"] * 10 + ["G1"] * 20 + ["G30"] * 30
    obs = pd.DataFrame(
        {"perturbation": labels, "is_control": [x == "ctrl" for x in labels]},
        index=[f"c{i}" for i in range(len(labels))],
    )
    adata = AnnData(np.zeros((len(labels), 5), dtype=np.float32), obs=obs)
    adata.uns["vcc"] = {"dataset": "screen_a", "control_label": "ctrl", "x_scale": "log1p", "normalisation": "1e4"}
    return adata


def _catalog() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset": ["a", "b", "c", "d"],
            "modality": ["perturb-seq", "perturb-seq", "fitness", "perturb-seq"],
            "availability": ["mirror", "cache", "download", "download"],
            "size_mb": [10.0, 5.5, 1000.0, 2500.0],
        }
    )


def test_genome_wide_threshold_and_focused_pairs(gene_sets):
    assert genome_wide_datasets(gene_sets) == ["genome_wide"]
    assert GENOME_WIDE == 5000
    pairs = overlap_long(gene_sets)
    focused = focused_pairs(pairs)
    assert len(focused) == 3  # the three pairs among screens a, b, c
    top = focused.iloc[0]
    assert (top["dataset_a"], top["dataset_b"], top["shared"]) == ("screen_a", "screen_b", 15)
    assert not focused[["dataset_a", "dataset_b"]].isin(["genome_wide"]).any().any()


def test_availability_counts_orders_columns_and_counts():
    counts = availability_counts(_catalog())
    assert list(counts.columns) == ["mirror", "cache", "download"]
    assert counts.loc["perturb-seq"].tolist() == [1, 1, 1] and counts.loc["fitness", "download"] == 1


def test_records_and_conclusions_from_a_known_catalog(gene_sets):
    focus = _focus()
    genes = {"G0", "G1", "G30"}
    shared = shared_targets(genes, gene_sets, "screen_a")
    assert shared.set_index("dataset")["shared"].to_dict() == {"genome_wide": 3, "screen_b": 1, "screen_c": 0}
    records = chapter_records(
        _catalog(), gene_sets, overlap_long(gene_sets), focus, genes, shared, device="device: cpu"
    )
    assert records["n_embedded"] == 2 and records["embedded_mb"] == pytest.approx(15.5)
    assert records["download_gb"] == pytest.approx(3.5)
    assert records["focus"]["median_cells_per_perturbation"] == 20 and records["focus"]["n_control"] == 50
    assert records["n_focused_pairs_few_shared"] == 2
    text = "\n".join(conclusions(records).points)
    assert "**4 datasets**: **2 embedded** (16 MB" in text and "(4 GB declared)" in text
    assert "`screen_a` and `screen_b`: 15 shared perturbed genes (Jaccard 0.25); 2 of the other 2" in text
    assert "Genome-wide libraries (≥ 5,000 perturbed genes: genome_wide)" in text
    assert "110 cells over 3 perturbations and 50 control cells" in text
    assert "genome_wide 3, screen_b 1, screen_c 0" in text


@pytest.mark.mirror
def test_cells_per_perturbation_on_real_papalexi(papalexi):
    cells = cells_per_perturbation(papalexi)
    assert cells["n_cells"].sum() == papalexi.n_obs
    assert cells.iloc[0]["perturbation"] == papalexi.uns["vcc"]["control_label"]  # controls are the largest group


def test_quietly_drops_progress_bars_and_keeps_other_stderr_as_warnings():
    import sys
    import warnings

    from vcclib.analyses.quiet import quietly

    def noisy():
        sys.stderr.write("catalog:  50%|█████     | 2/4 [00:01<00:01,  1.2dataset/s]\r")
        sys.stderr.write("something real happened\n")
        return 7

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert quietly(noisy) == 7
    assert [str(w.message) for w in caught] == ["something real happened"]
