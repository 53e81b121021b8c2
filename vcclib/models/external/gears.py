"""GEARS (Roohani et al. 2024): a graph neural network over gene co-expression and GO similarity graphs.

Trained to map control cells to perturbed ones, it predicts unseen single-gene perturbations and combinations
of genes in its GO graph.

Conventions kept: GEARS' condition labels (``ctrl``, ``A+ctrl``, ``A+B``), one cell type, log1p ``X``,
``var['gene_name']``; its perturbation graph is built over a gene set fixed before training — in GEARS a
downloaded list, here the measured genes, the training targets and ``graph_genes`` (the targets the dataset
names, passed by the caller as GEARS gets them from its processed dataset; no expression of held-out cells is
read). A queried target outside that graph is flagged as a fallback. The prediction is ``GEARS.predict``'s: the mean over 300
control cells, drawn here with the model's seed.

Nothing is downloaded: ``gene2go_all.pkl`` is written from the mirror's GO table (:func:`vcclib.models.features.
go_annotations`, Bioconductor org.Hs.eg.db 3.16; values are Python sets, as GEARS expects) into a fresh
temporary folder that is also the working directory while GEARS runs (it caches its GO graph under ``./data``),
and ``default_pert_graph=False``. Run-time fixes, applied in this wrapper only: GEARS' ``make_GO`` (a pool of 25
processes) is replaced by the same edge computation in this process, cached under ``<cache>/models/gears/`` keyed
by a hash of the graph's genes and their GO ids; ``dcor`` (imported by ``gears.utils`` for an analysis this
project does not run) is imported only when called (:func:`_dcor_deferred`); ``GEARS.__init__`` indexes a sparse matrix with a pandas Series
(``'Series' object has no attribute 'nonzero'``), so the processed data's ``X`` is made dense after the cell
graphs are built; the validation loader is the training conditions (GEARS keeps the epoch with the best
validation score) and GEARS' test pass is skipped (``split='no_test'``), since the held-out cells are scored by
the project, not by GEARS.

Saved: the trained network's ``state_dict`` as arrays; loading rebuilds the graphs from the stored training
cells (deterministic) and loads the weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from vcclib.data.schema import split_targets
from vcclib.models.external._common import ExternalModel, load_torch_weights, torch_weights
from vcclib.models.spec import PredictionTask, register_model
from vcclib.registry import ModelKind


def condition_label(perturbation: str, control: str) -> str:
    """The project's label as GEARS' condition: ``ctrl``, ``A+ctrl`` or ``A+B``."""
    if perturbation == control:
        return "ctrl"
    targets = split_targets(perturbation)
    return targets[0] + "+ctrl" if len(targets) == 1 else "+".join(targets)


def _go_graph_cache(gene2go: dict[str, set]) -> Path:
    """Where the GO similarity graph of ``gene2go`` is cached: keyed by a hash of the genes and their GO ids."""
    from vcclib.config import cache_dir

    text = json.dumps({gene: sorted(ids) for gene, ids in sorted(gene2go.items())}, separators=(",", ":"))
    return cache_dir() / "models" / "gears" / f"go_graph_{hashlib.sha256(text.encode()).hexdigest()[:20]}.csv"


def _cached_make_go(data_path, pert_list, data_name, num_workers=25, save=True):
    """GEARS' ``make_GO`` in this process, its edge list cached under the project's cache.

    The edges are GEARS' own (:func:`gears.utils.get_GO_edge_list`, Jaccard > 0.1, in ``make_GO``'s order); only
    the process pool (25 workers by default) and the write to ``./data`` are replaced.
    """
    from gears.utils import get_GO_edge_list

    with open(os.path.join(data_path, "gene2go_all.pkl"), "rb") as handle:
        gene2go = pickle.load(handle)
    gene2go = {gene: gene2go[gene] for gene in pert_list}
    path = _go_graph_cache(gene2go)
    if path.exists():
        return pd.read_csv(path)
    edges = [edge for gene in gene2go for edge in get_GO_edge_list((gene, gene2go))]
    table = pd.DataFrame(edges, columns=["source", "target", "importance"])
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    table.to_csv(partial, index=False)
    os.replace(partial, path)  # atomic: a concurrent run reads a whole file or builds its own
    return pd.read_csv(path)  # the same floats whether built now or read from the cache


@contextlib.contextmanager
def _dcor_deferred():
    """Import GEARS without importing ``dcor`` until GEARS calls it.

    ``gears.utils`` imports ``dcor.distance_correlation`` (used only by GEARS' ``get_coeffs`` analysis, never in
    training or prediction); importing ``dcor`` loads its numba kernels, 8–11 s of CPU on every import even with
    numba's cache. While GEARS is imported, ``dcor`` is a placeholder whose ``distance_correlation`` imports the
    real package on first call; the placeholder is removed from ``sys.modules`` afterwards.
    """
    if "dcor" in sys.modules or "gears" in sys.modules:
        yield
        return
    placeholder = types.ModuleType("dcor", "placeholder: the real dcor is imported on first use")

    def distance_correlation(x, y, **kwargs):
        import importlib

        if sys.modules.get("dcor") is placeholder:
            del sys.modules["dcor"]
        return importlib.import_module("dcor").distance_correlation(x, y, **kwargs)

    placeholder.distance_correlation = distance_correlation
    sys.modules["dcor"] = placeholder
    try:
        yield
    finally:
        if sys.modules.get("dcor") is placeholder:
            del sys.modules["dcor"]


@contextlib.contextmanager
def _gears_workspace():
    """A fresh temporary folder, the working directory while GEARS runs; GEARS' GO graph built once and cached."""
    import gears.utils

    original = gears.utils.make_GO
    gears.utils.make_GO = _cached_make_go
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="vcc-gears-") as folder:
        os.makedirs(os.path.join(folder, "data"))
        os.chdir(folder)
        try:
            yield folder
        finally:
            os.chdir(cwd)
            gears.utils.make_GO = original


