"""Dataset manifests: one YAML file per dataset in ``data_manifests/``.

A manifest names the dataset's files (public address, sha256, size), its licence and citation, what it measures
(modality, organism, cell lines, perturbation type) and the loader that reads it into the project's schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from vcclib import config
from vcclib.errors import UnknownNameError, VccError

MODALITIES = (
    "perturb-seq",
    "bulk-rna-seq",
    "l1000",
    "fitness-screen",
    "pooled-screen",
    "imaging",
    "genetic-interaction",
    "grn-reference",
    "gene-annotation",
    "cell-line-annotation",
    "drug-perturb-seq",
    "perturb-seq-summary",  # published per-perturbation statistics and clusters of a Perturb-seq screen
    "signatures",  # ranked gene lists per perturbation x context (vcclib.data.signatures.Signatures)
)
PERTURBATION_TYPES = (
    "CRISPRko",
    "CRISPRi",
    "CRISPRa",
    "shRNA",
    "siRNA",
    "overexpression",
    "drug",
    "cytokine",
    "none",
)
REQUIRED_FIELDS = ("id", "title", "modality", "organism", "licence", "citation", "files")
REQUIRED_FILE_FIELDS = ("name", "url", "size")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset.

    Attributes
    ----------
    name
        File name inside the dataset's folder (mirror and cache use ``<dataset id>/<name>``).
    url
        Public address it is downloaded from.
    size
        Size in bytes (an approximate size, e.g. from the source's listing, when ``sha256`` is None).
    sha256
        Expected checksum; None only for full-scale sources that publish none.
    """

    name: str
    url: str
    size: int
    sha256: str | None = None
    format: str | None = None
    mirror_only: bool = False  # derived bytes with no identical public copy: ``url`` names their source


@dataclass(frozen=True)
class Manifest:
    """Everything the project knows about one dataset."""

    id: str
    title: str
    modality: str
    organism: str
    licence: str
    citation: str
    loader: str | None
    files: tuple[DataFile, ...]
    cell_lines: tuple[str, ...] = ()
    cell_types: tuple[str, ...] = ()
    perturbation_type: tuple[str, ...] = ()
    description: str = ""
    doi: str | None = None
    homepage: str | None = None
    notes: str = ""
    scale: str = "mirror"  # "mirror": small, embedded offline; "full": full-scale, needs a download
    loader_options: dict = field(default_factory=dict)
    full_scale: tuple[str, ...] = ()  # ids of the full-scale datasets this mirrored slice comes from
    extra: dict = field(default_factory=dict)

    @property
    def total_size(self) -> int:
        """Sum of the files' sizes in bytes."""
        return sum(f.size for f in self.files)

    def file(self, name: str) -> DataFile:
        """The file called ``name``; KeyError naming the files that exist otherwise."""
        for data_file in self.files:
            if data_file.name == name:
                return data_file
        raise KeyError(f"dataset {self.id!r} has no file {name!r}; its files: {[f.name for f in self.files]}")


class ManifestError(VccError, ValueError):
    """A manifest is missing a field or has a malformed one."""


