"""Published models that run in their own environment: :class:`OwnEnvModel`.

Some published packages cannot share the project's pinned environment (CPA needs torch 2.0 and numpy 1.23;
CellFlow pins scikit-learn 1.5.1; scPRAM pins torch 1.13). Each gets an environment of its own,
``.envs/<model>/``, created by ``make env-<model>`` from the lock file ``envs/<model>.txt``, and a runner script,
``vcclib/models/external/runners/run_<model>.py``, that imports only that package, anndata and numpy. The wrapper
in this environment and the runner in that one exchange files in a fresh work folder:

``fit``
    in: ``train.h5ad`` (dense float32 log1p ``X``; obs ``covariate``, ``perturbation``, ``is_control``),
    ``config.json`` (the model's parameters, the control label, the seed) and, for models that read prior
    knowledge, ``genes.npz`` (a gene embedding: ``genes`` and ``values``, computed here from the mirror);
    out: ``weights.npz`` (the trained network's parameters as named numeric arrays) and ``run.json``
    (seconds, peak resident memory of the runner, package versions).
``predict``
    in: the same files plus ``weights.npz`` and ``query.json`` (``covariate``, ``perturbation`` per group);
    out: ``prediction.h5ad`` (one mean log1p profile per queried group, obs ``answered``) and ``run.json``.

The fitted state is the training cells and the weights, stored in the project's JSON + ``.npz`` model files
like every other wrapper (:class:`~vcclib.models.external._common.ExternalModel`): nothing is pickled on either
side, a saved model loads without the environment, and predicting rebuilds the package's model in the runner
from the stored cells and loads the weights. Nothing is downloaded at run time.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from vcclib import config
from vcclib.errors import OptionalDependencyError, VccError
from vcclib.models.base import normalise_query
from vcclib.models.external._common import ExternalModel, compact_cells

#: the project's root (where ``envs/`` and ``.envs/`` are); vcclib is installed editable from it
ROOT = Path(__file__).resolve().parents[3]
RUNNERS = Path(__file__).resolve().parent / "runners"
#: how long one runner call may take before it is stopped (seconds; VCC_OWNENV_TIMEOUT overrides)
DEFAULT_TIMEOUT_S = 3600


class EnvironmentMissing(OptionalDependencyError):
    """A model's own environment has not been created; the message names the make target that creates it."""


class RunnerFailed(VccError, RuntimeError):
    """A model's runner exited with an error in its own environment (the message ends with its last line)."""

    exit_code = 1


def envs_dir() -> Path:
    """Where the own environments are: ``$VCC_ENVS_DIR`` or ``<project>/.envs``."""
    return Path(os.environ.get("VCC_ENVS_DIR") or ROOT / ".envs")


def env_python(environment: str) -> Path:
    """The python of ``environment``'s own environment (it may not exist)."""
    return envs_dir() / environment / "bin" / "python"


def own_environment(name: str) -> str | None:
    """The name of the own environment the registered model ``name`` runs in, or None (the project's)."""
    from vcclib.models.external import PACKAGES

    package = PACKAGES.get(name)
    return package.environment if package is not None else None


def install_command(environment: str) -> str:
    """The command that creates ``environment``'s own environment."""
    return f"make env-{environment}"


def env_ready(environment: str) -> bool:
    """Whether ``make env-<environment>`` finished (its stamp file exists); nothing is imported or run."""
    return env_python(environment).is_file() and (envs_dir() / environment / ".installed").is_file()


def require_env(environment: str, purpose: str) -> Path:
    """The environment's python; :class:`EnvironmentMissing` (one line) when it has not been created."""
    if not env_ready(environment):
        raise EnvironmentMissing(
            f"{purpose} runs in its own environment, which is missing here "
            f"({envs_dir() / environment}): run `{install_command(environment)}`"
        )
    return env_python(environment)


# --- the file exchange ------------------------------------------------------------------------------------
def write_cells(adata: AnnData, path: Path) -> None:
    """Write the wrapper's training cells as the runners read them (plain obs columns, dense X)."""
    obs = pd.DataFrame(
        {
            "covariate": pd.Categorical(adata.obs["covariate"].astype(str).to_numpy()),
            "perturbation": pd.Categorical(adata.obs["perturbation"].astype(str).to_numpy()),
            "is_control": adata.obs["is_control"].astype(bool).to_numpy(),
        },
        index=pd.Index([str(i) for i in adata.obs_names], dtype=object),
    )
    cells = AnnData(
        X=np.asarray(adata.X, dtype=np.float32),
        obs=obs,
        var=pd.DataFrame(index=pd.Index([str(g) for g in adata.var_names], dtype=object)),
    )
    cells.write_h5ad(path)


