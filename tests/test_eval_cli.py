"""``vcc eval`` as a user runs it: cell-eval's flags, parquet/csv DE tables, per-group runs, refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from metrics_fixtures import CONTROL, make_counts, make_pair

from vcclib.cli import main


@pytest.fixture()
def files(tmp_path):
    pred, real = make_pair(n_perts=4, n_genes=20)
    for adata, name in ((pred, "pred"), (real, "real")):
        adata.obs["celltype"] = np.where(np.arange(adata.n_obs) % 2, "A", "B")
        adata.write_h5ad(tmp_path / f"{name}.h5ad")
    return tmp_path


def test_cell_eval_command_line_runs_unchanged(files):
    out = files / "out"
    code = main(
        [
            "eval",
            "-ap",
            str(files / "pred.h5ad"),
            "-ar",
            str(files / "real.h5ad"),
            "--pert-col",
            "perturbation",
            "--control-pert",
            CONTROL,
            "--profile",
            "vcc",
            "--num-threads",
            "1",
            "--outdir",
            str(out),
        ]
    )
    assert code == 0
    assert list(pd.read_csv(out / "results.csv").columns) == [
        "perturbation",
        "mae",
        "discrimination_score_l1",
        "overlap_at_N",
    ]
    de = pd.read_parquet(out / "real_de.parquet")  # parquet by default
    assert {"target", "feature", "fdr"} <= set(de.columns) and len(de) == 4 * 20


def test_csv_on_request_and_output_flag(files):
    out = files / "csv"
    assert (
        main(
            [
                "eval",
                "-ap",
                str(files / "pred.h5ad"),
                "-ar",
                str(files / "real.h5ad"),
                "--de-format",
                "csv",
                "--skip-metrics",
                "mae",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert (out / "pred_de.csv").exists() and not (out / "pred_de.parquet").exists()
    assert "mae" not in pd.read_csv(out / "results.csv").columns


def test_celltype_column(files):
    out = files / "by-type"
    assert (
        main(
            [
                "eval",
                "-ap",
                str(files / "pred.h5ad"),
                "-ar",
                str(files / "real.h5ad"),
                "--celltype-col",
                "celltype",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    results = pd.read_csv(out / "results.csv")
    assert results.columns[0] == "celltype" and set(results.celltype) == {"A", "B"}


def test_refusals_exit_2_and_leave_nothing(files, capsys):
    out = files / "bad"
    assert (
        main(
            [
                "eval",
                "-ap",
                str(files / "pred.h5ad"),
                "-ar",
                str(files / "real.h5ad"),
                "--control-pert",
                "nope",
                "-o",
                str(out),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "control label 'nope'" in err
    assert not (out / "results.csv").exists()
    # log1p files under the raw-count profile
    assert (
        main(
            [
                "eval",
                "-ap",
                str(files / "pred.h5ad"),
                "-ar",
                str(files / "real.h5ad"),
                "--profile",
                "vcc2026",
                "-o",
                str(out),
            ]
        )
        == 2
    )
    assert "raw counts" in capsys.readouterr().err


def test_vcc2026_profile_from_files(tmp_path):
    real, pred = make_counts(seed=0, n_perts=4), make_counts(seed=3, n_perts=4)
    real.write_h5ad(tmp_path / "real.h5ad")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    assert (
        main(
            [
                "eval",
                "-ap",
                str(tmp_path / "pred.h5ad"),
                "-ar",
                str(tmp_path / "real.h5ad"),
                "--profile",
                "vcc2026",
                "-o",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert "pds_cosine" in results.columns and len(results) == 4


def test_light_reader_matches_anndata(files):
    import anndata as ad

    from vcclib.metrics.h5ad import read_cells

    light, full = read_cells(files / "pred.h5ad"), ad.read_h5ad(files / "pred.h5ad")
    assert (light.X != full.X).nnz == 0
    assert list(light.var_names) == list(full.var_names) and list(light.obs_names) == list(full.obs_names)
    assert list(light.obs["perturbation"].astype(str)) == list(full.obs["perturbation"].astype(str))
    assert light.uns["vcc"]["control_label"] == CONTROL


def test_benjamini_hochberg_is_scipys():
    from scipy.stats import false_discovery_control

    from vcclib.metrics.de import benjamini_hochberg

    rng = np.random.default_rng(0)
    p = np.concatenate([rng.random((3, 200)) ** 3, np.full((3, 5), 0.01)], axis=1)  # ties included
    assert np.array_equal(benjamini_hochberg(p, axis=1), false_discovery_control(p, axis=1))


#: packages `vcc eval` never needs (the book, the catalog, notebooks, models, plotting, AnnData's own stack)
NOT_USED_BY_EVAL = (
    "torch",
    "lamindb",
    "papermill",
    "matplotlib",
    "scanpy",
    "anndata",
    "zarr",
    "dask",
    "xarray",
    "nbformat",
    "sklearn",
    "seaborn",
    "cell_eval",
    "cell_eval2",
)
#: and what the raw-count profile does not use either (the p-values are numba's, see vcclib.metrics.de.mwu_pvalues)
NOT_USED_BY_VCC2026 = ("scipy.special", "scipy.stats", "scipy.spatial")


@pytest.mark.parametrize("profile", ["vcc", "vcc2026"])
def test_eval_imports_only_what_it_uses(files, profile, tmp_path):
    """A fresh `vcc eval` process loads none of the packages the command does not use."""
    import subprocess
    import sys

    unused = NOT_USED_BY_EVAL + (NOT_USED_BY_VCC2026 if profile == "vcc2026" else ())

    if profile == "vcc2026":
        pred, real = make_counts(seed=7), make_counts(seed=0)
        pred.write_h5ad(tmp_path / "pred.h5ad")
        real.write_h5ad(tmp_path / "real.h5ad")
        folder = tmp_path
    else:
        folder = files
    argv = [
        "eval",
        "-ap",
        str(folder / "pred.h5ad"),
        "-ar",
        str(folder / "real.h5ad"),
        "--profile",
        profile,
        "-o",
        str(tmp_path / f"out-{profile}"),
    ]
    body = (
        f"import sys\nfrom vcclib.cli import main\ncode = main({argv!r})\n"
        f"print('LOADED=' + ','.join(m for m in {unused!r} if m in sys.modules))\n"
        "raise SystemExit(code)"
    )
    done = subprocess.run([sys.executable, "-c", body], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = done.stdout.strip().splitlines()[-1]
    assert loaded == "LOADED=", loaded


def test_metric_modules_register_on_first_lookup():
    """`import vcclib.metrics` imports no metric module, and the registry still lists every metric."""
    import subprocess
    import sys

    body = (
        "import sys\nimport vcclib.metrics as vm\n"
        "early = [m for m in vm.registry.METRIC_MODULES if m in sys.modules]\n"
        "names = vm.METRICS.names()\n"
        "print(early, len(names), 'pds_cosine' in names, 'pearson_edistance' in names, "
        "set(vm.PROFILES['full']) <= set(names))"
    )
    done = subprocess.run([sys.executable, "-c", body], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    early, n, *flags = done.stdout.split()  # "[] 93 True True True" when nothing was imported early
    assert early == "[]" and int(n) > 50 and flags == ["True", "True", "True"], done.stdout


@pytest.mark.parametrize(("user_setting", "huge_pages_after"), [(None, False), ("1", True), ("0", False)])
def test_eval_uses_small_pages_unless_the_user_chose(user_setting, huge_pages_after):
    """`vcc eval` turns numpy's huge-page advice off for its own process; a NUMPY_MADVISE_HUGEPAGE set is kept."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    if user_setting is not None:
        env["NUMPY_MADVISE_HUGEPAGE"] = user_setting
    code = (
        "from numpy._core.multiarray import _set_madvise_hugepage as switch\n"
        "from vcclib.cli.eval_cmd import _small_pages\n"
        "_small_pages()\n"
        "print(switch(True))"  # returns the setting before this call
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(huge_pages_after)


@pytest.mark.parametrize("user_setting", [None, "MALLOC_TRIM_THRESHOLD_"])
def test_eval_reuses_freed_memory_unless_the_user_chose(user_setting):
    """After `vcc eval`'s malloc setting, arrays of 1–24 MiB made and freed one after another are served from the
    memory the earlier ones freed (a few thousand page faults) instead of being mapped afresh (~77,000); a
    malloc variable the user set is kept (glibc's default behaviour, many faults)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    if user_setting is not None:
        env[user_setting] = str(128 << 10)  # glibc's default value, set explicitly
    code = (
        "import resource, numpy as np\n"
        "from vcclib.cli.eval_cmd import _reuse_freed_memory, _small_pages\n"
        "_small_pages()\n"
        "_reuse_freed_memory()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for mib in range(1, 25):\n"
        "    a = np.ones((mib << 20) // 8)\n"
        "    del a\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    faults = int(out.stdout.strip())
    touched = sum(range(1, 25)) << 8  # pages of the 24 arrays
    if user_setting is None:
        assert faults < touched / 4, faults
    else:
        assert faults > touched / 2, faults


def test_eval_reads_its_files_ahead_and_scores_the_same(files, monkeypatch):
    """`vcc eval` reads both files' X in a background thread while it imports; the numbers are those of the
    plain read (the read-ahead disabled: every future gives None, so the command reads the files itself)."""
    import vcclib.h5read as h5read

    read, seen = h5read._read_x_or_none, []

    def recording(path):
        seen.append(str(path))
        return read(path)

    args = ["eval", "-ap", str(files / "pred.h5ad"), "-ar", str(files / "real.h5ad"), "--profile", "vcc"]
    monkeypatch.setattr(h5read, "_read_x_or_none", recording)
    assert main([*args, "-o", str(files / "ahead")]) == 0
    assert seen == [str(files / "real.h5ad"), str(files / "pred.h5ad")]
    monkeypatch.setattr(h5read, "_read_x_or_none", lambda path: None)
    assert main([*args, "-o", str(files / "plain")]) == 0
    for name in ("results.csv", "agg_results.csv"):
        assert (files / "ahead" / name).read_bytes() == (files / "plain" / name).read_bytes()
    for name in ("real_de.parquet", "pred_de.parquet"):
        assert pd.read_parquet(files / "ahead" / name).equals(pd.read_parquet(files / "plain" / name))


def test_numba_is_set_up_ahead_only_where_the_kernels_run(tmp_path):
    """numba's target is set up during the read-ahead for a sparse X (every profile runs its kernels there);
    a dense X with pseudobulk metrics alone (no DE) never loads numba."""
    import subprocess
    import sys

    pred, real = make_pair(n_perts=4, n_genes=20)
    for adata, name in ((pred, "pred"), (real, "real")):
        adata.X = np.asarray(adata.X.toarray() if hasattr(adata.X, "toarray") else adata.X, dtype=np.float32)
        adata.write_h5ad(tmp_path / f"{name}.h5ad")
    argv = ["eval", "-ap", str(tmp_path / "pred.h5ad"), "-ar", str(tmp_path / "real.h5ad")]
    argv += ["--metrics", "mae,pearson_delta", "-o", str(tmp_path / "out")]
    body = (
        f"import sys\nfrom vcclib.cli import main\ncode = main({argv!r})\n"
        "print('NUMBA=' + str('numba' in sys.modules))\nraise SystemExit(code)"
    )
    done = subprocess.run([sys.executable, "-c", body], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "NUMBA=False"
    from vcclib.h5read import stored_encoding

    assert stored_encoding(tmp_path / "real.h5ad") == "array"
    assert stored_encoding(tmp_path / "missing.h5ad") is None


def test_a_de_table_read_before_writing_is_written_all_the_same(tmp_path):
    """Reading ``result.de_real`` turns it into a DataFrame (``_LazyFrame``); writing afterwards still writes both
    DE tables, the same as without the read."""
    import warnings

    from vcclib.metrics import evaluate

    pred, real = make_pair(n_perts=4, n_genes=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result, fresh = evaluate(pred, real, profile="vcc"), evaluate(pred, real, profile="vcc")
    assert len(result.de_real) == 4 * 20
    result.write(tmp_path / "read", de_format="parquet")
    fresh.write(tmp_path / "fresh", de_format="parquet")
    for name in ("real_de.parquet", "pred_de.parquet"):
        assert pd.read_parquet(tmp_path / "read" / name).equals(pd.read_parquet(tmp_path / "fresh" / name))
