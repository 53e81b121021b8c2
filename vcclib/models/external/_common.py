"""The shared shape of every published-model wrapper: :class:`ExternalModel`.

A wrapper trains the package's own model on the training cells (controls included), predicts one mean
log1p profile per queried (covariate, perturbation) group, and hands it to :class:`vcclib.models.Model`, which
adds nothing but the project's output schema. Groups the package cannot answer on its own terms (a target
outside GEARS' gene graph, a perturbation scGen never saw) get the common fallback, flagged in
``obs['vcc_fallback']``.

Saving is safe and package-independent: the training cells (dense float32 ``X`` plus the covariate and
perturbation labels) and the fitted network's weights as numeric arrays go into the project's JSON + ``.npz``
model files (:mod:`vcclib.models.storage`); nothing is pickled. Loading rebuilds the package's model on the
stored training cells with the same settings, without training, and loads the weights into it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import random
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from vcclib.models.base import Model, covariates_of
from vcclib.optional import require

#: loggers of the training frameworks, silenced during fit and predict (book outputs show no progress)
NOISY_LOGGERS = (
    "lightning",
    "lightning.pytorch",
    "pytorch_lightning",
    "lightning.fabric",
    "scvi",
    "jax",
    "absl",
    "torch_geometric",
    "cellflow",
    "gears",
    "state",
)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No progress bars, prints, framework logs or warnings while a package trains or predicts."""
    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    previous = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        if previous is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = previous


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and (when installed) torch, so that a fit is repeatable on CPU."""
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:  # pragma: no cover - every wrapper but scGen needs torch
        return
    torch.manual_seed(seed)


def torch_weights(module) -> dict[str, np.ndarray]:
    """A torch module's ``state_dict`` as numpy arrays (what the model file stores)."""
    return {key: value.detach().cpu().numpy().copy() for key, value in module.state_dict().items()}


def load_torch_weights(module, weights: dict[str, np.ndarray]) -> None:
    """Load arrays written by :func:`torch_weights` into ``module`` (strict: every key must match)."""
    import torch

    module.load_state_dict({key: torch.as_tensor(np.asarray(value)) for key, value in weights.items()}, strict=True)


class ExternalModel(Model):
    """Base class of the published-model wrappers.

    Subclasses set :attr:`package` (the import name) and implement:

    ``_train(train)``
        build the package's model on the training AnnData and train it;
    ``_rebuild(train)``
        build the same model on the stored training cells, without training (for :meth:`Model.load`);
    ``_weights()`` / ``_load_weights(weights)``
        the fitted parameters as a dict of numeric arrays, and back;
    ``_profiles(covariate, perturbations)``
        predicted mean log1p profiles (rows) and a flag per perturbation the package could not answer.

    Parameters common to all wrappers: ``seed`` (every random draw) and ``device`` (``auto``, ``cpu``,
    ``cuda``; resolved by :func:`vcclib.device.resolve_device`).
    """

    package = ""
    purpose = ""

    def _require(self):
        return require(self.package, extra=self.spec.extra or "models", purpose=self.purpose or self.name)

    @property
    def seed(self) -> int:
        return int(self.params.get("seed", 0))

    @property
    def device(self) -> str:
        from vcclib.device import resolve_device

        return resolve_device(str(self.params.get("device", "auto"))).name

    # --- fitting -----------------------------------------------------------------------------------------
    def _fit(self, train: AnnData, heldout: AnnData | None) -> None:
        self._require()
        self.train_cells = compact_cells(train, self.covariate_column)
        seed_everything(self.seed)
        with quiet():
            self._train(self.train_cells)

    def _train(self, train: AnnData) -> None:
        raise NotImplementedError

    def _rebuild(self, train: AnnData) -> None:
        raise NotImplementedError

    def _weights(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_weights(self, weights: dict[str, Any]) -> None:
        raise NotImplementedError

    def _profiles(self, covariate: str, perturbations: list[str]) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    # --- predicting --------------------------------------------------------------------------------------
    def _predict_delta(self, covariate: str, perturbations: list[str]) -> tuple[np.ndarray, np.ndarray]:
        seed_everything(self.seed)
        with quiet():
            profiles, unanswered = self._profiles(covariate, perturbations)
        profiles = np.asarray(profiles, dtype=np.float64)
        unanswered = np.asarray(unanswered, dtype=bool)
        delta = profiles - self.control_mean(covariate)[None, :]
        if unanswered.any():
            delta[unanswered] = self.mean_delta(covariate)[None, :]
        return delta, unanswered

    # --- files -------------------------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        cells = self.train_cells
        return {
            "X": np.asarray(cells.X, dtype=np.float32),
            "obs": {column: pd.Index(cells.obs[column].astype(str).to_numpy()) for column in cells.obs.columns},
            "weights": self._weights(),
        }

    def _set_extra_state(self, state: dict[str, Any]) -> None:
        self._require()
        obs = pd.DataFrame({column: np.asarray(list(labels), dtype=object) for column, labels in state["obs"].items()})
        obs.index = [f"train_{i}" for i in range(len(obs))]
        obs = obs.astype("category") if len(obs.columns) else obs
        obs["is_control"] = (obs["perturbation"].astype(str) == self.control_label).to_numpy()
        self.train_cells = AnnData(
            X=np.asarray(state["X"], dtype=np.float32), obs=obs, var=pd.DataFrame(index=self.var_names.copy())
        )
        seed_everything(self.seed)
        with quiet():
            self._rebuild(self.train_cells)
            self._load_weights(state["weights"])


def compact_cells(adata: AnnData, covariate_column: str | None) -> AnnData:
    """The training cells as the wrappers use them: dense float32 log1p ``X``; obs ``covariate``,
    ``perturbation`` (strings, categorical) and ``is_control``."""
    X = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)
    obs = pd.DataFrame(
        {
            "covariate": covariates_of(adata, covariate_column),
            "perturbation": adata.obs["perturbation"].astype(str).to_numpy(),
        },
        index=[f"train_{i}" for i in range(adata.n_obs)],
    ).astype("category")
    obs["is_control"] = adata.obs["is_control"].astype(bool).to_numpy()
    return AnnData(X=X.astype(np.float32), obs=obs, var=pd.DataFrame(index=adata.var_names.copy()))
