"""Safe checkpoints: tensors in one file, everything else as JSON; nothing is unpickled on reading.

The tensors (model weights, optimiser moments, random-generator states) go into ``<name>.safetensors`` when the
``safetensors`` package is installed, else into ``<name>.pt`` read back with ``torch.load(weights_only=True)``
(which refuses arbitrary objects). Labels and numbers (epoch, best validation loss, optimiser settings) go into
``<name>.json``. An optimiser's state is flattened into tensors named ``optim.<param>.<key>`` so that it fits
both formats.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vcclib.errors import VccError
from vcclib.optional import is_installed, require


class CheckpointError(VccError):
    """A checkpoint that is missing, incomplete or not of this format."""


def backend() -> str:
    """``safetensors`` when the package is installed, else ``torch`` (weights-only pickles)."""
    return "safetensors" if is_installed("safetensors") else "torch"


def _flatten_optimizer(state: dict) -> tuple[dict[str, Any], dict[str, Any]]:
    import torch

    tensors, meta = {}, {"param_groups": state["param_groups"], "keys": {}}
    for param, values in state["state"].items():
        keys = []
        for key, value in values.items():
            tensors[f"optim.{param}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
            keys.append(key)
        meta["keys"][str(param)] = keys
    return tensors, meta


def _unflatten_optimizer(tensors: dict, meta: dict) -> dict:
    state = {int(param): {key: tensors[f"optim.{param}.{key}"] for key in keys} for param, keys in meta["keys"].items()}
    return {"state": state, "param_groups": meta["param_groups"]}


def save(path: str | Path, tensors: dict, meta: dict, optimizer_state: dict | None = None) -> Path:
    """Write ``tensors`` (name → tensor) and JSON-able ``meta`` as checkpoint ``path`` (no suffix).

    ``optimizer_state`` (``optimizer.state_dict()``) is flattened into the tensor file. Files are written under a
    temporary name and then renamed, so an interrupted write never leaves a half checkpoint.
    """
    torch = require("torch", purpose="checkpoints")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = dict(meta)
    if optimizer_state is not None:
        flat, optim_meta = _flatten_optimizer(optimizer_state)
        tensors.update({k: v.detach().cpu().contiguous() for k, v in flat.items()})
        meta["optimizer"] = optim_meta
    kind = backend()
    meta["backend"] = kind
    weights = path.with_suffix(".safetensors" if kind == "safetensors" else ".pt")
    staging = weights.with_name(weights.name + ".partial")
    if kind == "safetensors":
        from safetensors.torch import save_file

        save_file(tensors, str(staging))
    else:
        torch.save(tensors, staging)
    staging.replace(weights)
    document = path.with_suffix(".json")
    staging = document.with_name(document.name + ".partial")
    staging.write_text(json.dumps(meta, indent=1, allow_nan=False))
    staging.replace(document)
    return weights


def exists(path: str | Path) -> bool:
    """Whether a complete checkpoint ``path`` (no suffix) is on disk."""
    path = Path(path)
    return path.with_suffix(".json").is_file() and (
        path.with_suffix(".safetensors").is_file() or path.with_suffix(".pt").is_file()
    )


def load(path: str | Path) -> tuple[dict, dict, dict | None]:
    """The tensors, the meta and the optimiser state (or None) of checkpoint ``path`` (no suffix)."""
    torch = require("torch", purpose="checkpoints")
    path = Path(path)
    if not exists(path):
        raise CheckpointError(f"no checkpoint at {path} (.json with .safetensors or .pt)")
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path.with_suffix('.json')} is not valid JSON: {error}") from None
    if meta.get("backend") == "safetensors":
        if not is_installed("safetensors"):
            raise CheckpointError(f"{path} was written with safetensors, which is not installed here")
        from safetensors.torch import load_file

        tensors = load_file(str(path.with_suffix(".safetensors")))
    else:
        try:
            tensors = torch.load(path.with_suffix(".pt"), map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - weights_only refuses anything but tensors and plain types
            raise CheckpointError(f"{path.with_suffix('.pt')} cannot be read safely ({error})") from None
    optimizer = None
    if "optimizer" in meta:
        optimizer = _unflatten_optimizer(tensors, meta["optimizer"])
        tensors = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
    return tensors, meta, optimizer
