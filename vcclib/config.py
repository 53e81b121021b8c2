"""Where the project keeps things: project root, manifests, cache, mirrors, catalog.

Every location is a setting read from an environment variable, with a default inside the project checkout so
that nothing is ever written to the home directory.

Environment variables
---------------------
VCC_DATA_MIRROR
    ``:``-separated directories that hold mirrored dataset files (``<dir>/<dataset id>/<file name>``). They are
    searched before the cache. ``../shared/data`` next to the project is always added when it exists.
VCC_CACHE_DIR
    Where downloaded files, the lamindb catalog and other caches live. Default: ``<project>/.cache``.
VCC_MANIFEST_DIR
    Directory of dataset manifests. Default: ``<project>/data_manifests``.
VCC_CATALOG_STORAGE
    Storage location of the lamindb catalog (a local folder, or ``s3://…``/``gs://…`` for cloud storage).
    Default: ``<cache>/catalog/storage``.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path:
    """The project checkout: the folder holding ``pyproject.toml`` and ``data_manifests/``.

    Looks next to the installed package first (editable installs), then upwards from the working directory.
    """
    candidates = [PACKAGE_DIR.parent, *[Path.cwd(), *Path.cwd().parents]]
    for folder in candidates:
        if (folder / "data_manifests").is_dir() and (folder / "pyproject.toml").is_file():
            return folder
    raise RuntimeError(
        "Cannot find the vcclib project checkout (a folder with pyproject.toml and data_manifests/). "
        "Run from inside the checkout or install it with `pip install -e .`."
    )


def manifest_dir() -> Path:
    """Directory of the dataset manifests (``VCC_MANIFEST_DIR`` or ``<project>/data_manifests``)."""
    configured = os.environ.get("VCC_MANIFEST_DIR")
    return Path(configured) if configured else project_root() / "data_manifests"


def cache_dir() -> Path:
    """Root of every cache (``VCC_CACHE_DIR`` or ``<project>/.cache``); created on first use."""
    configured = os.environ.get("VCC_CACHE_DIR")
    path = Path(configured).expanduser() if configured else project_root() / ".cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_cache_dir() -> Path:
    """Where downloaded dataset files are kept (``<cache>/data/<dataset id>/``)."""
    path = cache_dir() / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path


def mirror_dirs() -> list[Path]:
    """Local mirror directories, in search order: ``VCC_DATA_MIRROR`` entries, then ``../shared/data``."""
    dirs: list[Path] = []
    for entry in os.environ.get("VCC_DATA_MIRROR", "").split(":"):
        if entry.strip():
            dirs.append(Path(entry.strip()).expanduser())
    try:
        shared = project_root().parent / "shared" / "data"
    except RuntimeError:
        shared = None
    if shared is not None and shared.is_dir() and shared not in dirs:
        dirs.append(shared)
    return dirs


def catalog_dir() -> Path:
    """Folder of the project-local lamindb instance (settings, SQLite database)."""
    path = cache_dir() / "catalog"
    path.mkdir(parents=True, exist_ok=True)
    return path


def catalog_storage() -> str:
    """Storage location of the catalog's artifacts (``VCC_CATALOG_STORAGE`` or ``<cache>/catalog/storage``)."""
    configured = os.environ.get("VCC_CATALOG_STORAGE")
    return configured if configured else str(catalog_dir() / "storage")


def runs_dir() -> Path:
    """Where ``vcc run`` writes notebook runs (``VCC_RUNS_DIR`` or ``<project>/runs``)."""
    configured = os.environ.get("VCC_RUNS_DIR")
    return Path(configured) if configured else project_root() / "runs"


def contain_tool_state() -> dict[str, str]:
    """Point the tools' own state folders (Jupyter, IPython, matplotlib, lamindb, numba) into the cache.

    Sets each environment variable only when it is unset, so a user's explicit choice wins. Called by the
    ``vcc`` command and by the notebook runner so that nothing is written to the home directory.

    Returns
    -------
    dict
        The variables this call set.
    """
    root = cache_dir() / "tool-state"
    wanted = {
        "JUPYTER_CONFIG_DIR": root / "jupyter" / "config",
        "JUPYTER_DATA_DIR": root / "jupyter" / "data",
        "JUPYTER_RUNTIME_DIR": root / "jupyter" / "runtime",
        "IPYTHONDIR": root / "ipython",
        "MPLCONFIGDIR": root / "matplotlib",
        "XDG_CACHE_HOME": root / "xdg-cache",
        "XDG_CONFIG_HOME": root / "xdg-config",
        "NUMBA_CACHE_DIR": root / "numba",
        "LAMIN_SETTINGS_DIR": catalog_dir() / "settings",
        "LAMIN_CACHE_DIR": catalog_dir() / "lamin-cache",
    }
    changed = {}
    for name, path in wanted.items():
        if not os.environ.get(name):
            path.mkdir(parents=True, exist_ok=True)
            os.environ[name] = str(path)
            changed[name] = str(path)
    return changed
