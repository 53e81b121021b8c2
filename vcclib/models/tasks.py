"""Evaluation tasks declared as data.

``tasks.yaml`` (shipped with the package) lists, per dataset, the split, loader options, split parameters,
halving and models of each task.

>>> from vcclib.models.tasks import default_tasks
>>> [t.label for t in default_tasks(["kang2018_ifnb_pbmc"])]
['kang2018:covariate_transfer']

A dataset id that the file does not list gets the file's ``default`` tasks (one ``unseen_perturbation`` split
holding out 30% of the perturbations, every available model). ``path`` reads another file of the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from vcclib.errors import VccError

TASK_KEYS = frozenset({"split", "options", "split_params", "halves", "models", "label"})


class TaskFileError(VccError):
    """A tasks file that is not valid: unknown keys, splits or models."""


@dataclass
class Task:
    """One dataset (with loader options) × one split × one way of halving the held-out cells × models.

    ``models`` None: every registered model available here.
    """

    dataset: str
    split: str
    options: dict[str, Any] = field(default_factory=dict)
    split_params: dict[str, Any] = field(default_factory=dict)
    halves: str = "random"
    label: str = ""
    models: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.models is not None:
            self.models = tuple(self.models)
        if not self.label:
            study = self.options.get("study", "")
            short = self.dataset.split("_")[0] + (f"[{study}]" if study else "")
            suffix = "" if self.halves == "random" else f"/{self.halves}"
            self.label = f"{short}:{self.split}{suffix}"


def _default_path():
    return resources.files("vcclib.models").joinpath("tasks.yaml")


def read_tasks_file(path: str | Path | None = None) -> dict[str, Any]:
    """The parsed tasks file (``default`` and ``datasets``), checked: known keys, splits and models."""
    import yaml

    from vcclib.models.spec import MODELS
    from vcclib.splits import SPLITS

    source = _default_path() if path is None else Path(path)
    try:
        document = yaml.safe_load(source.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise TaskFileError(f"cannot read tasks file {source}: {error}") from None
    unknown = set(document) - {"default", "datasets"}
    if unknown:
        raise TaskFileError(f"{source}: unknown top-level keys {sorted(unknown)}; use default, datasets")
    entries = {"default": document.get("default") or [], **(document.get("datasets") or {})}
    for where, tasks in entries.items():
        if not isinstance(tasks, list):
            raise TaskFileError(f"{source}: {where} must hold a list of tasks")
        for task in tasks:
            if not isinstance(task, dict) or "split" not in task:
                raise TaskFileError(f"{source}: every task of {where} needs a split")
            bad = set(task) - TASK_KEYS
            if bad:
                raise TaskFileError(
                    f"{source}: task of {where} has unknown keys {sorted(bad)}; use {sorted(TASK_KEYS)}"
                )
            if task["split"] not in SPLITS:
                raise TaskFileError(
                    f"{source}: {where}: unknown split {task['split']!r}; registered: {', '.join(SPLITS.names())}"
                )
            missing = [m for m in task.get("models") or [] if m not in MODELS]
            if missing:
                raise TaskFileError(f"{source}: {where}: unknown models {missing}")
    return {"default": entries.pop("default"), "datasets": entries}


def default_tasks(datasets=None, path: str | Path | None = None) -> list[Task]:
    """The tasks of ``datasets`` (dataset ids; None: every dataset the file lists, in its order).

    A dataset the file does not list gets the file's ``default`` tasks.
    """
    document = read_tasks_file(path)
    listed = document["datasets"]
    datasets = list(listed) if datasets is None else list(datasets)
    tasks: list[Task] = []
    for dataset in datasets:
        for entry in listed.get(dataset, document["default"]):
            tasks.append(
                Task(
                    dataset,
                    entry["split"],
                    options=dict(entry.get("options") or {}),
                    split_params=dict(entry.get("split_params") or {}),
                    halves=str(entry.get("halves", "random")),
                    label=str(entry.get("label", "")),
                    models=entry.get("models"),
                )
            )
    return tasks
