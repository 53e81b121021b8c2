"""One registry shape for every kind of component: dataset loaders, metrics, splits and models.

Each kind declares a frozen dataclass *spec* (its metadata, typed, declared once next to the code it describes)
and one :class:`Registry` of those specs. Components register themselves with a decorator in the module that
defines them; properties that used to live in side lists (a metric's minimum number of perturbations, a model's
kind or the optional extra it needs) are fields of the spec. Listing a registry reads specs only: it never
imports torch or a model package (model specs name their class as ``"module:Class"`` and import it on use).

Examples
--------
>>> from vcclib.metrics import METRICS
>>> METRICS.get("mae").best_value
<BestValue.ZERO: 0.0>
"""

from __future__ import annotations

import dataclasses
import enum
import sys
from collections.abc import Callable, Iterator
from importlib import import_module
from typing import Any, Generic, TypeVar

import pandas as pd

from vcclib.errors import UnknownNameError

SpecT = TypeVar("SpecT")


class Side(enum.StrEnum):
    """Which reference a baseline is: a floor to beat (``MIN``) or a ceiling (``MAX``)."""

    MIN = "MIN"
    MAX = "MAX"


class ModelKind(enum.StrEnum):
    """What a registered model is."""

    MIN_REFERENCE = "MIN reference"  #: a simple floor (control mean, perturbed mean, additive)
    MAX_REFERENCE = "MAX reference"  #: a ceiling that reads held-out cells (technical duplicate, replicate)
    LEARNED = "learned"  #: a fitted non-neural model (linear, forest, kNN on features)
    NEURAL = "neural"  #: a torch model of the project's own
    EXTERNAL = "external"  #: a published model run through its own package

    @property
    def side(self) -> Side:
        """``MAX`` for the MAX reference, ``MIN`` for everything a model must beat or is."""
        return Side.MAX if self is ModelKind.MAX_REFERENCE else Side.MIN


class BestValue(float, enum.Enum):
    """A metric's value for a perfect prediction; ``NONE`` marks a descriptive metric that is never scored."""

    ZERO = 0.0
    ONE = 1.0
    NONE = float("nan")

    @property
    def higher_is_better(self) -> bool | None:
        """True for ``ONE``, False for ``ZERO``, None for ``NONE``."""
        if self is BestValue.NONE:
            return None
        return self is BestValue.ONE

    @classmethod
    def of(cls, value: float | None | BestValue) -> BestValue:
        """The member for ``0``, ``1`` or ``None``."""
        if isinstance(value, BestValue):
            return value
        if value is None:
            return cls.NONE
        return cls(float(value))


def import_object(path: str) -> Any:
    """The object named ``"package.module:attribute"``, imported on call."""
    module_name, _, attribute = path.partition(":")
    return getattr(import_module(module_name), attribute)


class Registry(Generic[SpecT]):
    """Name → spec for one kind of component.

    Parameters
    ----------
    kind
        What the registry holds, in words (``"metric"``, ``"model"``, ...): used in error messages.
    modules
        Modules whose import registers the components; imported on the first lookup so that importing the
        registry itself stays cheap. They must not import heavy packages at module level.
    """

    def __init__(self, kind: str, modules: tuple[str, ...] = ()):
        self.kind = kind
        self._modules = tuple(modules)
        self._loaded = not modules
        self._specs: dict[str, SpecT] = {}
        self._order: dict[str, tuple[int, int]] = {}

    # --- filling ---------------------------------------------------------------------------------------------
    def add(self, spec: SpecT) -> SpecT:
        """Register ``spec`` under ``spec.name``; a name is registered once."""
        name = spec.name  # type: ignore[attr-defined]
        if name in self._specs:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._specs[name] = spec
        self._order[name] = (self._declaring_module_index(), len(self._order))
        return spec

    def _declaring_module_index(self) -> int:
        """Index in ``modules`` of the module whose import is registering now (``len(modules)`` for any other).

        Registration order is the declared module order, whatever imported a module first: a module imported
        directly before the registry loads the others would otherwise register first and reorder listings.
        """
        frame = sys._getframe(2)
        while frame is not None:
            module = frame.f_globals.get("__name__")
            if module in self._modules:
                return self._modules.index(module)
            frame = frame.f_back
        return len(self._modules)

    def _ordered(self) -> list[str]:
        return sorted(self._specs, key=self._order.__getitem__)

    def decorator(self, make_spec: Callable[[Any], SpecT]) -> Callable[[Any], Any]:
        """A decorator that registers ``make_spec(obj)`` and returns ``obj`` unchanged."""

        def decorate(obj):
            self.add(make_spec(obj))
            return obj

        return decorate

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._modules:
                import_module(module)

    # --- reading ---------------------------------------------------------------------------------------------
    def get(self, name: str) -> SpecT:
        """The spec of ``name``; an :class:`~vcclib.errors.UnknownNameError` lists the registered names."""
        self._ensure_loaded()
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; registered: {', '.join(sorted(self._specs))}"
            ) from None

    def names(self) -> list[str]:
        """Registered names: by declared module, then in registration order within a module."""
        self._ensure_loaded()
        return self._ordered()

    def specs(self) -> list[SpecT]:
        """Registered specs, in the order of :meth:`names`."""
        self._ensure_loaded()
        return [self._specs[name] for name in self._ordered()]

    def where(self, **fields: Any) -> list[SpecT]:
        """Specs whose fields equal ``fields`` (``MODELS.where(kind=ModelKind.MAX_REFERENCE)``)."""
        return [s for s in self.specs() if all(getattr(s, k) == v for k, v in fields.items())]

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._specs)

    def table(self) -> pd.DataFrame:
        """One row per spec with every field that is not a callable (enums as their values)."""
        rows = []
        for spec in self.specs():
            row = {}
            for f in dataclasses.fields(spec):  # type: ignore[arg-type]
                value = getattr(spec, f.name)
                if callable(value) and not isinstance(value, enum.Enum):
                    continue
                if isinstance(value, enum.Enum):
                    value = None if value is BestValue.NONE else value.value
                elif isinstance(value, tuple | list | frozenset | set):
                    value = ", ".join(map(str, value))
                elif isinstance(value, dict):
                    value = ", ".join(f"{k}={v}" for k, v in value.items())
                row[f.name] = value
            rows.append(row)
        return pd.DataFrame(rows)
