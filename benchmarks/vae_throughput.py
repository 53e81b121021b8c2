"""Training throughput of the conditional VAE (samples/s of optimisation) on real mirror data, per device.

Trains the registered VAE variants on Papalexi 2021 (THP-1, 299 genes, raw counts) with a fixed number of epochs
(no early stopping) and prints, per variant and likelihood, the training samples per second measured by the
shared trainer (optimisation steps only; validation and data preparation excluded), the epochs and the wall time.

    .venv/bin/python benchmarks/vae_throughput.py                    # CPU
    .venv/bin/python benchmarks/vae_throughput.py --device cuda      # where a GPU is lent (mixed precision)

The published models (GEARS, STATE, …) are compared on the same data once their wrappers are registered in
vcclib.models (kind EXTERNAL): the script lists which are registered and runs none otherwise.
"""

from __future__ import annotations

import argparse
import time
import warnings

import pandas as pd


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--max-cells", type=int, default=200, help="cells per perturbation (0: all 20,729 cells)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    from vcclib.data import load
    from vcclib.models import MODELS, get_model
    from vcclib.models.runner import subsample
    from vcclib.registry import ModelKind
    from vcclib.splits import make_split

    adata = subsample(load("papalexi2021_eccite_lowmoi"), args.max_cells, seed=0, column="cell_line")
    split = make_split("unseen_perturbation", adata, seed=0)
    train = split.subset(adata, "train")
    print(f"data: Papalexi 2021, {train.n_obs} training cells × {train.n_vars} genes; device {args.device}; "
          f"{args.epochs} epochs; {args.threads or 'default'} CPU thread(s)")
    runs = [("cvae", {"loss": "mse"}), ("cvae", {"loss": "nb"}), ("cvae", {"loss": "zinb"}),
            ("cvae_go", {"loss": "mse+energy"}), ("cvae_pseudobulk", {})]
    rows = []
    for name, extra in runs:
        model = get_model(name, epochs=args.epochs, patience=0, device=args.device, progress=False, **extra)
        tick = time.perf_counter()
        if args.threads != 1:
            import torch

            torch.set_num_threads(args.threads or torch.get_num_threads())
        model.fit(train)
        history = model.history
        rows.append({"model": name, "loss": extra.get("loss", model.params["loss"]),
                     "mode": "pseudobulk" if model.params["pseudobulk"] else "cells", "device": history["device"],
                     "precision": history["precision"], "samples/s": round(history["samples_per_second"]),
                     "samples/epoch": history["samples_seen"] // max(len(history["epochs"]), 1),
                     "fit s": round(time.perf_counter() - tick, 1)})
    print(pd.DataFrame(rows).to_string(index=False))
    published = [s.name for s in MODELS.specs() if s.kind is ModelKind.EXTERNAL]
    print("published models registered here: " + (", ".join(published) if published else
          "none yet (the published-models work has not been merged): no comparison run"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
