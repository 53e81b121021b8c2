"""One helper resolves the compute device for every chapter and model.

``auto`` means CUDA when torch is installed and sees a GPU, else the CPU. A chapter or model without a GPU path
asks :func:`resolve_device` with ``gpu_path=False``: the answer is then always ``cpu``, and :func:`describe`
says so in the chapter's conventions instead of prose.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from vcclib.errors import VccError

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Device:
    """A resolved device: what was asked, what is used and why."""

    requested: str
    name: str
    reason: str

    def __str__(self) -> str:
        return self.name


def cuda_available() -> bool:
    """True when torch is installed and sees a CUDA device (torch is imported only if installed)."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(requested: str = "auto", *, gpu_path: bool = True) -> Device:
    """Resolve ``requested`` (``auto``, ``cpu`` or ``cuda``) to the device to use.

    Parameters
    ----------
    requested
        ``auto`` picks CUDA when present, else the CPU.
    gpu_path
        False for code that runs on the CPU only (numpy/scipy chapters): the device is then ``cpu`` whatever was
        asked, and the reason says there is no GPU path.

    Raises
    ------
    VccError
        For an unknown device, or ``cuda`` asked where no CUDA device is visible.
    """
    if requested not in DEVICES:
        raise VccError(f"unknown device {requested!r}; choose one of {', '.join(DEVICES)}")
    if not gpu_path:
        return Device(requested, "cpu", "no GPU path: this computation runs on the CPU (numpy/scipy)")
    if requested == "cpu":
        return Device(requested, "cpu", "cpu requested")
    has_cuda = cuda_available()
    if requested == "cuda" and not has_cuda:
        raise VccError("device 'cuda' requested but no CUDA device is visible (torch.cuda.is_available() is False)")
    if has_cuda:
        return Device(requested, "cuda", "CUDA device found")
    return Device(requested, "cpu", "no CUDA device found")


def describe(device: Device) -> str:
    """One line for a chapter's conventions: ``device: cpu (no CUDA device found)``."""
    return f"device: {device.name} ({device.reason})"
