"""One sweep point on a worker: run (resuming from its checkpoint), write atomically, record errors."""

from __future__ import annotations

import json
import math
import os
import time
import traceback
from pathlib import Path

import xarray as xr

import discovery

from .._io import load, read_config
from .._simulate import simulate


def paths(outdir, point_id) -> dict:
    """The files of one point: result, checkpoint (while running), law table, error record."""
    base = Path(outdir) / point_id
    return {"result": base.with_suffix(".nc"), "partial": Path(f"{base}.partial.nc"),
            "law": Path(f"{base}.law.json"), "error": Path(f"{base}.error.json")}


def write_json(obj, path) -> None:
    """Atomically (temporary file, then rename), so a killed writer leaves no half file."""
    tmp = Path(f"{path}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)


def write_netcdf(ds: xr.Dataset, path) -> None:
    tmp = Path(f"{path}.tmp{os.getpid()}")
    ds.to_netcdf(tmp, engine="h5netcdf")
    os.replace(tmp, path)


def is_complete(point_id, outdir, discover: bool) -> bool:
    """The result exists (it is only ever renamed into place once complete), and its law when asked for."""
    p = paths(outdir, point_id)
    return p["result"].is_file() and (not discover or p["law"].is_file())


def law_table(ds: xr.Dataset, engine: str, **discover_options) -> list[dict]:
    """The trans-slit law of every link of one run: one row per link (SI: R_c and R_0 = R(Q=0)
    in ohm m^2; R_c, gamma None unless the law has the paper's form)."""
    result = discovery.trans_slit_law(ds, engine=engine, **discover_options)
    rows = []
    for i, law in result.all_links().items():
        rows.append({"link": int(i), "expression": str(law.law.expression), "form": law.form,
                     "paper_form": bool(law.paper_form), "R_c": _num(law.R_c), "gamma": _num(law.gamma),
                     "R_0": _num(law.resistance.subs("Q", 0)),
                     "r2": _num(law.r2), "differential_r2": _num(law.differential_r2),
                     "resistance": str(law.resistance)})
    return rows


def _num(x):
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def run_point(config: dict, parameters: dict, point_id: str, outdir: str, *, discover: bool = False,
              engine: str = "sparse", discover_options=None, progress: bool = False) -> dict:
    """Compute one point (the Dask task). Never raises for a bad point: the error goes to
    ``<id>.error.json`` and the returned record; a killed worker's rerun resumes from the
    checkpoint ``<id>.partial.nc``."""
    p = paths(outdir, point_id)
    start = time.perf_counter()
    record = {"point_id": point_id, "worker_pid": os.getpid()}
    for stale in Path(outdir).glob(f"{point_id}.*.tmp*"):  # half-written by an earlier, killed attempt
        stale.unlink(missing_ok=True)
    try:
        if not p["result"].is_file():
            electrolyte, electrode, protocol, kwargs = read_config(config)
            ds = simulate(electrolyte, electrode, protocol, **kwargs, progress=progress,
                          checkpoint_path=str(p["partial"]), resume=True)
            ds.attrs.update(sweep_point_id=point_id, sweep_parameters=json.dumps(parameters, sort_keys=True))
            write_netcdf(ds, p["result"])
            p["partial"].unlink(missing_ok=True)
            record["resumed_from_s"] = float(ds.attrs.get("solver_resumed_from_s", 0.0))
        if discover and not p["law"].is_file():
            rows = law_table(load(p["result"]), engine, **(discover_options or {}))
            write_json({"point_id": point_id, "engine": engine, "links": rows}, p["law"])
        p["error"].unlink(missing_ok=True)
        record["status"] = "done"
    except Exception as err:  # isolate the point: record and go on
        record.update(status="failed", error=f"{type(err).__name__}: {' '.join(str(err).split())}")
        write_json({"point_id": point_id, "parameters": parameters, "config": config,
                    "error": record["error"], "traceback": traceback.format_exc()}, p["error"])
    record["time_s"] = time.perf_counter() - start
    return record


def failed_record(point, outdir, message) -> dict:
    """Record a point that never ran (invalid input, or its worker died too often)."""
    rec = {"point_id": point.point_id, "status": "failed", "error": message, "time_s": 0.0}
    write_json({"point_id": point.point_id, "parameters": point.parameters, "config": point.config,
                "error": message}, paths(outdir, point.point_id)["error"])
    return rec