def _as_tuple(value) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def parse_manifest(raw: dict, source: str = "<dict>") -> Manifest:
    """Check a manifest's fields and build a :class:`Manifest`.

    Raises
    ------
    ManifestError
        Naming the source file and every problem found.
    """
    problems = [f"missing field {name!r}" for name in REQUIRED_FIELDS if name not in raw or raw[name] in (None, "")]
    files = []
    for index, entry in enumerate(raw.get("files") or []):
        for name in REQUIRED_FILE_FIELDS:
            if name not in entry or entry[name] in (None, ""):
                problems.append(f"file #{index}: missing {name!r}")
        url = str(entry.get("url", ""))
        if url and not re.match(r"^(https?|ftp|s3|gs)://", url):
            problems.append(f"file #{index}: url {url!r} is not an http(s)/ftp/s3/gs address")
        sha = entry.get("sha256")
        if sha is not None and not SHA256_PATTERN.match(str(sha)):
            problems.append(f"file #{index}: sha256 {sha!r} is not 64 lowercase hex digits")
        size = entry.get("size")
        if size is not None and (not isinstance(size, int) or size <= 0):
            problems.append(f"file #{index}: size {size!r} is not a positive integer of bytes")
        if raw.get("scale", "mirror") == "mirror" and sha is None:
            problems.append(f"file #{index}: a mirrored file needs its sha256")
        if not problems:
            files.append(
                DataFile(
                    name=str(entry["name"]),
                    url=url,
                    size=int(entry["size"]),
                    sha256=str(sha) if sha else None,
                    format=entry.get("format"),
                    mirror_only=bool(entry.get("mirror_only") or entry.get("source") == "derived"),
                )
            )
    if not raw.get("files"):
        problems.append("no files listed")
    if raw.get("scale", "mirror") == "mirror" and not raw.get("loader"):
        problems.append("a mirrored dataset needs a loader")
    modality = raw.get("modality")
    if modality and modality not in MODALITIES:
        problems.append(f"modality {modality!r} is not one of {MODALITIES}")
    for ptype in _as_tuple(raw.get("perturbation_type")):
        if ptype not in PERTURBATION_TYPES:
            problems.append(f"perturbation_type {ptype!r} is not one of {PERTURBATION_TYPES}")
    if raw.get("full_scale") and raw.get("scale", "mirror") != "mirror":
        problems.append("full_scale names the full-scale sources of a mirrored dataset; this one is full-scale")
    if raw.get("scale", "mirror") not in ("mirror", "full"):
        problems.append(f"scale {raw.get('scale')!r} must be 'mirror' or 'full'")
    if problems:
        raise ManifestError(f"{source}: " + "; ".join(problems))
    known = {
        "id", "title", "modality", "organism", "licence", "citation", "loader", "files", "cell_lines",
        "cell_types", "perturbation_type", "description", "doi", "homepage", "notes", "scale", "loader_options",
        "full_scale",
    }  # fmt: skip
    return Manifest(
        id=str(raw["id"]),
        title=str(raw["title"]),
        modality=str(raw["modality"]),
        organism=str(raw["organism"]),
        licence=str(raw["licence"]),
        citation=str(raw["citation"]),
        loader=raw.get("loader") or None,
        files=tuple(files),
        cell_lines=_as_tuple(raw.get("cell_lines")),
        cell_types=_as_tuple(raw.get("cell_types")),
        perturbation_type=_as_tuple(raw.get("perturbation_type")),
        description=str(raw.get("description", "")).strip(),
        doi=raw.get("doi"),
        homepage=raw.get("homepage"),
        notes=str(raw.get("notes", "")).strip(),
        scale=str(raw.get("scale", "mirror")),
        loader_options=dict(raw.get("loader_options") or {}),
        full_scale=_as_tuple(raw.get("full_scale")),
        extra={k: v for k, v in raw.items() if k not in known},
    )


@lru_cache(maxsize=4)
def _load_all(directory: str) -> dict[str, Manifest]:
    manifests: dict[str, Manifest] = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        with open(path) as handle:
            raw = yaml.safe_load(handle)
        manifest = parse_manifest(raw, source=str(path))
        if manifest.id != path.stem:
            raise ManifestError(f"{path}: id {manifest.id!r} differs from the file name {path.stem!r}")
        manifests[manifest.id] = manifest
    return manifests


def all_manifests() -> dict[str, Manifest]:
    """Every dataset manifest, by id."""
    return dict(_load_all(str(config.manifest_dir())))


def get_manifest(dataset_id: str) -> Manifest:
    """The manifest of ``dataset_id``; :class:`UnknownNameError` (a KeyError) listing close ids when unknown."""
    manifests = all_manifests()
    if dataset_id not in manifests:
        import difflib

        close = difflib.get_close_matches(dataset_id, manifests, n=5, cutoff=0.4)
        hint = f" Did you mean {close}?" if close else ""
        raise UnknownNameError(f"unknown dataset {dataset_id!r}.{hint} `vcc data list` shows every dataset.")
    return manifests[dataset_id]
