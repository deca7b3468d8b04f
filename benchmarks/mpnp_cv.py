"""Benchmark: one CV cycle of the paper case with the mPNP solver, against scipy BDF.

Paper case (PHYSICS.md section 2): 6 staggered sheets, d = 1.5 nm, 1 M KCl, a = 0.66 nm,
0 -> 1 V -> 0 cell voltage. The open space is held at bulk (``boundary="reservoir"``):
a closed half cell with a 10 nm separator runs out of salt at 1 V (the mid-plane falls
to ~1% of c0), which no real supercapacitor with its large electrolyte volume does.

Scan rate: the network's charging time is measured in units of the Debye time
tau_D = lambda_D^2 / D (46 ps). At a half-period of 2000 tau_D (scan rate ~1.1e7 V/s)
the electrode reaches only ~80% of its slow-scan charge at the vertex and the current
there is still a large fraction of its peak: charging is rate-limited, which is what the
trans-slit law and the NCM are about.

Grid: the coarsest grid of the sequence whose CV current differs from the next finer
grid's by at most 2% (relative L2 over the cycle); both are reported. A grid snaps the
geometry (the 0.335 nm sheet is 0.375 nm at h = 0.125 nm but 0.3125 nm at 0.0625 nm, and
the 1 nm-wide gap between sheet ends is as long as the sheet is thick), so by default the
whole sequence runs the electrode *as snapped on its coarsest grid*: refinement then
measures discretisation error, not a change of geometry (``--nominal-geometry`` turns
this off; the JSON records the geometry used).

Baseline: the same discretisation's right-hand side (same JAX function, jitted, called
from numpy) driven by scipy.integrate.solve_ivp(method="BDF") with a sparse Jacobian
pattern (the local stencil; scipy estimates the Jacobian by grouped finite differences),
same tolerances, in the same process. It gets a wall-clock budget; if it does not finish,
its rate (simulated time per second) gives the projected time.

    python benchmarks/mpnp_cv.py            # grids 0.125 -> 0.0625 nm
    python benchmarks/mpnp_cv.py --quick    # a reduced case to check the script
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402

import jaxpnp  # noqa: E402
from _common import RESULTS, add_solver_arguments, case_electrode, peak_rss_mb  # noqa: E402


def relative_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def held_geometry(electrode, h_nm):
    """``electrode`` with its sheet dimensions as snapped on the grid ``h_nm`` (separator nominal)."""
    return jaxpnp.snap_to_grid(electrode, h_nm)


def run_jaxpnp(el, electrode, cv, h, boundary, points, rtol, atol):
    """One call (compilation included); ``time_again`` times a second, compiled call."""
    kwargs = dict(grid_nm=h, boundary=boundary, points_per_cycle=points, rtol=rtol, atol=atol, progress=False)
    t0 = time.perf_counter()
    ds = jaxpnp.simulate(el, electrode, cv, **kwargs)
    first = time.perf_counter() - t0
    info = dict(grid_nm=h, unknowns=int(ds.attrs["unknowns"]), nx=int(ds.attrs["nx"]), ny=int(ds.attrs["ny"]),
                accepted_steps=int(ds.attrs["solver_accepted"]), rejected_steps=int(ds.attrs["solver_rejected"]),
                first_call_s=first, peak_rss_mb_so_far=peak_rss_mb())

    def time_again():
        t0 = time.perf_counter()
        jaxpnp.simulate(el, electrode, cv, **kwargs)
        second = time.perf_counter() - t0
        info.update(run_time_s=second, compile_time_s=max(first - second, 0.0))

    return ds, info, time_again


def stencil_pattern(grid, radius):
    """Sparsity of d(dc/dt)/dc restricted to nodes within ``radius`` (both species)."""
    import scipy.sparse as sp

    nx, ny = grid.nx, grid.ny
    n = nx * ny
    idx = np.arange(n).reshape(nx, ny)
    rows, cols = [], []
    for di in range(-radius, radius + 1):
        for dj in range(-radius, radius + 1):
            if abs(di) + abs(dj) > radius:
                continue
            a = idx[max(0, -di):nx - max(0, di), max(0, -dj):ny - max(0, dj)]
            b = idx[max(0, di):max(0, di) + a.shape[0], max(0, dj):max(0, dj) + a.shape[1]]
            rows.append(a.ravel()); cols.append(b.ravel())
    r = np.concatenate(rows); c = np.concatenate(cols)
    block = sp.csr_matrix((np.ones(r.size), (r, c)), shape=(n, n))
    return sp.bmat([[block, block], [block, block]]).tocsc()


def run_scipy(el, electrode, cv, h, boundary, rtol, atol, budget_s, times_s):
    from scipy.integrate import solve_ivp

    with jaxpnp.float64():
        model, _ = jaxpnp.build_model(el, electrode, cv, h, boundary)
        tau = float(el.debye_time_s)
        shape = (2, model.grid.nx, model.grid.ny)
        f = jax.jit(lambda t, y: model.vector_field(t, y.reshape(shape)).ravel())
        current = jax.jit(lambda t, y, tr: model.current(t, y.reshape(shape), tr))
        y0 = np.asarray(model.initial_state()).ravel()
        f(0.0, y0).block_until_ready()
        pattern = stencil_pattern(model.grid, radius=2)
        deadline = time.perf_counter() + budget_s
        calls = dict(n=0)

        class OutOfTime(Exception):
            pass

        def rhs(t, y):
            calls["n"] += 1
            calls["t"] = max(calls.get("t", 0.0), float(t))
            if time.perf_counter() > deadline:
                raise OutOfTime(t)
            return np.asarray(f(t, y))

        edges = np.concatenate([[0.0], cv.jump_times, [cv.duration]]) / tau
        t_eval = np.asarray(times_s) / tau
        t0 = time.perf_counter()
        reached, pieces, stats = 0.0, [], dict(nfev=0, njev=0, nlu=0)
        finished = True
        y = y0
        try:
            for a, b in zip(edges[:-1], edges[1:]):
                te = t_eval[(t_eval >= a) & (t_eval <= b)]
                sol = solve_ivp(rhs, (a, b), y, method="BDF", rtol=rtol, atol=atol, jac_sparsity=pattern,
                                t_eval=te, first_step=(b - a) * 1e-6)
                if not sol.success:
                    finished = False
                    break
                for k in ("nfev", "njev", "nlu"):
                    stats[k] += int(getattr(sol, k))
                mid = 0.5 * (a + b)
                pieces.append(np.array([float(current(t, yy, mid)) for t, yy in zip(sol.t, sol.y.T)]))
                y = sol.y[:, -1]
                reached = b
        except OutOfTime as stop:
            finished = False
            reached = float(stop.args[0])
        except (RuntimeError, ValueError, np.linalg.LinAlgError) as err:  # e.g. a singular Newton matrix
            finished = False
            reached = calls.get("t", reached)
            stats["error"] = f"{type(err).__name__}: {err}"
        wall = time.perf_counter() - t0
    total = cv.duration / tau
    out = dict(finished=finished, wall_s=wall, simulated_fraction=reached / total, rhs_calls=calls["n"], **stats)
    out["projected_full_cycle_s"] = wall if finished else (wall / max(reached / total, 1e-9))
    cur = np.concatenate(pieces) * float(el.charge_scale_C_m2) / tau if pieces else None
    return out, cur


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small geometry, short budget (checks the script)")
    ap.add_argument("--grids", type=float, nargs="+", default=None, help="grid sequence (nm), coarse to fine")
    ap.add_argument("--scipy-budget", type=float, default=900.0, help="wall-clock seconds for the scipy baseline")
    add_solver_arguments(ap)
    ap.add_argument("--nominal-geometry", action="store_true",
                    help="run every grid on the nominal geometry (each snaps it differently)")
    ap.add_argument("--output", default=str(RESULTS / "mpnp_cv.json"))
    args = ap.parse_args(argv)

    el = jaxpnp.Electrolyte()
    tau = float(el.debye_time_s)
    electrode, case = case_electrode(args.quick)
    grids = args.grids or ([0.3, 0.15] if args.quick else [0.125, 0.0625])
    budget = min(args.scipy_budget, 60.0) if args.quick else args.scipy_budget
    nominal = electrode
    if not args.nominal_geometry:
        electrode = held_geometry(electrode, grids[0])
    geometry = {f.name: getattr(electrode, f.name) for f in dataclasses.fields(electrode)}
    print(f"geometry: {geometry}", flush=True)
    boundary = "reservoir"
    cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=1.0 / (args.half_period_debye * tau))
    print(f"case: {case}; CV 0 -> 1 V at {cv.scan_rate_V_s:.3g} V/s (half-period "
          f"{args.half_period_debye:g} Debye times = {cv.half_period * 1e12:.4g} ps); boundary={boundary}", flush=True)

    runs, currents, timers = [], [], []
    chosen = None
    for k, h in enumerate(grids):
        ds, info, timer = run_jaxpnp(el, electrode, cv, h, boundary, args.points, args.rtol, args.atol)
        timers.append(timer)
        currents.append(ds.current_density.values)
        i = ds.current_density.values
        info["peak_current_A_m2"] = float(i.max())
        info["vertex_current_over_peak"] = float(i[len(i) // 2 - 1] / i.max())
        if k > 0:
            info["difference_to_coarser"] = relative_l2(currents[k - 1], currents[k])
            runs[-1]["difference_to_next_finer"] = info["difference_to_coarser"]
        runs.append(info)
        print(json.dumps(info), flush=True)
        if k > 0 and runs[-2]["difference_to_next_finer"] <= 0.02:
            chosen = runs[-2]
            chosen_ds = prev_ds
            timers[-2]()
            break
        prev_ds = ds
    if chosen is None:
        chosen = runs[-1]
        chosen_ds = ds
        timers[-1]()
        print("warning: no grid in the sequence met the 2% criterion; reporting the finest", flush=True)
    chosen["peak_rss_mb"] = peak_rss_mb()

    times = chosen_ds.time.values
    print(f"scipy BDF baseline on grid {chosen['grid_nm']} nm (budget {budget:.0f} s) ...", flush=True)
    base, base_current = run_scipy(el, electrode, cv, chosen["grid_nm"], boundary, args.rtol, args.atol,
                                   budget, times)
    if base_current is not None and base["finished"]:
        base["current_difference_to_jaxpnp"] = relative_l2(chosen_ds.current_density.values, base_current)
    speedup = base["projected_full_cycle_s"] / chosen["run_time_s"]
    result = dict(
        benchmark="mpnp_cv", case=case, boundary=boundary, scan_rate_V_s=cv.scan_rate_V_s,
        half_period_debye_times=args.half_period_debye, rtol=args.rtol, atol=args.atol,
        geometry=geometry, geometry_held_from_grid_nm=None if args.nominal_geometry else grids[0],
        nominal_sheet_thickness_nm=nominal.sheet_thickness_nm,
        grids=runs, chosen_grid_nm=chosen["grid_nm"], jaxpnp=chosen, scipy_bdf=base,
        speedup_vs_scipy=speedup,
        targets=dict(cpu_cycle_s=600, speedup=5.0,
                     met_cpu=chosen["run_time_s"] <= 600, met_speedup=speedup >= 5.0),
        machine=dict(platform=platform.platform(), processor=platform.processor(), cpus=os.cpu_count(),
                     jax=jax.__version__, backend=jax.default_backend(),
                     devices=[str(d) for d in jax.devices()]),
    )
    print(json.dumps(dict(chosen_grid_nm=chosen["grid_nm"], run_time_s=chosen["run_time_s"],
                          scipy=base, speedup=speedup), indent=1))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
