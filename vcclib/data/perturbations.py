"""A dataset's perturbations as typed lamindb ``pertdb`` records, linked to its catalog artifact.

- a perturbed gene (or, in high-MOI enhancer screens, a genomic region) → a ``PerturbationTarget`` and a
  ``GeneticPerturbation`` named ``"<target> <system>"`` (system: pertdb's CRISPR Cas9 / CRISPRi / CRISPRa /
  shRNA / siRNA / transgene); region targets carry ``description="genomic region (candidate enhancer)"``;
- a designed combination (``KLF1+MAP2K6``) → a ``CombinationPerturbation`` linked to its single perturbations
  (high-MOI cells' joined labels are not designed combinations and make none);
- a drug → a ``Compound`` and a ``CompoundPerturbation`` of that compound.

Records are shared between datasets (found by name before being created), so "every dataset that perturbs STAT1"
is one join. Creation is offline: the records are made from the datasets' own labels, not from bionty's public
ontologies (a download), so targets are not linked to ``bionty.Gene`` records.
"""

from __future__ import annotations

from anndata import AnnData

from vcclib.data.schema import COMBINATION_SEPARATOR, UNASSIGNED, is_multi_guide, split_targets
from vcclib.data.signatures import Signatures

REGION = "genomic region (candidate enhancer)"
CHUNK = 500  # SQLite's limit on query parameters


def _systems():
    from vcclib.data.catalog import GENETIC_SYSTEMS

    return GENETIC_SYSTEMS


def collect(manifest, loaded) -> dict:
    """What to record from ``manifest`` and its ``loaded`` data, by kind.

    ``genetic`` {(target, system)}, ``regions`` {target}, ``combinations`` {label: [(target, system)]},
    ``compounds`` {name}.
    """
    from vcclib.data.targets import table_targets

    systems = _systems()
    genetic, regions, combinations, compounds = set(), set(), {}, set()
    default_type = next((t for t in manifest.perturbation_type if t in systems), None)
    if isinstance(loaded, AnnData) and "perturbation" in loaded.obs:
        control = loaded.uns.get("vcc", {}).get("control_label")
        obs = loaded.obs
        if is_multi_guide(loaded):
            grnas = loaded.uns["grnas"]
            system = systems.get(str(obs["perturbation_type"].iloc[0]))
            for target, kind in zip(grnas["target"].astype(str), grnas["target_kind"].astype(str)):
                if target != control and system:
                    genetic.add((target, system))
                    if kind == "candidate enhancer":
                        regions.add(target)
        else:
            pairs = obs[["perturbation", "perturbation_type"]].astype(str).drop_duplicates()
            for label, ptype in pairs.itertuples(index=False):
                if label in (control, UNASSIGNED):
                    continue
                if ptype == "drug":
                    compounds.add(label)
                elif ptype in systems:
                    singles = [(t, systems[ptype]) for t in split_targets(label)]
                    genetic.update(singles)
                    if COMBINATION_SEPARATOR in label:
                        combinations[label] = singles
    elif isinstance(loaded, Signatures):
        if loaded.perturbation_type == "drug":
            compounds.update(loaded.perturbations)
        elif loaded.perturbation_type in systems:
            genetic.update((p, systems[loaded.perturbation_type]) for p in loaded.perturbations)
    elif default_type is not None:
        genetic.update((g, systems[default_type]) for g in table_targets(manifest.id, loaded))
    return {"genetic": genetic, "regions": regions, "combinations": combinations, "compounds": compounds}


def _existing(model, names, **filters) -> dict:
    names = sorted(set(names))
    found = {}
    for start in range(0, len(names), CHUNK):
        for record in model.filter(name__in=names[start : start + CHUNK], **filters):
            found.setdefault(record.name, record)
    return found


