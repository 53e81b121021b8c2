"""Literature networks (TRRUST, DoRothEA by confidence) and how well an inferred network recovers them.

Conventions
-----------
* Candidate edges: every (regulator, target) pair with the regulator among the network's regulators (Lambert TFs
  among the measured genes), the target among its genes, regulator ≠ target. A literature edge is a positive
  when it is a candidate; the rest of the literature cannot be recovered from these genes and is not counted.
* The network is evaluated as a ranking truncated to its top ``K = edges_per_target × n_targets`` edges (the
  sparse network one would use); candidates outside it tie at the bottom. The same ``K`` is used for the nulls.
* ``aupr`` is average precision (scikit-learn); ``aupr_random`` the positive density (a random ranking's expected
  AUPR); ``early_precision`` the precision of the top ``k`` edges with ``k`` the number of positives (BEELINE's
  early precision; the early precision ratio is ``early_precision / aupr_random``).
* Nulls: ``random`` (``K`` edges drawn uniformly among the candidates, random order) and ``<method>_degree_shuffled``
  (the method's top-``K`` network rewired by Maslov–Sneppen double-edge swaps: every regulator keeps its
  out-degree and every target its in-degree, each edge keeps its rank). Each null is the mean over
  ``n_shuffles`` seeded draws.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vcclib.errors import VccError

#: DoRothEA confidence levels, most to least confident.
CONFIDENCE_LEVELS = ("A", "B", "C", "D", "E")
#: Edge weights given to DoRothEA confidence levels in the signed literature network (documented choice).
CONFIDENCE_WEIGHTS = {"A": 1.0, "B": 0.8, "C": 0.6, "D": 0.4, "E": 0.2}
TRRUST_SIGNS = {"Activation": 1, "Repression": -1, "Unknown": 0}
_REFERENCES: dict[str, pd.DataFrame] = {}
_TABLES: dict[str, pd.DataFrame] = {}
METRIC_COLUMNS = ("method", "dataset", "reference", "aupr", "auroc", "aupr_random", "early_precision")


class ReferenceError(VccError):
    """An unknown literature reference or confidence level."""


def reference_network(
    name: str, *, trrust: pd.DataFrame | None = None, dorothea: pd.DataFrame | None = None
) -> pd.DataFrame:
    """A literature network as ``regulator``, ``target``, ``sign`` (+1, −1, 0 unknown), ``weight`` (> 0).

    Parameters
    ----------
    name
        ``trrust`` (TRRUST v2: Activation +1, Repression −1, Unknown 0; weight 1; a pair listed with several
        modes gets its known one, or 0 when both Activation and Repression are listed) or ``dorothea_<levels>`` (DoRothEA edges of the confidence levels named, e.g.
        ``dorothea_A``, ``dorothea_ABC``; sign = mode of regulation, weight from :data:`CONFIDENCE_WEIGHTS`).
    trrust, dorothea
        The loaded tables (``vcclib.data.load("grn_trrust_v2")``, ``load("grn_dorothea")``); loaded when None
        (then the network is kept for the process: DoRothEA's 454,504 rows take seconds to read).
    """
    if trrust is None and dorothea is None:
        if name not in _REFERENCES:
            _REFERENCES[name] = _reference_network(name, None, None)
        return _REFERENCES[name].copy()
    return _reference_network(name, trrust, dorothea)


def _table(dataset_id: str) -> pd.DataFrame:
    """A literature table, read once per process."""
    from vcclib.data import load

    if dataset_id not in _TABLES:
        _TABLES[dataset_id] = load(dataset_id)
    return _TABLES[dataset_id]


def _reference_network(name: str, trrust: pd.DataFrame | None, dorothea: pd.DataFrame | None) -> pd.DataFrame:
    if name == "trrust":
        table = _table("grn_trrust_v2") if trrust is None else trrust
        signs = table["mode"].map(TRRUST_SIGNS)
        frame = pd.DataFrame(
            {"regulator": table["tf"].astype(str), "target": table["target"].astype(str), "sign": signs.astype(int)}
        )
        frame = frame.groupby(["regulator", "target"], as_index=False)["sign"].agg(_trrust_sign)
        frame["weight"] = 1.0
        return frame
    if name.startswith("dorothea_"):
        levels = tuple(name.removeprefix("dorothea_"))
        bad = sorted(set(levels) - set(CONFIDENCE_LEVELS))
        if bad or not levels:
            raise ReferenceError(f"{name!r}: confidence levels are letters among {''.join(CONFIDENCE_LEVELS)}")
        table = _table("grn_dorothea") if dorothea is None else dorothea
        table = table[table["confidence"].isin(levels)]
        frame = pd.DataFrame(
            {
                "regulator": table["tf"].astype(str),
                "target": table["target"].astype(str),
                "sign": np.sign(table["mor"].to_numpy()).astype(int),
                "weight": table["confidence"].map(CONFIDENCE_WEIGHTS).to_numpy(),
            }
        )
        return (
            frame.sort_values("weight", ascending=False).drop_duplicates(["regulator", "target"]).reset_index(drop=True)
        )
    raise ReferenceError(f"no literature network {name!r}; use 'trrust' or 'dorothea_<levels>', e.g. dorothea_ABC")


def _trrust_sign(signs: pd.Series) -> int:
    """One sign per TRRUST pair.

    Its known mode (Unknown rows ignored); 0 when Activation and Repression are both listed or only Unknown is.
    """
    known = set(signs) - {0}
    return int(known.pop()) if len(known) == 1 else 0


def candidates(regulators, genes) -> pd.MultiIndex:
    """Every (regulator, target) pair that a network on these genes could contain (no self-loops)."""
    regs = np.repeat(np.asarray(list(regulators), dtype=object), len(genes))
    targets = np.tile(np.asarray(list(genes), dtype=object), len(regulators))
    keep = regs != targets
    return pd.MultiIndex.from_arrays([regs[keep], targets[keep]], names=["regulator", "target"])


def top_edges(edges: pd.DataFrame, k: int) -> pd.DataFrame:
    """The ``k`` highest-importance edges (the table is sorted already; ties by regulator, target)."""
    return (
        edges.sort_values(["importance", "regulator", "target"], ascending=[False, True, True], kind="mergesort")
        .head(k)
        .reset_index(drop=True)
    )


def score_ranking(ranked: pd.DataFrame, positives: pd.MultiIndex, universe: pd.MultiIndex) -> dict[str, float]:
    """AUPR, AUROC, random AUPR and early precision of a ranked edge list over ``universe``.

    ``ranked`` lists edges best first (only its order is used); candidates not listed tie at the bottom.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    n = len(universe)
    labels = universe.isin(positives)
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == n:
        return {
            "aupr": np.nan,
            "auroc": np.nan,
            "aupr_random": n_pos / n if n else np.nan,
            "early_precision": np.nan,
            "n_positive": n_pos,
            "n_candidates": n,
        }
    listed = pd.MultiIndex.from_frame(ranked[["regulator", "target"]])
    position = universe.get_indexer(listed)
    inside = position >= 0
    scores = np.zeros(n)
    scores[position[inside]] = np.arange(inside.sum(), 0, -1, dtype=float)  # rank score, best highest
    top = position[inside][:n_pos]
    return {
        "aupr": float(average_precision_score(labels, scores)),
        "auroc": float(roc_auc_score(labels, scores)),
        "aupr_random": n_pos / n,
        "early_precision": float(labels[top].sum() / n_pos),
        "n_positive": n_pos,
        "n_candidates": n,
    }


def random_network(universe: pd.MultiIndex, k: int, rng: np.random.Generator) -> pd.DataFrame:
    """``k`` candidate edges drawn uniformly without replacement, in random order."""
    pick = rng.choice(len(universe), size=min(k, len(universe)), replace=False)
    return pd.DataFrame({"regulator": universe.get_level_values(0)[pick], "target": universe.get_level_values(1)[pick]})


def degree_preserving_shuffle(ranked: pd.DataFrame, rng: np.random.Generator, swaps_per_edge: int = 10) -> pd.DataFrame:
    """Maslov–Sneppen rewiring of a ranked edge list.

    Double-edge swaps (a→b, c→d) → (a→d, c→b), skipping swaps that would create a self-loop or a duplicate. Regulator out-degrees and target in-degrees are kept; edge *i* keeps rank *i*.
    """
    regs = ranked["regulator"].astype(str).to_numpy().copy()
    targets = ranked["target"].astype(str).to_numpy().copy()
    m = len(regs)
    if m < 2:
        return ranked[["regulator", "target"]].copy()
    present = set(zip(regs, targets))
    pairs = rng.integers(0, m, size=(swaps_per_edge * m, 2))
    for i, j in pairs:
        a, b, c, d = regs[i], targets[i], regs[j], targets[j]
        if i == j or a == d or c == b or b == d or (a, d) in present or (c, b) in present:
            continue
        present.difference_update({(a, b), (c, d)})
        present.update({(a, d), (c, b)})
        targets[i], targets[j] = d, b
    return pd.DataFrame({"regulator": regs, "target": targets})


def evaluate_networks(
    networks: dict[str, pd.DataFrame],
    references: dict[str, pd.DataFrame],
    *,
    dataset: str,
    regulators,
    genes,
    edges_per_target: int = 10,
    n_shuffles: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """Every network against every reference, with the random and degree-preserving nulls.

    Returns
    -------
    DataFrame
        :data:`METRIC_COLUMNS` plus ``n_positive``, ``n_candidates``, ``top_k``, ``null`` (``""``, ``random``,
        ``degree_shuffled``) and ``null_sd`` (the standard deviation of AUPR over the null's draws).
    """
    universe = candidates(regulators, genes)
    k = min(edges_per_target * len(genes), len(universe))
    positives = {}
    for ref_name, reference in references.items():
        pairs = pd.MultiIndex.from_frame(reference[["regulator", "target"]].astype(str))
        positives[ref_name] = pairs[pairs.isin(universe)]
    # The nulls do not depend on the reference: draw them once, score them against every reference.
    rng = np.random.default_rng(seed)
    randoms = [random_network(universe, k, rng) for _ in range(n_shuffles)]
    ranked, shuffled = {}, {}
    for method, edges in networks.items():
        ranked[method] = top_edges(edges[edges["regulator"] != edges["target"]], k)
        rng = np.random.default_rng(seed + 1)
        shuffled[method] = [degree_preserving_shuffle(ranked[method], rng) for _ in range(n_shuffles)]
    rows = []
    for ref_name, known in positives.items():
        base = {"dataset": dataset, "reference": ref_name, "top_k": k}
        draws = [score_ranking(draw, known, universe) for draw in randoms]
        rows.append({**base, "method": "random", "null": "random", **_mean(draws)})
        for method in networks:
            rows.append(
                {**base, "method": method, "null": "", **score_ranking(ranked[method], known, universe), "null_sd": 0.0}
            )
            draws = [score_ranking(draw, known, universe) for draw in shuffled[method]]
            rows.append({**base, "method": f"{method}_degree_shuffled", "null": "degree_shuffled", **_mean(draws)})
    table = pd.DataFrame(rows)
    extra = [c for c in table.columns if c not in METRIC_COLUMNS]
    return table[list(METRIC_COLUMNS) + extra]


def _mean(draws: list[dict]) -> dict[str, float]:
    frame = pd.DataFrame(draws)
    out = frame.mean(numeric_only=True).to_dict()
    out["null_sd"] = float(frame["aupr"].std(ddof=0)) if len(frame) > 1 else 0.0
    out["n_positive"], out["n_candidates"] = int(frame["n_positive"].iloc[0]), int(frame["n_candidates"].iloc[0])
    return out
