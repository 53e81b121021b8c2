"""A small, fast reader of R's XDR serialisation (``.rda`` / ``.RData``), for plain data objects.

The ``rdata`` package converts every element through Python objects and takes about a minute on a 75 MB
``dgTMatrix`` or on a list of a million strings; this reader takes seconds, because numeric vectors are read with
``numpy.frombuffer`` and long string vectors are decoded with numpy (a parse it checks, else one tight loop). It
reads what the mirror's R files hold: atomic vectors, lists, pairlists, data frames, factors and S4 objects (e.g.
Matrix's ``dgTMatrix``). Anything else (ALTREP, environments, closures, bytecode) raises ``NotImplementedError``;
:func:`read_rda` then falls back to ``rdata``. It is the project's one R reader (DoRothEA, DepMap calls, sceptre's
high-MOI data, signatures). Large data-frame files are kept as a checked derived cache (:func:`read_rda`).

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
#: a STRSXP at least this long is decoded with numpy (:meth:`_XDR._strings_vectorised`)
_VECTORISED_MIN = 256


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
        """``n`` CHARSXP elements of a STRSXP (repeated strings share one object): vectorised, else one loop."""
        if n >= _VECTORISED_MIN:
            out = self._strings_vectorised(n)
            if out is not None:
                return out
        return self._strings_loop(n)

    def _strings_loop(self, n: int) -> list:
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

    def _strings_vectorised(self, n: int) -> list | None:
        """The same elements found with numpy, or None where the fast path cannot prove its parse.

        Every element is a CHARSXP header (4 flag bytes: 0, level bits, type 9) and a length, then its bytes. The
        headers are located as byte patterns in a window; the parse is accepted only when the first ``n`` of them
        form the exact chain the sequential reader would walk (each header at the previous one + 8 + its length),
        so a pattern inside a string (a length field of 9 looks like a header) makes it fall back, never misread.
        """
        buf, start = self.buf, self.pos
        window = min(len(buf) - start, 24 * n)
        while True:
            b = np.frombuffer(buf, dtype=np.uint8, count=window, offset=start)
            if b.size < 8 * n:
                return None
            cand = np.flatnonzero(b[3:-4] == 9)
            cand = cand[(b[cand] == 0) & ((b[cand + 1] & 0xF0) == 0)]
            # a length field equal to 9 directly after a header looks like a header too: drop those
            before = np.minimum(np.searchsorted(cand, cand - 4), cand.size - 1)
            cand = cand[cand[before] != cand - 4]
            if cand.size >= n or start + window >= len(buf):
                break
            window = min(len(buf) - start, window * 2)
        if cand.size < n:
            return None
        heads = cand[:n]
        fields = b[(heads + 4)[:, None] + np.arange(4)].astype(np.int64)
        lengths = (fields[:, 0] << 24) | (fields[:, 1] << 16) | (fields[:, 2] << 8) | fields[:, 3]
        lengths = np.where(lengths >= 2**31, lengths - 2**32, lengths)
        na = lengths == -1
        if heads[0] != 0 or (lengths < -1).any():
            return None
        steps = heads + 8 + np.where(na, 0, lengths)
        if not np.array_equal(steps[:-1], heads[1:]):
            return None
        width = int(lengths.max(initial=0))
        if width * n > 1 << 28:  # one fixed-width copy of the strings: refuse above 256 MB
            return None
        size = np.where(na, 0, lengths)
        words = max(1, -(-width // 8))
        columns = np.arange(8 * words)
        grid = b[np.minimum((heads + 8)[:, None] + columns, b.size - 1)]
        grid[columns[None, :] >= size[:, None]] = 0
        keys = grid.view(">u8")  # (n, words): equal rows are equal strings (no string holds a NUL byte)
        order = np.lexsort(keys.T[::-1])
        ranked = keys[order]
        first = np.ones(n, dtype=bool)
        first[1:] = (ranked[1:] != ranked[:-1]).any(axis=1)
        inverse = np.empty(n, dtype=np.int64)
        inverse[order] = np.cumsum(first) - 1
        firsts = order[first]
        decoded = np.empty(firsts.size + 1, dtype=object)
        decoded[:-1] = [
            buf[h + 8 : h + 8 + s].decode("utf-8", errors="replace")
            for h, s in zip((start + heads[firsts]).tolist(), size[firsts].tolist(), strict=True)
        ]
        decoded[-1] = None
        inverse[na] = firsts.size
        self.pos = start + int(steps[-1])
        return decoded[inverse].tolist()

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
            columns = {str(name): (col if not isinstance(col, RList) else list(col)) for name, col in zip(names, value)}
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


def read_rda(path: str | Path, cache: bool | None = None) -> dict:
    """The named objects of an .rda file: the fast reader, else the ``rdata`` package (slower, more complete).

    Parameters
    ----------
    path
        The .rda / .RData file.
    cache
        Keep a derived copy of the file's data frames under ``<cache>/derived/rda/<sha256 of the file>.npz``
        (``allow_pickle=False``; see :func:`cached_frames`) and read it instead when present. ``None`` (default):
        only for a file that decompresses to at least :data:`CACHE_MIN_BYTES` and holds nothing but plain data
        frames (DepMap's 22Q1 calls: 424 MB of strings, about 40 s to decode, under a second from the cache).
    """
    if cache is not False:
        cached = cached_frames(path)
        if cached is not None:
            return cached
    try:
        objects = fast_read_rda(path)
    except (NotImplementedError, ValueError, KeyError, TypeError, IndexError, struct.error):
        import rdata

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rdata warns about S4 classes it returns as namespaces
            return rdata.conversion.convert(rdata.parser.parse_file(path))
    if cache or (cache is None and _decompressed_size(path) >= CACHE_MIN_BYTES):
        write_cached_frames(path, objects)
    return objects


# --- a checked derived cache of data-frame files --------------------------------------------------------------------

#: files that decompress to at least this many bytes are cached by default (:func:`read_rda`)
CACHE_MIN_BYTES = 64 * 2**20
_CACHE_FORMAT = 1


def _cache_path(path: str | Path) -> tuple[Path, str]:
    from vcclib import config
    from vcclib.data.fetch import sha256_of

    digest = sha256_of(path)
    return config.cache_dir() / "derived" / "rda" / f"{digest}.npz", digest


def _decompressed_size(path: str | Path) -> int:
    """The serialised size: gzip's trailer where it is gzip (modulo 4 GiB), else the file size."""
    with open(path, "rb") as handle:
        if handle.read(2) != b"\x1f\x8b":
            return Path(path).stat().st_size
        handle.seek(-4, 2)
        return struct.unpack("<I", handle.read(4))[0]


def write_cached_frames(path: str | Path, objects: dict) -> Path | None:
    """Write the data frames of ``objects`` as the derived cache of ``path``; None when they are not plain frames.

    Each column is stored as a numeric array, or (strings) as integer codes (int8 where they fit) into a unicode array of its distinct
    values (−1 = NA); the file's sha256 is stored with them and checked on reading. Written to a temporary file
    and renamed, so a reader never sees half a cache.
    """
    arrays: dict[str, np.ndarray] = {}
    for o, (name, frame) in enumerate(objects.items()):
        if not isinstance(frame, pd.DataFrame) or not isinstance(frame.index, pd.RangeIndex):
            return None
        arrays[f"object_{o}"] = np.array([str(name)])
        arrays[f"columns_{o}"] = np.array([str(c) for c in frame.columns])
        for c, column in enumerate(frame.columns):
            values = frame[column]
            if values.dtype.kind in "biuf":
                arrays[f"values_{o}_{c}"] = values.to_numpy()
            elif values.dtype == object and all(isinstance(v, str) or v is None for v in pd.unique(values.to_numpy())):
                codes, uniques = pd.factorize(values.to_numpy(), use_na_sentinel=True)
                small = np.int8 if len(uniques) < 127 else np.int16 if len(uniques) < 32767 else np.int32
                arrays[f"codes_{o}_{c}"] = codes.astype(small)
                arrays[f"levels_{o}_{c}"] = np.array(list(uniques), dtype=str)
            else:
                return None
    target, digest = _cache_path(path)
    arrays["format"] = np.array([_CACHE_FORMAT])
    arrays["source_sha256"] = np.array([digest])
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{np.random.default_rng().integers(1 << 62)}.partial")
    with open(partial, "wb") as handle:
        np.savez(handle, **arrays)
    partial.replace(target)
    return target


def cached_frames(path: str | Path) -> dict | None:
    """The data frames of ``path`` from its derived cache, or None (no cache, or one that fails its checks)."""
    target, digest = _cache_path(path)
    if not target.is_file():
        return None
    try:
        with np.load(target, allow_pickle=False) as stored:
            if int(stored["format"][0]) != _CACHE_FORMAT or str(stored["source_sha256"][0]) != digest:
                return None
            out, o = {}, 0
            while f"object_{o}" in stored:
                columns = {}
                for c, column in enumerate(stored[f"columns_{o}"].tolist()):
                    if f"values_{o}_{c}" in stored:
                        columns[column] = stored[f"values_{o}_{c}"]
                    else:
                        levels = np.append(stored[f"levels_{o}_{c}"].astype(object), None)
                        columns[column] = levels[stored[f"codes_{o}_{c}"]]
                lengths = {len(v) for v in columns.values()}
                if len(lengths) > 1:
                    return None
                out[str(stored[f"object_{o}"][0])] = pd.DataFrame(columns)
                o += 1
    except (OSError, ValueError, KeyError, IndexError):
        return None
    return out or None
