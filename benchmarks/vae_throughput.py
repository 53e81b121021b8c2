"""Training throughput (cells/s) of the conditional VAE against the published models, on the same mirror data.

Trains, on the training part of one seeded ``unseen_perturbation`` split of Papalexi 2021 (THP-1, 299 genes, raw
counts), for a fixed number of epochs (no early stopping):

* the VAE variants of :mod:`vcclib.models.neural` (cells mode with MSE, NB, ZINB, MSE + energy; pseudobulk mode);
* the published models registered here (GEARS, biolord, scGen from :mod:`vcclib.models.external`, where the
  ``models`` extra is installed), each with its registered defaults except the epoch count.

For every model it prints ``cells/s = training cells × epochs / fit wall seconds`` (fit wall time includes each
package's data preparation: the only figure every package exposes the same way) and, for the VAE, also the shared
trainer's own samples/s (optimisation steps only). One untimed VAE fit runs first (torch's set-up). The last
column is the ratio of the VAE's (``cvae``, MSE) cells/s to each model's, from this one run: the ratios, not
the absolute numbers, are what carries to another machine.

    .venv/bin/python benchmarks/vae_throughput.py                    # CPU
    .venv/bin/python benchmarks/vae_throughput.py --device cuda      # where a GPU is lent (mixed precision)
    .venv/bin/python benchmarks/vae_throughput.py --published none   # the VAE only
"""

from __future__ import annotations

import argparse
import time
import warnings

import pandas as pd

#: the VAE runs: (registered name, parameters)
VAE_RUNS = (
    ("cvae", {"loss": "mse"}),
    ("cvae", {"loss": "nb"}),
    ("cvae", {"loss": "zinb"}),
    ("cvae_go", {"loss": "mse+energy"}),
    ("cvae_pseudobulk", {}),
)
#: each published model's epoch parameter
EPOCH_PARAM = {"gears": "epochs", "biolord": "max_epochs", "scgen": "max_epochs"}
REFERENCE_RUN = "cvae (mse)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--max-cells", type=int, default=100, help="cells per perturbation (0: all 20,729 cells)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    parser.add_argument(
        "--published", default="gears,biolord,scgen", help="comma-separated published models ('none': the VAE only)"
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    import torch

    from vcclib.data import load
    from vcclib.device import describe, resolve_device
    from vcclib.models import MODELS, get_model
    from vcclib.models.runner import available, subsample
    from vcclib.splits import make_split

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    adata = subsample(load("papalexi2021_eccite_lowmoi"), args.max_cells, seed=0, column="cell_line")
    split = make_split("unseen_perturbation", adata, seed=0)
    train = split.subset(adata, "train")
    print(
        f"data: Papalexi 2021, {train.n_obs} training cells × {train.n_vars} genes; {describe(device)}; "
        f"{args.epochs} epochs; {torch.get_num_threads()} torch CPU thread(s)",
        flush=True,
    )
    # one untimed fit first: torch's first-call set-up would otherwise be charged to the first model timed
    get_model("cvae", epochs=1, patience=0, device=device.name, progress=False).fit(train)
    rows = []
    for name, extra in VAE_RUNS:
        model = get_model(name, epochs=args.epochs, patience=0, device=device.name, progress=False, **extra)
        tick = time.perf_counter()
        model.fit(train)
        seconds = time.perf_counter() - tick
        history = model.history
        rows.append(
            {
                "model": f"{name} ({extra.get('loss', model.params['loss'])})",
                "mode": "pseudobulk" if model.params["pseudobulk"] else "cells",
                "device": history["device"],
                "precision": history["precision"],
                "epochs": len(history["epochs"]),
                "fit s": seconds,
                "cells/s": train.n_obs * len(history["epochs"]) / seconds,
                "trainer samples/s": history["samples_per_second"],
            }
        )
        print(f"  {rows[-1]['model']}: {rows[-1]['cells/s']:.0f} cells/s ({seconds:.1f} s)", flush=True)
    wanted = [] if args.published == "none" else [n.strip() for n in args.published.split(",") if n.strip()]
    ready = available(wanted) if wanted else []
    for name in wanted:
        if name not in ready:
            print(f"{name}: not run ({MODELS.get(name).extra} extra not installed here)")
            continue
        model = get_model(name, **{EPOCH_PARAM[name]: args.epochs, "device": device.name, "seed": 0})
        tick = time.perf_counter()
        model.fit(train)
        seconds = time.perf_counter() - tick
        rows.append(
            {
                "model": name,
                "mode": "cells",
                "device": device.name,
                "precision": "float32",
                "epochs": args.epochs,
                "fit s": seconds,
                "cells/s": train.n_obs * args.epochs / seconds,
                "trainer samples/s": float("nan"),
            }
        )
        print(f"  {name}: {rows[-1]['cells/s']:.0f} cells/s ({seconds:.1f} s)", flush=True)
    table = pd.DataFrame(rows)
    reference = float(table.loc[table["model"] == REFERENCE_RUN, "cells/s"].iloc[0])
    table[f"{REFERENCE_RUN} ÷ this"] = reference / table["cells/s"]
    print(
        table.round({"fit s": 1, "cells/s": 0, "trainer samples/s": 0, f"{REFERENCE_RUN} ÷ this": 2}).to_string(
            index=False
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
