"""Chapter *Which perturbations share a phenotype?*: groups of effects, generic stress responses, and what a group
is worth to a predictor.

Modules: :mod:`.similarity` (one API for expression and signature data), :mod:`.groups` (clustering, bootstrap
stability, permutation null), :mod:`.annotation` (enrichment, co-essentiality, published clusters, generic
programmes), :mod:`.contexts` (K562 vs RPE1, doubles vs singles, drugs of one mechanism), :mod:`.plots`.
This module runs one dataset end to end (:func:`analyse_expression`, :func:`analyse_signatures`), scores the
group-mean predictor (:func:`group_worth`) and writes the answer (:func:`conclusions`, :func:`weak_points`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vcclib.analyses.phenotypes import annotation
from vcclib.analyses.phenotypes.groups import SINGLETON, find_groups, leiden_available
from vcclib.analyses.phenotypes.similarity import ExpressionEffects, SignatureLists, effect_similarity
from vcclib.analyses.takeaways import Takeaways, names, number, plural, share

__all__ = ["SINGLETON", "analyse_expression", "analyse_signatures", "conclusions", "effect_similarity",
           "find_groups", "group_worth", "leiden_available", "weak_points"]


def _references():
    from vcclib.data import load

    hallmark = load("msigdb_hallmark_v7")
    gene2go = load("go_human_bioc_3_16")["gene2go"]
    edges = load("depmap_coessentiality_19q3")
    return hallmark, gene2go, edges


def _annotate(found: dict, profiles: pd.DataFrame, universe, *, kind: str, references, published=None,
              n_top: int = 30, seed: int = 0, n_random: int = 500) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Groups table, annotation table, programme scores of one dataset."""
    hallmark, gene2go, edges = references
    sets = annotation.gene_sets(hallmark, gene2go)
    programmes = annotation.programme_sets(hallmark, gene2go)
    generic_terms = {t for parts in annotation.GENERIC_PROGRAMMES.values() for t in parts}
    groups = found["groups"]
    scores = annotation.programme_scores(profiles.loc[groups.index], programmes, kind=kind, seed=seed,
                                         n_random=n_random)
    calls = annotation.generic_calls(scores).set_index("perturbation")
    table = pd.DataFrame({"perturbation": groups.index, "group": groups.to_numpy(),
                          "stability": found["perturbation_stability"].reindex(groups.index).round(3).to_numpy()})
    table["generic_programme"] = table["perturbation"].map(calls["generic_programme"]).fillna("")
    for q in found["settings"]["excluded"]:
        table.loc[len(table)] = {"perturbation": q, "group": "null effect", "stability": np.nan,
                                 "generic_programme": ""}
    coess = annotation.coessentiality(groups, edges).set_index("group")
    matched = annotation.matched_clusters(groups, published) if published is not None else None
    rows = []
    for _, g in found["table"].iterrows():
        members = groups.index[groups == g["group"]].tolist() if g["reported"] else \
            found["raw_groups"].index[found["raw_groups"] == g["group"]].tolist()
        shared = annotation.shared_response_genes(profiles, members, n_top=n_top)
        enrich = annotation.hypergeometric_enrichment(shared, universe, sets)
        enrich = enrich[~enrich["term"].str.replace("GO:", "", regex=False).isin(generic_terms)]
        top = enrich.head(3)
        rows.append({"group": g["group"], "size": int(g["size"]), "reported": bool(g["reported"]),
                     "members": ", ".join(members), "strength": round(g["strength"], 3),
                     "null_p": round(g["null_p"], 4), "stability": round(g["stability"], 3),
                     "n_shared_genes": len(shared),
                     "top_terms": "; ".join(f"{t} (FDR {f:.2g})" for t, f in zip(top["term"], top["fdr"])),
                     "best_fdr": float(top["fdr"].iloc[0]) if len(top) else np.nan,
                     "coessentiality_ratio": coess["coessentiality_ratio"].get(g["group"], np.nan),
                     "matched_published_cluster": "" if matched is None else matched.get(g["group"], "")})
    return table, pd.DataFrame(rows), scores


