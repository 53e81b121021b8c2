"""Every command shown in README.md and book/reference/rerun.md runs, in the order shown.

The commands are read from the documents' fenced ``bash`` blocks (``text`` blocks hold synopses). Fast commands
run in the default suite; long ones (the make targets, chapters, the book, registering every dataset, a full
prediction and its evaluation) run with ``-m slow``. A command the table below does not classify fails the test,
so a command added to a document is a command tested.

Commands run from a fresh folder standing for the user's working directory: it links the checkout's
``notebooks/`` (the documents name ``notebooks/params/…``) and holds ``my.h5ad``, the user's file of the
README's example: the Papalexi 2021 mirror data with the perturbation in obs column ``gene``. ``.venv/bin/`` is
this environment's ``bin`` folder; make targets run in the checkout.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT

DOCUMENTS = ("README.md", "book/reference/rerun.md")
FENCE = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)

#: command prefix → "fast" or "slow"; the first matching prefix wins.
SPEED = (
    ("make ", "slow"),
    ("vcc config", "fast"),
    ("vcc data list", "fast"),
    ("vcc data info ", "fast"),
    ("vcc data fetch ", "fast"),
    ("vcc data register", "slow"),
    ("vcc data query ", "slow"),  # needs the datasets registered first
    ("vcc predict --list", "fast"),
    ("vcc predict ", "slow"),
    ("vcc eval ", "slow"),
    ("vcc run ", "slow"),
    ("vcc book", "slow"),
)


def commands(document: str) -> list[str]:
    """The shell commands of a document's ``bash`` blocks, comments removed, in order."""
    text = (PROJECT / document).read_text()
    found = []
    for block in FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            command = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
            if command:
                found.append(command)
    return found


def speed(command: str) -> str:
    """``fast`` or ``slow`` for a command; fails the test for a command the table does not know."""
    if command.endswith("--list-parameters"):
        return "fast"
    plain = command.removeprefix(".venv/bin/")
    for prefix, kind in SPEED:
        if plain.startswith(prefix):
            return kind
    pytest.fail(f"no speed for the documented command {command!r}: add its prefix to SPEED")


def _argv(command: str) -> tuple[list[str], Path | None]:
    argv = shlex.split(command)
    if argv[0].startswith(".venv/bin/"):
        argv[0] = str(Path(sys.executable).parent / argv[0].removeprefix(".venv/bin/"))
        return argv, None
    assert argv[0] == "make", f"a documented command starts with .venv/bin/ or make: {command!r}"
    return argv, PROJECT


@pytest.fixture
def user_folder(tmp_path, isolated_env, request):
    """The user's working directory: the checkout's notebooks linked, their own my.h5ad (for the slow commands,
    which use it), caches under tmp_path."""
    import anndata as ad
    import pandas as pd

    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "notebooks").symlink_to(PROJECT / "notebooks")
    if request.node.get_closest_marker("slow") is None:
        return folder, isolated_env
    papalexi = request.getfixturevalue("papalexi")
    obs = pd.DataFrame({"gene": papalexi.obs["perturbation"].astype(str).to_numpy()}, index=papalexi.obs_names)
    user = ad.AnnData(X=papalexi.layers["counts"].copy(), obs=obs, var=pd.DataFrame(index=papalexi.var_names))
    user.write_h5ad(folder / "my.h5ad")
    return folder, isolated_env


def _run_all(document: str, kinds: set[str], folder: Path, env: dict[str, str]) -> int:
    ran = 0
    for command in commands(document):
        if speed(command) not in kinds:
            continue
        argv, cwd = _argv(command)
        run_env = env if cwd is None else {k: v for k, v in os.environ.items()}
        completed = subprocess.run(argv, cwd=cwd or folder, env=run_env, capture_output=True, text=True,
                                   timeout=3600, stdin=subprocess.DEVNULL)  # fmt: skip
        assert completed.returncode == 0, (
            f"{document}: `{command}` exited {completed.returncode}:\n{completed.stderr[-3000:]}"
        )
        ran += 1
    return ran


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_documented_command_is_runnable_or_known_slow(document):
    found = commands(document)
    assert found, f"{document} shows no bash command"
    for command in found:
        speed(command)
        _argv(command)
    assert "unseen_perturbations" not in (PROJECT / document).read_text()  # the split is unseen_perturbation


@pytest.mark.mirror
@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_fast_documented_commands_run(document, user_folder):
    folder, env = user_folder
    assert _run_all(document, {"fast"}, folder, env) >= 3


@pytest.mark.slow
@pytest.mark.mirror
@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_documented_command_runs_in_order(document, user_folder):
    folder, env = user_folder
    assert _run_all(document, {"fast", "slow"}, folder, env) == len(commands(document))
