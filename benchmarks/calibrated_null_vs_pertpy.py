"""The calibrated null (vectorised, vcclib) against pertpy's ``DistanceTest`` on the same data and permutations.

Both run ``n_perms`` label permutations / pseudo-perturbations of an E-distance test of every Papalexi perturbation
(at most ``--max-cells`` cells each, the same cells for both) against the same control cells, in the same PCA
space. pertpy's ``DistanceTest("edistance")`` loops over permutations and perturbations in Python (and draws its
permutations from an unseeded generator, so the permutations themselves cannot be shared: the *number* and the
data are). vcclib's :func:`~vcclib.analyses.null_effects.calibration.calibrated_tests` also scores the DE-gene count
of every pseudo-perturbation. Prints both wall times and their ratio, and the agreement of the calls.

Run small (the machine is shared):
``.venv/bin/python benchmarks/calibrated_null_vs_pertpy.py --n-perms 100 --max-cells 100``
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-perms", type=int, default=100)
    parser.add_argument("--max-cells", type=int, default=100)
    parser.add_argument("--n-controls", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import anndata as ad
    import pandas as pd
    import pertpy as pt

    from vcclib.analyses.null_effects.calibration import calibrated_tests
    from vcclib.analyses.null_effects.classic import pca_embedding
    from vcclib.data import load

    rng = np.random.default_rng(args.seed)
    adata = load("papalexi2021_eccite_lowmoi")
    labels = adata.obs["perturbation"].astype(str).to_numpy()
    control = rng.choice(np.flatnonzero(labels == "non-targeting"), args.n_controls, replace=False)
    groups = {}
    for p in sorted(set(labels) - {"non-targeting"}):
        idx = np.flatnonzero(labels == p)
        groups[p] = np.sort(rng.choice(idx, min(idx.size, args.max_cells), replace=False))
    keep = np.concatenate([control, *groups.values()])
    sub = adata[keep].copy()
    pcs = pca_embedding(sub.X, 20, args.seed)
    sub.obsm["X_pca"] = pcs
    position = {cell: i for i, cell in enumerate(keep)}
    local = {p: np.array([position[c] for c in idx]) for p, idx in groups.items()}
    local_control = np.arange(control.size)

    t0 = time.perf_counter()
    ours, _ = calibrated_tests(
        pcs,
        sub.X,
        local,
        local_control,
        n_null=args.n_perms,
        n_check=0,
        max_cells=args.max_cells,
        min_cells=2,
        holdout_fraction=0.0,
        seed=args.seed,
    )
    t_ours = time.perf_counter() - t0

    small = ad.AnnData(
        X=np.zeros((sub.n_obs, 1)), obs=pd.DataFrame({"perturbation": labels[keep]}, index=sub.obs_names)
    )
    small.obsm["X_pca"] = pcs
    test = pt.tl.DistanceTest("edistance", n_perms=args.n_perms, obsm_key="X_pca", correction="fdr_bh")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = test(small, groupby="perturbation", contrast="non-targeting", show_progressbar=False)
    t_theirs = time.perf_counter() - t0

    if not set(groups) & set(map(str, theirs.index)):  # pertpy returns groups as the index; older versions a column
        theirs = theirs.set_index(theirs.columns[0])
    called_ours = set(ours.index[ours["q_calibrated"] < 0.05])
    sig = "significant_adj" if "significant_adj" in theirs else theirs.columns[-1]
    called_theirs = set(theirs.index[theirs[sig].astype(bool)])
    print(
        f"data: Papalexi, {len(groups)} perturbations × ≤{args.max_cells} cells, {control.size} controls, "
        f"{args.n_perms} permutations"
    )
    print(f"vcclib calibrated null (E-distance + DE count): {t_ours:.2f} s")
    print(f"pertpy DistanceTest (E-distance only):         {t_theirs:.2f} s")
    print(f"ratio pertpy / vcclib: {t_theirs / t_ours:.1f}×")
    print(
        f"called by both: {len(called_ours & called_theirs)}; vcclib only: {sorted(called_ours - called_theirs)}; "
        f"pertpy only: {sorted(called_theirs - called_ours)}"
    )


if __name__ == "__main__":
    main()
