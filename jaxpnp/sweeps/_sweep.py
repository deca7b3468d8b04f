"""``jaxpnp.sweep``: one Dask task per parameter point, each writing one netCDF; resumable."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from distributed import as_completed
from tqdm.auto import tqdm

from ._cluster import JaxSetup, close, connect
from ._points import SweepSpec, make_spec
from ._task import failed_record, is_complete, run_point, write_json

SPEC_FILE = "sweep.json"


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """What a sweep did. ``records``: one dict per point (point_id, status "done" |
    "skipped" | "failed", error, time_s, worker_pid); counts in ``computed``, ``skipped``,
    ``failed``; ``outdir``: where the files are (read them with :func:`open_sweep`)."""

    outdir: Path
    records: tuple
    wall_time_s: float

    def _count(self, status):
        return sum(r["status"] == status for r in self.records)

    @property
    def computed(self) -> int:
        return self._count("done")

    @property
    def skipped(self) -> int:
        return self._count("skipped")

    @property
    def failed(self) -> dict:
        """point_id -> error message."""
        return {r["point_id"]: r["error"] for r in self.records if r["status"] == "failed"}


def _spec_json(spec: SweepSpec, discover) -> dict:
    return {"format": "jaxpnp-sweep/1", "kind": spec.kind, "dims": list(spec.dims), "axes": spec.axes,
            "base": spec.base, "discover": bool(discover),
            "points": [{"index": list(p.index), "values": p.values, "point_id": p.point_id,
                        "parameters": p.parameters, "error": p.error} for p in spec.points]}


def sweep(base, over=None, outdir="sweep_out", *, points=None, client=None, workers=None, scheduler=None,
          discover: bool = False, engine: str = "sparse", discover_options=None, progress: bool = True,
          compilation_cache=None) -> SweepResult:
    """Run ``simulate`` for every point of a parameter sweep, one Dask task per point.

    ``base``: the base case (a TOML run file as for ``jaxpnp simulate``, a dict of its
    tables, or an ``(electrolyte, electrode, protocol[, kwargs])`` tuple). ``over``:
    parameter name -> list of values, swept as a grid product (names are constructor
    fields or simulate options: ``slit_nm``, ``concentration_M``, ``scan_rate_V_s``,
    ``grid_nm``, or dotted ``electrode.slit_nm``); or ``points``: an explicit list of
    {name: value} dicts. ``outdir``: one ``<point_id>.nc`` per point, named by a hash of
    its full parameter set (parameters in its attributes, ``sweep_parameters``), plus
    ``sweep.json``. A point whose file exists is skipped (a rerun resumes); an
    interrupted one continues from its checkpoint. A bad point is recorded
    (``<point_id>.error.json`` and the returned records) and the others go on.

    ``client``: a ``dask.distributed.Client``; else ``scheduler`` (address or scheduler
    file of a running cluster); else a new ``LocalCluster`` of ``workers`` single-threaded
    processes (default: one per core), closed at the end. ``discover``: also run the
    trans-slit law discovery per point (``engine``: a ``discovery`` engine name) into
    ``<point_id>.law.json``. ``compilation_cache``: JAX's persistent compilation cache
    directory shared by the workers (default ``outdir/.jax_cache``).
    """
    t_start = time.perf_counter()
    spec = make_spec(base, over, points)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    write_json(_spec_json(spec, discover), outdir / SPEC_FILE)
    records, todo = {}, []
    for p in spec.points:
        if p.error is not None:
            records[p.point_id] = failed_record(p, outdir, p.error)
        elif is_complete(p.point_id, outdir, discover):
            records[p.point_id] = {"point_id": p.point_id, "status": "skipped", "time_s": 0.0}
        else:
            todo.append(p)
    bar = tqdm(total=len(spec.points), initial=len(records), unit="point", desc="sweep",
               disable=not progress)
    if todo:
        client, owned = connect(client, workers=workers, scheduler=scheduler)
        try:
            cache = compilation_cache if compilation_cache is not None else outdir / ".jax_cache"
            client.register_plugin(JaxSetup(cache), name=JaxSetup.name)
            single = len(client.scheduler_info().get("workers", {})) == 1
            futures = {client.submit(run_point, p.config, p.parameters, p.point_id, str(outdir),
                                     discover=discover, engine=engine, discover_options=discover_options,
                                     progress=bool(progress and single), key=f"jaxpnp-point-{p.point_id}",
                                     pure=False): p for p in todo}
            for future in as_completed(futures):
                p = futures[future]
                try:
                    rec = future.result()
                except Exception as err:  # the worker died on it too often (KilledWorker), ...
                    rec = failed_record(p, outdir, f"{type(err).__name__}: {err}")
                records[p.point_id] = rec
                bar.update(1)
                if rec["status"] == "failed":
                    bar.write(f"sweep point {p.point_id} {p.values}: {rec['error']}")
        finally:
            bar.close()
            if owned:
                close(client)
    else:
        bar.close()
    ordered = tuple(dict(records[p.point_id], values=p.values) for p in spec.points)
    result = SweepResult(outdir=outdir, records=ordered, wall_time_s=time.perf_counter() - t_start)
    write_json({"computed": result.computed, "skipped": result.skipped, "failed": result.failed,
                "wall_time_s": result.wall_time_s, "records": list(ordered)}, outdir / "summary.json")
    return result


