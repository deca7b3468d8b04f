"""Benchmark: the paper CV with each stage-matrix preconditioner, in one process.

Paper case (as benchmarks/mpnp_cv.py): 6 staggered sheets, d = 1.5 nm, 1 M KCl, a = 0.66 nm,
0 -> 1 V -> 0 at a half-period of 2000 Debye times, open space held at bulk, geometry as
snapped on the 0.125 nm grid. For every grid and preconditioner: one call with
compilation, then ``--repeats`` timed calls, interleaved across preconditioners (so a
change in machine load hits all of them alike); medians and the ratios to SuperLU are
reported. Also the factorisation and the solve alone (jitted, median of 5), the salt
drift of a closed-cell charging ramp (the same network, ``boundary="symmetric"``), steps, and the
process's peak resident memory after each preconditioner's runs (monotone: ru_maxrss).

    python benchmarks/mpnp_preconditioners.py                    # 0.125 nm, all preconditioners
    python benchmarks/mpnp_preconditioners.py --grids 0.125 0.0625
    python benchmarks/mpnp_preconditioners.py --quick            # a small network (checks the script)

Set ``OPENBLAS_NUM_THREADS=1`` on a shared machine (simulate limits BLAS threads itself; the
factor/solve micro-benchmarks here do the same).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import threadpoolctl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import jaxpnp  # noqa: E402
from _common import RESULTS, add_solver_arguments, case_electrode, load_average, peak_rss_mb  # noqa: E402

ALL = ("superlu", "block_thomas", "cyclic_reduction")


def held_geometry(electrode, h_nm):
    return jaxpnp.snap_to_grid(electrode, h_nm)


def median_ms(fn, *args, n=5):
    jax.block_until_ready(fn(*args))
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts) * 1e3)


def factor_and_solve_times(el, electrode, h, boundary, names):
    """Factorisation and one solve at a charged state (packing near 1 at the sheets)."""
    out = {}
    with jaxpnp.float64(), threadpoolctl.threadpool_limits(1, user_api="blas"):
        model, _ = jaxpnp.build_model(el, electrode, jaxpnp.CV(), h, boundary, preconditioner="superlu")
        g = model.grid
        rng = np.random.default_rng(0)
        c = model.initial_state() * (1 + 0.5 * rng.random((2, g.nx, g.ny)))
        r = jnp.asarray(rng.normal(size=(2, g.nx, g.ny)))
        t, hgamma = 100.0, 6.0
        ref = None
        for name in names:
            _, pre = jaxpnp.build_model(el, electrode, jaxpnp.CV(), h, boundary, preconditioner=name)
            build = jax.jit(lambda c, hg: pre.build(model, c, t, hg))
            apply = jax.jit(pre.apply)
            state = build(c, hgamma)
            x = np.asarray(apply(state, r))
            ref = x if ref is None else ref
            factor_ms = median_ms(build, c, hgamma)
            state = build(c, hgamma)  # the host cache keeps only the newest SuperLU factors
            out[name] = dict(factor_ms=factor_ms, solve_ms=median_ms(apply, state, r),
                             max_difference_to_superlu=float(np.abs(x - ref).max() / np.abs(ref).max()))
            print(name, json.dumps(out[name]), flush=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--grids", type=float, nargs="+", default=None)
    ap.add_argument("--preconditioner", nargs="+", default=list(ALL), choices=ALL)
    ap.add_argument("--repeats", type=int, default=2)
    add_solver_arguments(ap)
    ap.add_argument("--output", default=str(RESULTS / "mpnp_preconditioners.json"))
    args = ap.parse_args(argv)

    el = jaxpnp.Electrolyte()
    tau = float(el.debye_time_s)
    electrode, case = case_electrode(args.quick)
    grids = args.grids or ([0.15] if args.quick else [0.125])
    electrode = held_geometry(electrode, grids[0])
    cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=1.0 / (args.half_period_debye * tau))
    names = args.preconditioner
    result = dict(benchmark="mpnp_preconditioners", case=case, boundary="reservoir",
                  half_period_debye_times=args.half_period_debye, rtol=args.rtol, atol=args.atol,
                  points_per_cycle=args.points,
                  geometry={f.name: getattr(electrode, f.name) for f in dataclasses.fields(electrode)},
                  grids={}, load_average_start=load_average(),
                  machine=dict(platform=platform.platform(), cpus=os.cpu_count(), jax=jax.__version__,
                               backend=jax.default_backend(), devices=[str(d) for d in jax.devices()]))
    for h in grids:
        entry = dict(factor_and_solve=factor_and_solve_times(el, electrode, h, "reservoir", names), runs={})
        kwargs = dict(grid_nm=h, boundary="reservoir", points_per_cycle=args.points, rtol=args.rtol,
                      atol=args.atol, progress=False)
        currents = {}
        for name in names:
            t0 = time.perf_counter()
            ds = jaxpnp.simulate(el, electrode, cv, preconditioner=name, **kwargs)
            first = time.perf_counter() - t0
            currents[name] = ds.current_density.values
            entry["runs"][name] = dict(first_call_s=first, times_s=[], accepted_steps=int(ds.attrs["solver_accepted"]),
                                       rejected_steps=int(ds.attrs["solver_rejected"]),
                                       nx=int(ds.attrs["nx"]), ny=int(ds.attrs["ny"]),
                                       peak_rss_mb_after=peak_rss_mb())
            print(h, name, json.dumps(entry["runs"][name]), flush=True)
        for _ in range(args.repeats):
            for name in names:  # interleaved: load changes hit every preconditioner alike
                t0 = time.perf_counter()
                jaxpnp.simulate(el, electrode, cv, preconditioner=name, **kwargs)
                entry["runs"][name]["times_s"].append(time.perf_counter() - t0)
                entry["runs"][name]["load_average"] = load_average()
                print(h, name, entry["runs"][name]["times_s"][-1], flush=True)
        ref = "superlu" if "superlu" in names else names[0]
        for name in names:
            run = entry["runs"][name]
            run["median_s"] = float(np.median(run["times_s"])) if run["times_s"] else run["first_call_s"]
            run["ratio_to_" + ref] = run["median_s"] / entry["runs"][ref]["median_s"] if run["times_s"] else None
            run["current_difference_to_" + ref] = float(
                np.linalg.norm(currents[name] - currents[ref]) / np.linalg.norm(currents[ref]))
        # salt: the closed cell conserves ions exactly; one short charging ramp (to 1 V in 100 Debye times, then held) per preconditioner
        short = jaxpnp.PotentialStep(v_step=1.0, duration_s=200 * tau, rise_time_s=100 * tau)
        entry["salt_drift_closed_cell"] = {}
        for name in names:
            ds = jaxpnp.simulate(el, electrode, short, preconditioner=name,
                                 **dict(kwargs, boundary="symmetric", points_per_cycle=20))
            salt = ds.total_salt.values
            entry["salt_drift_closed_cell"][name] = float(np.max(np.abs(salt - salt[0])) / salt[0])
            print(h, name, "salt drift", entry["salt_drift_closed_cell"][name], flush=True)
        result["grids"][str(h)] = entry
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=1))
    result["load_average_end"] = load_average()
    Path(args.output).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
