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
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from vcclib.baselines.base import Baseline, register
from vcclib.data.schema import split_targets
from vcclib.errors import VccError

INFERRED = ("grnboost2", "genie3", "correlation", "regdiffusion")
PERTURBATION_SIGNS = {"CRISPRko": -1, "CRISPRi": -1, "CRISPRa": 1, "knockdown": -1, "knockout": -1,
                      "overexpression": 1}
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
            total += damping ** k * current
        return pd.Series(total, index=self.nodes)


def network_for(name: str, train, covariate: str | None, *, max_cells: int, max_genes: int, seed: int,
                regulators_per_target: int, n_estimators: int | None, n_steps: int) -> tuple[pd.DataFrame, str]:
    """The edge table of network ``name`` for one covariate of the training data, and its strength column."""
    from vcclib.grn.inference import control_expression, infer_network
    from vcclib.grn.literature import reference_network

    if name in INFERRED:
        expression = control_expression(train, lambert_tfs(), covariate=covariate, max_cells=max_cells,
                                        max_genes=max_genes, seed=seed)
        edges = infer_network(expression, name, seed=seed, n_estimators=n_estimators, n_steps=n_steps)
        edges = edges.groupby("target", sort=False).head(regulators_per_target)
        return edges, "importance"
    return reference_network(name), "weight"


def perturbation_signal(perturbation: str, perturbation_type: str) -> dict[str, float]:
    """The signal x₀ of a perturbation label (empty for a perturbation type that is not a gene perturbation)."""
    sign = PERTURBATION_SIGNS.get(perturbation_type)
    if sign is None:
        return {}
    return {target: float(sign) for target in split_targets(perturbation)}


@register("grn_grnboost2", network="grnboost2")
@register("grn_genie3", network="genie3", n_estimators=100)
@register("grn_correlation", network="correlation")
@register("grn_regdiffusion", network="regdiffusion")
@register("lit_trrust", network="trrust")
@register("lit_dorothea", network="dorothea_ABC")
class NetworkPropagation(Baseline):
    """Δ̂ = Δ̄ + β · (perturbation propagated through a signed network); see the module notes."""

    source = "network propagation (this project): arboreto GRNBoost2/GENIE3, RegDiffusion, TRRUST, DoRothEA"

    def __init__(self, name: str = "", network: str = "grnboost2", steps: int = 3, damping: float = 0.5,
                 max_cells: int = 500, max_genes: int = 0, regulators_per_target: int = 10,
                 n_estimators: int = 0, n_steps: int = 300, calibration: str = "norm", seed: int = 0,
                 **params: Any):
        if calibration not in ("norm", "least_squares"):
            raise VccError(f"calibration must be 'norm' or 'least_squares', not {calibration!r}")
        super().__init__(name, network=network, steps=steps, damping=damping, max_cells=max_cells, calibration=calibration,
                         max_genes=max_genes, regulators_per_target=regulators_per_target,
                         n_estimators=n_estimators, n_steps=n_steps, seed=seed, **params)
        kind = "inferred on training control cells" if network in INFERRED else "from the literature"
        self.description = (f"perturbed mean + β × propagation ({steps} steps, damping {damping}) through the "
                            f"{network} network ({kind})")

    def _fit(self, train, heldout) -> None:
        self._train = train
        self.calibration: dict[str, dict[str, float]] = {}

    def _signal_vector(self, network: SignedNetwork, perturbation: str) -> np.ndarray:
        sources = perturbation_signal(perturbation, self.perturbation_type)
        if not any(source in network.regulators for source in sources):
            return np.zeros(len(self.var_names))
        p = self.params
        spread = network.propagate(sources, steps=p["steps"], damping=p["damping"])
        return spread.reindex(self.var_names).fillna(0.0).to_numpy()

    def _build(self, covariate: str) -> tuple[SignedNetwork, float]:
        p = self.params
        column = self.covariate_column
        edges, strength = network_for(p["network"], self._train, covariate if column else None,
                                      max_cells=p["max_cells"], max_genes=p["max_genes"], seed=p["seed"],
                                      regulators_per_target=p["regulators_per_target"],
                                      n_estimators=p["n_estimators"] or None, n_steps=p["n_steps"])
        network = SignedNetwork(edges, strength)
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
        self.calibration[covariate] = {"calibration": p["calibration"], "scale": scale,
                                       "n_training_with_signal": n_signal, "n_edges": network.n_edges}
        return network, scale

    def _predict_delta(self, covariate, perturbations):
        network, scale = self.context(covariate, self._build)
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
