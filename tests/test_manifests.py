"""Every dataset manifest is complete and well formed (no network)."""

from __future__ import annotations

import csv

import pytest
import yaml
from conftest import MIRROR

from vcclib import config
from vcclib.data.manifest import MODALITIES, ManifestError, all_manifests, get_manifest, parse_manifest

MANIFESTS = all_manifests()
# the full-scale datasets the project promises are those its mirrored slices name as their source (field full_scale)
FULL_SCALE_REQUIRED = {ref for m in MANIFESTS.values() for ref in m.full_scale}
LINCS_ADDRESSES = {
    "https://s3.amazonaws.com/macchiato.clue.io/builds/LINCS2020/level5/level5_beta_all_n1201944x12328.gctx",
    "https://s3.amazonaws.com/macchiato.clue.io/builds/LINCS2020/siginfo_beta.txt",
    "ftp://ftp.ncbi.nlm.nih.gov/geo/series/GSE92nnn/GSE92742/suppl/GSE92742_Broad_LINCS_gene_info.txt.gz",
    "ftp://ftp.ncbi.nlm.nih.gov/geo/series/GSE92nnn/GSE92742/suppl/GSE92742_Broad_LINCS_sig_info.txt.gz",
    "ftp://ftp.ncbi.nlm.nih.gov/geo/series/GSE92nnn/GSE92742/suppl/GSE92742_Broad_LINCS_sig_metrics.txt.gz",
}


@pytest.mark.parametrize("dataset_id", sorted(MANIFESTS))
def test_manifest_complete(dataset_id):
    manifest = MANIFESTS[dataset_id]
    assert manifest.title and manifest.licence and manifest.citation
    assert manifest.modality in MODALITIES
    assert manifest.organism in ("human", "mouse")
    for data_file in manifest.files:
        assert data_file.url.startswith(("https://", "http://", "ftp://", "s3://", "gs://"))
        assert data_file.size > 0
        if manifest.scale == "mirror":
            assert data_file.sha256 and len(data_file.sha256) == 64
    if manifest.loader:
        from vcclib.data.loaders import LOADERS

        assert manifest.loader in LOADERS


@pytest.mark.mirror
def test_every_mirror_file_has_a_manifest_entry_with_its_address_and_checksum():
    sources = list(csv.DictReader(open(MIRROR / "SOURCES.tsv"), delimiter="\t"))
    assert sources
    for row in sources:
        manifest = get_manifest(row["dataset"])
        data_file = manifest.file(row["file"].split("/", 1)[1])
        assert data_file.sha256 == row["sha256"]
        assert data_file.size == int(row["bytes"])
        if row["repository"] != "(derived)":
            assert data_file.url == (
                f"https://raw.githubusercontent.com/{row['repository']}/{row['commit']}/{row['path_in_repository']}"
            ).replace(" ", "%20")


def test_full_scale_datasets_declared():
    full = {m.id for m in MANIFESTS.values() if m.scale == "full"}
    assert {
        "replogle2022_k562_gwps",
        "replogle2022_rpe1",
        "tahoe100m",
        "depmap_24q2",
        "lincs2020_level5",
    } <= FULL_SCALE_REQUIRED
    assert FULL_SCALE_REQUIRED <= full, sorted(FULL_SCALE_REQUIRED - full)
    urls = {f.url for m in MANIFESTS.values() for f in m.files}
    assert LINCS_ADDRESSES <= urls


def test_manifest_files_named_by_id():
    for path in (config.manifest_dir()).glob("*.yaml"):
        assert yaml.safe_load(path.read_text())["id"] == path.stem


def test_malformed_manifest_is_refused_with_every_problem():
    with pytest.raises(ManifestError) as error:
        parse_manifest(
            {"id": "x", "title": "t", "modality": "telepathy", "organism": "human", "licence": "l", "citation": "c",
             "loader": "h5ad", "files": [{"name": "a", "url": "file:///etc/passwd", "size": -1, "sha256": "abc"}]},
            source="bad.yaml",
        )  # fmt: skip
    message = str(error.value)
    for fragment in ("bad.yaml", "telepathy", "not an http", "sha256", "positive integer"):
        assert fragment in message


def test_unknown_dataset_suggests_close_ids():
    with pytest.raises(KeyError, match="papalexi2021_eccite_lowmoi"):
        get_manifest("papalexi")


def test_full_scale_field_is_refused_on_a_full_scale_manifest():
    raw = yaml.safe_load((config.manifest_dir() / "tahoe100m.yaml").read_text())
    raw["full_scale"] = ["tahoe100m"]
    with pytest.raises(ManifestError, match="full_scale"):
        parse_manifest(raw, source="tahoe100m.yaml")


@pytest.mark.parametrize("dataset_id", [
    "replogle2022_tables", "replogle2022_signatures", "gasperini2019_highmoi", "sciplex2020_signatures",
    "tahoe100m_signatures", "neurips2023_pbmc_signatures", "depmap_22q1_dependency_calls",
    "tian2019_crisprbrain_screens",
])  # fmt: skip
def test_new_mirror_datasets_have_manifests_and_loaders(dataset_id):
    from vcclib.data.loaders import LOADERS

    manifest = get_manifest(dataset_id)
    assert manifest.scale == "mirror" and manifest.loader in LOADERS
    assert all(f.url.startswith("https://raw.githubusercontent.com/") and f.sha256 for f in manifest.files)
