"""Predict a perturbation by propagating it through a gene regulatory network (inferred or from the literature).

The signed, weighted network
----------------------------
``W[r, t]`` = sign × strength of the edge r → t, then each target's column is scaled so that Σ_r |W[r, t]| = 1
(a target's expression is a weighted mix of its regulators' changes; this bounds one step: ‖x W‖∞ ≤ ‖x‖∞).

* inferred (``grnboost2``, ``genie3``, ``correlation``, ``regdiffusion``): strength = importance, sign = sign of
  the pair's Pearson correlation in the same control cells; each target keeps its ``regulators_per_target``
  strongest regulators. The network is inferred on the *training* control cells of the query's covariate
  (:func:`vcclib.grn.inference.control_expression`, Lambert TFs among the measured genes as regulators), so only
  measured TFs can carry a perturbation.
* literature (``trrust``, ``dorothea_<levels>``): sign = mode of regulation (TRRUST Activation +1, Repression −1,
  Unknown and contradictory pairs dropped; DoRothEA ``mor``), strength 1 (TRRUST) or the confidence weight
  (:data:`vcclib.grn.literature.CONFIDENCE_WEIGHTS`). Its nodes include unmeasured genes, so a TF that is not in
  the gene panel still propagates to its measured targets.

Propagation and calibration
---------------------------
A perturbation of target(s) T is the signal x₀ = s · Σ_{t∈T} e_t with s = −1 for CRISPRko/CRISPRi and +1 for
CRISPRa; its network effect is p = Σ_{k=1..K} α^{k−1} x₀ Wᵏ (``steps`` K = 3, ``damping`` α = 0.5), read on the
measured genes. The target's own entry comes only from feedback loops (no self-edge): the prediction adds what
the *network* says, not a knock-down of the target itself, so any gain over the mean baseline is the network's.
The prediction is Δ̂ = Δ̄ + β p, with Δ̄ the mean of the training perturbations' effects (the ``perturbed_mean``
baseline, the MIN anchor). The scale β (``calibration``):

* ``norm`` (default): β‖p‖ = the median over training perturbations of ‖Δ_p − Δ̄‖, i.e. the network sets the
  direction (signs trusted) and the training data the typical size of a perturbation's own deviation. It needs
  no training perturbation with a network signal, which matters where only a few TFs are measured.
* ``least_squares``: one β = Σ⟨Δ_p − Δ̄, p_p⟩ / Σ‖p_p‖² over the training perturbations with a signal (it may come
  out negative when the network's signs disagree with the data; 0, hence the fallback, when none has a signal).

A query without a signal (its target is not a regulator of the network) gets Δ̄ and ``vcc_fallback``.

Saved models (``save(dir)``/``Model.load(dir)``) store each covariate's signed edge table and scale as JSON and
arrays (no pickle); the network is not re-inferred on loading.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from vcclib.data.schema import split_targets
from vcclib.errors import VccError
from vcclib.models.base import Model
from vcclib.models.spec import PredictionTask, register_model
from vcclib.registry import ModelKind

INFERRED = ("grnboost2", "genie3", "correlation", "regdiffusion")
PERTURBATION_SIGNS = {"CRISPRko": -1, "CRISPRi": -1, "CRISPRa": 1, "knockdown": -1, "knockout": -1, "overexpression": 1}
_TFS: list[str] = []


def lambert_tfs() -> list[str]:
    """The Lambert et al. 2018 human TF names (loaded once per process)."""
    if not _TFS:
        from vcclib.data import load

        _TFS.extend(load("tf_lambert2018")["gene"].astype(str))
    return list(_TFS)


class SignedNetwork:
    """A signed, target-normalised network matrix over named nodes (see the module notes)."""

    def __init__(self, edges: pd.DataFrame, strength: str):
        edges = edges[(edges["sign"] != 0) & (edges["regulator"] != edges["target"])]
        nodes = sorted(set(edges["regulator"]) | set(edges["target"]))
        self.nodes = pd.Index(nodes)
        rows = self.nodes.get_indexer(edges["regulator"])
        cols = self.nodes.get_indexer(edges["target"])
        values = edges["sign"].to_numpy(dtype=float) * edges[strength].to_numpy(dtype=float)
        W = sp.csc_matrix((values, (rows, cols)), shape=(len(nodes), len(nodes)))
        totals = np.asarray(abs(W).sum(axis=0)).ravel()
        scale = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)
        self.W = (W @ sp.diags(scale)).tocsr()
        self.regulators = set(edges["regulator"])
        self.n_edges = int(len(edges))

    def propagate(self, sources: dict[str, float], steps: int = 3, damping: float = 0.5) -> pd.Series:
        """Σ_{k=1..steps} damping^(k−1) · x₀ Wᵏ for the signal x₀ on ``sources`` (unknown sources ignored)."""
        x = np.zeros(len(self.nodes))
        for node, value in sources.items():
            position = self.nodes.get_indexer([node])[0]
            if position >= 0:
                x[position] += value
        total = np.zeros_like(x)
        current = x
        for k in range(steps):
            current = self.W.T @ current  # row vector x W, as W^T x
            total += damping**k * current
        return pd.Series(total, index=self.nodes)


def network_for(
    name: str,
    train,
    covariate: str | None,
    *,
    max_cells: int,
    max_genes: int,
    seed: int,
    regulators_per_target: int,
    n_estimators: int | None,
    n_steps: int,
    dask_processes: bool = True,
) -> tuple[pd.DataFrame, str]:
    """The edge table of network ``name`` for one covariate of the training data, and its strength column.

    ``dask_processes`` False runs arboreto's regressions on one thread worker of a LocalCluster (when no Dask
    client is open): the same links (same per-target functions and seed), without starting worker processes,
    which costs more than a small network's regressions.
    """
    from vcclib.grn.cluster import current_client, dask_client
    from vcclib.grn.inference import control_expression, infer_network
    from vcclib.grn.literature import reference_network

    if name in INFERRED:
        expression = control_expression(
            train, lambert_tfs(), covariate=covariate, max_cells=max_cells, max_genes=max_genes, seed=seed
        )
        settings = {"seed": seed, "n_estimators": n_estimators, "n_steps": n_steps}
        if name in ("grnboost2", "genie3") and not dask_processes and current_client() is None:
            with dask_client(n_workers=1, processes=False) as client:
                edges = infer_network(expression, name, client=client, **settings)
        else:
            edges = infer_network(expression, name, **settings)
        edges = edges.groupby("target", sort=False).head(regulators_per_target)
        return edges, "importance"
    return reference_network(name), "weight"


def perturbation_signal(perturbation: str, perturbation_type: str) -> dict[str, float]:
    """The signal x₀ of a perturbation label (empty for a perturbation type that is not a gene perturbation)."""
    sign = PERTURBATION_SIGNS.get(perturbation_type)
    if sign is None:
        return {}
    return {target: float(sign) for target in split_targets(perturbation)}


SOURCE = "network propagation (this project) through arboreto GRNBoost2/GENIE3, RegDiffusion, TRRUST or DoRothEA"
_TASKS = (PredictionTask.UNSEEN_PERTURBATION, PredictionTask.COMBINATION)


#: test mode of the arboreto networks: 60 control cells, the 50 most variable genes as targets, one thread worker
TEST_ARBORETO = {"max_cells": 60, "max_genes": 50, "dask_processes": False}


def _describe(network: str) -> str:
    where = "inferred on the training control cells" if network in INFERRED else "from the literature"
    return f"perturbed mean + scale × the perturbation propagated 3 steps through the {network} network ({where})"


@register_model(
    "grn_grnboost2",
    kind=ModelKind.LEARNED,
    params={"network": "grnboost2"},
    extra="grn",
    description=_describe("GRNBoost2"),
    source=SOURCE,
    tasks=_TASKS,
    test_params=TEST_ARBORETO,
)
@register_model(
    "grn_genie3",
    kind=ModelKind.LEARNED,
    params={"network": "genie3", "n_estimators": 100},
    extra="grn",
    description=_describe("GENIE3 (100 trees)"),
    source=SOURCE,
    tasks=_TASKS,
    test_params={**TEST_ARBORETO, "n_estimators": 10},
)
@register_model(
    "grn_correlation",
    kind=ModelKind.LEARNED,
    params={"network": "correlation"},
    description=_describe("correlation"),
    source=SOURCE,
    tasks=_TASKS,
)
@register_model(
    "grn_regdiffusion",
    kind=ModelKind.LEARNED,
    params={"network": "regdiffusion"},
    extra="grn",
    description=_describe("RegDiffusion"),
    source=SOURCE,
    tasks=_TASKS,
    test_params={"max_cells": 60, "max_genes": 100, "n_steps": 10},
)
@register_model(
    "lit_trrust",
    kind=ModelKind.LEARNED,
    params={"network": "trrust"},
    description=_describe("TRRUST"),
    source=SOURCE,
    tasks=_TASKS,
)
@register_model(
    "lit_dorothea",
    kind=ModelKind.LEARNED,
    params={"network": "dorothea_ABC"},
    description=_describe("DoRothEA A–C"),
    source=SOURCE,
    tasks=_TASKS,
)
class NetworkPropagation(Model):
    """Δ̂ = Δ̄ + β · (perturbation propagated through a signed network); see the module notes."""

    def __init__(
        self,
        spec,
        network: str = "grnboost2",
        steps: int = 3,
        damping: float = 0.5,
        max_cells: int = 500,
        max_genes: int = 0,
        regulators_per_target: int = 10,
        n_estimators: int = 0,
        n_steps: int = 300,
        calibration: str = "norm",
        seed: int = 0,
        dask_processes: bool = True,
        **params: Any,
    ):
        if calibration not in ("norm", "least_squares"):
            raise VccError(f"calibration must be 'norm' or 'least_squares', not {calibration!r}")
        super().__init__(
            spec,
            network=network,
            steps=steps,
            damping=damping,
            max_cells=max_cells,
            max_genes=max_genes,
            regulators_per_target=regulators_per_target,
            n_estimators=n_estimators,
            n_steps=n_steps,
            calibration=calibration,
            seed=seed,
            dask_processes=dask_processes,
            **params,
        )
        self._networks: dict[str, SignedNetwork] = {}

    def _fit(self, train, heldout) -> None:
        self._train = train
        self._networks = {}

    @property
    def calibration(self) -> dict[str, dict[str, Any]]:
        """Per fitted covariate: calibration rule, scale, training perturbations with a signal, edges."""
        return {key: {k: v for k, v in context.items() if k != "edges"} for key, context in self._context_cache.items()}

    def _network(self, covariate: str) -> tuple[SignedNetwork, float]:
        context = self.context(covariate, self._build)
        key = self._context_key(covariate)
        if key not in self._networks:
            self._networks[key] = SignedNetwork(
                pd.DataFrame({k: np.asarray(v) for k, v in context["edges"].items()}), "strength"
            )
        return self._networks[key], float(context["scale"])

    def _signal_vector(self, network: SignedNetwork, perturbation: str) -> np.ndarray:
        sources = perturbation_signal(perturbation, self.perturbation_type)
        if not any(source in network.regulators for source in sources):
            return np.zeros(len(self.var_names))
        p = self.params
        spread = network.propagate(sources, steps=p["steps"], damping=p["damping"])
        return spread.reindex(self.var_names).fillna(0.0).to_numpy()

    def _build(self, covariate: str) -> dict[str, Any]:
        p = self.params
        edges, strength = network_for(
            p["network"],
            self._train,
            covariate if self.covariate_column else None,
            max_cells=p["max_cells"],
            max_genes=p["max_genes"],
            seed=p["seed"],
            regulators_per_target=p["regulators_per_target"],
            n_estimators=p["n_estimators"] or None,
            n_steps=p["n_steps"],
            dask_processes=p["dask_processes"],
        )
        edges = pd.DataFrame(
            {
                "regulator": edges["regulator"].astype(str).to_numpy(),
                "target": edges["target"].astype(str).to_numpy(),
                "sign": edges["sign"].to_numpy(dtype=np.int64),
                "strength": edges[strength].to_numpy(dtype=float),
            }
        )
        network = SignedNetwork(edges, "strength")
        self._networks[self._context_key(covariate)] = network
        deltas = self.training_deltas(covariate)
        mean = self.mean_delta(covariate)
        numerator = denominator = 0.0
        n_signal = 0
        residual_norms = []
        for perturbation, delta in deltas.iterrows():
            residual = delta.to_numpy() - mean
            residual_norms.append(float(np.linalg.norm(residual)))
            vector = self._signal_vector(network, str(perturbation))
            if np.any(vector):
                numerator += float(residual @ vector)
                denominator += float(vector @ vector)
                n_signal += 1
        if p["calibration"] == "least_squares":
            scale = numerator / denominator if denominator > 0 else 0.0
        else:
            scale = float(np.median(residual_norms)) if residual_norms else 0.0
        stored = {
            "regulator": pd.Index(edges["regulator"]),
            "target": pd.Index(edges["target"]),
            "sign": edges["sign"].to_numpy(),
            "strength": edges["strength"].to_numpy(),
        }
        return {
            "edges": stored,
            "scale": scale,
            "calibration": p["calibration"],
            "n_training_with_signal": n_signal,
            "n_edges": network.n_edges,
        }

    def _predict_delta(self, covariate, perturbations):
        network, scale = self._network(covariate)
        mean = self.mean_delta(covariate)
        rows, flags = [], []
        for perturbation in perturbations:
            vector = self._signal_vector(network, perturbation)
            norm = float(np.linalg.norm(vector))
            usable = norm > 0 and scale != 0.0
            if usable and self.params["calibration"] == "norm":
                vector = vector / norm
            rows.append(mean + scale * vector if usable else mean)
            flags.append(not usable)
        return np.vstack(rows), np.array(flags)
