"""Fit/predict time and peak memory of the own-environment models at the published-models chapter's settings.

    .venv/bin/python envs/measure_book.py [cpa cellflow scpram] [--set model.param=value ...]

Runs each model on the chapter's tasks it answers (``notebooks/params/published_models.yaml``: the Norman 2019 /
McFaline-Figueroa 2023 subsets, 16 cells per perturbation, seed 0) through the chapter's own ``run_one`` and
prints one JSON line per (model, task): the chapter's timings and the runner's own (wall, CPU seconds, peak
resident memory of the runner process, which the chapter's in-process sampler does not see).
"""

from __future__ import annotations

import json
import sys
import time

import yaml

from vcclib.analyses import published_models as chapter
from vcclib.models import MODELS
from vcclib.models.benchmark import load_task_data
from vcclib.splits import make_split


def main(argv: list[str]) -> None:
    """Measure the named models (all three by default), with ``model.param=value`` overrides."""
    names = [a for a in argv if not a.startswith("--") and "=" not in a] or ["cpa", "cellflow", "scpram"]
    overrides: dict[str, dict] = {}
    for item in [a for a in argv if "=" in a]:
        key, value = item.split("=", 1)
        model, param = key.split(".", 1)
        overrides.setdefault(model, {})[param] = yaml.safe_load(value)
    with open("notebooks/params/published_models.yaml") as handle:
        settings = yaml.safe_load(handle)
    tasks = chapter.chapter_tasks(settings["datasets"])
    seed = int(str(settings["seeds"]).split(",")[0])
    for task in tasks:
        kind = chapter.TASK_KIND[task.split]
        adata = load_task_data(task, int(settings["max_cells_per_perturbation"]), seed)
        split = make_split(task.split, adata, seed=seed, **task.split_params)
        for name in names:
            if kind not in MODELS.get(name).tasks:
                continue
            captured = {}
            original = chapter.MODELS.get(name).create

            def create(*args, _original=original, captured=captured, **kwargs):
                captured["model"] = _original(*args, **kwargs)
                return captured["model"]

            spec = MODELS.get(name)
            object.__setattr__(spec, "create", create)
            tick = time.perf_counter()
            try:
                out = chapter.run_one(name, task, adata, split, seed=seed, params=overrides.get(name, {}),
                                      device="cpu")
            finally:
                object.__delattr__(spec, "create")
            reports = captured["model"].runner_reports
            scores = out["scores"].drop(columns=["covariate", "perturbation"]).mean(numeric_only=True)
            print(json.dumps({
                "model": name, "task": task.label, "cells": int(adata.n_obs), "genes": int(adata.n_vars),
                "train_s": round(out["train_s"], 1), "predict_s": round(out["predict_s"], 1),
                "runner": [{k: round(r[k], 1) for k in ("wall_s", "seconds", "cpu_s", "peak_rss_mb")} | {"command": r["command"]}
                           for r in reports],
                "total_s": round(time.perf_counter() - tick, 1), "params": overrides.get(name, {}),
                "pearson_delta": round(float(scores.get("pearson_delta", float("nan"))), 3),
                "fallback": round(float(out["prediction"].obs["vcc_fallback"].mean()), 3),
            }), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
