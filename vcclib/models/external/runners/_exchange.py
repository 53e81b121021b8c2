"""The runner side of the file exchange with vcclib.models.external.ownenv (see its docstring).

Runs inside a model's own environment, where vcclib is not installed: it imports only the standard library,
numpy and anndata. A runner script calls :func:`main` with its ``check``, ``fit`` and ``predict`` functions.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np


class Work:
    """The work folder of one call: the inputs the wrapper wrote, the outputs this runner writes."""

    def __init__(self, folder: str):
        self.folder = Path(folder)
        self.config = json.loads((self.folder / "config.json").read_text())
        self.params = self.config["params"]
        self.control = str(self.config["control_label"])
        self.seed = int(self.config["seed"])
        #: what the runner adds to ``run.json`` (e.g. ``device``: where it actually ran)
        self.report: dict = {}

    def cells(self):
        """The training cells (AnnData: dense float32 log1p X; obs covariate, perturbation, is_control)."""
        import anndata

        adata = anndata.read_h5ad(self.folder / "train.h5ad")
        for column in ("covariate", "perturbation"):
            adata.obs[column] = adata.obs[column].astype(str).astype("category")
        adata.obs["is_control"] = adata.obs["is_control"].astype(bool)
        return adata

    def query(self) -> list[dict]:
        """The groups to predict: ``[{"covariate": ..., "perturbation": ...}, ...]``."""
        return json.loads((self.folder / "query.json").read_text())

    def gene_embedding(self) -> dict[str, np.ndarray]:
        """The gene embedding the wrapper computed from the mirror (gene symbol → vector), if any."""
        path = self.folder / "genes.npz"
        if not path.is_file():
            return {}
        with np.load(path, allow_pickle=False) as arrays:
            return {str(g): arrays["values"][i].astype(np.float32) for i, g in enumerate(arrays["genes"])}

    def write_weights(self, weights: dict) -> None:
        np.savez(self.folder / "weights.npz", **{str(k): np.asarray(v) for k, v in weights.items()})

    def weights(self) -> dict[str, np.ndarray]:
        with np.load(self.folder / "weights.npz", allow_pickle=False) as arrays:
            return {key: arrays[key] for key in arrays.files}

    def write_prediction(self, query: list[dict], profiles: np.ndarray, answered) -> None:
        """One mean log1p profile per queried group (rows in query order) and whether the model answered it."""
        import anndata
        import pandas as pd

        var_names = anndata.read_h5ad(self.folder / "train.h5ad", backed="r").var_names.astype(str)
        obs = pd.DataFrame(
            {
                "covariate": [q["covariate"] for q in query],
                "perturbation": [q["perturbation"] for q in query],
                "answered": np.asarray(answered, dtype=bool),
            },
            index=[str(i) for i in range(len(query))],
        )
        out = anndata.AnnData(
            X=np.asarray(profiles, dtype=np.float32).reshape(len(query), len(var_names)),
            obs=obs,
            var=pd.DataFrame(index=list(var_names)),
        )
        out.write_h5ad(self.folder / "prediction.h5ad")


def torch_device(work: Work, model: str) -> str:
    """The torch device type a runner trains on, recorded in ``run.json`` as ``device``.

    The wrapper's device where this environment's torch can use it, else ``"cpu"`` (printed when it differs).
    """
    import torch

    wanted = str(work.config.get("device", "cpu"))
    device = "cuda" if wanted == "cuda" and torch.cuda.is_available() else "cpu"
    if device != wanted:
        print(f"{model} runs on {device}: the wrapper asked for {wanted}, which this torch cannot use")
    work.report["device"] = device
    return device


def split_targets(label: str) -> list[str]:
    """The targets of a perturbation label (``A+B`` → ``[A, B]``; the project's convention)."""
    return [t for t in str(label).split("+") if t]


def package_versions(*distributions: str) -> dict[str, str]:
    """The installed version of each distribution (from its metadata)."""
    from importlib.metadata import version

    return {name: version(name) for name in distributions}


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB; Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(check, fit, predict, versions) -> None:
    """``runner.py check`` | ``runner.py fit WORK`` | ``runner.py predict WORK``; writes ``WORK/run.json``."""
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    os.environ.setdefault("TQDM_DISABLE", "1")
    if len(sys.argv) < 2 or sys.argv[1] not in ("check", "fit", "predict"):
        sys.exit("usage: runner.py check | fit WORK | predict WORK")
    if sys.argv[1] == "check":
        check()
        print(json.dumps(versions()))
        return
    work = Work(sys.argv[2])
    tick, cpu = time.perf_counter(), time.process_time()
    (fit if sys.argv[1] == "fit" else predict)(work)
    report = {
        "seconds": time.perf_counter() - tick,
        "cpu_s": time.process_time() - cpu,
        "peak_rss_mb": peak_rss_mb(),
        "versions": versions(),
        **work.report,
    }
    (work.folder / "run.json").write_text(json.dumps(report, indent=1))
