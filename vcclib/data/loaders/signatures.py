"""Signature collections (ranked gene lists) into :class:`vcclib.data.signatures.Signatures`.

The montilab/sigrecon R package ships each collection as one ``.rda`` per context (cell line or cell type): a
named list, one entry per perturbation, each a list of ``up`` (the significant up-regulated genes) and
``up_full`` (the ranked gene list). The manifest's ``loader_options`` name each file's context, the gene id type
and the ranking rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from vcclib.data.loaders import loader
from vcclib.data.loaders._rda import RList, read_rda
from vcclib.data.manifest import Manifest
from vcclib.data.signatures import SignatureError, Signatures


def _named(obj) -> dict:
    if isinstance(obj, RList):
        return obj.as_dict()
    if isinstance(obj, dict):
        return obj
    raise SignatureError(f"expected a named R list, found {type(obj).__name__}")


def _genes(values) -> list[str]:
    return [str(v) for v in values if v is not None]


def read_sigrecon(path: Path) -> dict[str, dict[str, list[str]]]:
    """One sigrecon ``.rda``: perturbation → {"up": [...], "ranking": [...]} (``up_full`` is the ranking)."""
    objects = read_rda(path)
    if len(objects) != 1:
        raise SignatureError(f"{path.name}: expected one R list, found {sorted(objects)}")
    out = {}
    for perturbation, parts in _named(next(iter(objects.values()))).items():
        parts = _named(parts)
        if "up" not in parts or "up_full" not in parts:
            raise SignatureError(f"{path.name}/{perturbation}: needs 'up' and 'up_full', has {sorted(parts)}")
        out[str(perturbation)] = {"up": _genes(parts["up"]), "ranking": _genes(parts["up_full"])}
    return out


def _signature_targets(signatures: Signatures) -> set[str]:
    return (
        set(signatures.perturbations) if signatures.perturbation_type in ("CRISPRi", "CRISPRko", "CRISPRa") else set()
    )


@loader("signatures_sigrecon", returns="signatures", targets=_signature_targets)
def load_sigrecon(
    files: Mapping[str, Path],
    manifest: Manifest,
    *,
    contexts: list[str] | None = None,
    unmapped: str = "keep",
) -> Signatures:
    """Ranked-gene-list signatures from montilab/sigrecon (Replogle 2022, sci-Plex, Tahoe-100M, NeurIPS 2023).

    Parameters
    ----------
    contexts
        Read only these cell lines / cell types (default: all; reading is the slow part).
    unmapped
        Ensembl ids without a symbol: ``keep`` (as the id), ``drop``, or ``error``.

    Returns
    -------
    Signatures
        Replogle: 585 knockdowns × K562, RPE1 (ranking = top 1,000 genes); sci-Plex: 23 drugs × A549, K562, MCF7;
        Tahoe: 109 drugs × 10 lines (104-109 per line, 1,071 signatures); NeurIPS 2023: 135 compounds × B, myeloid, NK, T cells (6,349-gene rankings).
    """
    options = manifest.loader_options
    by_file: dict[str, str] = dict(options.get("contexts") or {})
    if not by_file:
        raise SignatureError(f"{manifest.id}: the manifest names no contexts (loader_options.contexts)")
    if contexts is not None:
        unknown = sorted(set(contexts) - set(by_file.values()))
        if unknown:
            raise SignatureError(f"unknown contexts {unknown} for {manifest.id}; contexts: {sorted(by_file.values())}")
        by_file = {name: c for name, c in by_file.items() if c in set(contexts)}
    lists = {}
    for name, context in by_file.items():
        if name not in files:
            raise KeyError(f"{manifest.id}: no file {name!r} among {sorted(files)}")
        for perturbation, parts in read_sigrecon(Path(files[name])).items():
            lists[(perturbation, context)] = parts
    ptype = manifest.perturbation_type[0] if manifest.perturbation_type else "drug"
    return Signatures.from_lists(
        lists,
        dataset=manifest.id,
        perturbation_type=ptype,
        ranking_rule=str(options.get("ranking", "")),
        gene_id_source=str(options.get("gene_ids", "symbol")),
        unmapped=unmapped,
    )
