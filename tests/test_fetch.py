"""Fetching: mirror first, checksums enforced, clear offline errors, downloads renamed only once verified."""

from __future__ import annotations

import hashlib
import importlib
import shutil
import threading
from functools import partial
from http.server import HTTPServer, SimpleHTTPRequestHandler

import pytest

from vcclib.data.fetch import ChecksumError, DatasetUnavailableError, fetch, sha256_of
from vcclib.data.manifest import DataFile, get_manifest

fetch_module = importlib.import_module("vcclib.data.fetch")  # the module, not the function `vcclib.data.fetch`

pytestmark = pytest.mark.mirror
DATASET = "tf_lambert2018"
FILE = "TF_names_v_1.01.txt"


@pytest.fixture
def tampered_mirror(tmp_path, monkeypatch):
    """A mirror holding a copy of a real file with one byte flipped, searched before ../shared/data."""
    original = fetch_module.local_copy(DATASET, get_manifest(DATASET).file(FILE))
    target = tmp_path / "mirror" / DATASET / FILE
    target.parent.mkdir(parents=True)
    data = bytearray(original.read_bytes())
    data[100] ^= 0x01
    target.write_bytes(bytes(data))
    monkeypatch.setenv("VCC_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("VCC_CACHE_DIR", str(tmp_path / "cache"))
    return target


def test_fetch_returns_verified_mirror_copy():
    paths = fetch("papalexi2021_eccite_lowmoi", download=False)
    path = paths["lowmoi_example_data.rda"]
    assert sha256_of(path) == get_manifest("papalexi2021_eccite_lowmoi").files[0].sha256


def test_flipped_byte_fails_checksum_and_nothing_is_loaded(tampered_mirror):
    from vcclib.data import load

    with pytest.raises(ChecksumError) as error:
        load(DATASET)
    message = str(error.value)
    assert FILE in message and str(tampered_mirror) in message
    assert get_manifest(DATASET).file(FILE).sha256 in message
    assert sha256_of(tampered_mirror) in message


def test_offline_without_copy_names_dataset_address_and_mirror_hint(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch_module.config, "mirror_dirs", lambda: [])
    monkeypatch.setenv("VCC_CACHE_DIR", str(tmp_path / "cache"))

    def offline(*args, **kwargs):
        raise fetch_module.urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(fetch_module.urllib.request, "urlopen", offline)
    with pytest.raises(DatasetUnavailableError) as error:
        fetch(DATASET)
    message = str(error.value)
    assert DATASET in message and get_manifest(DATASET).file(FILE).url in message and "VCC_DATA_MIRROR" in message
    assert not list((tmp_path / "cache").rglob(FILE))


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def local_server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www (stands in for the public address)."""
    root = tmp_path / "www"
    root.mkdir()
    server = HTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_verified_then_renamed_into_cache(local_server, tmp_path, monkeypatch):
    root, base = local_server
    original = fetch_module.local_copy(DATASET, get_manifest(DATASET).file(FILE))
    shutil.copy(original, root / FILE)
    monkeypatch.setattr(fetch_module.config, "mirror_dirs", lambda: [])
    monkeypatch.setenv("VCC_CACHE_DIR", str(tmp_path / "cache"))
    data_file = DataFile(name=FILE, url=f"{base}/{FILE}", size=original.stat().st_size, sha256=sha256_of(original))
    path = fetch_module.fetch_file(DATASET, data_file)
    assert path.parent == tmp_path / "cache" / "data" / DATASET
    assert sha256_of(path) == data_file.sha256
    # a second fetch uses the cache, not the server
    (root / FILE).unlink()
    assert fetch_module.fetch_file(DATASET, data_file) == path


def test_tampered_download_never_lands_in_cache(local_server, tmp_path, monkeypatch):
    root, base = local_server
    (root / FILE).write_bytes(b"not the published file")
    monkeypatch.setattr(fetch_module.config, "mirror_dirs", lambda: [])
    monkeypatch.setenv("VCC_CACHE_DIR", str(tmp_path / "cache"))
    expected = hashlib.sha256(b"the published file").hexdigest()
    data_file = DataFile(name=FILE, url=f"{base}/{FILE}", size=22, sha256=expected)
    with pytest.raises(ChecksumError, match=expected):
        fetch_module.fetch_file(DATASET, data_file)
    assert not any((tmp_path / "cache").rglob("*" + FILE + "*"))


def test_derived_file_is_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch_module.config, "mirror_dirs", lambda: [])
    monkeypatch.setenv("VCC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(fetch_module.urllib.request, "urlopen", lambda *a, **k: pytest.fail("must not download"))
    with pytest.raises(DatasetUnavailableError, match="no byte-identical public copy"):
        fetch("go_human_bioc_3_16")


def test_truncated_new_dataset_file_fails_its_checksum(tmp_path, monkeypatch):
    dataset, name = "tian2019_crisprbrain_screens", "Tian_et_al_2019_2.csv"
    original = fetch_module.local_copy(dataset, get_manifest(dataset).file(name))
    target = tmp_path / "mirror" / dataset / name
    target.parent.mkdir(parents=True)
    target.write_bytes(original.read_bytes()[:1000])  # truncated
    monkeypatch.setenv("VCC_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("VCC_CACHE_DIR", str(tmp_path / "cache"))
    from vcclib.data import load

    with pytest.raises(ChecksumError, match=name):
        load(dataset)