def analyse_expression(adata, *, excluded=(), method: str = "correlation", clustering: str = "hierarchical",
                       references=None, seed: int = 0, n_boot: int = 20, n_null: int = 20, threshold: float = 0.7,
                       n_top: int = 30, **cluster_args) -> dict:
    """Groups and annotation of an expression dataset (null-effect perturbations in ``excluded`` kept apart)."""
    effects = ExpressionEffects.from_anndata(adata)
    found = find_groups(effects, method, clustering=clustering, n_boot=n_boot, n_null=n_null, seed=seed,
                        exclude=excluded, threshold=threshold, **cluster_args)
    deltas = effects.deltas()
    references = references or _references()
    table, annot, scores = _annotate(found, deltas, deltas.columns, kind="expression", references=references,
                                     n_top=n_top, seed=seed)
    return {**found, "groups_table": table, "annotation": annot, "programmes": scores, "deltas": deltas}


def analyse_signatures(signatures, context: str, *, method: str = "rbo", clustering: str = "hierarchical",
                       references=None, published=None, seed: int = 0, n_boot: int = 20, n_null: int = 20,
                       threshold: float = 0.7, depth: int = 200, min_up: int = 1, perturbations=None,
                       **cluster_args) -> dict:
    """Groups and annotation of one context of a signature collection; perturbations with fewer than ``min_up``
    significant genes count as null effects (kept apart).
    """
    lists = SignatureLists.from_signatures(signatures, context, perturbations, depth)
    sizes = np.asarray(lists.up.sum(axis=1)).ravel()
    excluded = [p for p, n in zip(lists.perturbations, sizes) if n < min_up]
    found = find_groups(lists, method, clustering=clustering, n_boot=n_boot, n_null=n_null, seed=seed,
                        exclude=excluded, threshold=threshold, **cluster_args)
    up = pd.DataFrame(lists.up.toarray(), index=lists.perturbations, columns=lists.genes)
    references = references or _references()
    table, annot, scores = _annotate(found, up, lists.genes, kind="signatures", references=references,
                                     published=published, seed=seed)
    return {**found, "groups_table": table, "annotation": annot, "programmes": scores, "lists": lists}


