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
import pertdb
ln_stat1 = sorted(ln.Artifact.filter(genetic_perturbations__targets__name="STAT1").distinct().values_list("key", flat=True))
k562_drugs = sorted(catalog.query(perturbation_kind="compound", cell_line="K562")["dataset_id"])
belinostat = sorted(catalog.query(compound="Belinostat (PXD101)")["dataset_id"])
ubl5 = sorted(catalog.query(perturbed_gene="UBL5")["dataset_id"])
sig_row = catalog.registered().set_index("dataset_id").loc["replogle2022_signatures"]
sig_folder = catalog.load_registered("replogle2022_signatures")
n_targets = pertdb.PerturbationTarget.filter().count()
print(json.dumps({"before": before, "after": after, "stat1": stat1, "thp1_ko": thp1_ko, "cytokine": cytokine,
                  "shape": list(adata.shape), "control": adata.uns["vcc"]["control_label"],
                  "n_cells": values["n_cells"], "n_perturbations": values["n_perturbations"],
                  "table_files": sorted(p.name for p in table.iterdir()), "ln_stat1": ln_stat1,
                  "k562_drugs": k562_drugs, "belinostat": belinostat, "ubl5": ubl5,
                  "sig_genes": len(sig_row["perturbed_gene"]), "sig_files": sorted(p.name for p in sig_folder.iterdir()),
                  "n_targets": n_targets}))
"""


def test_register_query_load_round_trip(isolated_env, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    isolated_env["HOME"] = str(home)
    registered = run_vcc(
        [
            "data",
            "register",
            "papalexi2021_eccite_lowmoi",
            "kang2018_ifnb_pbmc",
            "grn_trrust_v2",
            "replogle2022_signatures",
            "sciplex2020_signatures",
        ],
        isolated_env,
    )
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
    # typed pertdb records: genetic perturbations with targets, compounds
    assert result["ln_stat1"] == ["datasets/papalexi2021_eccite_lowmoi.h5ad"]
    assert result["k562_drugs"] == ["sciplex2020_signatures"] and result["belinostat"] == ["sciplex2020_signatures"]
    assert result["ubl5"] == ["replogle2022_signatures"] and result["sig_genes"] == 585
    assert result["sig_files"] == ["perturbseq.k562.rda", "perturbseq.rpe1.rda"]
    assert result["n_targets"] >= 25 + 585 - 5  # Papalexi targets + Replogle knockdowns (a few shared)
    query = run_vcc(["data", "query", "perturbed_gene=JAK2"], isolated_env)
    assert "papalexi2021_eccite_lowmoi" in query.stdout
    # the catalog and every tool's state stayed inside the configured cache
    assert list(home.iterdir()) == []
    assert (tmp_path / "cache" / "catalog" / "storage").is_dir()


GASPERINI = r"""
import json
from vcclib.data import catalog
from vcclib.data.schema import is_multi_guide
catalog.register("gasperini2019_highmoi")
row = catalog.registered().set_index("dataset_id").loc["gasperini2019_highmoi"]
adata = catalog.load_registered("gasperini2019_highmoi")
print(json.dumps({"cox4i1": sorted(catalog.query(perturbed_gene="COX4I1")["dataset_id"]),
                  "regions": len(row["perturbed_region"]), "genes": sorted(row["perturbed_gene"]),
                  "n_perturbations": int(row["n_perturbations"]), "shape": list(adata.shape),
                  "multi": is_multi_guide(adata), "grna_obsm": list(adata.obsm["grna_assigned"].shape),
                  "several": int((adata.obs["n_perturbations"] > 1).sum())}))
"""


@pytest.mark.slow
def test_gasperini_round_trip_keeps_every_grna(isolated_env):
    completed = subprocess.run([sys.executable, "-c", GASPERINI], cwd=PROJECT, env=isolated_env,
                               capture_output=True, text=True, timeout=600)  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["cox4i1"] == ["gasperini2019_highmoi"]
    assert result["regions"] == 15 and len(result["genes"]) == 10 and result["n_perturbations"] == 25
    assert result["shape"] == [40000, 341] and result["multi"] and result["grna_obsm"] == [40000, 75]
    assert result["several"] == 370
