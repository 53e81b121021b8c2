"""A small, fast reader of R's XDR serialisation (``.rda`` / ``.RData``), for plain data objects.

The ``rdata`` package converts every element through Python objects and takes about a minute on a 75 MB
``dgTMatrix`` or on a list of a million strings; this reader takes seconds, because numeric vectors are read with
``numpy.frombuffer`` and strings in one tight loop. It reads what the mirror's R files hold: atomic vectors,
lists, pairlists, data frames, factors and S4 objects (e.g. Matrix's ``dgTMatrix``). Anything else (ALTREP,
environments, closures, bytecode) raises ``NotImplementedError``; :func:`read_rda` then falls back to ``rdata``.

Values come back as:

- STRSXP: a list of ``str`` (``None`` for NA);
- INTSXP / LGLSXP / REALSXP: a numpy array (R's integer NA is ``-2**31``);
- VECSXP: a :class:`RList` (a list with ``.names`` and ``.attributes``);
- a data frame: a pandas DataFrame; a factor: a pandas Categorical;
- an S4 object: a :class:`types.SimpleNamespace` of its slots (``Dim``, ``Dimnames``, ``i``, ``j``, ``x``, …).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

NA_INTEGER = -(2**31)


class RList(list):
    """An R generic vector: a list, with the element names (or None) and the other attributes."""

    def __init__(self, values, names=None, attributes=None):
        super().__init__(values)
        self.names = names
        self.attributes = attributes or {}

    def as_dict(self) -> dict:
        """Elements by name (positional names ``_0``, ``_1``… where R gives none)."""
        names = self.names or [f"_{i}" for i in range(len(self))]
        return dict(zip(names, self))


class _XDR:
    def __init__(self, raw: bytes):
        self.buf = raw
        self.view = memoryview(raw)
        self.pos = 0
        self.refs: list = []

    def int(self) -> int:
        (value,) = struct.unpack_from(">i", self.buf, self.pos)
        self.pos += 4
        return value

    def length(self) -> int:
        n = self.int()
        if n == -1:
            high, low = self.int(), self.int()
            n = (high << 32) + low
        return n

    def strings(self, n: int) -> list:
        """``n`` CHARSXP elements of a STRSXP, decoded in one loop (repeated strings share one object)."""
        buf, pos, unpack, seen = self.buf, self.pos, struct.unpack_from, {}
        out = [None] * n
        for index in range(n):
            flags, size = unpack(">ii", buf, pos)
            pos += 8
            if flags & 0xFF != 9:
                raise NotImplementedError(f"string element of SEXP type {flags & 0xFF}")
            if size == -1:
                continue
            chunk = buf[pos : pos + size]
            pos += size
            value = seen.get(chunk)
            if value is None:
                value = seen[chunk] = chunk.decode("utf-8", errors="replace")
            out[index] = value
        self.pos = pos
        return out

    def pairlist(self, flags: int) -> dict:
        out: dict = {}
        kind = flags & 0xFF
        while kind == 2:
            if flags & (1 << 9):
                self.item()  # attributes of a pairlist node: none that matter here
            tag = self.item() if flags & (1 << 10) else f"_{len(out)}"
            out[tag] = self.item()
            flags = self.int()
            kind = flags & 0xFF
        if kind != 254:
            raise NotImplementedError(f"pairlist ending in SEXP type {kind}")
        return out

    def item(self):
        flags = self.int()
        kind, has_attr = flags & 0xFF, bool(flags & (1 << 9))
        if kind in (254, 242, 253, 241, 251, 252):  # NULL, empty/global/base env, missing arg, unbound
            return None
        if kind == 255:  # REFSXP
            index = flags >> 8 or self.int()
            return self.refs[index - 1]
        if kind == 1:  # SYMSXP
            name = self.item()
            self.refs.append(name)
            return name
        if kind == 9:  # CHARSXP
            n = self.int()
            if n == -1:
                return None
            value = self.buf[self.pos : self.pos + n].decode("utf-8", errors="replace")
            self.pos += n
            return value
        if kind == 2:
            return self.pairlist(flags)
        if kind == 25:  # S4SXP: the slots are its attributes
            slots = self.item() if has_attr else {}
            return SimpleNamespace(**{str(k): v for k, v in slots.items()})
        if kind in (10, 13, 14, 16, 19, 20):
            n = self.length()
            if kind == 14:
                value = np.frombuffer(self.buf, dtype=">f8", count=n, offset=self.pos).astype(float)
                self.pos += 8 * n
            elif kind in (10, 13):
                value = np.frombuffer(self.buf, dtype=">i4", count=n, offset=self.pos).astype(np.int32)
                self.pos += 4 * n
            elif kind == 16:
                value = self.strings(n)
            else:
                value = [self.item() for _ in range(n)]
            attributes = self.item() if has_attr else {}
            return _wrap(kind, value, attributes or {})
        raise NotImplementedError(f"SEXP type {kind}")


def _row_names(attributes: dict, n: int):
    names = attributes.get("row.names")
    if isinstance(names, list):
        return pd.Index(names, dtype=object)
    if isinstance(names, np.ndarray) and len(names) == n and not (n == 2 and names[0] == NA_INTEGER):
        return pd.Index(names.astype(str), dtype=object)  # integer row names kept from a subset
    return pd.RangeIndex(n)  # compact form c(NA, -n): automatic row names


def _wrap(kind: int, value, attributes: dict):
    classes = attributes.get("class") or []
    if kind == 13 and "factor" in classes:
        levels = attributes.get("levels") or []
        codes = np.where(value == NA_INTEGER, -1, value.astype(np.int64) - 1)
        return pd.Categorical.from_codes(codes, categories=levels)
    if kind == 19:
        names = attributes.get("names")
        if "data.frame" in classes:
            columns = {
                str(name): (col if not isinstance(col, RList) else list(col)) for name, col in zip(names, value)
            }
            n = len(next(iter(columns.values()))) if columns else 0
            return pd.DataFrame(columns, index=_row_names(attributes, n))
        return RList(value, names=names, attributes=attributes)
    if attributes.get("dim") is not None and isinstance(value, np.ndarray):
        dims = tuple(int(d) for d in attributes["dim"])
        return SimpleNamespace(data=value.reshape(dims, order="F"), dimnames=attributes.get("dimnames"))
    if attributes.get("dim") is not None and isinstance(value, list):
        dims = tuple(int(d) for d in attributes["dim"])
        return SimpleNamespace(data=np.asarray(value, dtype=object).reshape(dims, order="F"),
                               dimnames=attributes.get("dimnames"))  # fmt: skip
    return value


def decompress(path: Path) -> bytes:
    """The serialised bytes of an .rda file (gzip, bzip2, xz or none)."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    if raw[:3] == b"BZh":
        return bz2.decompress(raw)
    if raw[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(raw)
    return raw


def fast_read_rda(path: str | Path) -> dict:
    """The named objects of an .rda file, read with the XDR reader above (NotImplementedError when it cannot)."""
    raw = decompress(Path(path))
    if raw[:5] not in (b"RDX2\n", b"RDX3\n") or raw[5:7] != b"X\n":
        raise NotImplementedError("not an XDR .rda file")
    reader = _XDR(raw)
    reader.pos = 7
    version = reader.int()
    reader.int(), reader.int()
    if version == 3:
        reader.pos += 4 + reader.int()  # native encoding name
    objects = reader.item()
    if not isinstance(objects, dict):
        raise NotImplementedError("the file does not hold a pairlist of named objects")
    return objects


def read_rda(path: str | Path) -> dict:
    """The named objects of an .rda file: the fast reader, else the ``rdata`` package (slower, more complete)."""
    try:
        return fast_read_rda(path)
    except (NotImplementedError, ValueError, KeyError, TypeError, IndexError, struct.error):
        import rdata

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rdata warns about S4 classes it returns as namespaces
            return rdata.conversion.convert(rdata.parser.parse_file(path))
