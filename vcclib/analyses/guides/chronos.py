"""Run Chronos itself (crispr-chronos, tensorflow) in its own environment, as a subprocess exchanging files.

The environment is made by ``scripts/env_chronos.sh`` (``.cache/chronos-env`` or ``$VCC_CHRONOS_ENV``); the
fit runs :mod:`vcclib.analyses.guides.chronos_fit` with that environment's Python. Results are cached under
``<cache>/guides/chronos/<key>/`` where the key hashes the input files' checksums and the settings, so a second
run with the same settings reads the earlier fit instead of refitting, and a run never overwrites another's.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pandas as pd

from vcclib import config
from vcclib.errors import VccError

FIT_SCRIPT = Path(__file__).with_name("chronos_fit.py")


class ChronosUnavailable(VccError):
    """The Chronos environment is missing or its fit failed (the message says which, and how to make it)."""


def chronos_env() -> Path:
    """The Chronos environment's folder (``$VCC_CHRONOS_ENV`` or ``<project>/.cache/chronos-env``)."""
    return Path(os.environ.get("VCC_CHRONOS_ENV") or config.project_root() / ".cache" / "chronos-env")


def is_available() -> bool:
    """True when ``scripts/env_chronos.sh`` has finished making the environment."""
    return (chronos_env() / ".installed").is_file() and (chronos_env() / "bin" / "python").is_file()


def _key(files: dict, settings: dict) -> str:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for name in sorted(files):
        path = Path(files[name])
        digest.update(f"{name}:{path.stat().st_size}:{int(path.stat().st_mtime)}".encode())
    digest.update(FIT_SCRIPT.read_bytes())
    return digest.hexdigest()[:16]


def _cache_root() -> Path:
    return config.cache_dir() / "guides" / "chronos"


def cached_fits() -> list[Path]:
    """Finished Chronos fits in the cache, newest first."""
    root = _cache_root()
    done = [p.parent for p in root.glob("*/done.json")] if root.is_dir() else []
    return sorted(done, key=lambda p: (p / "done.json").stat().st_mtime, reverse=True)


def run_chronos(nepochs: int | None = 101, seed: int = 0, copy_correct: bool = True, timeout: int = 3600) -> dict:
    """Fit Chronos on the Chronos sample (Avana + KY) and return its gene effects.

    Returns
    -------
    dict
        ``gene_effect`` (lines × genes, Chronos scale), ``gene_effect_cn`` (after Chronos's ``alternate_CN``,
        when ``copy_correct``), ``guide_efficacy`` (Series), ``info`` (settings, seconds, versions, ``cached``).

    Raises
    ------
    ChronosUnavailable
        No environment (run ``scripts/env_chronos.sh``), or the fit failed (the last lines of its output).
    """
    if nepochs is None:  # the newest cached fit, whatever its settings
        fits = cached_fits()
        if not fits:
            raise ChronosUnavailable("no cached Chronos fit: run with chronos_epochs > 0 once")
        return _read_fit(fits[0], json.loads((fits[0] / "config.json").read_text()), cached=True)
    if not is_available():
        raise ChronosUnavailable(f"no Chronos environment at {chronos_env()}: run scripts/env_chronos.sh")
    from vcclib.data import fetch

    files = {name: str(path) for name, path in fetch("depmap_chronos_sample").items()}
    settings = {"nepochs": int(nepochs), "seed": int(seed), "copy_correct": bool(copy_correct)}
    out_dir = _cache_root() / _key(files, settings)
    cached = (out_dir / "done.json").is_file()
    if not cached:
        out_dir.mkdir(parents=True, exist_ok=True)
        libraries = {
            lib: {
                "readcounts": files[f"{prefix}Readcounts.hdf5"],
                "guide_map": files[f"{prefix}GuideMap.csv"],
                "sequence_map": files[f"{prefix}SequenceMap.csv"],
            }
            for lib, prefix in (("avana", "Avana"), ("ky", "KY"))
        }
        job = {"libraries": libraries, "copy_number": files["OmicsCNGene.hdf5"], "out_dir": str(out_dir), **settings}
        (out_dir / "config.json").write_text(json.dumps(job, indent=2))
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
        start = time.perf_counter()
        # -P: the script's folder (which holds this module, also named chronos) stays off sys.path
        done = subprocess.run(
            [str(chronos_env() / "bin" / "python"), "-P", str(FIT_SCRIPT), str(out_dir / "config.json")],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
        if done.returncode != 0 or not (out_dir / "done.json").is_file():
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
            raise ChronosUnavailable(f"Chronos fit failed (exit {done.returncode}): {tail}")
        (out_dir / "wall_seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")
    return _read_fit(out_dir, settings, cached)


def _read_fit(out_dir: Path, settings: dict, cached: bool) -> dict:
    info = json.loads((out_dir / "done.json").read_text())
    settings = {k: settings[k] for k in ("nepochs", "seed", "copy_correct") if k in settings}
    result = {
        "gene_effect": _matrix(out_dir / "gene_effect.csv"),
        "guide_efficacy": pd.read_csv(out_dir / "guide_efficacy.csv", index_col=0).iloc[:, 0],
        "info": {**info, **settings, "cached": cached, "folder": str(out_dir)},
    }
    if (out_dir / "gene_effect_cn.csv").is_file():
        result["gene_effect_cn"] = _matrix(out_dir / "gene_effect_cn.csv")
    return result


def _matrix(path: Path) -> pd.DataFrame:
    """A Chronos lines × genes CSV with DepMap 'SYMBOL (ENTREZ)' columns, columns renamed to symbols."""
    from vcclib.data.loaders.depmap import split_gene_label

    frame = pd.read_csv(path, index_col=0)
    frame.columns = split_gene_label(frame.columns)["symbol"].to_numpy()
    return frame.T.groupby(level=0).mean().T
