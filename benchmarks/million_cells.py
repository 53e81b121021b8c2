"""A million cells: ``vcc eval --on-disk`` time and peak memory against cells, and the same numbers as in memory.

Synthetic inputs (said so: a method test, not data): 10 % control cells, perturbations of 1,000 cells, 8,000
genes, counts drawn per cell (a Poisson library size, genes drawn from the perturbation's expression profile),
normalised to 10,000 counts and log1p'd, cells in random order; the prediction is a second draw with two
perturbations' profiles swapped. Files are written block by block with h5py (CSR, anndata's encoding) under
``--out`` (default ``.cache/million/``, gitignored; a 1M-cell file is about 2 GB) and reused when present.

For each size ``vcc eval --on-disk`` runs as a subprocess (import, read, compute, write) and its wall time and
peak RSS are printed. The check: a subsample file holding every control cell and whole groups of a few
perturbations is evaluated in memory; its per-perturbation ``mae`` and ``overlap_at_N`` (which read only the
perturbation's own cells and the control cells) must equal the on-disk run's on the full file exactly.
The table (cells, perturbations, nonzero fraction, file size, wall time, peak RSS, check) is printed and written
to ``<out>/million_cells.md``.

    .venv/bin/python benchmarks/million_cells.py --cells 100000 300000 1000000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

CONTROL = "non-targeting"
PERT_CELLS = 1000
BLOCK = 20_000
OUT = Path(__file__).resolve().parent.parent / ".cache" / "million"
BIN = Path(sys.executable).parent


def profiles(n_perts: int, n_genes: int, swap: bool):
    """Per-group expression rates (control first): sparse multiplicative effects on a shared base."""
    import numpy as np

    rng = np.random.default_rng(1)
    base = rng.gamma(0.2, 0.15, size=n_genes)
    hit = rng.random((n_perts, n_genes)) < 0.05
    effects = np.exp(rng.normal(0, 0.8, (n_perts, n_genes)) * hit)
    if swap and n_perts > 2:
        effects[[1, 2]] = effects[[2, 1]]
    return np.vstack([base, base * effects])


def write_file(path: Path, n_cells: int, n_genes: int, seed: int, swap: bool) -> None:
    """A CSR .h5ad of log1p-normalised synthetic counts, written block by block (memory ∝ one block)."""
    import h5py
    import numpy as np
    import pandas as pd
    from anndata.io import write_elem

    n_ctrl = n_cells // 10
    n_perts = max(1, (n_cells - n_ctrl) // PERT_CELLS)
    rates = profiles(n_perts, n_genes, swap)
    cum = np.cumsum(rates / rates.sum(axis=1, keepdims=True), axis=1)
    totals = rates.sum(axis=1)
    cum[:, -1] = 1.0
    flat = (cum + np.arange(cum.shape[0])[:, None]).ravel()
    names = np.array([CONTROL] + [f"P{i:04d}" for i in range(n_perts)])
    group = np.concatenate([np.zeros(n_ctrl, np.int64), np.repeat(np.arange(1, n_perts + 1), PERT_CELLS)])
    group = np.concatenate([group, np.ones(n_cells - group.size, np.int64)])  # remainder cells join P0000
    rng = np.random.default_rng(seed)
    group = group[rng.permutation(n_cells)]
    tmp = path.with_suffix(".partial")
    with h5py.File(tmp, "w") as f:
        f.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
        X = f.create_group("X")
        X.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": (n_cells, n_genes)})
        data = X.create_dataset("data", (0,), np.float32, maxshape=(None,), chunks=(1 << 20,))
        indices = X.create_dataset("indices", (0,), np.int32, maxshape=(None,), chunks=(1 << 20,))
        indptr = [np.zeros(1, np.int64)]
        nnz = 0
        for lo in range(0, n_cells, BLOCK):
            g = group[lo : lo + BLOCK]
            depth = rng.poisson(totals[g])
            cell = np.repeat(np.arange(g.size), depth)
            k = g[cell]  # each count's gene from its group's profile: cum[k] + k is increasing over all groups
            gene = np.searchsorted(flat, k + rng.random(cell.size)) - k * n_genes
            gene = np.clip(gene, 0, n_genes - 1)
            keys, counts = np.unique(cell * n_genes + gene, return_counts=True)
            rows, cols = keys // n_genes, keys % n_genes
            lib = np.maximum(np.bincount(rows, weights=counts, minlength=g.size), 1)
            values = np.log1p(counts * (1e4 / lib[rows])).astype(np.float32)
            data.resize((nnz + values.size,))
            indices.resize((nnz + values.size,))
            data[nnz:] = values
            indices[nnz:] = cols.astype(np.int32)
            indptr.append(nnz + np.cumsum(np.bincount(rows, minlength=g.size)))
            nnz += values.size
        X.create_dataset("indptr", data=np.concatenate(indptr))
        obs = pd.DataFrame(
            {"perturbation": pd.Categorical(names[group])}, index=[f"s{seed}_{i}" for i in range(n_cells)]
        )
        write_elem(f, "obs", obs)
        write_elem(f, "var", pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]))
        write_elem(f, "uns", {"vcc": {"control_label": CONTROL}})
    tmp.rename(path)


def inputs_for(out: Path, n_cells: int, n_genes: int) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for role, seed, swap in (("real", 0, False), ("pred", 1, True)):
        path = out / f"{role}_{n_cells}x{n_genes}.h5ad"
        if not path.exists():
            start = time.perf_counter()
            write_file(path, n_cells, n_genes, seed, swap)
            print(
                f"  wrote {path.name} ({path.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - start:.0f} s",
                flush=True,
            )
        paths.append(path)
    return paths[1], paths[0]


def describe(path: Path) -> tuple[int, float]:
    """(perturbations, fraction of nonzero entries) of a file written by :func:`write_file`."""
    import h5py

    with h5py.File(path, "r") as f:
        n_cells, n_genes = (int(n) for n in f["X"].attrs["shape"])
        nnz = f["X"]["data"].shape[0]
        n_groups = f["obs"]["perturbation"]["categories"].shape[0]
    return n_groups - 1, nnz / (n_cells * n_genes)


def timed(cmd: list[str]) -> tuple[float, float, int, str]:
    """(wall seconds, peak RSS GiB of the process and its children, exit code, stderr tail)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONWARNINGS": "ignore"}
    )
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode(errors="replace")[-600:]
    return time.perf_counter() - start, usage.ru_maxrss / 2**20, os.waitstatus_to_exitcode(status), err