def group_worth(dataset: str, *, baselines=("perturbed_mean", "linear_go", "group_mean", "technical_duplicate"),
                metrics=("pearson_delta", "mae", "discrimination_score_l1"), max_cells_per_perturbation: int = 100,
                seed: int = 0, options=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The group-mean predictor on the dataset's unseen-perturbation task, with the mean baseline, a learned
    baseline and the technical duplicate.

    Returns
    -------
    placed, worth
        :func:`vcclib.models.benchmark.placement` rows, and per metric: the group-mean placement, the best MIN
        baseline's placement and ``share_of_best`` = group-mean placement / best MIN placement (how much of the
        best baseline's gain over the mean baseline knowing the group already gives).
    """
    import warnings

    from vcclib.analyses.quiet import quietly
    from vcclib.models import available
    from vcclib.models.benchmark import Task, placement, run_task

    task = Task(dataset, "unseen_perturbation", options=dict(options or {}), split_params={"test_fraction": 0.3})
    names_here = quietly(available, list(baselines))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from vcclib.models.benchmark import load_task_data

        data = load_task_data(task, max_cells_per_perturbation, seed)
        long = quietly(run_task, task, baselines=names_here, seed=seed, metrics=list(metrics), adata=data)
    placed = placement(long)
    rows = []
    for metric, block in placed.groupby("metric"):
        block = block.set_index("baseline")
        mins = block[(block["side"] == "MIN") & (block.index != "perturbed_mean")]
        best = mins["placement"].idxmax() if mins["placement"].notna().any() else None
        gm = block["placement"].get("group_mean", np.nan)
        top = block["placement"].get(best, np.nan) if best else np.nan
        rows.append({"metric": metric, "group_mean": gm, "group_mean_score": block["score"].get("group_mean"),
                     "best_min_baseline": best or "", "best_min_placement": top,
                     "share_of_best": gm / top if best and top and top > 0 else np.nan,
                     "fallback_share": float(long.loc[long["baseline"] == "group_mean", "fallback"].mean())})
    return placed, pd.DataFrame(rows)


# --- records and the answer -------------------------------------------------------------------------------------


def dataset_record(result: dict, *, dataset: str, kind: str) -> dict:
    """What the conclusions quote about one dataset (JSON-serialisable)."""
    table, annot, groups_table = result["table"], result["annotation"], result["groups_table"]
    reported = annot[annot["reported"]]
    clustered = groups_table[groups_table["group"] != "null effect"]
    generic = clustered[clustered["generic_programme"] != ""]
    return {
        "dataset": dataset, "kind": kind, "similarity": result["settings"]["similarity"],
        "clustering": result["settings"]["clustering"], "n": int(len(groups_table)),
        "n_null": len(result["settings"]["excluded"]), "n_clustered": int(len(clustered)),
        "n_found": int(len(table)), "n_reported": int(len(reported)),
        "reported": [{"group": r["group"], "size": int(r["size"]), "members": r["members"].split(", "),
                      "stability": float(r["stability"]), "null_p": float(r["null_p"]), "top_terms": r["top_terms"],
                      "coessentiality_ratio": None if pd.isna(r["coessentiality_ratio"])
                      else float(r["coessentiality_ratio"]),
                      "matched": r["matched_published_cluster"]} for _, r in reported.iterrows()],
        "n_in_groups": int((clustered["group"] != SINGLETON).sum()),
        "n_generic": int(len(generic)),
        "generic_counts": generic["generic_programme"].value_counts().to_dict(),
        "unstable_found": table.loc[~table["reported"], "group"].tolist(),
        "n_boot": result["settings"]["n_boot"], "n_null_datasets": result["settings"]["n_null"],
        "n_null_groups": int(result["null"].size),
    }


def conclusions(records: dict) -> Takeaways:
    """The chapter's answer, every number formatted from ``records``."""
    points = []
    for r in records["datasets"]:
        text = (f"**{r['dataset']}**: of {plural(r['n_clustered'], 'perturbation')} with an effect "
                f"({r['n_null']} null-effect ones kept apart), the {r['clustering']} clustering of {r['similarity']} "
                f"finds {plural(r['n_found'], 'group')}; **{r['n_reported']} {'is' if r['n_reported'] == 1 else 'are'}"
                f" more than noise** (permutation null and bootstrap stability)")
        if r["reported"]:
            best = r["reported"][0]
            text += (f", the largest {names(best['members'], limit=8)} (stability {number(best['stability'])}"
                     + (f"; {best['top_terms'].split(';')[0]}" if best["top_terms"] else "") + ")")
        points.append(text + ".")
        points.append(f"{r['dataset']}: {r['n_generic']} of {r['n_clustered']} perturbations score significantly on "
                      "a generic programme ("
                      + (", ".join(f"{k}: {v}" for k, v in r["generic_counts"].items()) or "none") + ").")
    x = records.get("contexts")
    if x:
        points.append(f"K562 vs RPE1 ({plural(x['n_shared'], 'shared knockdown')}): the groups agree with ARI "
                      f"{number(x['ari'])}; {share(x['conserved_share'])} of K562 group members keep at least one "
                      f"group partner in RPE1; the published clusters give ARI {number(x.get('published_ari'))} "
                      "with the K562 groups.")
    d = records.get("doubles")
    if d:
        points.append(f"Norman doubles: {d['n_same_as_single']} of {d['n']} fall in the group of one of their "
                      f"singles, {d['n_new']} in a group neither single is in.")
    w = records.get("worth")
    if w:
        points.append(f"The group-mean predictor ({w['dataset']}) places at {number(w['pearson_delta'])} on Pearson Δ "
                      f"between the mean baseline (0) and the technical duplicate (1); the best MIN baseline, "
                      f"{w['best_min_baseline']}, at {number(w['best_min_placement'])} "
                      f"({share(w['fallback_share'])} of its predictions fell back to the mean).")
    return Takeaways(points, conventions=records.get("conventions", []))


def weak_points(records: dict) -> list[str]:
    """*Where the evidence is weak*, numbers from ``records``."""
    lines = []
    for r in records["datasets"]:
        lines.append(f"**{r['dataset']}.** Stability rests on {r['n_boot']} resamples and the null on "
                     f"{r['n_null_datasets']} null datasets ({r['n_null_groups']} null groups); groups found but not "
                     f"reported: {names(r['unstable_found'])}.")
    lines.append("**Gene space.** Expression groups are built on the measured genes only (Papalexi 299, Norman 500 "
                 "HVGs), so gene-set enrichment and programme scores see a small part of each set; a missing term is "
                 "absence of evidence.")
    lines.append("**Generic programmes** are unions of Hallmark sets and GO terms; they overlap each other and "
                 "specific pathways, so a generic call says the response includes the programme, not that it is "
                 "only that.")
    if records.get("worth"):
        lines.append("**Group-mean predictor.** It reads the held-out perturbation's group from its query half of "
                     "cells (an oracle of the group, not of the effect) and is scored on the other half.")
    return lines
