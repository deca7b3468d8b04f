"""Device-native mPNP benchmarks: CV per preconditioner, a vmapped batch, a reverse-mode gradient.

Each part runs in its own subprocess (so its peak memory is its own) and the driver writes
one JSON. Parts:

- ``cv``: the paper CV (0 -> 1 V -> 0, half-period 2000 Debye times, open space at bulk,
  geometry as snapped on the coarsest grid) with ``simulate`` for each grid and
  preconditioner: first call (with compilation) and a second, timed call;
- ``vmap``: ``jax.vmap`` of ``differentiable_run`` over ``--batch`` permittivities
  (paper case, coarsest grid, ``--vmap-points`` output times) against one member;
- ``grad``: ``jax.grad`` of the electrode charge at the CV vertex with respect to the
  relative permittivity (``--grad-grid``), against central finite differences
  (step 1e-3 of 78.5) and the forward run's time and memory.

    python benchmarks/device_suite.py --parts grad --grad-grid 0.25     # CPU: reverse mode
    python benchmarks/device_suite.py --quick                           # tiny smoke test
    benchmarks/gpu.sh                                                   # the GPU run

Peak memory: the device's ``peak_bytes_in_use`` where the backend reports it (GPU), else
the process's peak resident set (ru_maxrss). A ``--budget`` (s) skips parts and runs
that would start after it is spent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results"
PRECONDITIONERS = ("cyclic_reduction", "block_thomas", "superlu")


def _peak_memory_mb():
    import jax

    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # noqa: BLE001  (backends without memory stats)
        stats = {}
    if "peak_bytes_in_use" in stats:
        return dict(device_peak_mb=stats["peak_bytes_in_use"] / 2**20)
    return dict(peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)


def _case(args):
    import jaxpnp

    el = jaxpnp.Electrolyte()
    tau = float(el.debye_time_s)
    if args.quick:
        electrode = jaxpnp.Electrode(n_sheets=2, slit_nm=1.2, sheet_length_nm=1.8, sheet_gap_nm=0.6,
                                     sheet_thickness_nm=0.3, separator_nm=1.2)
        cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=1.0 / (200 * tau))
    else:
        electrode = jaxpnp.Electrode()
        electrode = jaxpnp.snap_to_grid(electrode, args.grids[0])
        cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=1.0 / (args.half_period_debye * tau))
    return el, electrode, cv


def part_cv(args, deadline):
    import jaxpnp

    el, electrode, cv = _case(args)
    out = {}
    for h in args.grids:
        for name in args.preconditioner:
            key = f"{h}/{name}"
            if time.time() > deadline:
                out[key] = dict(skipped="budget spent")
                continue
            kw = dict(grid_nm=h, boundary="reservoir", points_per_cycle=args.points, progress=False,
                      preconditioner=name)
            t0 = time.perf_counter()
            ds = jaxpnp.simulate(el, electrode, cv, **kw)
            first = time.perf_counter() - t0
            row = dict(first_call_s=first, accepted_steps=int(ds.attrs["solver_accepted"]),
                       rejected_steps=int(ds.attrs["solver_rejected"]), nx=int(ds.attrs["nx"]),
                       ny=int(ds.attrs["ny"]))
            if time.time() + first < deadline:
                t0 = time.perf_counter()
                jaxpnp.simulate(el, electrode, cv, **kw)
                row["run_time_s"] = time.perf_counter() - t0
            row.update(_peak_memory_mb())
            out[key] = row
            print("cv", key, json.dumps(row), flush=True)
    return out


def _vertex_run(el_fn, electrode, cv, h, times, preconditioner="auto"):
    import jaxpnp

    def run(eps):
        q, i = jaxpnp.differentiable_run(el_fn(eps), electrode, cv, times, grid_nm=h, boundary="reservoir",
                                         rtol=1e-5, atol=1e-7, krylov_rtol=1e-5,
                                         preconditioner=preconditioner)
        return q, i

    return run


def part_vmap(args, deadline):
    import jax
    import jax.numpy as jnp

    import jaxpnp

    el, electrode, cv = _case(args)
    h = args.grids[0]
    times = np.linspace(0.0, cv.duration, args.vmap_points + 1)[1:]
    eps = np.linspace(78.5, 100.0, args.batch)
    with jaxpnp.float64():
        run = _vertex_run(lambda e: jaxpnp.Electrolyte(relative_permittivity=e), electrode, cv, h, times)
        one = jax.jit(run)
        t0 = time.perf_counter()
        q1, _ = jax.block_until_ready(one(eps[0]))
        one_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        jax.block_until_ready(one(eps[0]))
        one_time = time.perf_counter() - t0
        batch = jax.jit(jax.vmap(run))
        t0 = time.perf_counter()
        qb, _ = jax.block_until_ready(batch(jnp.asarray(eps)))
        batch_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        jax.block_until_ready(batch(jnp.asarray(eps)))
        batch_time = time.perf_counter() - t0
    out = dict(batch=args.batch, grid_nm=h, points=args.vmap_points, one_first_call_s=one_first,
               one_run_s=one_time, batch_first_call_s=batch_first, batch_run_s=batch_time,
               batch_over_one=batch_time / one_time,
               member0_difference=float(np.max(np.abs(np.asarray(qb[0]) - np.asarray(q1)))
                                        / np.max(np.abs(np.asarray(q1)))), **_peak_memory_mb())
    print("vmap", json.dumps(out), flush=True)
    return out


def _timed(fn, reps):
    """Median wall and process-CPU seconds of ``reps`` warm calls (``fn`` returns a float)."""
    wall, cpu = [], []
    for _ in range(reps):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall)), float(np.median(cpu)), wall, cpu


def part_grad(args, deadline, forward_only=False):
    import jax

    import jaxpnp

    el, electrode, cv = _case(args)
    h = args.grad_grid
    vertex = cv.half_period
    times = np.array([0.5 * vertex, vertex])
    load0 = os.getloadavg()[0]
    with jaxpnp.float64():
        run = _vertex_run(lambda e: jaxpnp.Electrolyte(relative_permittivity=e), electrode, cv, h, times)
        charge = jax.jit(lambda e: run(e)[0][-1])
        t0 = time.perf_counter()
        q = float(charge(78.5))
        fwd_first = time.perf_counter() - t0
        fwd, fwd_cpu, fwd_all, fwd_cpu_all = _timed(lambda: float(charge(78.5)), args.reps)
        out = dict(grid_nm=h, charge_C_m2=q, forward_first_call_s=fwd_first, forward_s=fwd,
                   forward_cpu_s=fwd_cpu, forward_runs_s=fwd_all, reps=args.reps)
        if forward_only:
            out.update(_peak_memory_mb())
            return out
        fwd2_all = fwd2_cpu_all = []
        step = 1e-3
        t0 = time.perf_counter()
        fd = (float(charge(78.5 + step)) - float(charge(78.5 - step))) / (2 * step)
        out["finite_difference_s"] = time.perf_counter() - t0
        grad = jax.jit(jax.grad(lambda e: run(e)[0][-1]))
        t0 = time.perf_counter()
        g = float(grad(78.5))
        out["grad_first_call_s"] = time.perf_counter() - t0
        out["grad_s"], out["grad_cpu_s"], out["grad_runs_s"], _ = _timed(lambda: float(grad(78.5)), args.reps)
        # the forward again after the gradient: contention drifts, so bracket the gradient
        fwd2, fwd2_cpu, fwd2_all, fwd2_cpu_all = _timed(lambda: float(charge(78.5)), args.reps)
        out.update(forward_after_s=fwd2, forward_after_cpu_s=fwd2_cpu, forward_after_runs_s=fwd2_all)
    fwd_med = float(np.median(fwd_all + fwd2_all))
    fwd_cpu_med = float(np.median(fwd_cpu_all + fwd2_cpu_all))
    out.update(grad=g, central_fd=fd, relative_difference=abs(g - fd) / abs(fd),
               grad_over_forward=out["grad_s"] / fwd_med,
               grad_over_forward_cpu=out["grad_cpu_s"] / fwd_cpu_med,
               load_average_start=load0, load_average_end=os.getloadavg()[0], **_peak_memory_mb())
    print("grad", json.dumps(out), flush=True)
    return out


PARTS = dict(cv=part_cv, vmap=part_vmap, grad=part_grad,
             forward=lambda a, d: part_grad(a, d, forward_only=True))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", nargs="+", default=["cv", "vmap", "grad"], choices=list(PARTS))
    ap.add_argument("--grids", type=float, nargs="+", default=[0.125, 0.0625])
    ap.add_argument("--preconditioner", nargs="+", default=list(PRECONDITIONERS), choices=PRECONDITIONERS)
    ap.add_argument("--half-period-debye", type=float, default=2000.0)
    ap.add_argument("--points", type=int, default=200)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--vmap-points", type=int, default=20)
    ap.add_argument("--grad-grid", type=float, default=0.25)
    ap.add_argument("--reps", type=int, default=3, help="warm calls timed per measurement (median)")
    ap.add_argument("--budget", type=float, default=1e9, help="seconds for all parts together")
    ap.add_argument("--quick", action="store_true", help="a tiny network and grid (checks the script)")
    ap.add_argument("--part", default=None, help=argparse.SUPPRESS)  # child process
    ap.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--output", default=str(RESULTS / "device_suite.json"))
    args = ap.parse_args(argv)
    if args.quick:
        args.grids = [0.3]
        args.grad_grid = 0.3
        args.points = 16
        args.batch = min(args.batch, 2)
        args.vmap_points = 4
        args.reps = 1
    if args.part:  # child: one part, JSON on the last stdout line
        print("RESULT " + json.dumps(PARTS[args.part](args, args.deadline)), flush=True)
        return
    deadline = time.time() + args.budget
    import jax

    result = dict(benchmark="device_suite", quick=args.quick, grids=args.grids,
                  preconditioners=args.preconditioner, parts={},
                  machine=dict(platform=platform.platform(), cpus=os.cpu_count(), jax=jax.__version__,
                               backend=jax.default_backend(), devices=[str(d) for d in jax.devices()],
                               load_average=os.getloadavg()[0] if hasattr(os, "getloadavg") else None))
    for part in args.parts:
        if time.time() > deadline:
            result["parts"][part] = dict(skipped="budget spent")
            continue
        cmd = [sys.executable, __file__, "--part", part, "--deadline", str(deadline)] + (argv or sys.argv[1:])
        t0 = time.perf_counter()
        try:  # a part still running at the deadline is stopped and recorded as such
            left = deadline - time.time()
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=max(left, 1) if left < 1e6 else None)
        except subprocess.TimeoutExpired as stop:
            partial = stop.stdout.decode() if isinstance(stop.stdout, bytes) else (stop.stdout or "")
            result["parts"][part] = dict(error="stopped at the budget", output=partial[-2000:])
        else:
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode == 0 and lines:
                result["parts"][part] = json.loads(lines[-1][len("RESULT "):])
            else:
                result["parts"][part] = dict(error=proc.stderr[-2000:], returncode=proc.returncode)
        result["parts"][part]["wall_s"] = time.perf_counter() - t0
        print(part, json.dumps(result["parts"][part])[:2000], flush=True)
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
