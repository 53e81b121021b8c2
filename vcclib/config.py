"""Where the project keeps things: project root, manifests, cache, mirrors, catalog, runs.

Every location is a setting read from an environment variable, with a default inside the project checkout so
that nothing is ever written to the home directory. Reading a setting has no side effect: no function here
creates a folder or writes an environment variable. The code that writes (fetching, the catalog,
:class:`vcclib.results.Results`, the notebook runner) creates the folders it writes into. ``vcc config`` prints
every setting and where it came from (:func:`settings`).

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
VCC_RUNS_DIR
    Where ``vcc run`` writes run folders. Default: ``<project>/runs``.
VCC_DEBUG
    ``1`` makes ``vcc`` print the traceback of a failure (as ``--debug`` does).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vcclib.errors import VccError

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT = "default"


class ConfigError(VccError, RuntimeError):
    """A setting cannot be resolved (e.g. the project checkout cannot be found)."""


@dataclass(frozen=True)
class Setting:
    """One setting: its name, its value and where the value came from.

    Attributes
    ----------
    name
        What ``vcc config`` calls it (``cache``, ``mirrors`` …).
    value
        The resolved value, as text.
    source
        ``environment variable VCC_…``, ``default`` or a short explanation.
    """

    name: str
    value: str
    source: str


def _from_env(variable: str) -> str | None:
    value = os.environ.get(variable, "").strip()
    return value or None


def project_root() -> Path:
    """The project checkout: the folder holding ``pyproject.toml`` and ``data_manifests/``.

    Looks next to the installed package first (editable installs), then upwards from the working directory.

    Raises
    ------
    ConfigError
        When no such folder is found.
    """
    candidates = [PACKAGE_DIR.parent, *[Path.cwd(), *Path.cwd().parents]]
    for folder in candidates:
        if (folder / "data_manifests").is_dir() and (folder / "pyproject.toml").is_file():
            return folder
    raise ConfigError(
        "cannot find the vcclib project checkout (a folder with pyproject.toml and data_manifests/); "
        "run from inside the checkout or install it with `pip install -e .`"
    )


def manifest_dir() -> Path:
    """Directory of the dataset manifests (``VCC_MANIFEST_DIR`` or ``<project>/data_manifests``)."""
    configured = _from_env("VCC_MANIFEST_DIR")
    return Path(configured).expanduser() if configured else project_root() / "data_manifests"


def cache_dir() -> Path:
    """Root of every cache (``VCC_CACHE_DIR`` or ``<project>/.cache``); not created here."""
    configured = _from_env("VCC_CACHE_DIR")
    return Path(configured).expanduser() if configured else project_root() / ".cache"


def data_cache_dir() -> Path:
    """Where downloaded dataset files are kept (``<cache>/data/<dataset id>/``); not created here."""
    return cache_dir() / "data"


def shared_mirror() -> Path | None:
    """``../shared/data`` next to the project checkout, when that folder exists."""
    try:
        shared = project_root().parent / "shared" / "data"
    except ConfigError:
        return None
    return shared if shared.is_dir() else None


def mirror_dirs() -> list[Path]:
    """Local mirror directories, in search order: ``VCC_DATA_MIRROR`` entries, then ``../shared/data``."""
    dirs = [
        Path(entry.strip()).expanduser() for entry in os.environ.get("VCC_DATA_MIRROR", "").split(":") if entry.strip()
    ]
    shared = shared_mirror()
    if shared is not None and shared not in dirs:
        dirs.append(shared)
    return dirs


def catalog_dir() -> Path:
    """Folder of the project-local lamindb instance (settings, lamindb cache); not created here."""
    return cache_dir() / "catalog"


def catalog_storage() -> str:
    """Storage location of the catalog's artifacts (``VCC_CATALOG_STORAGE`` or ``<cache>/catalog/storage``)."""
    return _from_env("VCC_CATALOG_STORAGE") or str(catalog_dir() / "storage")


def runs_dir() -> Path:
    """Where ``vcc run`` writes notebook runs (``VCC_RUNS_DIR`` or ``<project>/runs``)."""
    configured = _from_env("VCC_RUNS_DIR")
    return Path(configured).expanduser() if configured else project_root() / "runs"


def tool_state_dirs() -> dict[str, Path]:
    """Where the tools' own state (Jupyter, IPython, matplotlib, lamindb, numba) belongs: variable → folder.

    Only the locations; :func:`vcclib.pipeline.notebooks.contain_tool_state` sets the variables.
    """
    root = cache_dir() / "tool-state"
    return {
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


def _source(variable: str) -> str:
    return f"environment variable {variable}" if _from_env(variable) else DEFAULT


def settings(*, resolve_device: bool = True) -> list[Setting]:
    """Every setting with its value and where the value came from (what ``vcc config`` prints).

    Parameters
    ----------
    resolve_device
        Also say which device ``device="auto"`` resolves to (imports torch when it is installed).

    Returns
    -------
    list of Setting
    """
    env_mirrors = [e.strip() for e in os.environ.get("VCC_DATA_MIRROR", "").split(":") if e.strip()]
    shared = shared_mirror()
    found: list[Setting] = [Setting("project", str(project_root()), "the checkout holding pyproject.toml")]
    for entry in env_mirrors:
        exists = "" if Path(entry).expanduser().is_dir() else " (missing)"
        found.append(Setting("mirror", f"{entry}{exists}", "environment variable VCC_DATA_MIRROR"))
    if shared is not None and shared not in [Path(e).expanduser() for e in env_mirrors]:
        found.append(Setting("mirror", str(shared), "default: ../shared/data next to the checkout"))
    if not env_mirrors and shared is None:
        found.append(Setting("mirror", "(none)", "VCC_DATA_MIRROR unset and no ../shared/data"))
    found += [
        Setting("cache", str(cache_dir()), _source("VCC_CACHE_DIR")),
        Setting("data cache", str(data_cache_dir()), "<cache>/data"),
        Setting("manifests", str(manifest_dir()), _source("VCC_MANIFEST_DIR")),
        Setting("catalog", str(catalog_dir()), "<cache>/catalog (lamindb settings and cache)"),
        Setting("catalog storage", catalog_storage(), _source("VCC_CATALOG_STORAGE")),
        Setting("runs", str(runs_dir()), _source("VCC_RUNS_DIR")),
    ]
    if resolve_device:
        from vcclib.device import resolve_device as resolve

        device = resolve("auto")
        found.append(
            Setting(
                "device",
                f"auto -> {device.name} ({device.reason})",
                "default (each chapter's and model's `device` parameter overrides it)",
            )
        )
    found.append(Setting("debug", "on" if _from_env("VCC_DEBUG") not in (None, "0") else "off", _source("VCC_DEBUG")))
    return found
