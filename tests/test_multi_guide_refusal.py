"""Functions that take one perturbation per cell refuse high-MOI data with one line (synthetic data: the rule is
about the labels, not the values)."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from vcclib.data.schema import SchemaError


def _high_moi() -> ad.AnnData:
    rng = np.random.default_rng(0)
    labels = ["non-targeting"] * 20 + ["A"] * 10 + ["B"] * 10 + ["A+B"] * 5
    n_perts = [0] * 20 + [1] * 20 + [2] * 5
    adata = ad.AnnData(
        np.log1p(rng.poisson(2.0, size=(len(labels), 6)).astype(float)),
        obs=pd.DataFrame(
            {"perturbation": labels, "n_perturbations": n_perts}, index=[f"c{i}" for i in range(len(labels))]
        ),
        var=pd.DataFrame(index=[f"g{j}" for j in range(6)]),
    )
    adata.uns["vcc"] = {"control_label": "non-targeting", "moi": "high", "dataset": "synthetic_high_moi"}
    return adata


def test_split_refuses_high_moi_cells():
    from vcclib.splits import make_split

    with pytest.raises(SchemaError, match="5 of 45 cells of synthetic_high_moi carry several"):
        make_split("unseen_perturbation", _high_moi(), seed=0)


def test_model_fit_refuses_high_moi_cells():
    from vcclib.models import get_model

    with pytest.raises(SchemaError, match="carry several"):
        get_model("perturbed_mean").fit(_high_moi())


def test_evaluate_refuses_high_moi_cells():
    from vcclib.metrics import evaluate

    adata = _high_moi()
    with pytest.raises(SchemaError, match="vcc eval"):
        evaluate(adata.copy(), adata, control_label="non-targeting", metrics=["mae"])
