"""`sweep`: R_max, R_min, R_c and gamma across runs (Figure 2c against d; Figure S9's
question of how gamma depends on the electrolyte)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ._trans_slit import TransSlitResult, trans_slit_law

PARAMETERS = ("slit_nm", "n_sheets", "concentration_M", "ion_diameter_nm", "diffusivity_m2_s",
              "relative_permittivity", "temperature_K", "scan_rate_V_s", "v_min", "v_max")


def sweep(datasets, engine="auto", slits=None, seed=0, parsimony=None, **engine_options):
    """A table over runs: ``datasets`` is a sequence of Datasets, paths to netCDF files, or
    :class:`TransSlitResult`. Returns an ``xarray.Dataset`` on dims ``run`` x ``link``
    (NaN where a run lacks a link) with ``R_max``, ``R_min``, ``R_c`` (ohm m^2), ``gamma``,
    ``r2``, ``paper_form``; per run the Dataset attrs in ``PARAMETERS`` (``slit_nm`` is d)
    and the means over inner links ``R_max_mean``, ``R_min_mean``, ``gamma_mean``.
    Sort or plot it with xarray, e.g. ``table.sortby("slit_nm")``."""
    results = []
    for item in datasets:
        if isinstance(item, TransSlitResult):
            results.append(item)
            continue
        if isinstance(item, (str, bytes)) or hasattr(item, "__fspath__"):
            with xr.open_dataset(item) as opened:
                item = opened.load()
        results.append(trans_slit_law(item, engine=engine, slits=slits, seed=seed,
                                      parsimony=parsimony, **engine_options))
    if not results:
        raise ValueError("sweep needs at least one dataset")
    links = sorted({i for r in results for i in r.all_links()})
    shape = (len(results), len(links))
    fields = {k: np.full(shape, np.nan) for k in ("R_max", "R_min", "R_c", "gamma", "r2", "paper_form")}
    for n, r in enumerate(results):
        for i, law in r.all_links().items():
            j = links.index(i)
            fields["R_max"][n, j] = float(r.R_max.sel(link=i))
            fields["R_min"][n, j] = float(r.R_min.sel(link=i))
            fields["R_c"][n, j] = law.R_c
            fields["gamma"][n, j] = law.gamma
            fields["r2"][n, j] = law.r2
            fields["paper_form"][n, j] = float(law.paper_form)
    units = {"R_max": "ohm m^2", "R_min": "ohm m^2", "R_c": "ohm m^2", "gamma": "1", "r2": "1",
             "paper_form": "1 if the law has the paper's form"}
    table = xr.Dataset({k: (("run", "link"), v, {"units": units[k]}) for k, v in fields.items()},
                       coords={"run": np.arange(len(results)), "link": links})
    inner = [j for j, i in enumerate(links) if i != 0]
    for k in ("R_max", "R_min", "gamma"):
        with np.errstate(all="ignore"):
            vals = fields[k][:, inner]
            mean = np.array([np.nanmean(row) if np.any(np.isfinite(row)) else np.nan for row in vals])
        table[f"{k}_mean"] = ("run", mean, {"long_name": f"{k} averaged over inner links"})
    for name in PARAMETERS:
        table.coords[name] = ("run", np.array([float(r.prepared.attrs.get(name, np.nan))
                                               for r in results]))
    return table
