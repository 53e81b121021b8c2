"""vcclib.memo: a step's stored result is read back only for the same inputs, code and libraries; no pickles."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from vcclib import memo


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("VCC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(memo.ENV_OFF, raising=False)
    return tmp_path / "cache" / "memo"


def _adata(value: float = 1.0) -> ad.AnnData:
    X = sp.csr_matrix(np.array([[0.0, value], [2.0, 0.0], [0.0, 3.0]]))
    obs = pd.DataFrame({"perturbation": ["a", "b", "a"]}, index=["c1", "c2", "c3"])
    return ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=["g1", "g2"]))


def test_a_stored_step_is_read_back_equal_and_not_recomputed(store):
    calls = []
    frame = pd.DataFrame(
        {"guide": ["g1", "g2"], "p": [0.01, np.nan], "ok": [True, False], "kind": pd.Categorical(["x", "y"])},
        index=pd.Index(["r1", "r2"], name="row"),
    )
    frame.attrs = {"n_resamples": 500, "stratified_by": None}

    def compute():
        calls.append(1)
        return frame, {"summary": frame.head(1), "split": ["a", "b"]}, 3

    inputs = {"data": memo.token(_adata()), "seed": 0}
    first = memo.memo("test.step", compute, inputs=inputs, code=("vcclib.memo",))
    second = memo.memo("test.step", compute, inputs=inputs, code=("vcclib.memo",))
    assert len(calls) == 1
    for got in (first, second):
        pd.testing.assert_frame_equal(got[0], frame)
        assert got[0].attrs == frame.attrs
        pd.testing.assert_frame_equal(got[1]["summary"], frame.head(1))
        assert got[1]["split"] == ["a", "b"] and got[2] == 3
    stored = list(store.rglob("*"))
    assert {p.suffix for p in stored if p.is_file()} == {".json", ".parquet"}  # nothing pickled
    json.loads(next(p for p in stored if p.name == "index.json").read_text())


def test_other_inputs_data_or_code_compute_again(store):
    calls = []

    def compute():
        calls.append(1)
        return pd.DataFrame({"n": [len(calls)]})

    base = {"data": memo.token(_adata()), "seed": 0}
    memo.memo("test.keys", compute, inputs=base, code=("vcclib.memo",))
    memo.memo("test.keys", compute, inputs={**base, "seed": 1}, code=("vcclib.memo",))
    memo.memo("test.keys", compute, inputs={**base, "data": memo.token(_adata(5.0))}, code=("vcclib.memo",))
    memo.memo("test.keys", compute, inputs=base, code=("vcclib.memo", "vcclib.errors"))
    assert len(calls) == 4
    assert memo.stored("test.keys", inputs=base, code=("vcclib.memo",))
    assert not memo.stored("test.keys", inputs={**base, "seed": 2}, code=("vcclib.memo",))


def test_adata_token_follows_content_not_identity():
    a, b = _adata(), _adata()
    assert memo.token(a) == memo.token(b) == memo.token(a.copy())
    b.obs["perturbation"] = ["a", "a", "a"]
    assert memo.token(a) != memo.token(b)
    assert memo.token(a) != memo.token(a[:2].copy())


def test_switched_off_by_the_environment(store, monkeypatch):
    monkeypatch.setenv(memo.ENV_OFF, "1")
    calls = []

    @memo.memoised("test.off", code=("vcclib.memo",))
    def step(adata, seed=0):
        calls.append(seed)
        return pd.DataFrame({"seed": [seed]})

    step(_adata())
    step(_adata())
    assert len(calls) == 2 and not store.exists()


def test_decorated_function_keys_on_its_bound_arguments(store):
    calls = []

    @memo.memoised("test.decorated", code=("vcclib.memo",))
    def step(adata, seed=0, table=None):
        calls.append(seed)
        return pd.DataFrame({"seed": [seed], "cells": [adata.n_obs]})

    table = pd.DataFrame({"x": [1.0]})
    first = step(_adata(), seed=0, table=table)
    again = step(_adata(), 0, table.copy())  # same values, passed positionally: read back
    other = step(_adata(), seed=1, table=table)
    assert calls == [0, 1]
    pd.testing.assert_frame_equal(first, again)
    assert other["seed"].iloc[0] == 1


def test_results_it_cannot_store_without_pickles_are_returned_not_kept(store):
    value = memo.memo("test.object", lambda: {"frame": pd.DataFrame({1: [1]})}, inputs={}, code=("vcclib.memo",))
    assert list(value["frame"].columns) == [1]
    assert not any(p.name == "index.json" for p in store.rglob("*"))
