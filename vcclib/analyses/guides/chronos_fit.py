"""Fit Chronos (crispr-chronos) on the Chronos sample read counts: run *inside the Chronos environment*.

This file imports neither vcclib nor anything outside that environment: :mod:`vcclib.analyses.guides.chronos`
runs it as ``<chronos env>/bin/python chronos_fit.py config.json`` and reads back the files it writes. The JSON
config names the inputs and settings::

    {"libraries": {"avana": {"readcounts": "...hdf5", "guide_map": "...csv", "sequence_map": "...csv"}, ...},
     "copy_number": "...hdf5", "nepochs": 101, "seed": 0, "out_dir": "...", "copy_correct": true}

Outputs in ``out_dir``: ``gene_effect.csv`` (cell lines × genes, Chronos's own scale), ``gene_effect_cn.csv``
(after Chronos's ``alternate_CN`` copy-number correction, when asked), ``guide_efficacy.csv``, ``done.json``.
"""

import json
import os
import sys
import time

import numpy as np
import pandas as pd

# this folder holds vcclib's own chronos.py: keep it off the path so `import chronos` finds crispr-chronos
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]


def main(config_path):
    """Fit Chronos as the JSON file at ``config_path`` says and write its outputs."""
    config = json.load(open(config_path))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import chronos
    import tensorflow as tf

    np.random.seed(config.get("seed", 0))
    tf.random.set_seed(config.get("seed", 0))
    readcounts, guide_maps, sequence_maps = {}, {}, {}
    for library, files in config["libraries"].items():
        counts = chronos.read_hdf5(files["readcounts"])
        guide_map = pd.read_csv(files["guide_map"])
        if "UsedByChronos" in guide_map:
            guide_map = guide_map[guide_map["UsedByChronos"].astype(str) == "True"]
        guide_map = chronos.filter_guides(guide_map[["sgrna", "gene"]].dropna())
        sequence_map = pd.read_csv(files["sequence_map"])
        if "PassesQC" in sequence_map:  # DepMap's QC-failed sequences are not fitted (pDNA rows kept)
            passes = sequence_map["PassesQC"].astype(str) == "True"
            sequence_map = sequence_map[passes | (sequence_map["cell_line_name"] == "pDNA")]
            counts = counts.loc[counts.index.isin(sequence_map["sequence_ID"])]
        counts = counts.loc[:, counts.columns.isin(guide_map["sgrna"])]
        counts = counts.loc[counts.notnull().any(axis=1), counts.notnull().any(axis=0)]
        guide_map = guide_map[guide_map["sgrna"].isin(counts.columns)]
        sequence_map = sequence_map[sequence_map["sequence_ID"].isin(counts.index)]
        readcounts[library], guide_maps[library], sequence_maps[library] = counts, guide_map, sequence_map
    start = time.time()
    os.makedirs(config["out_dir"], exist_ok=True)
    # the sample has no non-targeting sgRNAs to estimate the NB2 overdispersion from: a fixed prior value
    model = chronos.Chronos(
        readcounts=readcounts,
        guide_gene_map=guide_maps,
        sequence_map=sequence_maps,
        excess_variance=float(config.get("excess_variance", 0.05)),
        print_to=None,
    )  # its file printer fails on numbers (crispr-chronos 2.3.11)
    model.train(nepochs=int(config.get("nepochs", 301)), report_freq=10**6)
    gene_effect = model.gene_effect
    out = config["out_dir"]
    os.makedirs(out, exist_ok=True)
    gene_effect.to_csv(os.path.join(out, "gene_effect.csv"))
    model.guide_efficacy.rename("efficacy").to_csv(os.path.join(out, "guide_efficacy.csv"))
    done = {
        "seconds_fit": round(time.time() - start, 1),
        "nepochs": int(config.get("nepochs", 301)),
        "chronos_version": getattr(chronos, "__version__", ""),
        "tensorflow": tf.__version__,
    }
    if config.get("copy_correct") and config.get("copy_number"):
        from chronos.copy_correction import alternate_CN

        cn = chronos.read_hdf5(config["copy_number"])
        genes = [g for g in gene_effect.columns if g in cn.columns]
        lines = [line for line in gene_effect.index if line in cn.index]
        corrected, _ = alternate_CN(gene_effect.loc[lines, genes], cn.loc[lines, genes])
        corrected.to_csv(os.path.join(out, "gene_effect_cn.csv"))
        done["seconds_total"] = round(time.time() - start, 1)
    json.dump(done, open(os.path.join(out, "done.json"), "w"))


if __name__ == "__main__":
    main(sys.argv[1])
