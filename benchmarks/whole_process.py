"""Whole-process speed: ``vcc eval`` against ``cell-eval run`` (0.8.2, profile vcc) and ``cell-eval2 run``
(0.20.0, preset vcc2026), each as a subprocess on the same files: import, read, compute, write.

Synthetic inputs (``_inputs.py``: Poisson counts with per-perturbation effects; the log1p files are
library-size normalised log1p of the same counts), sparse CSR, written once to a temporary folder. The
commands run after a tiny warm-up of each tool (so caches that persist between processes, such as
numba's, are warm for all), and the input files are read once before the timed runs, so every command finds
them in the operating system's page cache (otherwise the first command to read a file also pays the disk), and
each timed command starts after ``--settle`` seconds idle, so all start from the same memory state.
Every command runs twice (each run writes its own output folder) and its faster run is the one the ratio
uses: ours twice as it is, each peer as installed and with ``NUMPY_MADVISE_HUGEPAGE=0`` (the small pages
``vcc eval`` uses, see ``vcclib.cli.eval_cmd._small_pages``). Prints wall time, peak RSS, the machine's load
average at each command's end, the ratios (ours and the peer's from this one run, on the same files), and what
a fresh GiB of memory costs a new process on this machine.

    .venv/bin/python benchmarks/whole_process.py --size medium      # 50 × 300 + 3,000 control × 8,000 genes
    .venv/bin/python benchmarks/whole_process.py --size medium --inputs DIR   # reuse files of a --keep run
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
sys.path.insert(0, str(Path(__file__).parent))
from _inputs import CONTROL, SIZES, write_inputs  # noqa: E402  (the shared synthetic inputs)

#: "warm" is the warm-up design: the smallest whose reference carries a positive aggregate corrected effect
#: (cell-eval2 and vcc2026 refuse a reference panel without one; "tiny" is too shallow for that check)
WARM = "warm"


def timed(cmd: list[str], env=None) -> tuple[float, float, int, str]:
    """(wall seconds, peak RSS GiB, exit code, stderr tail) of one subprocess."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")[-400:]
    return wall, usage.ru_maxrss / 2**20, os.waitstatus_to_exitcode(status), err


