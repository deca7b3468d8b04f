"""Benchmark: mPNP vs NCM on the same CV (the paper's "weeks vs seconds"), plus the fit time.

Run: python benchmarks/mpnp_vs_ncm.py [--quick]
--quick: the 3-sheet test geometry; default: the 6-sheet paper case at grid 0.3 nm.
Writes benchmarks/results/mpnp_vs_ncm.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import circuits  # noqa: E402
import jaxpnp  # noqa: E402
from jaxpnp.reproduce import CROWDED_REGIME, QUICK, electrode_for, protocol_for, tiny_config  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "mpnp_vs_ncm.json"))
    args = ap.parse_args()
    cfg = tiny_config() if args.quick else dataclasses.replace(QUICK, slits_nm=(1.5,), engine="sparse",
                                                               discovery_options={})
    el = jaxpnp.Electrolyte(**cfg.electrolyte)
    cv = protocol_for(cfg, CROWDED_REGIME)
    electrode = electrode_for(cfg, cfg.paper_slit_nm)
    t0 = time.perf_counter()
    ds = jaxpnp.simulate(el, electrode, cv, grid_nm=cfg.grid_nm, points_per_cycle=cfg.points_per_cycle,
                         progress=False)
    mpnp_wall = time.perf_counter() - t0
    mpnp_run = float(ds.attrs["solver_run_time_s"])
    with jaxpnp.float64():
        # the paper's NCM: chord capacitors, one R_c and gamma from the discovered mid-slit laws
        model = circuits.from_mpnp(ds, potential="slit_potential", per_link=False, engine=cfg.engine,
                                   discovery_options=cfg.discovery_options)
        times = np.asarray(ds["time"])
        t0 = time.perf_counter()
        circuits.simulate(model, cv, times=times)
        first = time.perf_counter() - t0
        reps = []
        for _ in range(5):
            t0 = time.perf_counter()
            sim = circuits.simulate(model, cv, times=times)
            reps.append(time.perf_counter() - t0)
        ncm_s = float(np.median(reps))
        t0 = time.perf_counter()
        fit = circuits.fit(model, ds, params=("R_c", "gamma"), protocol=cv, steps=50, polish=False, progress=False)
        fit_s = time.perf_counter() - t0
    out = dict(
        machine=dict(platform=platform.platform(), python=platform.python_version()),
        quick=args.quick,
        problem=dict(n_sheets=int(ds.attrs["n_sheets"]), slit_nm=float(ds.attrs["slit_nm"]), grid_nm=cfg.grid_nm,
                     unknowns=int(ds.attrs["unknowns"]), scan_rate_V_s=cv.scan_rate_V_s, cycles=1),
        mpnp_wall_s=mpnp_wall, mpnp_run_s=mpnp_run,
        ncm_first_call_s=first, ncm_per_curve_s=ncm_s, speed_ratio=mpnp_run / ncm_s,
        ncm_nrmse_vs_mpnp=jaxpnp.nrmse(sim["current_density"], ds["current_density"]),
        fit_steps=50, fit_s=fit_s, fit_R_c=float(fit.params["R_c"]), fit_gamma=float(fit.params["gamma"]),
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
