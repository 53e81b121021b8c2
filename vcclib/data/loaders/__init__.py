"""Loader registry: a manifest's ``loader`` field names one entry of :data:`LOADERS`.

Every loader has the signature ``loader(files, manifest, **options)`` where ``files`` maps file names to verified
local paths (from :func:`vcclib.data.fetch.fetch`) and ``manifest`` is the dataset's
:class:`~vcclib.data.manifest.Manifest`. Perturbation data come back as an AnnData in the project's schema
(:mod:`vcclib.data.schema`); tables (references, screens, annotations) as a pandas DataFrame or a dict of them.

A loader registers itself next to its code with :func:`loader`; its options are the keyword parameters of its
signature (or those it declares), and :func:`check_options` refuses any other option with the list of those that
exist.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vcclib.errors import VccError
from vcclib.registry import Registry

#: What a loader returns.
RETURNS = ("anndata", "table", "tables", "signatures")


@dataclass(frozen=True)
class LoaderSpec:
    """One dataset loader.

    Attributes
    ----------
    name
        The value of a manifest's ``loader`` field.
    func
        ``func(files, manifest, **options)``.
    returns
        ``anndata`` (the project schema), ``table`` (one DataFrame), ``tables`` (a dict of DataFrames) or
        ``signatures`` (a :class:`~vcclib.data.signatures.Signatures` object).
    options
        Keyword options the loader accepts.
    description
        One sentence.
    targets
        ``targets(loaded) -> set of gene symbols``: the genes a table dataset perturbs, for the catalog (None:
        the loader's data has no gene-level targets, or, for AnnData, they are read from ``obs['perturbation']``).
    """

    name: str
    func: Callable[..., Any]
    returns: str
    options: tuple[str, ...]
    description: str
    targets: Callable[[Any], set[str]] | None = None

    def __call__(self, files, manifest, **options):
        check_options(self, options)
        return self.func(files, manifest, **options)


LOADERS: Registry[LoaderSpec] = Registry(
    "loader",
    modules=(
        "vcclib.data.loaders.perturbseq",
        "vcclib.data.loaders.lincs",
        "vcclib.data.loaders.depmap",
        "vcclib.data.loaders.bulk",
        "vcclib.data.loaders.imaging",
        "vcclib.data.loaders.screens",
        "vcclib.data.loaders.references",
        "vcclib.data.loaders.highmoi",
        "vcclib.data.loaders.signatures",
        "vcclib.data.loaders.replogle",
    ),
)


def _signature_options(func: Callable[..., Any]) -> tuple[str, ...]:
    params = list(inspect.signature(func).parameters.values())[2:]
    return tuple(
        p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and not p.name.startswith("_")
    )


def loader(
    name: str,
    *,
    returns: str,
    description: str = "",
    options: tuple[str, ...] | None = None,
    targets: Callable[[Any], set[str]] | None = None,
):
    """Decorator: register ``func(files, manifest, **options)`` as the loader ``name``.

    Parameters
    ----------
    name
        What manifests write in their ``loader`` field.
    returns
        One of :data:`RETURNS`.
    description
        One sentence; defaults to the first line of the function's docstring.
    options
        The options it accepts; default: the keyword parameters of its signature after ``files, manifest``.
    targets
        How to read the perturbed genes from what the loader returns (see :class:`LoaderSpec`).
    """
    if returns not in RETURNS:
        raise ValueError(f"returns must be one of {RETURNS}, not {returns!r}")

    def make(func):
        doc = (func.__doc__ or "").strip().splitlines()
        return LoaderSpec(
            name=name,
            func=func,
            returns=returns,
            options=tuple(options) if options is not None else _signature_options(func),
            description=description or (doc[0] if doc else ""),
            targets=targets,
        )

    return LOADERS.decorator(make)


def check_options(spec: LoaderSpec, options: dict[str, Any]) -> None:
    """Refuse options that ``spec`` does not accept, naming those it does."""
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        accepted = ", ".join(spec.options) if spec.options else "none"
        raise VccError(f"loader {spec.name!r} has no option {', '.join(map(repr, unknown))}; its options: {accepted}")


def get_loader(name: str) -> LoaderSpec:
    """The loader registered as ``name`` (callable like the function, with its options checked)."""
    return LOADERS.get(name)
