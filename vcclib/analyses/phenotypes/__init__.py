"""Chapter *Which perturbations share a phenotype?*: groups of effects, generic responses, what a group is worth.

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

__all__ = [
    "SINGLETON",
    "analyse_expression",
    "analyse_signatures",
    "conclusions",
    "effect_similarity",
    "find_groups",
    "group_worth",
    "leiden_available",
    "weak_points",
]


def _references() -> dict:
    """The mirror's reference tables, and the gene sets built from them once (shared by every dataset)."""
    from vcclib.data import load

    hallmark = load("msigdb_hallmark_v7")
    gene2go = load("go_human_bioc_3_16")["gene2go"]
    return {
        "edges": load("depmap_coessentiality_19q3"),
        "sets": annotation.gene_sets(hallmark, gene2go),
        "programmes": annotation.programme_sets(hallmark, gene2go),
        "specific": annotation.specific_sets(hallmark),
    }


def _annotate(
    found: dict,
    profiles: pd.DataFrame,
    universe,
    *,
    kind: str,
    references,
    published=None,
    n_top: int = 30,
    seed: int = 0,
    n_random: int = 500,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Groups table, annotation table, programme scores of one dataset."""
    edges, sets, programmes = references["edges"], references["sets"], references["programmes"]
    generic_terms = {t for parts in annotation.GENERIC_PROGRAMMES.values() for t in parts}
    groups = found["groups"]
    scores = annotation.programme_scores(
        profiles.loc[groups.index], programmes, kind=kind, seed=seed, n_random=n_random
    )
    specific = annotation.programme_scores(
        profiles.loc[groups.index], references["specific"], kind=kind, seed=seed, n_random=n_random
    )
    calls = annotation.generic_calls(scores, specific).set_index("perturbation")
    table = pd.DataFrame(
        {
            "perturbation": groups.index,
            "group": groups.to_numpy(),
            "stability": found["perturbation_stability"].reindex(groups.index).round(3).to_numpy(),
        }
    )
    table["generic_programme"] = table["perturbation"].map(calls["generic_programme"]).fillna("")
    table["best_specific"] = table["perturbation"].map(calls["best_specific"]).fillna("")
    table["collapses"] = table["perturbation"].map(calls["collapses"]).fillna(False).astype(bool)
    for q in found["settings"]["excluded"]:
        table.loc[len(table)] = {
            "perturbation": q,
            "group": "null effect",
            "stability": np.nan,
            "generic_programme": "",
            "best_specific": "",
            "collapses": False,
        }
    coess = annotation.coessentiality(groups, edges).set_index("group")
    matched = annotation.matched_clusters(groups, published) if published is not None else None
    rows = []
    for _, g in found["table"].iterrows():
        members = (
            groups.index[groups == g["group"]].tolist()
            if g["reported"]
            else found["raw_groups"].index[found["raw_groups"] == g["group"]].tolist()
        )
        shared = annotation.shared_response_genes(profiles, members, n_top=n_top)
        enrich = annotation.hypergeometric_enrichment(shared, universe, sets)
        enrich = enrich[~enrich["term"].str.replace("GO:", "", regex=False).isin(generic_terms)]
        top = enrich.head(3)
        rows.append(
            {
                "group": g["group"],
                "size": int(g["size"]),
                "reported": bool(g["reported"]),
                "members": ", ".join(members),
                "strength": round(g["strength"], 3),
                "null_p": round(g["null_p"], 4),
                "stability": round(g["stability"], 3),
                "n_shared_genes": len(shared),
                "top_terms": "; ".join(f"{t} (FDR {f:.2g})" for t, f in zip(top["term"], top["fdr"])),
                "best_fdr": float(top["fdr"].iloc[0]) if len(top) else np.nan,
                "coessentiality_ratio": coess["coessentiality_ratio"].get(g["group"], np.nan),
                "matched_published_cluster": "" if matched is None else matched.get(g["group"], ""),
            }
        )
    return table, pd.DataFrame(rows), scores


def analyse_expression(
    adata,
    *,
    excluded=(),
    method: str = "correlation",
    clustering: str = "hierarchical",
    references=None,
    seed: int = 0,
    n_boot: int = 20,
    n_null: int = 20,
    threshold: float = 0.7,
    n_top: int = 30,
    **cluster_args,
) -> dict:
    """Groups and annotation of an expression dataset (null-effect perturbations in ``excluded`` kept apart)."""
    effects = ExpressionEffects.from_anndata(adata)
    found = find_groups(
        effects,
        method,
        clustering=clustering,
        n_boot=n_boot,
        n_null=n_null,
        seed=seed,
        exclude=excluded,
        threshold=threshold,
        **cluster_args,
    )
    deltas = effects.deltas()
    references = references or _references()
    table, annot, scores = _annotate(
        found, deltas, deltas.columns, kind="expression", references=references, n_top=n_top, seed=seed
    )
    return {**found, "groups_table": table, "annotation": annot, "programmes": scores, "deltas": deltas}


def analyse_signatures(
    signatures,
    context: str,
    *,
    method: str = "rbo",
    clustering: str = "hierarchical",
    references=None,
    published=None,
    seed: int = 0,
    n_boot: int = 20,
    n_null: int = 20,
    threshold: float = 0.7,
    depth: int = 200,
    min_up: int = 1,
    perturbations=None,
    **cluster_args,
) -> dict:
    """Groups and annotation of one context of a signature collection.

    Perturbations with fewer than ``min_up`` significant genes count as null effects (kept apart).
    """
    lists = SignatureLists.from_signatures(signatures, context, perturbations, depth)
    sizes = np.asarray(lists.up.sum(axis=1)).ravel()
    excluded = [p for p, n in zip(lists.perturbations, sizes) if n < min_up]
    found = find_groups(
        lists,
        method,
        clustering=clustering,
        n_boot=n_boot,
        n_null=n_null,
        seed=seed,
        exclude=excluded,
        threshold=threshold,
        **cluster_args,
    )
    up = pd.DataFrame(lists.up.toarray(), index=lists.perturbations, columns=lists.genes)
    references = references or _references()
    table, annot, scores = _annotate(
        found, up, lists.genes, kind="signatures", references=references, published=published, seed=seed
    )
    return {**found, "groups_table": table, "annotation": annot, "programmes": scores, "lists": lists}


def group_worth(
    dataset: str,
    *,
    baselines=("perturbed_mean", "linear_go", "group_mean", "technical_duplicate"),
    metrics=("pearson_delta", "mae", "discrimination_score_l1"),
    max_cells_per_perturbation: int = 100,
    seeds=(0,),
    options=None,
    label: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The group-mean predictor on the dataset's unseen-perturbation task, over the split seeds ``seeds``.

    It runs next to the mean baseline, a learned baseline and the technical duplicate.

    Returns
    -------
    placed, worth
        :func:`vcclib.models.benchmark.placement` rows (one task per seed), and per metric (means over seeds):
        the group-mean placement, the best MIN baseline and its placement, ``share_of_best`` = group-mean
        placement / best MIN placement (where that is > 0), ``n_heldout`` (held-out perturbations over the
        seeds), ``n_assigned`` (those the predictor put in a training group, i.e. not its fallback) and
        ``anchors_ordered`` (seeds where the technical duplicate beats the mean baseline: placement defined).
        Where no held-out perturbation is assigned, group_mean *is* the mean baseline (placement 0 or NaN).
    """
    import warnings

    from vcclib.analyses.quiet import quietly
    from vcclib.models import available
    from vcclib.models.benchmark import Task, load_task_data, placement, run_task

    names_here = quietly(available, list(baselines))
    longs, placed = [], []
    for seed in seeds:
        task = Task(
            dataset,
            "unseen_perturbation",
            options=dict(options or {}),
            split_params={"test_fraction": 0.3},
            label=f"{label or dataset}:seed{seed}",
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = load_task_data(task, max_cells_per_perturbation, seed)
            long = quietly(run_task, task, baselines=names_here, seed=seed, metrics=list(metrics), adata=data)
        longs.append(long)
        placed.append(placement(long))
    long, placed = pd.concat(longs, ignore_index=True), pd.concat(placed, ignore_index=True)
    gm = long[long["baseline"] == "group_mean"].drop_duplicates(["task", "covariate", "perturbation"])
    rows = []
    for metric, block in placed.groupby("metric"):
        means = block.groupby("baseline")["placement"].mean()
        sides = block.drop_duplicates("baseline").set_index("baseline")["side"]
        mins = means[
            (sides.reindex(means.index) == "MIN") & ~means.index.isin(["perturbed_mean", "group_mean"])
        ].dropna()
        best = mins.idxmax() if len(mins) else ""
        top = float(mins.max()) if len(mins) else np.nan
        value = float(means.get("group_mean", np.nan))
        rows.append(
            {
                "metric": metric,
                "group_mean": value,
                "group_mean_score": float(block.loc[block["baseline"] == "group_mean", "score"].mean()),
                "best_min_baseline": best,
                "best_min_placement": top,
                "share_of_best": value / top if best and top > 0 and np.isfinite(value) else np.nan,
                "n_seeds": len(seeds),
                "anchors_ordered": int(block.drop_duplicates("task")["anchors_ordered"].sum()),
                "n_heldout": int(len(gm)),
                "n_assigned": int((gm["fallback"] < 1).sum()),
                "fallback_share": float(gm["fallback"].mean()),
            }
        )
    return placed, pd.DataFrame(rows)


# --- records and the answer -------------------------------------------------------------------------------------


def dataset_record(result: dict, *, dataset: str, kind: str) -> dict:
    """What the conclusions quote about one dataset (JSON-serialisable)."""
    table, annot, groups_table = result["table"], result["annotation"], result["groups_table"]
    reported = annot[annot["reported"]]
    clustered = groups_table[groups_table["group"] != "null effect"]
    generic = clustered[clustered["generic_programme"] != ""]
    collapsed = clustered[clustered["collapses"]]
    null = result["null"]
    strongest = annot.sort_values("strength", ascending=False).head(1)

    def describe(r):
        return {
            "group": r["group"],
            "size": int(r["size"]),
            "members": r["members"].split(", "),
            "strength": float(r["strength"]),
            "stability": float(r["stability"]),
            "null_p": float(r["null_p"]),
            "top_terms": r["top_terms"],
            "matched": r["matched_published_cluster"],
            "coessentiality_ratio": None if pd.isna(r["coessentiality_ratio"]) else float(r["coessentiality_ratio"]),
        }

    return {
        "dataset": dataset,
        "kind": kind,
        "similarity": result["settings"]["similarity"],
        "n_genes": int(result["deltas"].shape[1] if "deltas" in result else len(result["lists"].genes)),
        "clustering": result["settings"]["clustering"],
        "n": int(len(groups_table)),
        "n_null": len(result["settings"]["excluded"]),
        "n_clustered": int(len(clustered)),
        "n_found": int(len(table)),
        "n_reported": int(len(reported)),
        "reported": [describe(r) for _, r in reported.iterrows()],
        "strongest_found": describe(strongest.iloc[0]) if len(strongest) else None,
        "n_in_groups": int((clustered["group"] != SINGLETON).sum()),
        "n_generic": int(len(generic)),
        "generic_counts": generic["generic_programme"].value_counts().to_dict(),
        "n_collapses": int(len(collapsed)),
        "collapse_counts": collapsed["generic_programme"].value_counts().to_dict(),
        "collapsed": collapsed["perturbation"].tolist(),
        "unstable_found": table.loc[~table["reported"], "group"].tolist(),
        "n_boot": result["settings"]["n_boot"],
        "n_null_datasets": result["settings"]["n_null"],
        "n_null_with_groups": int(np.isfinite(null).sum()),
        "null_max_strength": float(null[np.isfinite(null)].max()) if np.isfinite(null).any() else None,
        "min_p": 1.0 / (1 + result["settings"]["n_null"]),
    }


def worth_record(
    worth: pd.DataFrame, *, dataset: str, metrics=("pearson_delta", "discrimination_score_l1", "mae")
) -> dict:
    """The group-mean predictor's numbers for the conclusions.

    From the first of ``metrics`` whose placement is defined (the technical duplicate beats the mean baseline in
    at least one seed, and group_mean has a placement); ``metric`` names it (None where none is).
    """
    table = worth.set_index("metric")
    usable = [
        m
        for m in metrics
        if m in table.index and table.loc[m, "anchors_ordered"] > 0 and pd.notna(table.loc[m, "group_mean"])
    ]
    metric = usable[0] if usable else metrics[0]
    row = table.loc[metric] if metric in table.index else table.iloc[0]
    out = {
        "dataset": dataset,
        "metric": metric if usable else None,
        "pearson_anchors_ordered": float(table.loc["pearson_delta", "anchors_ordered"])
        if "pearson_delta" in table.index
        else None,
    }
    for key in (
        "group_mean",
        "best_min_baseline",
        "best_min_placement",
        "share_of_best",
        "n_heldout",
        "n_assigned",
        "fallback_share",
        "n_seeds",
        "anchors_ordered",
        "group_mean_score",
    ):
        value = row[key]
        out[key] = value if isinstance(value, str) else (None if pd.isna(value) else float(value))
    return out


def _group_text(g: dict) -> str:
    return (
        f"{g['group']} = {names(g['members'], limit=8)} (strength {number(g['strength'])}, stability "
        f"{number(g['stability'])}, null p {number(g['null_p'])}"
        + (f"; {g['top_terms'].split(';')[0]}" if g["top_terms"] else "")
        + ")"
    )


def conclusions(records: dict) -> Takeaways:
    """The chapter's answer, every number formatted from ``records``."""
    points = []
    for r in records["datasets"]:
        text = (
            f"**{r['dataset']}**: of {plural(r['n_clustered'], 'perturbation')} with an effect "
            f"({r['n_null']} null-effect ones kept apart), the {r['clustering']} clustering of {r['similarity']} "
            f"finds {plural(r['n_found'], 'group')}; **{r['n_reported']} {'is' if r['n_reported'] == 1 else 'are'}"
            f" more than noise** (max-statistic permutation null over {r['n_null_datasets']} null datasets, "
            "and bootstrap stability)"
        )
        if r["reported"]:
            text += ": " + "; ".join(_group_text(g) for g in r["reported"][:2])
            if r["n_reported"] > 2:
                text += f"; and {plural(r['n_reported'] - 2, 'more group')}"
        elif r["strongest_found"]:
            text += f"; the strongest group found, {_group_text(r['strongest_found'])}, is not"
        points.append(text + ".")
        points.append(
            f"{r['dataset']}: {r['n_generic']} of {r['n_clustered']} perturbations score significantly on "
            "a generic programme ("
            + (", ".join(f"{k}: {v}" for k, v in r["generic_counts"].items()) or "none")
            + f"); **{r['n_collapses']} collapse onto it** (no specific Hallmark set more significant"
            + (": " + ", ".join(f"{k} {v}" for k, v in r["collapse_counts"].items()) if r["n_collapses"] else "")
            + ")."
        )
    x = records.get("contexts")
    if x:
        points.append(
            f"K562 vs RPE1 ({plural(x['n_shared'], 'shared knockdown')}): the groups agree with ARI "
            f"{number(x['ari'])}; {share(x['conserved_share'])} of K562 group members keep at least one "
            f"group partner in RPE1; the published clusters give ARI {number(x.get('published_ari'))} "
            "with the K562 groups."
        )
    d = records.get("doubles")
    if d:
        points.append(
            f"Norman doubles: {d['n_same_as_single']} of {d['n']} fall in the group of one of their "
            f"singles, {d['n_new']} in a group neither single is in."
        )
    for drugs in records.get("drugs", []):
        points.append(
            f"{drugs['dataset']} ({plural(drugs['n_lines'], 'cell line')}, {plural(drugs['n_drugs'], 'drug')}):"
            f" drug groups agree between lines with median ARI {number(drugs['median_ari'])} "
            f"(label-shuffled: {number(drugs['median_ari_shuffled'])}); {share(drugs['median_conserved'])} "
            "of grouped drugs keep a partner in the other line (median over pairs)."
        )
    for w in records.get("worth", []):
        if not w["n_assigned"]:
            points.append(
                f"The group-mean predictor on {w['dataset']}: none of the {int(w['n_heldout'])} held-out "
                f"perturbations ({int(w['n_seeds'])} split seeds) belongs to a training group, so it is the "
                "mean baseline there and its score says nothing about groups."
            )
            continue
        head = (
            f"The group-mean predictor on {w['dataset']} ({int(w['n_assigned'])} of {int(w['n_heldout'])} "
            f"held-out perturbations in a training group, {int(w['n_seeds'])} split seeds)"
        )
        if w["metric"] is None:
            points.append(
                head + " cannot be placed: on no metric does the technical duplicate beat the mean baseline there."
            )
            continue
        caveat = (
            ""
            if w["metric"] == "pearson_delta"
            else (
                f" (Pearson Δ cannot place it: the technical duplicate beats the mean baseline in "
                f"{int(w['pearson_anchors_ordered'] or 0)} of {int(w['n_seeds'])} seeds)"
            )
        )
        points.append(
            head + f" places at {number(w['group_mean'])} on {w['metric']} between the mean baseline (0) "
            f"and the technical duplicate (1){caveat}; the best MIN baseline, {w['best_min_baseline']}, at "
            f"{number(w['best_min_placement'])}."
        )
    return Takeaways(points, conventions=records.get("conventions", []))


def weak_points(records: dict) -> list[str]:
    """*Where the evidence is weak*, numbers from ``records``."""
    lines = []
    for r in records["datasets"]:
        null = (
            f"the strongest null group reached {number(r['null_max_strength'])}"
            if r["null_max_strength"] is not None
            else "the clustering found no group in any null dataset"
        )
        lines.append(
            f"**{r['dataset']}.** Stability rests on {r['n_boot']} resamples and the null on "
            f"{r['n_null_datasets']} null datasets ({r['n_null_with_groups']} with a group; {null}), so the "
            f"smallest p is {number(r['min_p'])}; groups found but not reported: "
            f"{names(r['unstable_found'])}."
        )
    genes = ", ".join(f"{r['dataset']} {r['n_genes']:,}" for r in records["datasets"] if r["kind"] == "expression")
    lines.append(
        f"**Gene space.** Expression groups are built on the measured genes only ({genes} genes), so "
        "gene-set enrichment and programme scores see a small part of each set; a missing term is absence "
        "of evidence."
    )
    lines.append(
        "**Generic programmes** are unions of Hallmark sets and GO terms; they overlap each other and "
        "specific pathways, so a generic call says the response includes the programme; *collapses* "
        "compares it with the specific Hallmark sets only (GO terms are not tested per perturbation)."
    )
    for drugs in records.get("drugs", []):
        lines.append(
            f"**Drugs with a shared mechanism.** The mirror holds no mechanism-of-action table for "
            f"{drugs['dataset']} ({plural(drugs['n_drugs'], 'drug')}), so drug groups cannot be checked "
            "against mechanisms; the chapter shows instead whether drug groups hold across cell lines "
            "(descriptive clustering, no resampling)."
        )
    for w in records.get("worth", []):
        lines.append(
            f"**Group-mean predictor ({w['dataset']}).** It reads the held-out perturbation's group from "
            "its query half of cells (an oracle of the group, not of the effect) and is scored on the other "
            f"half; Pearson Δ placement is defined in {int(w['pearson_anchors_ordered'] or 0)} of "
            f"{int(w['n_seeds'])} seeds (where the technical duplicate beats the mean baseline); the "
            f"{int(w['n_heldout'] - w['n_assigned'])} held-out perturbations outside every training group "
            "get the mean baseline's prediction."
        )
    return lines
