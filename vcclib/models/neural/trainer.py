"""One trainer for every torch model in vcclib: seeded, deterministic on the CPU, early stopping, safe checkpoints.

A model hands the trainer a torch module whose ``loss(batch)`` returns a dict of scalar tensors with a ``loss``
key (the objective; other keys are logged), and its data as a dict of equally long tensors (one row per
sample). The trainer

* seeds torch's generator and its own shuffling generator with ``seed`` and switches torch to deterministic
  algorithms while it runs, so two fits with the same seed on the CPU give identical weights (tested);
* resolves ``device`` (``auto|cpu|cuda``) with :func:`vcclib.device.resolve_device` and trains with mixed
  precision (bfloat16 autocast, float16 with a gradient scaler where bfloat16 is unsupported) on CUDA;
* evaluates the validation part after every epoch under a fixed seed (so the validation loss is a function of
  the weights alone), keeps the best weights and stops after ``patience`` epochs without improvement;
* shows a progress bar (tqdm; ``progress=False`` for book runs);
* writes a checkpoint after every epoch (``checkpoint_dir/last``: weights, best weights, optimiser moments,
  random states; :mod:`vcclib.models.neural.checkpoint`) and, with ``resume=True``, continues from it — a
  resumed run ends with the same weights as an uninterrupted one (tested).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vcclib.device import resolve_device
from vcclib.models.neural import checkpoint
from vcclib.optional import require

LAST = "last"


@dataclass
class TrainerConfig:
    """Settings of :class:`Trainer`.

    Attributes
    ----------
    max_epochs
        Upper bound on passes over the training samples.
    batch_size
        Samples per optimisation step.
    learning_rate, weight_decay
        Adam(W) settings.
    patience
        Epochs without a validation improvement larger than ``min_delta`` before stopping (0: never stop early).
    min_delta
        Smallest decrease of the validation loss that counts as an improvement.
    seed
        Seeds parameter initialisation (when the module is built after :meth:`Trainer.seed_everything`),
        shuffling and every random draw of the module.
    device
        ``auto``, ``cpu`` or ``cuda``.
    mixed_precision
        Autocast on CUDA (ignored on the CPU, which always trains in float32).
    grad_clip
        Gradient-norm clip (None: no clipping).
    progress
        Show a tqdm progress bar over epochs.
    num_threads
        CPU threads torch may use while training (0: torch's default). One thread is the default: the small
        networks here spend their time in many small operations, which extra threads slow down on a shared
        machine (measured: 38 ms vs 280 ms per step on two busy cores).
    checkpoint_dir
        Folder for the ``last`` checkpoint ("" : none).
    resume
        Continue from ``checkpoint_dir/last`` when it exists.
    """

    max_epochs: int = 50
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 5
    min_delta: float = 1e-4
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True
    grad_clip: float | None = 10.0
    progress: bool = True
    num_threads: int = 1
    checkpoint_dir: str = ""
    resume: bool = False


@dataclass
class History:
    """What happened during :meth:`Trainer.fit`: one row per epoch and the outcome.

    ``samples_per_second`` is the training throughput (optimisation steps only, validation excluded).
    """

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_val: float | None = None
    stopped_early: bool = False
    device: str = "cpu"
    precision: str = "float32"
    resumed_from: int = 0
    train_seconds: float = 0.0
    samples_seen: int = 0

    @property
    def samples_per_second(self) -> float:
        """Training throughput (samples per second of optimisation)."""
        return self.samples_seen / self.train_seconds if self.train_seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored with a saved model)."""
        return {**asdict(self), "samples_per_second": self.samples_per_second}


class Trainer:
    """Train a torch module with :class:`TrainerConfig` (see the module docstring for the guarantees)."""

    def __init__(self, config: TrainerConfig | None = None, **settings: Any):
        self.config = config or TrainerConfig(**settings)
        self.device = resolve_device(self.config.device)

    # --- seeding -----------------------------------------------------------------------------------------
    def seed_everything(self) -> None:
        """Seed torch's global generators (call before building the module so its initial weights are seeded)."""
        torch = require("torch", purpose="the neural models")
        torch.manual_seed(int(self.config.seed))

    def _precision(self, torch) -> tuple[Any, bool]:
        if self.device.name != "cuda" or not self.config.mixed_precision:
            return None, False
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, False
        return torch.float16, True

    # --- the loop ----------------------------------------------------------------------------------------
    def fit(self, module, train: dict, val: dict | None = None) -> History:
        """Optimise ``module.loss`` over ``train``; early-stop on ``val``; the module ends with the best weights.

        Parameters
        ----------
        module
            A ``torch.nn.Module`` with ``loss(batch: dict[str, Tensor]) -> dict[str, Tensor]``.
        train, val
            Dicts of tensors with one row per sample (``val`` None or empty: no early stopping, the last
            weights are kept).
        """
        torch = require("torch", purpose="the neural models")
        previous_mode, previous_threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
        torch.use_deterministic_algorithms(True, warn_only=True)
        if self.config.num_threads:
            torch.set_num_threads(int(self.config.num_threads))
        try:
            return self._fit(torch, module, train, val)
        finally:
            torch.use_deterministic_algorithms(previous_mode)
            torch.set_num_threads(previous_threads)

    def _fit(self, torch, module, train: dict, val: dict | None) -> History:
        from tqdm import tqdm

        cfg = self.config
        device = torch.device(self.device.name)
        module.to(device)
        train = {k: v.to(device) for k, v in train.items()}
        n = _length(train)
        has_val = val is not None and _length(val) > 0
        val = {k: v.to(device) for k, v in val.items()} if has_val else None
        dtype, scaled = self._precision(torch)
        history = History(device=self.device.name, precision=str(dtype).replace("torch.", "") if dtype else "float32")
        optimizer = torch.optim.AdamW(module.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        scaler = torch.amp.GradScaler("cuda") if scaled else None
        shuffle = torch.Generator().manual_seed(int(cfg.seed))
        torch.manual_seed(int(cfg.seed) + 1)  # the module's own draws (reparameterisation, partners)
        best_state = copy.deepcopy(module.state_dict())
        best, bad, start = float("inf"), 0, 0
        path = Path(cfg.checkpoint_dir) / LAST if cfg.checkpoint_dir else None
        if path is not None and cfg.resume and checkpoint.exists(path):
            start, best, bad, best_state = self._restore(torch, path, module, optimizer, shuffle, history)
        bar = tqdm(range(start, cfg.max_epochs), disable=not cfg.progress, desc=type(module).__name__, leave=False)
        for epoch in bar:
            tick = time.perf_counter()
            module.train()
            order = torch.randperm(n, generator=shuffle).to(device)
            total, seen = 0.0, 0
            for begin in range(0, n, cfg.batch_size):
                index = order[begin : begin + cfg.batch_size]
                batch = {k: v[index] for k, v in train.items()}
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    loss = module.loss(batch)["loss"]
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                total += float(loss.detach()) * len(index)
                seen += len(index)
            history.train_seconds += time.perf_counter() - tick
            history.samples_seen += seen
            row = {"epoch": epoch, "train_loss": total / max(seen, 1), "seconds": time.perf_counter() - tick}
            if has_val:
                row["val_loss"] = self.evaluate(module, val, dtype=dtype)
                if row["val_loss"] < best - cfg.min_delta:
                    best, bad, history.best_epoch = row["val_loss"], 0, epoch
                    best_state = copy.deepcopy(module.state_dict())
                else:
                    bad += 1
            else:
                best_state, history.best_epoch = copy.deepcopy(module.state_dict()), epoch
            history.epochs.append(row)
            bar.set_postfix({k: round(v, 4) for k, v in row.items() if k.endswith("loss")})
            history.stopped_early = bool(has_val and cfg.patience and bad >= cfg.patience)
            if path is not None:
                self._checkpoint(torch, path, module, optimizer, shuffle, history, epoch, best, bad, best_state)
            if history.stopped_early:
                break
        bar.close()
        module.load_state_dict(best_state)
        history.best_val = best if has_val and best < float("inf") else None
        module.eval()
        return history

    def evaluate(self, module, data: dict, dtype=None) -> float:
        """The mean ``loss`` of ``module`` over ``data`` under a fixed seed (the training generator untouched)."""
        torch = require("torch", purpose="the neural models")
        module.eval()
        device = next(module.parameters()).device
        devices = [device.index or 0] if device.type == "cuda" else []
        n = _length(data)
        total = 0.0
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(int(self.config.seed) + 2)
            for begin in range(0, n, self.config.batch_size):
                batch = {k: v[begin : begin + self.config.batch_size] for k, v in data.items()}
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    total += float(module.loss(batch)["loss"]) * _length(batch)
        module.train()
        return total / max(n, 1)

    # --- checkpoints -------------------------------------------------------------------------------------
    def _checkpoint(self, torch, path, module, optimizer, shuffle, history, epoch, best, bad, best_state) -> None:
        tensors = {f"model.{k}": v for k, v in module.state_dict().items()}
        tensors.update({f"best.{k}": v for k, v in best_state.items()})
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.shuffle"] = shuffle.get_state()
        if self.device.name == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state()
        meta = {
            "epoch": epoch,
            "best": best if best < float("inf") else None,
            "bad_epochs": bad,
            "history": {k: v for k, v in history.to_dict().items() if k != "samples_per_second"},
            "config": asdict(self.config),
        }
        checkpoint.save(path, tensors, meta, optimizer.state_dict())

    def _restore(self, torch, path, module, optimizer, shuffle, history):
        tensors, meta, optim_state = checkpoint.load(path)
        module.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        best_state = {
            k[5:]: v.to(next(module.parameters()).device) for k, v in tensors.items() if k.startswith("best.")
        }
        if optim_state is not None:
            optimizer.load_state_dict(optim_state)
        torch.set_rng_state(tensors["rng.torch"])
        shuffle.set_state(tensors["rng.shuffle"])
        if "rng.cuda" in tensors and self.device.name == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"])
        saved = meta["history"]
        history.epochs = list(saved["epochs"])
        history.best_epoch = saved["best_epoch"]
        history.train_seconds = saved["train_seconds"]
        history.samples_seen = saved["samples_seen"]
        history.stopped_early = saved["stopped_early"]
        history.resumed_from = meta["epoch"] + 1
        best = meta["best"] if meta["best"] is not None else float("inf")
        start = self.config.max_epochs if history.stopped_early else meta["epoch"] + 1
        return start, best, meta["bad_epochs"], best_state


def _length(data: dict) -> int:
    lengths = {len(v) for v in data.values()}
    if len(lengths) > 1:
        raise ValueError(f"training tensors differ in length: {sorted(lengths)}")
    return lengths.pop() if lengths else 0