@register_model(
    "gears",
    kind=ModelKind.EXTERNAL,
    extra="models",
    description="GEARS graph neural network over GO and co-expression graphs (unseen genes and pairs)",
    source="Roohani et al. 2024, Nat Biotechnol (cell-gears 0.1.2; MIT)",
    params={
        "hidden_size": 64,
        "epochs": 5,
        "batch_size": 32,
        "lr": 1e-3,
        "graph_genes": [],
        "seed": 0,
        "device": "auto",
    },
    needs=("go",),
    tasks=(PredictionTask.UNSEEN_PERTURBATION, PredictionTask.COMBINATION),
    test_params={"hidden_size": 16, "epochs": 1, "batch_size": 64},
)
class Gears(ExternalModel):
    """GEARS trained from scratch on the training conditions."""

    package = "gears"
    purpose = "GEARS"

    def _require(self):
        with _dcor_deferred():
            return super()._require()

    def _graph_genes(self, train) -> list[str]:
        targets = {
            t
            for p in train.obs["perturbation"].astype(str).unique()
            if p != self.control_label
            for t in split_targets(p)
        }
        return sorted(set(map(str, train.var_names)) | targets | set(map(str, self.params.get("graph_genes") or [])))

    def _build_gears(self, train, folder: str):
        from gears import GEARS, PertData

        from vcclib.models.features import go_annotations

        genes = self._graph_genes(train)
        table = go_annotations()
        table = table[table["symbol"].isin(genes)]
        gene2go = {str(g): set(map(str, ids)) for g, ids in table.groupby("symbol")["go_id"]}
        with open(os.path.join(folder, "gene2go_all.pkl"), "wb") as handle:
            pickle.dump(gene2go, handle)
        with open(os.path.join(folder, "genes.pkl"), "wb") as handle:
            pickle.dump(genes, handle)
        data = train.copy()
        data.X = sp.csr_matrix(np.asarray(data.X, dtype=np.float32))
        data.obs = pd.DataFrame(
            {
                "condition": [condition_label(p, self.control_label) for p in data.obs["perturbation"].astype(str)],
                "cell_type": data.obs["covariate"].astype(str).to_numpy(),
            },
            index=data.obs_names,
        )
        # GEARS needs every target of its conditions in the graph: conditions with an unannotated target cannot
        # be trained on (they are predicted by the fallback)
        self.graph = sorted(gene2go)
        usable = [
            c == "ctrl" or all(t in gene2go for t in c.replace("+ctrl", "").split("+")) for c in data.obs["condition"]
        ]
        data = data[np.asarray(usable)].copy()
        data.var["gene_name"] = data.var_names.astype(str)
        pert_data = PertData(folder, gene_set_path=os.path.join(folder, "genes.pkl"), default_pert_graph=False)
        pert_data.new_data_process(dataset_name="vcc", adata=data)
        conditions = sorted(set(data.obs["condition"]))
        # GEARS scores its validation loader every epoch to keep the best epoch: a seeded quarter of the training
        # conditions (control always) serves that purpose at a quarter of the cost of all of them
        perturbed = [c for c in conditions if c != "ctrl"]
        n_val = min(len(perturbed), max(4, len(perturbed) // 4))
        picked = np.random.default_rng(self.seed).choice(len(perturbed), size=n_val, replace=False)
        val = sorted({"ctrl", *(perturbed[i] for i in picked)} & set(conditions))
        with open(os.path.join(folder, "split.pkl"), "wb") as handle:
            pickle.dump({"train": conditions, "val": val, "test": []}, handle)
        pert_data.prepare_split(split="custom", split_dict_path=os.path.join(folder, "split.pkl"))
        pert_data.split = "no_test"  # the held-out cells are scored by the project, not by GEARS
        pert_data.get_dataloader(batch_size=int(self.params["batch_size"]), test_batch_size=128)
        sparse = pert_data.adata.X
        pert_data.adata.X = np.asarray(sparse.toarray())  # GEARS.__init__ indexes X with a pandas Series
        model = GEARS(pert_data, device=self.device)
        pert_data.adata.X = sparse  # GEARS.predict reads sparse control cells
        model.model_initialize(hidden_size=int(self.params["hidden_size"]))
        return model

    def _train(self, train) -> None:
        with _gears_workspace() as folder:
            self.model = self._build_gears(train, folder)
            self.model.train(epochs=int(self.params["epochs"]), lr=float(self.params["lr"]))

    def _rebuild(self, train) -> None:
        with _gears_workspace() as folder:
            self.model = self._build_gears(train, folder)

    def _weights(self):
        return torch_weights(self.model.best_model)

    def _load_weights(self, weights) -> None:
        load_torch_weights(self.model.best_model, weights)
        load_torch_weights(self.model.model, weights)

    def _profiles(self, covariate, perturbations):
        pert_list = set(self.model.pert_list)
        ctrl = self.model.adata[self.model.adata.obs["condition"] == "ctrl"]
        rows, unanswered = [], []
        for perturbation in perturbations:
            targets = split_targets(perturbation)
            if not targets or not all(t in pert_list for t in targets) or ctrl.n_obs == 0:
                rows.append(np.zeros(len(self.var_names)))
                unanswered.append(True)
                continue
            np.random.seed(self.seed)
            self.model.saved_pred = {}
            prediction = self.model.predict([targets])
            rows.append(np.asarray(prediction["_".join(targets)], dtype=np.float64))
            unanswered.append(False)
        return np.vstack(rows), np.array(unanswered)
