"""Shared test set-up: tool state kept out of the home directory; helpers to run the CLI in isolation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vcclib import config
from vcclib.pipeline.notebooks import contain_tool_state

PROJECT = config.project_root()

contain_tool_state()
# tests compute every step (no tables read from vcclib.memo's store; tests/test_memo.py switches it on itself)
os.environ.setdefault("VCC_NO_MEMO", "1")


def missing_real_data() -> str:
    """Why the real-data tests cannot run here ('' when they can).

    The one guard for real data: a test that reads the mirror's datasets is marked ``@pytest.mark.mirror`` and
    is skipped with this reason where there is no mirror (``../shared/data`` next to the checkout, or the
    folders in ``VCC_DATA_MIRROR``).
    """
    if config.mirror_dirs():
        return ""
    return "needs the real-data mirror: ../shared/data next to the checkout, or VCC_DATA_MIRROR=/path/to/mirror"


#: The first mirror folder (``None`` where there is none); real-data tests only run where it exists.
MIRROR = next(iter(config.mirror_dirs()), None)


def pytest_collection_modifyitems(config, items):  # noqa: D103
    marked = [item for item in items if "mirror" in item.keywords]
    reason = missing_real_data() if marked else ""
    if not reason:
        return
    for item in marked:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def isolated_env(tmp_path) -> dict[str, str]:
    """Environment for a subprocess with its own cache, runs folder and tool state under tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMIN_", "JUPYTER_", "VCC_"))}
    env.update(
        VCC_CACHE_DIR=str(tmp_path / "cache"),
        VCC_RUNS_DIR=str(tmp_path / "runs"),
        IPYTHONDIR=str(tmp_path / "cache" / "ipython"),
        MPLCONFIGDIR=str(tmp_path / "cache" / "mpl"),
    )
    if os.environ.get("VCC_DATA_MIRROR"):
        env["VCC_DATA_MIRROR"] = os.environ["VCC_DATA_MIRROR"]
    return env


def run_vcc(args: list[str], env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the ``vcc`` command in a subprocess from the project root."""
    return subprocess.run(
        [sys.executable, "-m", "vcclib.cli", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def papalexi():
    """The Papalexi 2021 ECCITE-seq data in the schema (real mirror data; use it from ``mirror``-marked tests)."""
    from vcclib.data import load

    return load("papalexi2021_eccite_lowmoi")


def project_path(*parts: str) -> Path:
    """A path inside the project checkout."""
    return PROJECT.joinpath(*parts)
