"""Published perturbation models, trained from scratch on the project's splits behind the common interface.

Each wrapper (one module per model) registers a :class:`~vcclib.models.ModelSpec` of kind ``EXTERNAL`` that
names the tasks the model can answer on its own terms; it imports its package only when it is fitted or
loaded, so listing models imports none of them. :data:`PACKAGES` records, per model, the distributions it needs,
how they install and the licence to state next to its results; :func:`install_state` says whether a model can
run here (read from package metadata, nothing imported).

How they install (see ``../shared/docs/models.md`` for what was measured):

* ``pip install 'vcclib[models]'`` — GEARS (+ torch-geometric), biolord (+ scvi-tools) and scGen (pertpy's
  ``Scgen``, JAX) resolve together with the project's pins and torch 2.13;
* not wrapped yet (their packages install, see the report of issue 16): the STATE transition model
  (``arc-state``), CellFlow (``cellflow-tools``, declares scikit-learn==1.5.1, so only ``--no-deps``), scPRAM
  (``scpram``, declares torch==1.13.1, ``--no-deps``) and CPA (``cpa-tools``: torch 2.0 / numpy 1.23, its own
  environment).
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


#: model name → its packages, install command and licence (from each package's own metadata / licence file)
PACKAGES: dict[str, Package] = {
    "gears": Package(("cell-gears", "torch-geometric", "torch"), "pip install 'vcclib[models]'", "MIT",
                     "https://github.com/snap-stanford/GEARS"),
    "biolord": Package(("biolord", "scvi-tools", "torch"), "pip install 'vcclib[models]'", "BSD-3-Clause",
                       "https://github.com/nitzanlab/biolord"),
    "scgen": Package(("pertpy", "jax", "flax", "scvi-tools"), "pip install 'vcclib[models]'", "BSD-3-Clause (scGen: BSD-3)",
                     "https://github.com/scverse/pertpy"),
}


def install_state(name: str) -> tuple[bool, str]:
    """Whether the published model ``name`` can run here, and the command that installs it when not."""
    from importlib import metadata

    package = PACKAGES[name]
    missing = []
    for distribution in package.distributions:
        try:
            metadata.distribution(distribution)
        except metadata.PackageNotFoundError:
            missing.append(distribution)
    return (not missing), package.install
