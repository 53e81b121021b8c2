"""lamindb catalog: register -> query -> load round trip, idempotent, offline, nothing in the home directory."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import PROJECT, run_vcc

pytestmark = pytest.mark.mirror

ROUND_TRIP = r"""
import json
from vcclib.data import catalog
ln = catalog.connect()  # opens the project instance (settings kept in the cache)
before = (ln.Artifact.filter().count(), ln.ULabel.filter().count(), ln.Feature.filter().count())
again = catalog.register("papalexi2021_eccite_lowmoi")
after = (ln.Artifact.filter().count(), ln.ULabel.filter().count(), ln.Feature.filter().count())
stat1 = sorted(catalog.query(perturbed_gene="STAT1")["dataset_id"])
thp1_ko = sorted(catalog.query(perturbation_type="CRISPRko", cell_line="THP-1")["dataset_id"])
cytokine = sorted(catalog.query(perturbation_type="cytokine")["dataset_id"])
adata = catalog.load_registered("papalexi2021_eccite_lowmoi")
table = catalog.load_registered("grn_trrust_v2")
values = again.features.get_values()
print(json.dumps({"before": before, "after": after, "stat1": stat1, "thp1_ko": thp1_ko, "cytokine": cytokine,
                  "shape": list(adata.shape), "control": adata.uns["vcc"]["control_label"],
                  "n_cells": values["n_cells"], "n_perturbations": values["n_perturbations"],
                  "table_files": sorted(p.name for p in table.iterdir())}))
"""


def test_register_query_load_round_trip(isolated_env, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    isolated_env["HOME"] = str(home)
    registered = run_vcc(["data", "register", "papalexi2021_eccite_lowmoi", "kang2018_ifnb_pbmc", "grn_trrust_v2"], isolated_env)
    assert registered.returncode == 0, registered.stderr
    completed = subprocess.run([sys.executable, "-c", ROUND_TRIP], cwd=PROJECT, env=isolated_env,
                               capture_output=True, text=True, timeout=300)  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["before"] == result["after"]  # registering twice changes nothing
    assert result["stat1"] == ["papalexi2021_eccite_lowmoi"]
    assert result["thp1_ko"] == ["papalexi2021_eccite_lowmoi"]
    assert result["cytokine"] == ["kang2018_ifnb_pbmc"]
    assert result["shape"] == [20729, 299] and result["control"] == "non-targeting"
    assert result["n_cells"] == 20729 and result["n_perturbations"] == 25
    assert result["table_files"] == ["trrust_rawdata.human.tsv"]
    query = run_vcc(["data", "query", "perturbed_gene=JAK2"], isolated_env)
    assert "papalexi2021_eccite_lowmoi" in query.stdout
    # the catalog and every tool's state stayed inside the configured cache
    assert list(home.iterdir()) == []
    assert (tmp_path / "cache" / "catalog" / "storage").is_dir()
