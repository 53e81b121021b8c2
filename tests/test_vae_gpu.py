"""The GPU path of the conditional VAE: ``device="cuda"`` trains with mixed precision, recovers a known shift,
checkpoints and reloads, and predicts finite cells. Opt in with ``-m gpu``; skipped where CUDA is absent."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from vae_fixtures import additive_shifts  # noqa: E402

from vcclib.models import get_model  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none found)"),
]
warnings.filterwarnings("ignore", category=UserWarning)


def test_cuda_training_uses_mixed_precision_and_recovers_the_shifts(tmp_path):
    adata, effect = additive_shifts(n_per=80, combination=False)
    model = get_model(
        "cvae",
        epochs=150,
        patience=30,
        seed=0,
        latent_dim=4,
        hidden_dim=32,
        batch_size=128,
        n_basal=32,
        progress=False,
        device="cuda",
    ).fit(adata)
    history = model.history
    assert history["device"] == "cuda"
    expected = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    assert expected in str(history["precision"])
    assert history["samples_per_second"] > 0
    query = pd.DataFrame({"covariate": "synthetic", "perturbation": ["A", "B"], "n_cells": 50})
    prediction = model.predict(query)
    assert np.isfinite(np.asarray(prediction.X)).all()
    control = adata[adata.obs["perturbation"] == "ctrl"].X.mean(0)
    for label in ("A", "B"):
        delta = np.asarray(prediction[prediction.obs["perturbation"] == label].X).mean(0) - control
        assert np.corrcoef(delta, effect[label])[0, 1] > 0.9, label
    model.save(tmp_path / "model")
    again = type(model).load(tmp_path / "model")
    assert np.allclose(np.asarray(again.predict(query).X).mean(0), np.asarray(prediction.X).mean(0), atol=0.05)
