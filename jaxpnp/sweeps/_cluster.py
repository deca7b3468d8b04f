"""Dask clients for sweeps: a LocalCluster sized to the machine, or a running scheduler; JAX set up per worker."""

from __future__ import annotations

import os

import jax
from distributed import Client, LocalCluster, WorkerPlugin

# Many JAX processes on one machine: none may grab most of a GPU's memory up front
# (JAX preallocates 75% by default), and each worker's XLA should use one core, as
# Dask gives each worker one.
WORKER_ENV = {
    "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}


def configure_jax(cache_dir: str | None) -> None:
    """Per JAX process: no GPU preallocation (takes effect if no JAX backend has started
    yet in the process) and the shared persistent compilation cache in ``cache_dir``.

    Measured limit: JAX does not persist executables that contain host callbacks, and the
    mPNP segment solve has one (the SuperLU preconditioner), so each new worker process
    still compiles that function once (~15 s); the cache covers the rest."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", os.fspath(cache_dir))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


class JaxSetup(WorkerPlugin):
    """Runs :func:`configure_jax` on every worker, including ones that join or are restarted later."""

    name = "jaxpnp-jax-setup"

    def __init__(self, cache_dir):
        self.cache_dir = None if cache_dir is None else os.fspath(cache_dir)

    def setup(self, worker):
        configure_jax(self.cache_dir)


def local_cluster(workers: int | None = None) -> LocalCluster:
    """One single-threaded worker process per core (``workers`` to choose), JAX env set."""
    n = int(workers) if workers is not None else (os.cpu_count() or 1)
    if n < 1:
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    env = dict(WORKER_ENV)
    if os.environ.get("XLA_FLAGS"):  # keep the user's flags, ours after them
        env["XLA_FLAGS"] = f"{os.environ['XLA_FLAGS']} {env['XLA_FLAGS']}"
    return LocalCluster(n_workers=n, threads_per_worker=1, processes=True, env=env,
                        dashboard_address=None)


def connect(client=None, *, workers=None, scheduler=None):
    """(client, owned): the given client, one connected to ``scheduler`` (an address such
    as ``tcp://host:8786`` or a scheduler file), or a new LocalCluster's. ``owned``: close it after."""
    if client is not None:
        if workers is not None or scheduler is not None:
            raise ValueError("give client=, workers= or scheduler=, not several")
        if not isinstance(client, Client):
            raise TypeError(f"client must be a dask.distributed.Client, got {type(client).__name__}")
        return client, False
    if scheduler is not None:
        if workers is not None:
            raise ValueError("give workers= (a local cluster) or scheduler= (a running one), not both")
        scheduler = os.fspath(scheduler)
        if os.path.isfile(scheduler):
            return Client(scheduler_file=scheduler), True
        return Client(scheduler), True
    return Client(local_cluster(workers)), True


def close(client) -> None:
    cluster = client.cluster
    client.close()
    if cluster is not None:
        cluster.close()
