"""The project's one R reader (vcclib.data.loaders._rda): the numpy string decode and the derived cache.

The string tests build R's XDR serialisation by hand (a known truth); the cache tests use a mirror file.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vcclib.data.loaders import _rda

ASCII, UTF8, NA = 0x00040009, 0x00008009, 0x00000009


def _strsxp(values) -> bytes:
    out = b""
    for v in values:
        if v is None:
            out += struct.pack(">ii", NA, -1)
        else:
            raw = v.encode("utf-8")
            out += struct.pack(">ii", ASCII if raw.isascii() else UTF8, len(raw)) + raw
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_strings_equal_the_loop(seed):
    rng = np.random.default_rng(seed)
    vocab = ["weak_dependency", "dependency", "", "ninechars", "naïve-α", "A1BG", "x" * 40, None]
    values = [vocab[i] for i in rng.integers(0, len(vocab), 3000)]
    raw = _strsxp(values) + b"\x00\x00\x00\xfe"  # followed by a NILVALUE, as in a file
    fast, loop = _rda._XDR(raw), _rda._XDR(raw)
    out = fast._strings_vectorised(len(values))
    assert out == values == loop._strings_loop(len(values))
    assert fast.pos == loop.pos == len(raw) - 4


def test_vectorised_strings_refuse_what_they_cannot_prove():
    raw = struct.pack(">ii", 0x00040010, 5) + b"abcde"  # not a CHARSXP header
    assert _rda._XDR(raw * 400)._strings_vectorised(400) is None


@pytest.mark.mirror
def test_derived_cache_round_trip_and_check(tmp_path, monkeypatch):
    from vcclib.data.fetch import fetch

    monkeypatch.setenv("VCC_CACHE_DIR", str(tmp_path))
    path = next(Path(p) for p in fetch("grn_dorothea", download=False).values() if str(p).endswith(".rda"))
    fresh = _rda.read_rda(path, cache=False)
    assert _rda.cached_frames(path) is None
    written = _rda.write_cached_frames(path, fresh)
    assert written is not None and written.parent == tmp_path / "derived" / "rda"
    cached = _rda.read_rda(path)
    assert list(cached) == list(fresh)
    for name in fresh:
        pd.testing.assert_frame_equal(cached[name], fresh[name])
    written.write_bytes(b"not an npz")  # a damaged cache is ignored, never trusted
    assert _rda.cached_frames(path) is None
    assert _rda.read_rda(path, cache=False).keys() == fresh.keys()
