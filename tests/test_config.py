"""Settings: every one printed with its source by `vcc config`; reading them creates nothing and sets nothing."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import PROJECT, run_vcc

from vcclib import config


def test_reading_every_setting_creates_no_folder_and_writes_no_environment(tmp_path, monkeypatch):
    cache = tmp_path / "not-yet" / "cache"
    monkeypatch.setenv("VCC_CACHE_DIR", str(cache))
    monkeypatch.setenv("VCC_RUNS_DIR", str(tmp_path / "not-yet" / "runs"))
    before = dict(os.environ)
    found = {s.name: s for s in config.settings(resolve_device=False)}
    paths = [config.cache_dir(), config.data_cache_dir(), config.catalog_dir(), config.runs_dir(),
             config.manifest_dir(), *config.tool_state_dirs().values()]  # fmt: skip
    config.catalog_storage()
    config.mirror_dirs()
    assert dict(os.environ) == before
    assert not (tmp_path / "not-yet").exists()
    assert paths[0] == cache and found["cache"].value == str(cache)
    assert found["cache"].source == "environment variable VCC_CACHE_DIR"
    assert found["catalog storage"].value == str(cache / "catalog" / "storage")
    assert found["catalog storage"].source == "default"


def test_vcc_config_prints_each_setting_and_where_it_came_from(isolated_env, tmp_path):
    mirror = tmp_path / "my-mirror"
    mirror.mkdir()
    env = {
        **isolated_env,
        "VCC_DATA_MIRROR": f"{mirror}:{tmp_path / 'gone'}",
        "VCC_CATALOG_STORAGE": "s3://bucket/x",
    }
    env.pop("VCC_MANIFEST_DIR", None)
    completed = run_vcc(["config"], env)
    assert completed.returncode == 0, completed.stderr
    rows = {}
    for line in completed.stdout.splitlines():
        name, rest = line.split("  ", 1)
        rows.setdefault(name.strip(), []).append(rest.strip())
    assert {"project", "mirror", "cache", "manifests", "catalog storage", "runs", "device"} <= set(rows)
    mirrors = " ".join(rows["mirror"])
    assert str(mirror) in mirrors and f"{tmp_path / 'gone'} (missing)" in mirrors
    assert "[environment variable VCC_DATA_MIRROR]" in mirrors
    assert rows["catalog storage"][0].split()[0] == "s3://bucket/x"
    assert "[environment variable VCC_CATALOG_STORAGE]" in rows["catalog storage"][0]
    assert str(tmp_path / "cache") in rows["cache"][0] and "VCC_CACHE_DIR" in rows["cache"][0]
    assert str(PROJECT / "data_manifests") in rows["manifests"][0] and "[default]" in rows["manifests"][0]
    assert rows["device"][0].startswith("auto -> ")
    assert not (tmp_path / "cache").exists()  # printing the settings created nothing


def test_the_catalog_leaves_the_working_directory_alone(isolated_env, tmp_path):
    """Opening the lamindb catalog (first use: it is created) writes nothing into the caller's folder."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    script = (
        "import os; from vcclib.data import catalog; before = os.getcwd(); catalog.registered(); "
        "assert os.getcwd() == before, os.getcwd(); print('ok')"
    )
    completed = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=isolated_env,
                               capture_output=True, text=True, timeout=300)  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert list(cwd.iterdir()) == []  # no .lamin/current_instance marker
    assert (tmp_path / "cache" / "catalog" / "settings" / ".lamin").is_dir()
    again = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=isolated_env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]  # reconnects to the instance it created
    assert list(cwd.iterdir()) == []