def commands(paths: dict[str, Path], out: Path, tag: str) -> dict[str, list[str]]:
    common = ["--pert-col", "perturbation"]
    return {
        "vcc eval (vcc)": [
            str(BIN / "vcc"),
            "eval",
            "-ap",
            str(paths["pred_log1p"]),
            "-ar",
            str(paths["real_log1p"]),
            *common,
            "--control-pert",
            CONTROL,
            "--profile",
            "vcc",
            "-o",
            str(out / f"{tag}_ours_vcc"),
        ],
        "cell-eval 0.8.2 (vcc)": [
            str(BIN / "cell-eval"),
            "run",
            "-ap",
            str(paths["pred_log1p"]),
            "-ar",
            str(paths["real_log1p"]),
            *common,
            "--control-pert",
            CONTROL,
            "--profile",
            "vcc",
            "--num-threads",
            "2",
            "-o",
            str(out / f"{tag}_ce_vcc"),
        ],
        "vcc eval (vcc2026)": [
            str(BIN / "vcc"),
            "eval",
            "-ap",
            str(paths["pred_counts"]),
            "-ar",
            str(paths["real_counts"]),
            *common,
            "--control-pert",
            CONTROL,
            "--profile",
            "vcc2026",
            "-o",
            str(out / f"{tag}_ours_vcc2026"),
        ],
        "cell-eval2 0.20.0 (vcc2026)": [
            str(BIN / "cell-eval2"),
            "run",
            "-ap",
            str(paths["pred_counts"]),
            "-ar",
            str(paths["real_counts"]),
            "--preset",
            "vcc2026",
            *common,
            "--control",
            CONTROL,
            "-o",
            str(out / f"{tag}_ce2_vcc2026"),
        ],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="medium", choices=[s for s in SIZES if s != WARM])
    parser.add_argument("--keep", default=None, help="keep inputs and outputs in this folder")
    parser.add_argument(
        "--inputs",
        default=None,
        help="read the design's four {size}_{real,pred}_{counts,log1p}.h5ad from this folder (as written by an "
        "earlier run with --keep) instead of generating them",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=5.0,
        help="seconds idle before each timed command, so each starts from the same memory state: a virtual "
        "machine that hands freed memory back to its host does so within seconds (default 5)",
    )
    args = parser.parse_args(argv)
    folder = Path(args.keep or tempfile.mkdtemp(prefix="vcc-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for name, cmd in commands(write_inputs(folder, WARM), folder, WARM).items():
        wall, _, code, err = timed(cmd, env)
        print(f"warm-up {name}: {wall:.1f} s (exit {code})" + (f"\n  {err}" if code else ""))
    if args.inputs:
        names = ("real_counts", "pred_counts", "real_log1p", "pred_log1p")
        paths = {name: Path(args.inputs) / f"{args.size}_{name}.h5ad" for name in names}
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            parser.error(f"--inputs: missing {', '.join(missing)}")
    else:
        paths = write_inputs(folder, args.size)
    for path in paths.values():  # into the page cache: no command pays the disk for the others
        with open(path, "rb") as handle:
            while handle.read(1 << 24):
                pass
    n_perts, n_cells, n_ctrl, n_genes = SIZES[args.size]
    print(
        f"[{args.size}] {n_perts} perturbations × {n_cells} cells + {n_ctrl} control × {n_genes} genes; "
        f"{os.cpu_count()} cores, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
        flush=True,
    )
    walls = {}
    small_pages = {**env, "NUMPY_MADVISE_HUGEPAGE": "0"}
    runs = [commands(paths, folder, args.size), commands(paths, folder, f"{args.size}_second")]
    for name in runs[0]:
        # every command runs twice and its faster run is the one the ratio uses: `vcc eval` twice as it is (it
        # faults its arrays in small pages itself, see vcclib.cli.eval_cmd._small_pages), each peer as installed
        # and again with numpy's same setting
        if name.startswith("vcc eval"):
            settings = [("", env), (" again", env)]
        else:
            settings = [("", env), (" small pages", small_pages)]
        for (label, run_env), cmds in zip(settings, runs):
            time.sleep(args.settle)
            wall, rss, code, err = timed(cmds[name], run_env)
            walls[name] = min(wall, walls.get(name, wall))
            print(
                f"  {name + label:<42} {wall:8.1f} s   peak RSS {rss:5.2f} GiB   exit {code}   "
                f"load {os.getloadavg()[0]:.1f}" + (f"\n    {err}" if code else ""),
                flush=True,
            )
    for ours, peer in (
        ("vcc eval (vcc)", "cell-eval 0.8.2 (vcc)"),
        ("vcc eval (vcc2026)", "cell-eval2 0.20.0 (vcc2026)"),
    ):
        print(f"  ratio {peer} / {ours}: {walls[peer] / walls[ours]:.1f}×")
    huge, small = (fresh_memory_seconds(huge_pages=h, settle=args.settle) for h in (True, False))
    print(f"  a fresh GiB first written by a new process: {huge:.2f} s in huge pages, {small:.2f} s in small pages")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def fresh_memory_seconds(huge_pages: bool, settle: float, gib: float = 1.0) -> float:
    """Seconds a new process takes to first write ``gib`` GiB after ``settle`` s idle, per GiB, with numpy's
    huge-page advice on (numpy's default) or off (``vcc eval``'s).

    On a bare machine this is the kernel zeroing pages (about 0.1 s per GiB). In a VM whose balloon driver
    reports freed pages to the host, every page a command touches for the first time (its input arrays, its
    intermediates) is faulted in from the host again, at several times that cost; the figure says how much of
    each command's wall time is the machine's, in proportion to the memory it touches.
    """
    time.sleep(settle)  # the free-page reporting of the runs above has caught up
    code = (
        "import time, numpy as np; t = time.perf_counter(); "
        f"np.ones({int(gib * 2**30) // 8}, dtype=np.float64); print(time.perf_counter() - t)"
    )
    env = {**os.environ, "NUMPY_MADVISE_HUGEPAGE": "1" if huge_pages else "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    return float(out) / gib


if __name__ == "__main__":
    raise SystemExit(main())
