"""GRN inference time against cells × genes × workers, and against arboreto's own default path.

    .venv/bin/python benchmarks/grn_scaling.py [--cells 100,200] [--genes 40,80] [--workers 1,2] [--method grnboost2]

Real data: Papalexi 2021 control cells (the mirror), the ``genes`` most variable genes, Lambert TFs among them as
regulators. For each size, the project's path (:func:`vcclib.grn.inference.arboreto_network`: arboreto's per-target
functions on our own Dask graph, a LocalCluster of ``workers`` process workers started once per worker count) is
timed against arboreto's own ``grnboost2``/``genie3`` on the same client under the compatibility shim (its graph:
dask-dataframe ``from_delayed``, repartition, ``client.compute``), and against arboreto's true default
(``client_or_address="local"``: a fresh LocalCluster per call, start-up included) at the first size. Both paths give
identical links (checked on every size). Ratios > 1 mean ours is faster. Keep sizes small on shared machines.
"""

from __future__ import annotations

import argparse
import time
import warnings


def _timed(func, *args, **kwargs):
    start = time.perf_counter()
    result = func(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    import pandas as pd

    from vcclib.data import load
    from vcclib.grn.cluster import dask_client
    from vcclib.grn.inference import arboreto_default_path, arboreto_network, control_expression
    from vcclib.grn.propagation import lambert_tfs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="100,200")
    parser.add_argument("--genes", default="40,80")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--method", default="grnboost2", choices=("grnboost2", "genie3"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ints = lambda text: [int(x) for x in text.split(",") if x]  # noqa: E731
    warnings.filterwarnings("ignore")
    adata = load("papalexi2021_eccite_lowmoi")
    tfs = lambert_tfs()
    rows = []
    for workers in ints(args.workers):
        with dask_client(n_workers=workers) as client:
            for cells in ints(args.cells):
                for genes in ints(args.genes):
                    expression = control_expression(adata, tfs, max_cells=cells, max_genes=genes, seed=args.seed)
                    arboreto_network(expression, args.method, seed=args.seed, client=client)  # warm the workers
                    ours, t_ours = _timed(arboreto_network, expression, args.method, seed=args.seed, client=client)
                    theirs, t_theirs = _timed(
                        arboreto_default_path, expression, args.method, seed=args.seed, client_or_address=client
                    )
                    pd.testing.assert_frame_equal(ours, theirs)
                    rows.append(
                        {
                            "workers": workers,
                            "cells": cells,
                            "genes": genes,
                            "regulators": len(expression.regulators),
                            "ours_s": round(t_ours, 2),
                            "arboreto_graph_s": round(t_theirs, 2),
                            "ratio": round(t_theirs / t_ours, 2),
                        }
                    )
                    print(rows[-1], flush=True)
    first = control_expression(adata, tfs, max_cells=ints(args.cells)[0], max_genes=ints(args.genes)[0], seed=args.seed)
    _, t_local = _timed(arboreto_default_path, first, args.method, seed=args.seed, client_or_address="local")
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    base = table[(table["cells"] == ints(args.cells)[0]) & (table["genes"] == ints(args.genes)[0])]
    print(
        f"arboreto default path (fresh LocalCluster per call) at {first.X.shape[0]} cells × {len(first.genes)} "
        f"genes: {t_local:.1f} s; ours on a running cluster: {base['ours_s'].min():.1f} s "
        f"(ratio {t_local / base['ours_s'].min():.1f})"
    )
    for workers, block in table.groupby("workers"):
        print(
            f"{workers} worker(s): time per target {1000 * (block['ours_s'] / block['genes']).median():.0f} ms (median)"
        )


if __name__ == "__main__":
    main()
