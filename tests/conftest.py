"""Shared test set-up: tool state kept out of the home directory; helpers to run the CLI in isolation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vcclib import config

PROJECT = config.project_root()
MIRROR = PROJECT.parent / "shared" / "data"

config.contain_tool_state()


def pytest_collection_modifyitems(config, items):  # noqa: D103
    if MIRROR.is_dir() or os.environ.get("VCC_DATA_MIRROR"):
        return
    skip = pytest.mark.skip(reason="needs the real-data mirror (../shared/data or VCC_DATA_MIRROR)")
    for item in items:
        if "mirror" in item.keywords:
            item.add_marker(skip)


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
    """The Papalexi 2021 ECCITE-seq data in the schema (real mirror data)."""
    from vcclib.data import load

    return load("papalexi2021_eccite_lowmoi")


def project_path(*parts: str) -> Path:
    return PROJECT.joinpath(*parts)
