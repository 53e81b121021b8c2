"""Named, seeded splits: disjoint, reproducible, saved and reloaded exactly (real mirror data)."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from vcclib.data import load
from vcclib.data.schema import split_targets
from vcclib.splits import Split, list_splits, make_split

pytestmark = pytest.mark.mirror  # reads the real-data mirror (skipped where there is none)


@functools.cache
def _data(dataset: str, study: str = ""):
    return load(dataset, **({"study": study} if study else {}))


CASES = [
    ("unseen_perturbation", "papalexi2021_eccite_lowmoi", "", {}),
    ("unseen_perturbation", "norman2019_mcfaline2024_devel", "", {}),
    ("covariate_transfer", "kang2018_ifnb_pbmc", "", {}),
    ("covariate_transfer", "norman2019_mcfaline2024_devel", "mcfaline23", {}),
    ("combo_seen_singles", "norman2019_mcfaline2024_devel", "norman19", {}),
    ("added_data", "norman2019_mcfaline2024_devel", "", {"base": "K562", "added": ["A172", "T98G"]}),
]


def test_registry_lists_the_three_generators():
    names = set(list_splits()["name"])
    assert {"unseen_perturbation", "covariate_transfer", "combo_seen_singles"} <= names


@pytest.mark.parametrize("name,dataset,study,params", CASES)
def test_parts_are_disjoint_reproducible_and_reload(name, dataset, study, params, tmp_path):
    adata = _data(dataset, study)
    split = make_split(name, adata, seed=3, **params)
    again = make_split(name, adata, seed=3, **params)
    assert split == again  # same seed, same split
    table = split.assignment
    assert not table.duplicated(["covariate", "perturbation"]).any()
    train = set(map(tuple, split.groups("train")[["covariate", "perturbation"]].to_numpy()))
    test = set(map(tuple, split.test_groups()[["covariate", "perturbation"]].to_numpy()))
    assert test and train and not (train & test)
    # cells: every cell in at most one part, controls all in train, test holds no control
    parts = split.part_of_cells(adata)
    control = adata.obs["is_control"].to_numpy()
    # (a split may leave a context out entirely: added_data's lines not added, controls included, are unused)
    assert set(parts[control]) == {"train"} or (name == "added_data" and set(parts[control]) == {"train", "unused"})
    assert split.mask(adata, "test").sum() == split.test_groups()["n_cells"].sum()
    assert not (split.mask(adata, "train") & split.mask(adata, "test")).any()
    # save → load round trip
    path = split.save(tmp_path / f"{name}.csv")
    assert path.with_suffix(".json").is_file()
    reloaded = Split.load(path)
    assert reloaded == split
    reloaded.check(adata)
    assert np.array_equal(reloaded.mask(adata, "test"), split.mask(adata, "test"))


def test_unseen_perturbation_holds_labels_out_everywhere_and_seed_matters():
    adata = _data("norman2019_mcfaline2024_devel")
    split = make_split("unseen_perturbation", adata, seed=0, test_fraction=0.3)
    held = set(split.test_groups()["perturbation"])
    assert held.isdisjoint(split.train_perturbations())  # no covariate has seen a held-out label
    labels = set(adata.obs.loc[~adata.obs["is_control"], "perturbation"].astype(str))
    assert abs(len(held) / len(labels) - 0.3) < 0.05
    others = [set(make_split("unseen_perturbation", adata, seed=s).test_groups()["perturbation"]) for s in (1, 2)]
    assert any(o != held for o in others)


def test_covariate_transfer_holds_out_one_line_with_its_controls_in_train():
    adata = _data("norman2019_mcfaline2024_devel", "mcfaline23")
    split = make_split("covariate_transfer", adata, seed=0, held_out="A172")
    test = split.test_groups()
    assert set(test["covariate"]) == {"A172"}
    assert set(test["perturbation"]) <= set(split.train_perturbations())  # each seen in another line
    assert ("A172", "control") in set(map(tuple, split.groups("train")[["covariate", "perturbation"]].to_numpy()))
    kang = make_split("covariate_transfer", _data("kang2018_ifnb_pbmc"), seed=1)
    assert kang.test_groups()["covariate"].nunique() == 1
    assert kang.params["held_out"] == kang.test_groups()["covariate"].iloc[0]
    with pytest.raises(ValueError):
        make_split("covariate_transfer", _data("papalexi2021_eccite_lowmoi"))  # one cell line only


def test_combo_split_tests_doubles_whose_singles_are_train():
    adata = _data("norman2019_mcfaline2024_devel", "norman19")
    split = make_split("combo_seen_singles", adata)
    test = split.test_groups()["perturbation"].tolist()
    seen = set(split.train_perturbations())
    assert len(test) == 5
    for combo in test:
        targets = split_targets(combo)
        assert len(targets) == 2 and all(t in seen for t in targets)
    assert "KLF1+MAP2K6" in test and "CBL+CNN1" not in test  # CBL was never measured alone


def test_load_rejects_a_split_made_on_other_data(tmp_path):
    split = make_split("unseen_perturbation", _data("papalexi2021_eccite_lowmoi"), seed=0)
    with pytest.raises(ValueError):
        split.check(_data("kang2018_ifnb_pbmc"))
    bad = split.assignment.copy()
    bad.loc[bad["perturbation"] == split.control_label, "part"] = "test"
    with pytest.raises(ValueError):
        Split(name="x", assignment=bad, control_label=split.control_label)
    assert isinstance(split.summary(), pd.DataFrame)
