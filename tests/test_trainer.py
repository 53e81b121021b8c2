"""The shared torch trainer: same seed → identical weights on the CPU, resume ends where an uninterrupted run ends,
early stopping keeps the best weights, checkpoints load without unpickling, the device is resolved honestly.

The module trained here is the VAE's own network on synthetic data (a known shift per perturbation): the
trainer's guarantees are about the loop, not the data."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vcclib.errors import VccError  # noqa: E402
from vcclib.models.neural import checkpoint  # noqa: E402
from vcclib.models.neural.network import PerturbationVAE  # noqa: E402
from vcclib.models.neural.trainer import Trainer, TrainerConfig  # noqa: E402


def _data(seed=0, n=240, genes=30, n_perts=4):
    rng = np.random.default_rng(seed)
    pert = rng.integers(0, n_perts + 1, size=n)  # 0 = control
    effects = rng.normal(0, 1, size=(n_perts + 1, genes))
    effects[0] = 0
    x = np.clip(1 + effects[pert] + rng.normal(0, 0.3, size=(n, genes)), 0, None).astype(np.float32)
    targets = np.zeros((n, n_perts), np.float32)
    targets[pert > 0, pert[pert > 0] - 1] = 1
    return {
        "x": torch.from_numpy(x),
        "covariate": torch.zeros(n, dtype=torch.long),
        "group": torch.from_numpy(pert.astype(np.int64)),
        "is_control": torch.from_numpy(pert == 0),
        "targets": torch.from_numpy(targets),
    }


def _module(data, seed=0):
    torch.manual_seed(seed)
    net = PerturbationVAE(data["x"].shape[1], 1, data["targets"].shape[1], latent_dim=4, hidden_dim=16)
    control = data["is_control"].numpy()
    net.pool_x = data["x"][control]
    net.pool_sizes = torch.tensor([int(control.sum())])
    net.pool_offsets = torch.tensor([0])
    net.group_weights = torch.ones(int(data["group"].max()) + 1, data["x"].shape[1])
    return net


def _fit(seed=0, **settings):
    data = _data()
    trainer = Trainer(TrainerConfig(seed=seed, device="cpu", progress=False, batch_size=64, **settings))
    trainer.seed_everything()
    net = _module(data, seed)
    history = trainer.fit(net, data, _data(seed=1, n=80))
    return net, history


def _weights(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_same_seed_gives_identical_weights_and_another_seed_does_not():
    first, h1 = _fit(seed=3, max_epochs=4, patience=0)
    second, h2 = _fit(seed=3, max_epochs=4, patience=0)
    other, _ = _fit(seed=4, max_epochs=4, patience=0)
    a, b, c = _weights(first), _weights(second), _weights(other)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    assert [r["val_loss"] for r in h1.epochs] == [r["val_loss"] for r in h2.epochs]
    assert h1.samples_seen == 4 * 240 and h1.samples_per_second > 0 and h1.device == "cpu"


def test_training_lowers_the_validation_loss():
    _, history = _fit(max_epochs=15, patience=0)
    assert history.epochs[-1]["val_loss"] < history.epochs[0]["val_loss"]


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    straight, _ = _fit(max_epochs=5, patience=0)
    _fit(max_epochs=2, patience=0, checkpoint_dir=str(tmp_path))
    assert checkpoint.exists(tmp_path / "last")
    resumed, history = _fit(max_epochs=5, patience=0, checkpoint_dir=str(tmp_path), resume=True)
    assert history.resumed_from == 2 and len(history.epochs) == 5
    a, b = _weights(straight), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_early_stopping_restores_the_best_weights():
    data = _data()
    trainer = Trainer(
        TrainerConfig(device="cpu", progress=False, max_epochs=40, patience=2, learning_rate=0.05, min_delta=10.0)
    )  # no epoch improves by 10: stop after patience epochs
    trainer.seed_everything()
    net = _module(data)
    history = trainer.fit(net, data, _data(seed=1, n=80))
    assert history.stopped_early and len(history.epochs) == 3 and history.best_epoch == 0
    assert trainer.evaluate(net, _data(seed=1, n=80)) == pytest.approx(history.epochs[0]["val_loss"], rel=1e-5)


@pytest.mark.parametrize("kind", ["safetensors", "torch"])
def test_checkpoints_round_trip_in_both_formats(kind, tmp_path, monkeypatch):
    if kind == "safetensors":
        pytest.importorskip("safetensors")
    monkeypatch.setattr(checkpoint, "backend", lambda: kind)
    net = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(net.parameters())
    net(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    path = checkpoint.save(tmp_path / "ck", dict(net.state_dict()), {"epoch": 1}, optimizer.state_dict())
    assert path.suffix == (".safetensors" if kind == "safetensors" else ".pt")
    tensors, meta, optim_state = checkpoint.load(tmp_path / "ck")
    assert meta["epoch"] == 1 and meta["backend"] == kind
    assert all(torch.equal(tensors[k], v) for k, v in net.state_dict().items())
    fresh = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters())
    fresh.load_state_dict(optim_state)
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])


class _Payload:
    """Unpickling this would call os.getcwd (any callable could be smuggled the same way)."""

    def __reduce__(self):
        import os

        return (os.getcwd, ())


def test_a_checkpoint_holding_an_arbitrary_object_is_refused_not_unpickled(tmp_path):
    torch.save({"weights": torch.ones(2), "payload": _Payload()}, tmp_path / "evil.pt")
    (tmp_path / "evil.json").write_text('{"backend": "torch"}')
    with pytest.raises(checkpoint.CheckpointError, match="cannot be read safely"):
        checkpoint.load(tmp_path / "evil")
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint"):
        checkpoint.load(tmp_path / "missing")


def test_cuda_without_a_gpu_is_a_one_line_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(VccError, match="no CUDA device"):
        Trainer(device="cuda")
    assert Trainer(device="auto").device.name == "cpu"


@pytest.mark.gpu
def test_cuda_training_with_mixed_precision():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    data = _data()
    trainer = Trainer(TrainerConfig(device="cuda", progress=False, max_epochs=3, patience=0))
    trainer.seed_everything()
    history = trainer.fit(_module(data), data, _data(seed=1, n=80))
    assert history.device == "cuda" and history.precision in ("bfloat16", "float16")
    assert np.isfinite(history.epochs[-1]["val_loss"])
