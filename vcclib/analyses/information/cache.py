"""Load each dataset once per chapter run.

The chapter reads the same datasets in several places (Papalexi and Norman for the readout, the modality matrix
and the prior benchmark; Replogle's tables for three modalities; the BioDiscoveryAgent screens for five). Inside
``with loaded_once():`` :func:`load` keeps what it loaded and hands the same object back; outside, it is plain
:func:`vcclib.data.load`. Callers treat what they get as read-only (they subsample or copy before changing it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_STORE: dict[tuple, Any] = {}
_DEPTH = [0]


def _key(dataset: str, options: dict) -> tuple:
    def freeze(value):
        if isinstance(value, (list, tuple)):
            return tuple(freeze(v) for v in value)
        if isinstance(value, dict):
            return tuple(sorted((k, freeze(v)) for k, v in value.items()))
        return value

    return dataset, freeze(options)


def load(dataset: str, **options):
    """:func:`vcclib.data.load`, memoised while a :func:`loaded_once` block is open."""
    from vcclib.data import load as load_dataset

    if not _DEPTH[0]:
        return load_dataset(dataset, **options)
    key = _key(dataset, options)
    if key not in _STORE:
        _STORE[key] = load_dataset(dataset, **options)
    return _STORE[key]


@contextmanager
def loaded_once() -> Iterator[None]:
    """Within the block, :func:`load` reads each (dataset, options) once; the store is emptied when it closes."""
    _DEPTH[0] += 1
    try:
        yield
    finally:
        _DEPTH[0] -= 1
        if not _DEPTH[0]:
            _STORE.clear()


def n_loaded() -> int:
    """How many (dataset, options) the open block holds (0 outside one)."""
    return len(_STORE)
