"""Baseline a researcher would write: adaptive BDF2 on the extended (c+, c-, psi) system with
SciPy sparse LU Newton, against jaxpnp on the same case, same tolerances, same process.

The scipy ``solve_ivp(method="BDF")`` baseline of benchmarks/mpnp_cv.py does not finish (its
finite-difference Jacobian on the local stencil misses the non-local Poisson coupling, so
Newton fails: "Factor is exactly singular"). Here the Poisson equation is kept as rows of the
system, so the Newton matrix is sparse and exact:

    [ I - g h dR/dc   -g h dR/dpsi ] [dc  ]   [ G(c) ]
    [   -rho rows      Poisson     ] [dpsi] = [  0   ]

(the same entries as jaxpnp's SparseLUPreconditioner: ``assemble``), factorised by SuperLU
at the predictor and used for a chord Newton iteration, refactorised at the current iterate
when the contraction rate exceeds 0.3 (near close packing the steric term makes the Jacobian
change so fast that a pure chord iteration stalls at any step size: the earlier chord-only
version had a Newton failure every second step and never finished), converged by Hairer's
rate test with jaxpnp's kappa = 1e-2. Step control:
variable-step BDF2 (backward Euler on the first step and after each CV vertex), local error
from the Milne device against a second-order Taylor predictor, ``err = rms(LTE / (atol + rtol
|c|))``, step factor ``0.9 err^(-1/3)`` clipped to [0.2, 2]; steps land on output times and
vertices; the right-hand side is jaxpnp's (jitted, called from numpy).

    python benchmarks/mpnp_scipy_newton.py                 # paper case at 0.125 nm
    python benchmarks/mpnp_scipy_newton.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402

import jaxpnp  # noqa: E402
from _common import RESULTS, add_solver_arguments, load_average  # noqa: E402


def bdf2_sparse_newton(el, electrode, cv, h_nm, boundary, rtol, atol, times_s, budget_s):
    """Currents (A/m^2) at ``times_s`` and statistics; stops when ``budget_s`` is spent."""
    with jaxpnp.float64():
        model, pre = jaxpnp.build_model(el, electrode, cv, h_nm, boundary, preconditioner="superlu")
        p = pre.pattern
        tau = float(el.debye_time_s)
        shape = (2, model.grid.nx, model.grid.ny)
        n2 = 2 * model.grid.nx * model.grid.ny
        f = jax.jit(lambda t, y: model.vector_field(t, y.reshape(shape)).ravel())

        def _values(t, y, hg):
            c = y.reshape(shape)
            return pre.assemble(model, c, model.potential(c, model.electrode_potential(t)), hg)

        values = jax.jit(_values)
        current = jax.jit(lambda t, y, tr: model.current(t, y.reshape(shape), tr))

        rms = lambda v: float(np.sqrt(np.mean(v * v)))

        def factorise(t, y, hg):
            data = np.bincount(p.slot, weights=np.asarray(values(t, y, hg)), minlength=p.nnz)
            return spla.splu(sp.csc_matrix((data, p.indices, p.indptr), shape=p.shape), permc_spec="COLAMD")

        def newton(tn, z, gh, rhs, stats, kappa=1e-2, max_iterations=10, max_refreshes=3):
            """Solve z - gh f(tn, z) = rhs. Chord iterations on the factorisation at the
            predictor; refactorised at the current iterate when the contraction rate exceeds
            0.3 or the iteration diverges (the steric term makes the Jacobian change fast near
            close packing: a chord iteration then stalls at any step size). Converged by
            Hairer's test ``rate / (1 - rate) |dz| <= kappa`` in the error norm (jaxpnp's
            NewtonKrylov uses the same test and kappa)."""
            z = z.copy()
            lu, refreshes, fresh = factorise(tn, z, gh), 0, True
            stats["factorisations"] += 1
            previous = None
            for _ in range(max_iterations):
                g = z - gh * np.asarray(f(tn, z)) - rhs
                full = np.zeros(p.shape[0])
                full[:n2] = g
                dz = lu.solve(full)[:n2]
                size = rms(dz / (atol + rtol * np.abs(z - dz)))
                stats["newton_iterations"] += 1
                if not np.isfinite(size):
                    return z, False
                rate = None if previous is None else size / previous
                if rate is not None and rate >= 1.0:  # diverging: undo, refactorise here or give up
                    if fresh or refreshes >= max_refreshes:
                        return z, False
                    lu, refreshes, fresh, previous = factorise(tn, z, gh), refreshes + 1, True, None
                    stats["factorisations"] += 1
                    continue
                z = z - dz
                fresh = False
                if size < 1e-3 * kappa or (rate is not None and rate / (1 - rate) * size <= kappa):
                    return z, True
                previous = size
                if rate is not None and rate > 0.3 and refreshes < max_refreshes:
                    lu, refreshes, fresh, previous = factorise(tn, z, gh), refreshes + 1, True, None
                    stats["factorisations"] += 1
            return z, False

        outputs = np.asarray(times_s) / tau
        vertices = np.asarray(cv.jump_times) / tau
        stops = np.unique(np.concatenate([outputs, vertices, [cv.duration / tau]]))
        stops = stops[stops > 0]
        y = np.asarray(model.initial_state()).ravel()
        t, fy = 0.0, np.asarray(f(0.0, y))
        y_prev = f_prev = h_prev = None
        h = stops[0] * 1e-4
        stats = dict(accepted=0, rejected=0, newton_failures=0, factorisations=0, newton_iterations=0)
        currents = {0.0: float(current(0.0, y, 1e-9 * stops[0]))}
        t0 = time.perf_counter()
        finished = True
        while t < stops[-1] * (1 - 1e-12):
            if time.perf_counter() - t0 > budget_s:
                finished = False
                break
            target = stops[np.searchsorted(stops, t * (1 + 1e-12) + 1e-300, side="right")]
            h = min(h, target - t)
            if target - t - h < 1e-6 * h:
                h = target - t
            first = y_prev is None
            w = 1.0 if first else h / h_prev
            if first:  # backward Euler
                gamma, rhs = 1.0, y.copy()
                pred = y + h * fy
            else:
                gamma = (1 + w) / (1 + 2 * w)
                rhs = ((1 + w) ** 2 * y - w ** 2 * y_prev) / (1 + 2 * w)
                pred = y + h * fy + 0.5 * h * h * (fy - f_prev) / h_prev
            tn = target if h == target - t else t + h
            z, converged = newton(tn, pred, gamma * h, rhs, stats)
            if not converged or not np.all(np.isfinite(z)):
                stats["newton_failures"] += 1
                h *= 0.25
                continue
            scale = atol + rtol * np.abs(z)
            # Milne device: BDF1 error 1/2 h^2 y'' vs the Euler predictor's -1/2 h^2 y'';
            # BDF2 -2/9 h^3 y''' vs the Taylor predictor's 1/6 h^3 y''' (constant-step constants)
            lte = 0.5 * (z - pred) if first else (4.0 / 7.0) * (z - pred)
            err = rms(lte / scale)
            order = 2 if first else 3
            factor = min(2.0, max(0.2, 0.9 * max(err, 1e-10) ** (-1.0 / order)))
            if err > 1.0:
                stats["rejected"] += 1
                h *= factor
                continue
            stats["accepted"] += 1
            fz = np.asarray(f(tn, z))
            at_vertex = np.any(np.isclose(tn, vertices, rtol=1e-12, atol=0))
            if np.any(np.isclose(tn, outputs, rtol=1e-12, atol=0)):
                currents[tn] = float(current(tn, z, tn - 1e-9 * h))
            y_prev, f_prev, h_prev = (None, None, None) if at_vertex else (y, fy, h)
            t, y, fy = tn, z, fz
            h *= factor
        wall = time.perf_counter() - t0
    ts = np.array(sorted(currents))
    cur = np.array([currents[k] for k in ts]) * float(el.charge_scale_C_m2) / tau
    total = cv.duration / tau
    out = dict(finished=finished, wall_s=wall, simulated_fraction=t / total, **stats)
    out["projected_full_cycle_s"] = wall if finished else wall / max(t / total, 1e-9)
    return out, ts * tau, cur


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--grid", type=float, default=0.125)
    add_solver_arguments(ap)
    ap.add_argument("--budget", type=float, default=3600.0, help="wall-clock seconds for the baseline")
    ap.add_argument("--preconditioner", default="auto", help="jaxpnp's preconditioner for the comparison run")
    ap.add_argument("--output", default=str(RESULTS / "mpnp_scipy_newton.json"))
    args = ap.parse_args(argv)
    el = jaxpnp.Electrolyte()
    tau = float(el.debye_time_s)
    if args.quick:
        electrode = jaxpnp.Electrode(n_sheets=2, slit_nm=1.2, sheet_length_nm=1.8, sheet_gap_nm=0.6,
                                     sheet_thickness_nm=0.3, separator_nm=1.2)
        grid, points = 0.3, 16
        cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=1.0 / (200 * tau))
    else:
        electrode = jaxpnp.Electrode()
        grid, points = args.grid, args.points
        electrode = jaxpnp.snap_to_grid(electrode, grid)
        cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=1.0 / (args.half_period_debye * tau))
    kw = dict(grid_nm=grid, boundary="reservoir", points_per_cycle=points, rtol=args.rtol, atol=args.atol,
              progress=False)
    results = {}
    for name in dict.fromkeys(["superlu", args.preconditioner]):
        t0 = time.perf_counter()
        ds = jaxpnp.simulate(el, electrode, cv, preconditioner=name, **kw)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        ds = jaxpnp.simulate(el, electrode, cv, preconditioner=name, **kw)
        results[name] = dict(first_call_s=first, run_time_s=time.perf_counter() - t0,
                             accepted_steps=int(ds.attrs["solver_accepted"]))
        print(name, json.dumps(results[name]), flush=True)
    base, ts, cur = bdf2_sparse_newton(el, electrode, cv, grid, "reservoir", args.rtol, args.atol,
                                       ds.time.values, args.budget)
    if base["finished"]:
        ref = ds.current_density.values
        base["current_difference_to_jaxpnp"] = float(np.linalg.norm(cur - ref) / np.linalg.norm(ref))
    print("bdf2 + sparse LU", json.dumps(base), flush=True)
    ratios = {f"baseline_over_{k}": base["projected_full_cycle_s"] / v["run_time_s"] for k, v in results.items()}
    out = dict(benchmark="mpnp_scipy_newton", quick=args.quick, grid_nm=grid, rtol=args.rtol, atol=args.atol,
               half_period_debye_times=args.half_period_debye, jaxpnp=results, bdf2_sparse_lu=base, **ratios,
               load_average=load_average(),
               machine=dict(platform=platform.platform(), cpus=os.cpu_count(), jax=jax.__version__))
    print(json.dumps(ratios))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
