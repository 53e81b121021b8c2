"""Fetch a dataset's files by manifest: local mirrors first, then the cache, then a checked download.

A file is only ever used after its sha256 matched the manifest. A download goes to a temporary file that is renamed
into the cache only once its checksum matched, so an interrupted or tampered download never lands in the cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.std import tqdm

from vcclib import config
from vcclib.data.manifest import DataFile, Manifest, get_manifest
from vcclib.errors import VccError

CHUNK = 1 << 20


class ChecksumError(VccError, RuntimeError):
    """A file's sha256 differs from its manifest's: tampered, truncated or the wrong file."""


class DatasetUnavailableError(VccError, RuntimeError):
    """No local copy exists and the download failed (typically: offline)."""


def sha256_of(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, data_file: DataFile, dataset_id: str) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has the manifest's sha256 (skipped when none is published)."""
    if data_file.sha256 is None:
        return
    actual = sha256_of(path)
    if actual != data_file.sha256:
        raise ChecksumError(
            f"checksum mismatch for {dataset_id}/{data_file.name} at {path}: expected sha256 {data_file.sha256}, "
            f"found {actual}. The file is tampered or truncated and was not used; delete it or restore the "
            "original copy."
        )


def cached_path(dataset_id: str, data_file: DataFile) -> Path:
    """Where the cache keeps a file (it may not exist yet)."""
    return config.data_cache_dir() / dataset_id / data_file.name


def local_copy(dataset_id: str, data_file: DataFile) -> Path | None:
    """The first existing local copy: mirror directories in order, then the cache. None when there is none."""
    for mirror in config.mirror_dirs():
        candidate = mirror / dataset_id / data_file.name
        if candidate.is_file():
            return candidate
    candidate = cached_path(dataset_id, data_file)
    return candidate if candidate.is_file() else None


def availability(dataset_id: str) -> str:
    """Where a dataset's files are, without checksumming them (see :func:`fetch`).

    Returns
    -------
    str
        ``"mirror"`` (all local, none from the cache), ``"cache"`` (all local, some downloaded earlier) or
        ``"download"`` (some file has no local copy).
    """
    copies = [local_copy(dataset_id, f) for f in get_manifest(dataset_id).files]
    if not all(copies):
        return "download"
    cache = config.data_cache_dir()
    return "cache" if any(cache in copy.parents for copy in copies) else "mirror"


def is_available(dataset_id: str) -> bool:
    """True when every file of the dataset has a local copy (not checksummed: see :func:`fetch`)."""
    return availability(dataset_id) != "download"


def _download(data_file: DataFile, dataset_id: str, target: Path, timeout: float) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{data_file.name}.", suffix=".part", dir=target.parent)
    try:
        with (
            os.fdopen(handle, "wb") as out,
            urllib.request.urlopen(data_file.url, timeout=timeout) as response,
        ):
            total = int(response.headers.get("Content-Length") or data_file.size or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"{dataset_id}/{data_file.name}") as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
        verify(Path(temporary), data_file, dataset_id)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def fetch_file(dataset_id: str, data_file: DataFile, *, download: bool = True, timeout: float = 60.0) -> Path:
    """A verified local path to one file of a dataset; downloads it when no local copy exists.

    Raises
    ------
    ChecksumError
        When a local copy or the download does not match the manifest's sha256.
    DatasetUnavailableError
        When there is no local copy and the download failed or was not allowed.
    """
    local = local_copy(dataset_id, data_file)
    if local is not None:
        verify(local, data_file, dataset_id)
        return local
    target = cached_path(dataset_id, data_file)
    mirrors = ", ".join(str(m) for m in config.mirror_dirs()) or "none"
    hint = (
        f"Put a copy at <mirror>/{dataset_id}/{data_file.name} and point VCC_DATA_MIRROR at <mirror> "
        f"(':'-separated for several; mirrors searched now: {mirrors}), or fetch it on a machine with internet."
    )
    if not download:
        raise DatasetUnavailableError(f"dataset {dataset_id!r}: no local copy of {data_file.name}. {hint}")
    if data_file.mirror_only:
        raise DatasetUnavailableError(
            f"dataset {dataset_id!r}: {data_file.name} is derived from {data_file.url} and has no byte-identical "
            f"public copy, so only a mirror can provide it. {hint}"
        )
    try:
        _download(data_file, dataset_id, target, timeout)
    except (urllib.error.URLError, OSError, TimeoutError) as error:  # ChecksumError is none of these
        raise DatasetUnavailableError(
            f"dataset {dataset_id!r}: cannot download {data_file.name} from {data_file.url} ({error}). {hint}"
        ) from error
    return target


def fetch(dataset_id: str, *, download: bool = True, timeout: float = 60.0) -> dict[str, Path]:
    """Verified local paths of every file of a dataset, by file name.

    Parameters
    ----------
    dataset_id
        A manifest id (``vcc data list`` shows them).
    download
        Allow downloading files that have no local copy.
    timeout
        Seconds to wait for the server before giving up.

    Returns
    -------
    dict
        File name → path of a verified local copy (in a mirror or in the cache).
    """
    manifest: Manifest = get_manifest(dataset_id)
    return {f.name: fetch_file(dataset_id, f, download=download, timeout=timeout) for f in manifest.files}


def clear_cached(dataset_id: str) -> None:
    """Remove a dataset's downloaded files from the cache (mirrors are never touched)."""
    shutil.rmtree(config.data_cache_dir() / dataset_id, ignore_errors=True)
