"""One exception base for the project.

Every error a user can cause (bad input, a missing file, an unknown name, a tampered download) is a
:class:`VccError`. The ``vcc`` command prints such an error as one line and exits 2; any other exception is a bug
or a failed run (exit 1).
"""

from __future__ import annotations


class VccError(Exception):
    """Base of every user-facing error of vcclib: the command prints its message as one line and exits 2.

    A subclass for a run that started and failed (a notebook raised, the book build failed) sets
    :attr:`exit_code` to 1.
    """

    exit_code: int = 2


class UnknownNameError(VccError, KeyError):
    """A name (dataset, loader, metric, split, model, option) that is not registered; the message lists those that are."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class OptionalDependencyError(VccError, ImportError):
    """An optional extra is needed but not installed; the message names the install command."""


class PathNotFoundError(VccError, FileNotFoundError):
    """A file or folder the user named does not exist."""
