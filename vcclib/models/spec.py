"""The model registry: every baseline and model declared once, next to its class, in :data:`MODELS`.

A :class:`ModelSpec` holds what a model is (kind, output, feature sources, optional extra, tasks it can do) and
names its class as ``"module:Class"``; the class is imported only when a model is built, so listing the registry
imports no torch and no published-model package. A class registers one spec per variant with stacked
:func:`register_model` decorators (each with its own fixed ``params``).

>>> from vcclib.models import MODELS
>>> MODELS.get("linear_go").kind, MODELS.get("linear_go").needs
(<ModelKind.LEARNED: 'learned'>, ('go',))
>>> model = MODELS.get("random_forest").create(test=True)   # tiny settings (5 trees)
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vcclib.registry import ModelKind, Registry, Side, import_object

if TYPE_CHECKING:  # pragma: no cover
    from vcclib.models.base import Model


class ModelOutput(enum.StrEnum):
    """What a model's prediction holds."""

    PSEUDOBULK = "pseudobulk"  #: one mean profile per group, repeated ``n_cells`` times
    CELLS = "cells"  #: single cells (real held-out cells for the MAX references)


class PredictionTask(enum.StrEnum):
    """A kind of question a model can answer (what its predictions are meant for)."""

    UNSEEN_PERTURBATION = "unseen perturbation"  #: a perturbation never seen in training
    COMBINATION = "combination"  #: a combination whose singles were seen
    COVARIATE_TRANSFER = "covariate transfer"  #: a seen perturbation in an unseen cell type or line


ALL_TASKS = tuple(PredictionTask)


@dataclass(frozen=True)
class ModelSpec:
    """Metadata of one registered model (a baseline is a model).

    Attributes
    ----------
    name
        The name ``vcc predict --model`` and :func:`get_model` take.
    cls
        The class, as ``"package.module:Class"`` (imported on :meth:`create`).
    kind
        :class:`~vcclib.registry.ModelKind`: MIN reference, MAX reference, learned, neural or external.
    description
        One line: what the model predicts.
    source
        Where the method comes from (paper or package).
    params
        Fixed constructor parameters of this variant.
    output
        :class:`ModelOutput`: pseudobulk repeated per cell, or cells.
    needs
        Prior-knowledge feature sources read (``go``, ``depmap``, ``coessentiality``, ``lincs``, ``text``; see
        :mod:`vcclib.models.features`).
    halves
        For a MAX reference that reads held-out cells: how they are halved (``random`` or an obs column such as
        ``replicate``); None for models that see training data only.
    extra
        The optional-dependency extra of vcclib the model needs (``pip install 'vcclib[EXTRA]'``), or None.
    tasks
        The :class:`PredictionTask` s the model can answer on its own terms (elsewhere it falls back), in the
        enum's order.
    test_params
        Parameters of the test mode: tiny settings with which the model fits in seconds.
    """

    name: str
    cls: str
    kind: ModelKind
    description: str
    source: str
    params: Mapping[str, Any] = field(default_factory=dict)
    output: ModelOutput = ModelOutput.PSEUDOBULK
    needs: tuple[str, ...] = ()
    halves: str | None = None
    extra: str | None = None
    tasks: tuple[PredictionTask, ...] = ALL_TASKS
    test_params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def side(self) -> Side:
        """``MAX`` for a MAX reference, ``MIN`` otherwise."""
        return self.kind.side

    def model_class(self) -> type[Model]:
        """The model's class (imports its module)."""
        return import_object(self.cls)

    def create(self, *, test: bool = False, **params: Any) -> Model:
        """A fresh, unfitted model.

        Settings: the registered ``params``, then the test settings (``test=True``), then ``params`` given
        here.
        """
        settings = {**self.params, **(self.test_params if test else {}), **params}
        return self.model_class()(self, **settings)


#: Every registered model (:class:`ModelSpec`), in registration order.
MODELS: Registry[ModelSpec] = Registry(
    "model",
    modules=(
        "vcclib.models.baselines.simple",
        "vcclib.models.baselines.learned",
        "vcclib.models.baselines.group_mean",
        "vcclib.grn.propagation",
        "vcclib.models.neural.vae",
        "vcclib.models.external",
        "vcclib.models.external.state",
        "vcclib.models.external.cpa",
        "vcclib.models.external.cellflow",
        "vcclib.models.external.scpram",
    ),
)


def register_model(
    name: str,
    *,
    kind: ModelKind,
    description: str,
    source: str,
    params: Mapping[str, Any] | None = None,
    output: ModelOutput | str = ModelOutput.PSEUDOBULK,
    needs: tuple[str, ...] = (),
    halves: str | None = None,
    extra: str | None = None,
    tasks=ALL_TASKS,
    test_params: Mapping[str, Any] | None = None,
) -> Callable[[type], type]:
    """Class decorator: register the decorated :class:`~vcclib.models.base.Model` subclass as ``name``.

    Stack several on one class for variants with different ``params``. The arguments are the fields of
    :class:`ModelSpec`; the class path is taken from the class.
    """

    def make(cls: type) -> ModelSpec:
        return ModelSpec(
            name=name,
            cls=f"{cls.__module__}:{cls.__qualname__}",
            kind=ModelKind(kind),
            description=description,
            source=source,
            params=dict(params or {}),
            output=ModelOutput(output),
            needs=tuple(needs),
            halves=halves,
            extra=extra,
            tasks=tuple(t for t in PredictionTask if t in {PredictionTask(t) for t in tasks}),
            test_params=dict(test_params or {}),
        )

    return MODELS.decorator(make)


def get_model(name: str, *, test: bool = False, **params: Any) -> Model:
    """A fresh, unfitted instance of the registered model ``name``.

    ``params`` override its defaults; ``test=True`` uses the tiny test settings.
    """
    return MODELS.get(name).create(test=test, **params)


def extra_installed(extra: str | None) -> bool | None:
    """Whether vcclib's optional extra ``extra`` is installed, read from package metadata (nothing is imported).

    True when every distribution the extra requires is installed (and for ``None``); False when one is missing;
    None when this installation of vcclib does not declare the extra.
    """
    if extra is None:
        return True
    from importlib import metadata

    from packaging.requirements import Requirement

    try:
        requirements = [Requirement(r) for r in (metadata.requires("vcclib") or [])]
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return None
    needed = [
        r
        for r in requirements
        if r.marker is not None and r.marker.evaluate({"extra": extra}) and not r.marker.evaluate({"extra": ""})
    ]
    if not needed:
        return None
    for requirement in needed:
        try:
            metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            return False
    return True