def subsample_check(pred: Path, real: Path, outdir: Path, n_keep: int = 5) -> str:
    """Every control cell and whole groups of ``n_keep`` perturbations, in memory, against the on-disk run."""
    import warnings

    import anndata as ad
    import numpy as np
    import pandas as pd

    from vcclib.metrics import evaluate
    from vcclib.metrics.chunked import OnDiskCells

    full = pd.read_csv(outdir / "results.csv", float_precision="round_trip").set_index("perturbation")
    keep = sorted(full.index)[:n_keep]
    subs = []
    for path in (pred, real):
        cells = OnDiskCells.open(path)
        labels = cells.obs["perturbation"].astype(str).to_numpy()
        rows = np.flatnonzero(np.isin(labels, keep + [CONTROL]))
        subs.append(
            ad.AnnData(X=_rows(path, cells, rows), obs=cells.obs.iloc[rows].copy(), var=cells.var.copy(), uns=cells.uns)
        )
    with warnings.catch_warnings():  # the two draws have different control cells, as the full run
        warnings.simplefilter("ignore")
        res = evaluate(subs[0], subs[1], metrics=["mae", "overlap_at_N"]).results.set_index("perturbation")
    same = all(
        np.array_equal(res.loc[keep, m].to_numpy(), full.loc[keep, m].to_numpy()) for m in ("mae", "overlap_at_N")
    )
    return f"subsample ({n_keep} perturbations + all controls) in memory vs on disk: {'identical' if same else 'DIFFERENT'}"


def _rows(path, cells, rows):
    import numpy as np
    import scipy.sparse as sp

    from vcclib.metrics.chunked import read_rows

    parts = []
    for lo in range(0, cells.n_obs, BLOCK):
        hi = min(lo + BLOCK, cells.n_obs)
        sel = rows[(rows >= lo) & (rows < hi)] - lo
        if sel.size:
            parts.append(read_rows(path, cells.shape, lo, hi)[sel])
    return sp.vstack(parts).tocsr() if parts else sp.csr_matrix((0, cells.shape[1]), dtype=np.float32)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--genes", type=int, default=8000)
    parser.add_argument("--out", type=Path, default=OUT, help="folder of the generated files and runs")
    parser.add_argument("--dask", action="store_true", help="also run with --dask (LocalCluster)")
    parser.add_argument("--no-check", action="store_true", help="skip the subsample check")
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    header = (
        "| cells | perturbations | nonzero | file (GiB) | mode | wall (s) | peak RSS (GiB) | load | "
        "subsample check |\n|---|---|---|---|---|---|---|---|---|"
    )
    rows = []
    for n_cells in args.cells:
        pred, real = inputs_for(args.out, n_cells, args.genes)
        n_perts, nonzero = describe(real)
        size = (pred.stat().st_size + real.stat().st_size) / 2 / 2**30
        variants = [("on-disk", [])] + ([("on-disk --dask", ["--dask"])] if args.dask else [])
        for label, extra in variants:
            outdir = args.out / f"run_{n_cells}_{label.replace(' ', '').replace('-', '')}_{int(time.time())}"
            cmd = [
                str(BIN / "vcc"),
                "eval",
                "-ap",
                str(pred),
                "-ar",
                str(real),
                "--on-disk",
                *extra,
                "--profile",
                "vcc",
                "-o",
                str(outdir),
            ]
            wall, rss, code, err = timed(cmd)
            load = os.getloadavg()[0]
            print(
                f"  {n_cells:>9,} cells × {args.genes} genes  {label:<15} {wall:7.1f} s   peak RSS {rss:5.2f} GiB"
                f"   exit {code}   load {load:.1f}" + (f"\n    {err}" if code else ""),
                flush=True,
            )
            check = "not run"
            if code == 0 and not args.no_check and label == "on-disk":
                check = subsample_check(pred, real, outdir)
                print("   ", check, flush=True)
            rows.append(
                f"| {n_cells:,} | {n_perts} | {nonzero:.2%} | {size:.2f} | {label} | "
                f"{wall:.0f} | {rss:.2f} | {load:.1f} | {check if code == 0 else f'exit {code}'} |"
            )
            table = "\n".join([header, *rows])
            (args.out / "million_cells.md").write_text(table + "\n")
    print(table)
    print(f"table written to {args.out / 'million_cells.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
