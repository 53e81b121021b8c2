"""Published perturbation models, trained from scratch on the project's splits behind the common interface.

Each wrapper (one module per model) registers a :class:`~vcclib.models.ModelSpec` of kind ``EXTERNAL`` that
names the tasks the model can answer on its own terms; it imports its package only when it is fitted or
loaded, so listing models imports none of them. :data:`PACKAGES` records, per model, the distributions it needs,
how they install and the licence to state next to its results; :func:`install_state` says whether a model can
run here (read from package metadata, nothing imported).

How they install (see ``../shared/docs/models.md`` for what was measured):

* ``pip install 'vcclib[models]'`` — GEARS (+ torch-geometric), biolord (+ scvi-tools) and scGen (pertpy's
  ``Scgen``, JAX) and the STATE transition model (``arc-state`` + ``cell-load``) resolve together with the
  project's pins and torch 2.13;
* ``make env-cpa``, ``make env-cellflow``, ``make env-scpram`` — CPA (``cpa-tools``: torch 2.0 / numpy 1.23),
  CellFlow (``cellflow-tools``: scikit-learn==1.5.1, scipy<1.16) and scPRAM (``scpram``: torch==1.13.1) cannot
  share the project's pins; each runs in its own environment ``.envs/<model>`` as a subprocess
  (:mod:`vcclib.models.external.ownenv`).
"""

from __future__ import annotations

from dataclasses import dataclass

from vcclib.models.external import biolord as _biolord  # noqa: F401 - registers the models
from vcclib.models.external import gears as _gears  # noqa: F401
from vcclib.models.external import scgen as _scgen  # noqa: F401


@dataclass(frozen=True)
class Package:
    """What one wrapped model needs and under which licence it is distributed."""

    distributions: tuple[str, ...]
    install: str
    licence: str
    homepage: str
    #: the name of its own environment (``.envs/<name>``, ``make env-<name>``), or None for the project's
    environment: str | None = None


#: model name → its packages, install command and licence (from each package's own metadata / licence file)
PACKAGES: dict[str, Package] = {
    "gears": Package(
        ("cell-gears", "torch-geometric", "torch"),
        "pip install 'vcclib[models]'",
        "MIT",
        "https://github.com/snap-stanford/GEARS",
    ),
    "biolord": Package(
        ("biolord", "scvi-tools", "torch"),
        "pip install 'vcclib[models]'",
        "BSD-3-Clause",
        "https://github.com/nitzanlab/biolord",
    ),
    "scgen": Package(
        ("pertpy", "jax", "flax", "scvi-tools"),
        "pip install 'vcclib[models]'",
        "BSD-3-Clause (scGen: BSD-3)",
        "https://github.com/scverse/pertpy",
    ),
    "cpa": Package(
        ("cpa-tools", "torch", "scvi-tools"),
        "make env-cpa",
        "BSD-3-Clause",
        "https://github.com/theislab/cpa",
        environment="cpa",
    ),
    "cellflow": Package(
        ("cellflow-tools", "jax", "ott-jax"),
        "make env-cellflow",
        "BSD-3-Clause",
        "https://github.com/theislab/cellflow",
        environment="cellflow",
    ),
    "scpram": Package(
        ("scpram", "torch", "pot"),
        "make env-scpram",
        "MIT",
        "https://github.com/jiang-q19/scPRAM",
        environment="scpram",
    ),
}


def install_state(name: str) -> tuple[bool, str]:
    """Whether the published model ``name`` can run here, and the command that installs it when not."""
    from importlib import metadata

    package = PACKAGES[name]
    if package.environment is not None:  # its own environment: ready once `make env-<name>` has finished
        from vcclib.models.external.ownenv import env_ready

        return env_ready(package.environment), package.install
    missing = []
    for distribution in package.distributions:
        try:
            metadata.distribution(distribution)
        except metadata.PackageNotFoundError:
            missing.append(distribution)
    return (not missing), package.install