def write_weights(weights: dict[str, np.ndarray], path: Path) -> None:
    """Write named numeric arrays for a runner (the stored weights of a fitted model)."""
    np.savez(path, **{key: np.asarray(value) for key, value in weights.items()})


def read_weights(path: Path) -> dict[str, np.ndarray]:
    """Named numeric arrays written by a runner (``allow_pickle=False``: an object array is refused)."""
    with np.load(path, allow_pickle=False) as arrays:
        return {key: arrays[key] for key in arrays.files}


def read_prediction(path: Path, query: pd.DataFrame, n_genes: int) -> dict[tuple[str, str], tuple[np.ndarray, bool]]:
    """The runner's ``prediction.h5ad`` as (covariate, perturbation) → (profile, answered), checked against the query."""
    import anndata

    prediction = anndata.read_h5ad(path)
    keys = list(zip(prediction.obs["covariate"].astype(str), prediction.obs["perturbation"].astype(str)))
    wanted = set(zip(query["covariate"], query["perturbation"]))
    if set(keys) != wanted or prediction.n_vars != n_genes:
        raise RunnerFailed(
            f"{path}: the runner answered {len(set(keys))} groups × {prediction.n_vars} genes, "
            f"asked {len(wanted)} × {n_genes}"
        )
    X = np.asarray(prediction.X, dtype=np.float64)
    answered = prediction.obs["answered"].astype(bool).to_numpy()
    return {key: (X[i], bool(answered[i])) for i, key in enumerate(keys)}