def _get_or_create(ln, model, names, **fields) -> dict:
    found = _existing(model, names, **fields)
    missing = [n for n in sorted(set(names)) if n not in found]
    if missing:
        ln.save([model(name=n, **fields) for n in missing])
        found.update(_existing(model, missing, **fields))
    return found


def record_perturbations(artifact, manifest, loaded) -> dict:
    """Create (or find) the dataset's pertdb records and link them to ``artifact``; returns counts per kind."""
    import lamindb as ln
    import pertdb

    wanted = collect(manifest, loaded)
    previous = ln.settings.creation.search_names
    ln.settings.creation.search_names = False  # similar-name search per record is quadratic in records
    try:
        perturbations = []
        by_system: dict[str, set[str]] = {}
        for target, system in wanted["genetic"]:
            by_system.setdefault(system, set()).add(target)
        targets = _get_or_create(ln, pertdb.PerturbationTarget, {t for t, _ in wanted["genetic"]})
        for name in wanted["regions"]:
            if targets[name].description != REGION:
                targets[name].description = REGION
                targets[name].save()
        single: dict[tuple[str, str], object] = {}
        for system, names in by_system.items():
            labels = {f"{t} {system}": t for t in names}
            before = _existing(pertdb.GeneticPerturbation, labels, type=system)
            records = _get_or_create(ln, pertdb.GeneticPerturbation, labels, type=system)
            link = pertdb.GeneticPerturbation.targets.through
            new_links = [
                link(geneticperturbation_id=record.id, perturbationtarget_id=targets[labels[label]].id)
                for label, record in records.items() if label not in before
            ]  # fmt: skip
            link.objects.bulk_create(new_links, ignore_conflicts=True)
            perturbations.extend(records.values())
            single.update({(labels[label], system): record for label, record in records.items()})
        if perturbations:
            artifact.genetic_perturbations.add(*perturbations)
        combos = _get_or_create(ln, pertdb.CombinationPerturbation, wanted["combinations"])
        for label, record in combos.items():
            record.genetic_perturbations.add(*[single[key] for key in wanted["combinations"][label]])
        if combos:
            artifact.combination_perturbations.add(*combos.values())
        compounds = _get_or_create(ln, pertdb.Compound, wanted["compounds"])
        if compounds:
            artifact.compounds.add(*compounds.values())
            existing = _existing(pertdb.CompoundPerturbation, compounds)
            new = [pertdb.CompoundPerturbation(name=n, compound=c) for n, c in compounds.items() if n not in existing]
            ln.save(new)
            artifact.compound_perturbations.add(*_existing(pertdb.CompoundPerturbation, compounds).values())
    finally:
        ln.settings.creation.search_names = previous
    return {"genetic": len(perturbations), "combinations": len(combos), "compounds": len(compounds)}


def linked_perturbations(artifact) -> dict:
    """The perturbation names linked to ``artifact``, by kind (only the kinds it has).

    Kinds: ``perturbed_gene`` (gene targets, regions left out), ``perturbed_region``, ``compound``,
    ``combination``.
    """
    from pertdb.models import ArtifactCombinationPerturbation, ArtifactCompound, ArtifactGeneticPerturbation

    out: dict[str, list[str]] = {}
    rows = ArtifactGeneticPerturbation.filter(artifact=artifact).values_list(
        "geneticperturbation__targets__name", "geneticperturbation__targets__description"
    )
    genes = sorted({name for name, description in rows if name and description != REGION})
    regions = sorted({name for name, description in rows if name and description == REGION})
    compounds = sorted(ArtifactCompound.filter(artifact=artifact).values_list("compound__name", flat=True))
    combos = sorted(
        ArtifactCombinationPerturbation.filter(artifact=artifact).values_list(
            "combinationperturbation__name", flat=True
        )
    )
    for key, values in (("perturbed_gene", genes), ("perturbed_region", regions), ("compound", compounds),
                        ("combination", combos)):  # fmt: skip
        if values:
            out[key] = values
    return out
