"""The Dask cluster that network inference runs on: a LocalCluster by default, or an existing one by address.

>>> with dask_client() as client:                                   # workers from this machine
...     edges = infer_network(expression, method="grnboost2", client=client)
>>> with dask_client(scheduler_address="tcp://10.0.0.5:8786"):      # an existing cluster
...     edges = infer_network(expression, method="genie3")

Inside the ``with`` block the client is also distributed's default client, so functions called without
``client=`` find it. dask and distributed are imported only when a cluster is asked for (they are heavy).
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass

from vcclib.errors import VccError


class ClusterError(VccError):
    """The Dask cluster could not be reached or started."""


@dataclass(frozen=True)
class ClusterSettings:
    """Where inference runs.

    Attributes
    ----------
    scheduler_address
        Address of an existing Dask scheduler (``tcp://host:8786``); empty: start a LocalCluster.
    n_workers
        LocalCluster workers; 0: one per CPU core this process may use.
    threads_per_worker
        Threads per LocalCluster worker. 1 suits tree ensembles (each regression is single-threaded).
    processes
        LocalCluster workers as processes (True; a worker can then be killed and restarted) or threads.
    """

    scheduler_address: str = ""
    n_workers: int = 0
    threads_per_worker: int = 1
    processes: bool = True


def default_workers() -> int:
    """One worker per CPU core available to this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@contextmanager
def dask_client(
    scheduler_address: str = "",
    n_workers: int = 0,
    threads_per_worker: int = 1,
    processes: bool = True,
    timeout: str = "20s",
):
    """A ``distributed.Client`` for the block: connected to ``scheduler_address``, or to a new LocalCluster.

    What this function started (client, LocalCluster) is closed on exit; an existing cluster is left running.
    A script that starts process workers needs an ``if __name__ == "__main__":`` guard.
    """
    from distributed import Client, LocalCluster

    cluster = None
    try:
        if scheduler_address:
            client = Client(scheduler_address, timeout=timeout)
        else:
            cluster = LocalCluster(
                n_workers=n_workers or default_workers(),
                threads_per_worker=threads_per_worker,
                processes=processes,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            client = Client(cluster)
    except (OSError, TimeoutError) as error:
        if cluster is not None:
            cluster.close()
        where = scheduler_address or "a LocalCluster"
        raise ClusterError(f"cannot start a Dask client on {where}: {error}") from error
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def current_client():
    """The default distributed client of this process, or None (distributed is not imported if unused)."""
    import sys

    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None