def runner_env(*, device: str = "cpu", threads: int | None = None) -> dict[str, str]:
    """The environment variables of a runner process: this process's, with the frameworks kept offline and quiet.

    ``device``: the wrapper's resolved device. On ``cpu`` JAX is kept on the CPU (``JAX_PLATFORMS=cpu``, so it
    does not probe for accelerators); on any other device JAX picks its own backend, or the one the user set in
    ``JAX_PLATFORMS``. ``threads`` caps the BLAS and OpenMP thread pools.
    """
    env = {
        **os.environ,
        "TQDM_DISABLE": "1",
        "WANDB_MODE": "disabled",
        "HF_HUB_OFFLINE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONWARNINGS": "ignore",
        # JAX's own persistent compilation cache: fit, predict and later tasks reuse what an earlier process compiled
        "JAX_COMPILATION_CACHE_DIR": str(config.cache_dir() / "tool-state" / "jax"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        # a Jupyter kernel sets MPLBACKEND to its inline backend, which the own environment lacks
        "MPLBACKEND": "Agg",
    }
    if device == "cpu":
        env["JAX_PLATFORMS"] = "cpu"
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    if threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(threads)
    return env


def run_runner(
    environment: str, command: str, work: Path, *, purpose: str, threads: int | None = None, device: str = "cpu"
) -> dict:
    """Run ``runners/<environment>.py <command> <work>`` in the model's own environment; its ``run.json``.

    The runner's working directory is ``work`` (framework logs land there); its output is kept in
    ``work/runner.log``; its environment is :func:`runner_env`'s. A failure raises :class:`RunnerFailed` naming
    the runner's last output line.
    """
    python = require_env(environment, purpose)
    env = runner_env(device=device, threads=threads)
    log = work / "runner.log"
    timeout = float(os.environ.get("VCC_OWNENV_TIMEOUT", DEFAULT_TIMEOUT_S))
    tick = time.perf_counter()
    with open(log, "w") as handle:
        try:
            done = subprocess.run(
                [str(python), str(RUNNERS / f"run_{environment}.py"), command, str(work)],
                cwd=work,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RunnerFailed(f"{purpose} {command} ran past {timeout:.0f} s in {envs_dir() / environment}") from None
    if done.returncode != 0:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
        last = lines[-1] if lines else "no output"
        raise RunnerFailed(f"{purpose} {command} failed in its own environment (exit {done.returncode}): {last}")
    report = json.loads((work / "run.json").read_text())
    report["wall_s"] = time.perf_counter() - tick
    return report


class OwnEnvModel(ExternalModel):
    """Base class of the wrappers whose package runs in its own environment (see the module docstring).

    Subclasses set :attr:`environment` (the name of ``.envs/<name>``, ``envs/<name>.txt`` and
    ``runners/run_<name>.py``) and :attr:`purpose`, and may override :meth:`_inputs` to add files for the runner
    (e.g. a gene embedding) for fitting and for a query. After ``fit`` and ``predict``,
    :attr:`runner_reports` holds the runner's ``run.json`` of each call (seconds, peak resident memory of the
    runner process, the package versions), since a memory sampler of this process does not see the runner.
    """

    environment = ""

    def _require(self):
        return require_env(self.environment, self.purpose or self.name)

    def _config(self) -> dict[str, Any]:
        params = {k: v for k, v in self.params.items() if k != "device"}
        return {
            "model": self.name,
            "params": params,
            "control_label": self.control_label,
            "seed": self.seed,
            "device": self.device,
        }

    def _inputs(self, work: Path, perturbations: list[str]) -> None:
        """Hook: extra input files for the runner (``perturbations`` are the labels to be embedded)."""

    def _work(self, query: pd.DataFrame | None = None) -> tempfile.TemporaryDirectory:
        folder = tempfile.TemporaryDirectory(prefix=f"vcc-{self.environment}-")
        work = Path(folder.name)
        write_cells(self.train_cells, work / "train.h5ad")
        (work / "config.json").write_text(json.dumps(self._config(), indent=1))
        perturbations = sorted(set(self.train_cells.obs["perturbation"].astype(str)))
        if query is not None:
            query[["covariate", "perturbation"]].to_json(work / "query.json", orient="records")
            perturbations = sorted(set(perturbations) | set(query["perturbation"]))
        self._inputs(work, perturbations)
        return folder

    def _fit(self, train: AnnData, heldout: AnnData | None) -> None:
        self._require()
        self.train_cells = compact_cells(train, self.covariate_column)
        self.runner_reports = []
        with self._work() as folder:
            report = run_runner(
                self.environment,
                "fit",
                Path(folder),
                purpose=self.purpose or self.name,
                threads=self.params.get("threads"),
                device=self.device,
            )
            self.weights = read_weights(Path(folder) / "weights.npz")
        self.runner_reports.append({"command": "fit", **report})

    def _weights(self) -> dict[str, Any]:
        return dict(self.weights)

    def _set_extra_state(self, state: dict[str, Any]) -> None:
        # loading needs no environment (only predicting does): the cells and the weights are restored here
        obs = pd.DataFrame({column: np.asarray(list(labels), dtype=object) for column, labels in state["obs"].items()})
        obs.index = [f"train_{i}" for i in range(len(obs))]
        obs["is_control"] = (obs["perturbation"].astype(str) == self.control_label).to_numpy()
        self.train_cells = AnnData(
            X=np.asarray(state["X"], dtype=np.float32), obs=obs, var=pd.DataFrame(index=self.var_names.copy())
        )
        self.weights = {key: np.asarray(value) for key, value in state["weights"].items()}
        self.runner_reports = []

    def predict_means(self, query: pd.DataFrame):
        """One runner call answers every queried group; the base class assembles the output."""
        self._check_fitted()
        query = normalise_query(query)
        with self._work(query) as folder:
            work = Path(folder)
            write_weights(self.weights, work / "weights.npz")
            report = run_runner(
                self.environment,
                "predict",
                work,
                purpose=self.purpose or self.name,
                threads=self.params.get("threads"),
                device=self.device,
            )
            self._answers = read_prediction(work / "prediction.h5ad", query, len(self.var_names))
        self.runner_reports.append({"command": "predict", **report})
        try:
            return super().predict_means(query)
        finally:
            self._answers = {}

    def _profiles(self, covariate: str, perturbations: list[str]) -> tuple[np.ndarray, np.ndarray]:
        rows = [self._answers[(covariate, p)] for p in perturbations]
        return np.vstack([row for row, _ in rows]), np.array([not answered for _, answered in rows])
