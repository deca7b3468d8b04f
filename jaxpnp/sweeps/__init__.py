"""Parameter sweeps of the mPNP on Dask distributed (application layer).

``jaxpnp.sweep(base, over={...}, outdir)`` runs one task per parameter point on a Dask
cluster (a LocalCluster of one single-threaded worker process per core by default, or
any running scheduler, e.g. one from dask-jobqueue on SLURM), one netCDF per point named
by the hash of its full parameter set; reruns skip complete points and resume
interrupted ones from their checkpoints. ``jaxpnp.open_sweep(outdir)`` combines them
into one Dataset with the sweep axes as dimensions. ``jaxpnp sweep SWEEP.toml -o DIR``
on the command line (file format: :func:`read_sweep`).
"""

from ._combine import open_sweep
from ._points import Point, SweepSpec, make_spec, point_id, read_sweep
from ._sweep import SweepResult, sweep

__all__ = ["Point", "SweepResult", "SweepSpec", "make_spec", "open_sweep", "point_id", "read_sweep", "sweep"]
