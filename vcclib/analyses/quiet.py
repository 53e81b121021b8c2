"""Run library code without progress bars on stderr, so a chapter's output shows none (the book has no stderr)."""

from __future__ import annotations

import contextlib
import io
import re
import warnings

#: a tqdm-style progress line (``12/40 [00:01<00:02, …]`` or a bar of block characters)
PROGRESS = re.compile(r"\d+\w*\s*\[[\d:]+(<[\d:?]+)?,|\|[\s█▏▎▍▌▋▊▉]*\|")


def quietly(function, *args, **kwargs):
    """Call ``function`` with stderr captured: progress bars are dropped, any other text becomes a warning.

    A chapter keeps its warnings in its run folder (``Results.keep_warnings``), so nothing but the bars is lost.
    """
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        value = function(*args, **kwargs)
    for line in buffer.getvalue().replace("\r", "\n").splitlines():
        if line.strip() and not PROGRESS.search(line):
            warnings.warn(line.strip(), stacklevel=2)
    return value
