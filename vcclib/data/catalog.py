"""A project-local lamindb catalog of the datasets: register, annotate, query, load — offline.

The instance (SQLite + storage) lives under ``<cache>/catalog`` (see :mod:`vcclib.config`); lamindb's settings and
cache directories are pointed there too, so nothing is written to the home directory. The storage location is the
setting ``VCC_CATALOG_STORAGE`` (a local folder by default; an ``s3://``/``gs://`` address for cloud storage).

Each dataset becomes one artifact with key ``datasets/<id>.h5ad`` (perturbation data, stored in the project schema)
or ``datasets/<id>/`` (the verified source files of table datasets), annotated with the features in
:data:`FEATURES`, labels for cell lines, cell types and perturbation types, and typed perturbation records from
lamindb's ``pertdb`` module: a ``GeneticPerturbation`` per perturbed gene (or enhancer) and system, with its
``PerturbationTarget``; a ``CombinationPerturbation`` per designed combination (Norman 2019's doubles); a
``Compound`` and ``CompoundPerturbation`` per drug. ``query(perturbed_gene="STAT1")`` and ``query(compound=...)``
are queries over those records (see docs/schema.md, "The catalog").
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
from pathlib import Path

import pandas as pd

from vcclib import config
from vcclib.errors import VccError

INSTANCE_NAME = "vcc-catalog"
FEATURES: dict[str, type] = {
    "dataset_id": str,
    "modality": str,
    "organism": str,
    "n_cells": int,
    "n_perturbations": int,
    "scale": str,
}
# multi-valued features are labels (lamindb ULabels), so that a query matches any one of a dataset's values;
# cell lines and types stay labels: bionty's ontologies (Cellosaurus, CL) are downloads, not offline
LABEL_FEATURES = ("cell_line", "cell_type", "perturbation_type")
MODULES = "bionty,pertdb"
NON_GENETIC = ("drug", "cytokine", "none")  # their perturbation labels are not gene symbols
#: the project's perturbation types → pertdb's GeneticPerturbationSystem
GENETIC_SYSTEMS = {
    "CRISPRko": "CRISPR Cas9", "CRISPRi": "CRISPRi", "CRISPRa": "CRISPRa", "shRNA": "shRNA", "siRNA": "siRNA",
    "overexpression": "transgene",
}  # fmt: skip
#: query keywords answered by pertdb records rather than features
PERTURBATION_QUERIES = {
    "perturbed_gene": "genetic_perturbations__targets__name",
    "compound": "compounds__name",
    "combination": "combination_perturbations__name",
}


class CatalogError(VccError, RuntimeError):
    """The catalog cannot be opened (e.g. lamindb was imported with another settings directory)."""


def _prepare_environment() -> None:
    root = config.catalog_dir()
    wanted = str(root / "settings")
    os.environ.setdefault("LAMIN_SETTINGS_DIR", wanted)
    os.environ.setdefault("LAMIN_CACHE_DIR", str(root / "lamin-cache"))
    if "lamindb_setup" in sys.modules:
        from lamindb_setup.core._settings_store import settings_dir

        if not str(settings_dir).startswith(os.environ["LAMIN_SETTINGS_DIR"]):
            raise CatalogError(
                f"lamindb was imported before vcclib set its settings directory (it uses {settings_dir}); "
                "open the catalog before importing lamindb, or set LAMIN_SETTINGS_DIR yourself"
            )


def connect(*, quiet: bool = True):
    """Open (creating on first use) the project's lamindb instance and return the ``lamindb`` module.

    Works offline: the instance is local, and lamindb is told it is not on LaminHub so it never asks.
    """
    _prepare_environment()
    import lamindb_setup as ls
    from lamindb_setup.core._logger import logger as lamin_logger

    if quiet:
        lamin_logger.set_verbosity(0)  # errors only: no "anonymous user" / "ln.track()" hints in every output
    sink = io.StringIO() if quiet else None
    with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
        current = ls.settings._instance_settings if hasattr(ls.settings, "_instance_settings") else None
        if current is None or getattr(current, "name", None) != INSTANCE_NAME:
            settings_file = (
                Path(os.environ["LAMIN_SETTINGS_DIR"]) / ".lamin" / f"instance--anonymous--{INSTANCE_NAME}.env"
            )
            if settings_file.exists():
                ls.connect(f"anonymous/{INSTANCE_NAME}")
            else:
                # lamindb's init would write a ".lamin/current_instance" marker into the working directory; with
                # _write_settings=False it writes nothing, and the instance's settings are saved below instead
                ls.init(storage=config.catalog_storage(), name=INSTANCE_NAME, modules=MODULES, _write_settings=False)
                ls.settings.instance._persist(write_to_disk=True)
        ls.settings.instance._is_on_hub = False
        if "pertdb" not in ls.settings.instance.modules:
            raise CatalogError(
                f"the catalog at {config.catalog_dir()} was made without lamindb's {MODULES} modules; it is an "
                "index rebuilt from the verified files: move that folder away and run `vcc data register` again"
            )
    import lamindb as ln

    if quiet:
        ln.settings.verbosity = "error"
    _ensure_features(ln)
    return ln


def _ensure_features(ln) -> None:
    existing = set(ln.Feature.filter().values_list("name", flat=True))
    for name, dtype in FEATURES.items():
        if name not in existing:
            ln.Feature(name=name, dtype=dtype).save()
    for name in LABEL_FEATURES:
        if name not in existing:
            ln.Feature(name=name, dtype=ln.ULabel).save()


def describe(dataset_id: str, loaded=None) -> dict:
    """The feature values a dataset is annotated with (from its manifest and, for AnnData, its content)."""
    from anndata import AnnData

    from vcclib.data.manifest import get_manifest

    manifest = get_manifest(dataset_id)
    values: dict = {
        "dataset_id": manifest.id,
        "modality": manifest.modality,
        "organism": manifest.organism,
        "scale": manifest.scale,
    }
    if manifest.cell_lines:
        values["cell_line"] = list(manifest.cell_lines)
    if manifest.cell_types:
        values["cell_type"] = list(manifest.cell_types)
    if manifest.perturbation_type:
        values["perturbation_type"] = list(manifest.perturbation_type)
    if isinstance(loaded, AnnData):
        values["n_cells"] = int(loaded.n_obs)
        if "perturbation" in loaded.obs:
            values["n_perturbations"] = len(perturbations_of(loaded))
        if "cell_line" in loaded.obs:
            values["cell_line"] = sorted(set(loaded.obs["cell_line"].astype(str)))
        if "cell_type" in loaded.obs:
            values["cell_type"] = sorted(set(loaded.obs["cell_type"].astype(str)))
    return values


def perturbations_of(adata) -> list[str]:
    """The distinct perturbations of a perturbation AnnData: its non-control labels, or for high-MOI data
    (several gRNAs per cell) the targets of its gRNAs (a cell's joined label is not one perturbation)."""
    from vcclib.data.schema import UNASSIGNED, is_multi_guide

    control = adata.uns.get("vcc", {}).get("control_label")
    if is_multi_guide(adata):
        return sorted(set(adata.uns["grnas"]["target"].astype(str)) - {control})
    return sorted(set(adata.obs["perturbation"].astype(str)) - {control, UNASSIGNED})


def perturbed_genes(loaded) -> list[str]:
    """Target gene symbols of a perturbation AnnData (combinations split on ``+``; controls excluded; for high-MOI
    data the genes of the gRNAs that target a gene, not the enhancer regions)."""
    from anndata import AnnData

    from vcclib.data.schema import is_multi_guide, split_targets

    if not isinstance(loaded, AnnData) or "perturbation" not in loaded.obs:
        return []
    if is_multi_guide(loaded):
        grnas = loaded.uns["grnas"]
        return sorted(set(grnas.loc[grnas["target_kind"] == "TSS positive control", "target"].astype(str)))
    obs = loaded.obs
    genetic = ~obs["perturbation_type"].astype(str).isin(NON_GENETIC) if "perturbation_type" in obs else True
    control = loaded.uns.get("vcc", {}).get("control_label")
    genes = set()
    for label in set(obs.loc[genetic & ~obs["is_control"].astype(bool), "perturbation"].astype(str)) - {control}:
        genes.update(split_targets(label))
    return sorted(genes)


def register(dataset_id: str, *, download: bool = False):
    """Register one dataset (fetched and verified first) as an annotated artifact; idempotent.

    Returns
    -------
    lamindb.Artifact
        The dataset's artifact (the existing one when it was registered before with the same content).
    """
    from anndata import AnnData

    from vcclib.data import fetch
    from vcclib.data.loaders import get_loader
    from vcclib.data.manifest import get_manifest

    ln = connect()
    manifest = get_manifest(dataset_id)
    files = fetch(dataset_id, download=download)  # verifies checksums, also for an already registered dataset
    for key in (f"datasets/{dataset_id}.h5ad", f"datasets/{dataset_id}"):
        existing = ln.Artifact.filter(key=key).first()
        if existing is not None and feature_values(existing).get("dataset_id") == dataset_id:
            return existing
    loaded = get_loader(manifest.loader)(files, manifest) if manifest.loader else None
    if isinstance(loaded, AnnData):
        key = f"datasets/{dataset_id}.h5ad"
        artifact = ln.Artifact.from_anndata(loaded, key=key, description=manifest.title)
    else:
        key = f"datasets/{dataset_id}"
        folder = config.catalog_dir() / "staging" / dataset_id
        folder.mkdir(parents=True, exist_ok=True)
        for name, path in files.items():
            target = folder / name
            if target.exists():
                continue
            if _same_device(path, folder):
                os.link(path, target)
            else:
                shutil.copyfile(path, target)
        artifact = ln.Artifact(folder, key=key, description=manifest.title)
    with contextlib.redirect_stdout(io.StringIO()):
        artifact = artifact.save()
    values = describe(dataset_id, loaded)
    _ensure_labels(ln, sorted({v for name in LABEL_FEATURES for v in values.get(name, [])}))
    artifact.features.add_values(values)
    from vcclib.data.perturbations import record_perturbations

    record_perturbations(artifact, manifest, loaded)
    return artifact


def _ensure_labels(ln, names: list[str]) -> None:
    """Create the missing ULabels in bulk (lamindb's per-record similar-name search is quadratic in labels)."""
    existing = set(ln.ULabel.filter(name__in=names).values_list("name", flat=True)) if names else set()
    missing = [name for name in names if name not in existing]
    if not missing:
        return
    previous = ln.settings.creation.search_names
    ln.settings.creation.search_names = False
    try:
        ln.save([ln.ULabel(name=name) for name in missing])
    finally:
        ln.settings.creation.search_names = previous


def _same_device(path: Path, folder: Path) -> bool:
    try:
        return os.stat(path).st_dev == os.stat(folder).st_dev
    except OSError:
        return False


def feature_values(artifact) -> dict:
    """An artifact's feature values: scalars as they are, label features as lists of label names.

    Two queries (json values, label links) instead of ``artifact.features.get_values()``, which is slow for an
    artifact linked to tens of thousands of gene labels.
    """
    from lamindb.models import ArtifactULabel

    from vcclib.data.perturbations import linked_perturbations

    values: dict = dict(artifact.json_values.values_list("feature__name", "value"))
    links = ArtifactULabel.filter(artifact=artifact).values_list("feature__name", "ulabel__name")
    for feature_name, label in links:
        values.setdefault(feature_name, []).append(label)
    values.update(linked_perturbations(artifact))
    return values


def _rows(artifacts) -> pd.DataFrame:
    rows = [{"key": a.key, "uid": a.uid, "size": a.size, **feature_values(a)} for a in artifacts]
    return pd.DataFrame(rows, columns=None if rows else ["key", "uid", "size", "dataset_id"])


def registered() -> pd.DataFrame:
    """Every registered dataset with its feature values, one row per artifact (label features as lists)."""
    ln = connect()
    return _rows(ln.Artifact.filter(key__startswith="datasets/").order_by("key"))


def query(**features) -> pd.DataFrame:
    """Registered datasets whose features match, e.g. ``query(perturbation_type="CRISPRi", cell_line="K562")``.

    ``perturbed_gene=``, ``compound=`` and ``combination=`` are answered by the typed pertdb records (the
    genetic perturbations' targets, the compounds, the designed combinations); ``perturbation_kind="genetic" |
    "compound" | "combination"`` keeps datasets with any record of that kind. Returns one row per dataset.
    """
    ln = connect()
    records = ln.Artifact.filter(key__startswith="datasets/")
    kind = features.pop("perturbation_kind", None)
    if kind is not None:
        relations = {
            "genetic": "genetic_perturbations",
            "compound": "compounds",
            "combination": "combination_perturbations",
        }
        if kind not in relations:
            raise ValueError(f"perturbation_kind must be one of {sorted(relations)}, not {kind!r}")
        records = records.filter(**{f"{relations[kind]}__isnull": False})
    for name, lookup in PERTURBATION_QUERIES.items():
        if name in features:
            records = records.filter(**{lookup: features.pop(name)})
    records = records.filter(**features) if features else records
    return _rows(records.distinct().order_by("key"))


def load_registered(dataset_id: str):
    """Load a registered dataset back from the catalog's storage (AnnData, or the folder path for tables)."""
    ln = connect()
    artifact = ln.Artifact.filter(key=f"datasets/{dataset_id}.h5ad").first()
    if artifact is not None:
        return artifact.load()
    artifact = ln.Artifact.filter(key=f"datasets/{dataset_id}").first()
    if artifact is None:
        raise KeyError(f"dataset {dataset_id!r} is not registered; run `vcc data register {dataset_id}`")
    return artifact.cache()
