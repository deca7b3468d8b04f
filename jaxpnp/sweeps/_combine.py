"""``jaxpnp.open_sweep``: the point files of a sweep as one Dataset with the sweep axes as dimensions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import xarray as xr

from .._io import load
from .._units import to_cf
from ._sweep import SPEC_FILE
from ._task import paths

_LAW_FIELDS = {"R_c": ("ohm m2", "trans-slit law: R_c of R = R_c (1 - gamma Q/Q_max) (NaN: not of that form)"),
               "gamma": ("1", "trans-slit law: gamma (NaN: not of the paper's form)"),
               "R_0": ("ohm m2", "trans-slit law: resistance at zero transferred charge"),
               "r2": ("1", "R^2 of the discovered integral law")}


def _by_sample(ds: xr.Dataset) -> xr.Dataset:
    """Index time by sample number: points with other scan rates have other times."""
    n = ds.sizes.get("time", 0)
    return ds.assign_coords(sample=("time", np.arange(n))).swap_dims({"time": "sample"})


def _blank(template: xr.Dataset) -> xr.Dataset:
    """A NaN point of the template's shape (failed or missing points)."""
    out = template.copy()
    for name, var in template.data_vars.items():
        out[name] = xr.full_like(var, np.nan, dtype=float)
    if "time" in out.coords:
        out = out.assign_coords(time=xr.full_like(out["time"], np.nan, dtype=float))
    out.attrs = {}
    return out


def open_sweep(outdir) -> xr.Dataset:
    """All points of the sweep in ``outdir`` (written by :func:`jaxpnp.sweep`) as one Dataset.

    Dimensions: the sweep axes (a grid sweep: one dimension per parameter, coordinates
    its values; a list sweep: ``point``, each parameter a coordinate along it), then each
    run's own (``sample`` = output index, with ``time`` (s) a coordinate over the sweep
    axes, since another scan rate has other times; ``slit``; ...). Points without a
    result are NaN and have ``point_status`` 0; ``point_id`` names each point's file.
    Run attributes that differ between points (Debye length, solver statistics) become
    variables over the sweep axes; the common ones stay attributes. With discovery, the
    per-link ``law_R_c``, ``law_R_0`` (ohm m^2), ``law_gamma``, ``law_r2`` and ``law_expression`` too.
    """
    outdir = Path(outdir)
    spec_path = outdir / SPEC_FILE
    if not spec_path.is_file():
        raise ValueError(f"{outdir} holds no sweep ({SPEC_FILE} missing)")
    spec = json.loads(spec_path.read_text())
    dims, axes = list(spec["dims"]), spec["axes"]
    shape = tuple(len(axes[d]) for d in dims) if spec["kind"] == "grid" else (len(spec["points"]),)
    loaded = {}
    for p in spec["points"]:
        f = paths(outdir, p["point_id"])["result"]
        if p["error"] is None and f.is_file():
            loaded[p["point_id"]] = _by_sample(load(f))
    if not loaded:
        raise ValueError(f"no point of the sweep in {outdir} has a result yet")
    template = next(iter(loaded.values()))
    attrs_seen = {}
    for ds in loaded.values():
        for k, v in ds.attrs.items():
            attrs_seen.setdefault(k, set()).add(repr(v))
    differing = sorted(k for k, v in attrs_seen.items()
                       if (len(v) > 1 or any(k not in ds.attrs for ds in loaded.values()))
                       and k not in dims and k not in ("sweep_point_id", "sweep_parameters"))
    flat, extra = [], {k: np.full(shape, np.nan) for k in differing}
    status = np.zeros(shape, dtype=np.int8)
    ids = np.empty(shape, dtype=object)
    for p in spec["points"]:
        idx = tuple(p["index"])
        ids[idx] = p["point_id"]
        ds = loaded.get(p["point_id"])
        if ds is None:
            flat.append((idx, _blank(template)))
            continue
        status[idx] = 1
        for k in differing:
            v = ds.attrs.get(k)
            if isinstance(v, (int, float, np.number)) and not isinstance(v, bool):
                extra[k][idx] = float(v)
        flat.append((idx, ds.drop_attrs() if hasattr(ds, "drop_attrs") else ds.assign_attrs({})))
    nested = np.empty(shape, dtype=object)
    for idx, ds in flat:
        nested[idx] = ds
    combined = xr.combine_nested(nested.tolist(), concat_dim=dims, data_vars="all", coords="different",
                                 compat="equals", join="outer", combine_attrs="drop")
    combined = combined.transpose(*dims, ...)  # combine_nested puts the innermost axis first
    common = {k: template.attrs[k] for k in template.attrs
              if k not in differing and k not in dims and k not in ("sweep_point_id", "sweep_parameters")}
    combined.attrs = dict(common, title="jaxpnp mPNP parameter sweep", sweep_dims=" ".join(dims))
    if spec["kind"] == "grid":
        combined = combined.assign_coords({d: (d, np.asarray(axes[d]), {"long_name": f"sweep axis {d}"})
                                           for d in dims})
    else:
        combined = combined.assign_coords({k: ("point", np.asarray(v), {"long_name": f"sweep parameter {k}"})
                                           for k, v in axes.items()})
        combined = combined.assign_coords(point=np.arange(shape[0]))
    combined["point_status"] = (tuple(dims), status, {"units": "1", "long_name": "1: the point has a result"})
    combined["point_id"] = (tuple(dims), ids.astype(str), {"long_name": "file name of the point (hash)"})
    for k, v in extra.items():
        if k not in combined.variables and np.isfinite(v).any():
            combined[k] = (tuple(dims), v, {"long_name": f"run attribute {k}"})
    return to_cf(_with_laws(combined, spec, outdir, dims, shape))


def _with_laws(combined, spec, outdir, dims, shape):
    tables = {}
    for p in spec["points"]:
        f = paths(outdir, p["point_id"])["law"]
        if f.is_file():
            tables[tuple(p["index"])] = {row["link"]: row for row in json.loads(f.read_text())["links"]}
    if not tables:
        return combined
    links = sorted({link for t in tables.values() for link in t})
    for field, (units, long_name) in _LAW_FIELDS.items():
        data = np.full(shape + (len(links),), np.nan)
        for idx, t in tables.items():
            for j, link in enumerate(links):
                v = t.get(link, {}).get(field)
                data[idx + (j,)] = math.nan if v is None else v
        combined[f"law_{field}"] = (tuple(dims) + ("link",), data, {"units": units, "long_name": long_name})
    expr = np.full(shape + (len(links),), "", dtype=object)
    for idx, t in tables.items():
        for j, link in enumerate(links):
            expr[idx + (j,)] = t.get(link, {}).get("expression", "")
    combined["law_expression"] = (tuple(dims) + ("link",), expr.astype(str),
                                  {"long_name": "discovered law a = F(q) (normalised integrals)"})
    return combined.assign_coords(link=("link", np.asarray(links), {"long_name": "link i: slit i -> i+1"}))
