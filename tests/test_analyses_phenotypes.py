"""Tests of :mod:`vcclib.analyses.phenotypes` and the group-mean baseline.

Known truths: RBO against its definition computed pair by pair (Webber et al. 2010, eq. 32); the closed-form
E-distance against :func:`vcclib.metrics.distances.edistance` (scPerturb convention) on real Papalexi cells; the
hypergeometric test against ``scipy.stats.fisher_exact`` (one-sided); synthetic effect profiles with two planted
groups (said so in each test) must be recovered, stable and called more than noise, and pure-noise profiles must
not be reported.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData
from scipy.stats import fisher_exact

from vcclib.analyses.phenotypes.annotation import coessentiality, hypergeometric_enrichment
from vcclib.analyses.phenotypes.contexts import conservation, doubles_vs_singles
from vcclib.analyses.phenotypes.groups import SINGLETON, cluster, find_groups, leiden_available
from vcclib.analyses.phenotypes.similarity import (
    ExpressionEffects,
    SignatureLists,
    effect_similarity,
    jaccard_matrix,
    rank_biased_overlap,
)


def _rbo_definition(a, b, p, k):
    total = 0.0
    for d in range(1, k + 1):
        total += p ** (d - 1) * len(set(a[:d]) & set(b[:d])) / d
    x_k = len(set(a[:k]) & set(b[:k]))
    return (1 - p) * total + x_k / k * p**k


def test_rbo_matches_its_definition():
    rng = np.random.default_rng(0)
    R = np.vstack([rng.permutation(60)[:25] for _ in range(6)])
    rest = [x for x in rng.permutation(60) if x not in set(R[0, :10])][:15]
    R[1] = np.r_[R[0, :10], rest]  # shares the top 10 with list 0, no repeats within a list
    S = rank_biased_overlap(R, p=0.9)
    for i in range(6):
        for j in range(6):
            want = 1.0 if i == j else _rbo_definition(list(R[i]), list(R[j]), 0.9, 25)
            assert S[i, j] == pytest.approx(want, abs=1e-9)
    assert S[0, 1] > S[0, 2]


def test_jaccard_and_hypergeometric_against_scipy():
    U = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]))
    J = jaccard_matrix(U)
    assert J[0, 1] == pytest.approx(1 / 3) and J[0, 2] == 0 and J[2, 2] == 1
    universe = [f"g{i}" for i in range(200)]
    query = universe[:20]
    sets = {"A": frozenset(universe[:10] + universe[100:110]), "B": frozenset(universe[150:170])}
    table = hypergeometric_enrichment(query, universe, sets, min_overlap=0).set_index("term")
    _, p = fisher_exact([[10, 10], [10, 170]], alternative="greater")
    assert table.loc["A", "p"] == pytest.approx(p, rel=1e-9)
    assert table.loc["A", "fdr"] <= 2 * table.loc["A", "p"]


def _planted(n_per=6, n_genes=80, noise=0.3, seed=0, groups=True):
    """Synthetic cells: two planted groups of perturbations sharing a direction each (known truth)."""
    rng = np.random.default_rng(seed)
    directions = [np.zeros(n_genes), np.zeros(n_genes)]
    directions[0][:10], directions[1][20:30] = 1.0, -1.0
    blocks, labels = [rng.normal(2, noise, (200, n_genes))], ["control"] * 200
    for g in range(2):
        for i in range(n_per):
            shift = directions[g] * (1.0 if groups else 0.0) + rng.normal(0, 0.2, n_genes) * (not groups)
            blocks.append(rng.normal(2, noise, (60, n_genes)) + shift)
            labels += [f"P{g}_{i}"] * 60
    obs = pd.DataFrame({"perturbation": labels}, index=[f"c{i}" for i in range(len(labels))])
    adata = AnnData(np.vstack(blocks).astype(np.float32), obs=obs)
    adata.uns["vcc"] = {"control_label": "control"}
    return adata


def test_planted_groups_are_found_stable_and_more_than_noise():
    effects = ExpressionEffects.from_anndata(_planted())
    found = find_groups(effects, "correlation", n_boot=10, n_null=20, seed=0)
    table = found["table"]
    assert table["reported"].sum() == 2 and sorted(table["size"]) == [6, 6]
    groups = found["groups"]
    for g in range(2):
        assert groups[[f"P{g}_{i}" for i in range(6)]].nunique() == 1
    assert (found["perturbation_stability"] > 0.9).all()


def test_noise_profiles_are_not_reported():
    effects = ExpressionEffects.from_anndata(_planted(groups=False, seed=1))
    found = find_groups(effects, "correlation", n_boot=5, n_null=20, seed=0)
    assert not found["table"]["reported"].any()


@pytest.mark.skipif(not leiden_available(), reason="python-igraph not installed")
def test_leiden_recovers_planted_groups():
    sim = effect_similarity(_planted(), "correlation")
    groups = cluster(sim, "leiden", n_neighbors=4)
    assert groups[[f"P0_{i}" for i in range(6)]].nunique() == 1
    assert groups["P0_0"] != groups["P1_0"] and groups["P0_0"] != SINGLETON


def test_signature_lists_and_helpers():
    from vcclib.data.signatures import Signatures

    lists = {
        (f"K{i}", "X"): {
            "ranking": [f"g{(i // 3) * 10 + j}" for j in range(10)],
            "up": [f"g{(i // 3) * 10 + j}" for j in range(4)],
        }
        for i in range(6)
    }
    sigs = Signatures.from_lists(lists, dataset="toy", perturbation_type="CRISPRi")
    sim = effect_similarity(sigs, "rbo", depth=10)
    assert sim.similarity.loc["K0", "K1"] == pytest.approx(1.0) and sim.similarity.loc["K0", "K3"] == 0
    data = SignatureLists.from_signatures(sigs, "X", depth=10)
    assert effect_similarity(data, "jaccard").similarity.loc["K0", "K2"] == 1
    groups = cluster(sim)
    assert groups["K0"] == groups["K2"] != groups["K3"]
    summary, _ = conservation(groups, groups)
    assert summary["ari"] == 1 and summary["conserved_share"] == 1
    edges = pd.DataFrame({"gene_a": ["K0"], "gene_b": ["K1"]})
    co = coessentiality(groups, edges).set_index("group")
    assert co["coessentiality_ratio"].max() == pytest.approx((1 / 3) / (1 / 15))
    doubles = doubles_vs_singles(pd.Series({"A": "G1", "B": "G2", "A+B": "G1", "C": SINGLETON, "A+C": "G3"}))
    assert doubles["same_as_single"].tolist() == [True, False] and doubles["new_group"].tolist() == [False, True]


@pytest.mark.mirror
def test_closed_form_edistance_matches_metrics_engine(papalexi):
    from vcclib.metrics.distances import edistance

    effects = ExpressionEffects.from_anndata(papalexi)
    sim = effect_similarity(effects, "edistance", n_pcs=10)
    Z, labels = effects.pcs(10, 0), effects.labels
    a, b = "IFNGR1", "MYC"
    assert sim.distance.loc[a, b] == pytest.approx(edistance(Z[labels == a], Z[labels == b], "scperturb"), rel=1e-8)


@pytest.mark.mirror
def test_papalexi_ifng_axis_is_one_group(papalexi):
    """The IFN-γ receptor → JAK → STAT knockouts share one phenotype in Papalexi's screen (their paper's finding)."""
    found = find_groups(ExpressionEffects.from_anndata(papalexi), "correlation", n_boot=5, n_null=5)
    raw = found["raw_groups"]
    axis = raw[["IFNGR1", "IFNGR2", "JAK2", "STAT1"]]
    assert axis.nunique() == 1 and axis.iloc[0] != SINGLETON


def test_group_mean_is_registered_and_predicts_its_group():
    """Synthetic data with two planted groups: a held-out member is predicted by its group's training mean."""
    from vcclib.models import MODELS, get_model
    from vcclib.models.runner import fit_predict
    from vcclib.splits import make_split

    spec = MODELS.get("group_mean")
    assert spec.side.value == "MIN" and spec.halves == "random"  # placed between MIN and MAX; reads the query half
    adata = _planted()
    adata.obs["perturbation_type"] = "CRISPRi"
    adata.obs["is_control"] = adata.obs["perturbation"] == "control"
    adata.obs["cell_line"] = "X"
    adata.obs["dataset"] = "synthetic"
    adata.var_names = [f"g{i}" for i in range(adata.n_vars)]
    adata.uns["vcc"].update(dataset="synthetic", x_scale="log1p", normalisation="synthetic", organism="human")
    split = make_split("unseen_perturbation", adata, seed=0, test_fraction=0.3)
    model = get_model("group_mean")
    prediction, real = fit_predict("group_mean", adata, split, model=model)
    obs = prediction.obs[~prediction.obs["is_control"]]
    assert not obs["vcc_fallback"].any()
    X = np.asarray(prediction.X)
    for pert in obs["perturbation"].unique():
        delta = X[(prediction.obs["perturbation"] == pert).to_numpy()].mean(0) - 2.0
        planted = slice(0, 10) if pert.startswith("P0") else slice(20, 30)
        assert abs(delta[planted].mean()) > 0.7


def test_max_statistic_null_pvalues():
    """Known answer: p = (1 + #null datasets whose strongest group ≥ s) / (1 + #null datasets); −inf = no group."""
    from vcclib.analyses.phenotypes.groups import null_pvalues

    null = np.array([0.2, 0.5, -np.inf, -np.inf])
    p = null_pvalues(pd.Series({"G1": 0.6, "G2": 0.3, "G3": 0.1}), null)
    assert p.tolist() == [1 / 5, 2 / 5, 3 / 5]


def test_signature_null_keeps_sizes_and_gene_frequencies():
    """Synthetic lists where gene 0 tops every ranking: the null keeps sizes and draws gene 0 far more often."""
    rng = np.random.default_rng(0)
    n, k, G = 40, 10, 200
    R = np.vstack([np.r_[0, rng.choice(np.arange(1, G), k - 1, replace=False)] for _ in range(n)])
    R[0, 5:] = -1
    up = sp.csr_matrix((np.ones(n * 3), (np.repeat(np.arange(n), 3), R[:, :3].ravel())), shape=(n, G))
    lists = SignatureLists([f"P{i}" for i in range(n)], [f"g{i}" for i in range(G)], R, up)
    null = lists.shuffled(rng)
    assert ((null.rankings >= 0).sum(1) == (R >= 0).sum(1)).all()
    assert (np.diff(null.up.indptr) == 3).all()
    assert all(len(set(row[row >= 0])) == (row >= 0).sum() for row in null.rankings)
    hits = np.bincount(null.rankings[null.rankings >= 0], minlength=G)
    assert hits[0] > 5 * np.median(hits[1:])


def test_generic_calls_collapse_only_without_a_stronger_specific_set():
    """Known answer on a hand-made score table: B has a more significant specific set, so only A collapses."""
    from vcclib.analyses.phenotypes.annotation import generic_calls

    scores = pd.DataFrame(
        {
            "perturbation": ["A", "B", "C"],
            "programme": ["interferon"] * 3,
            "score": [3.0, 3.0, 0.1],
            "fdr": [0.001, 0.01, 0.9],
            "significant": [True, True, False],
        }
    )
    specific = pd.DataFrame(
        {"perturbation": ["A", "B", "C"], "programme": ["HALLMARK_X"] * 3, "fdr": [0.2, 0.0001, 0.5]}
    )
    calls = generic_calls(scores, specific).set_index("perturbation")
    assert calls["collapses"].tolist() == [True, False, False]
    assert calls.loc["B", "best_specific"] == "HALLMARK_X" and calls.loc["C", "generic_programme"] == ""


def test_line_conservation_of_drug_groups():
    """Synthetic drugs in two lines, same two planted groups in both: ARI 1, above the shuffled pairing."""
    from vcclib.analyses.phenotypes.contexts import line_conservation
    from vcclib.data.signatures import Signatures

    lists = {}
    for line in ("L1", "L2"):
        for i in range(8):
            genes = [f"g{(i // 4) * 20 + j}" for j in range(12)]
            lists[(f"D{i}", line)] = {"ranking": genes, "up": genes[:4]}
    pairs, long = line_conservation(Signatures.from_lists(lists, dataset="toy", perturbation_type="drug"), depth=12)
    assert len(pairs) == 1 and pairs["ari"].iloc[0] == 1 and pairs["conserved_share"].iloc[0] == 1
    assert pairs["ari_shuffled"].iloc[0] < 1 and set(long["context"]) == {"L1", "L2"}
