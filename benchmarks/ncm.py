"""Benchmark: 20-slit NCM, one CV cycle. Time per curve, vmapped throughput, scipy baseline.

``vmap_*``: ``jax.jit(jax.vmap(...))`` over (R_c, gamma), which for fast/fixed takes the
batched path (batch-last state, cyclic reduction, custom_vmap; see ``circuits.solve``);
``vmap_plain_*`` is the same call with ``batch_chunk=0`` (plain vmap of the single-curve
solver, batched LAPACK gtsv) and ``vmap_float32_*`` with ``batch_dtype="float32"``.

Run: python benchmarks/ncm.py [--batch 4096] [--repeats 7]
Writes benchmarks/results/ncm.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import jax  # noqa: E402
import jax.numpy as jnp
import numpy as np
import scipy
from scipy.integrate import solve_ivp

import circuits
import jaxpnp

N_SLITS = 20
PARAMS = dict(R_open=2e-10, C_open=0.05, C_slit=0.1, R_c=1e-10, gamma=0.5)
CV = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=1e8, cycles=1)
POINTS = 200


def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _n_steps(method, kw):
    """Number of ROS2 steps of the fixed/fast grids for the benchmark protocol (None for adaptive)."""
    if method == "adaptive":
        return None
    return len(circuits.step_grid(CV, method=method, points_per_cycle=POINTS, **kw)) - 1


def scipy_curve(R_c, gamma, t_eval, rtol=1e-7, atol_rel=1e-9):
    """The same NCM in node charges with scipy's Radau (stiff) and an analytic dense Jacobian."""
    n = N_SLITS
    C = np.r_[PARAMS["C_open"], np.full(n, PARAMS["C_slit"])]
    swing = 0.5 * (CV.v_max - CV.v_min)
    q_max = swing * np.cumsum(C[::-1])[::-1][1:]
    R_open = PARAMS["R_open"]

    def phi(t):
        return 0.5 * float(CV.v_min + (CV.v_max - CV.v_min) * (1 - abs(2 * ((t / CV.period) % 1.0) - 1)))

    def rhs(t, q):
        Q = np.cumsum(q[::-1])[::-1][1:]
        R = R_c * np.maximum(1 - gamma * Q / q_max, 1e-3)
        u = q / C
        J = (u[:-1] - u[1:]) / R
        I = (phi(t) - u[0]) / R_open
        dq = np.empty_like(q)
        dq[0] = I - J[0]
        dq[1:-1] = J[:-1] - J[1:]
        dq[-1] = J[-1]
        return dq

    scale = swing * C.sum()
    sol = solve_ivp(rhs, (0.0, CV.duration), np.zeros(n + 1), method="Radau", t_eval=t_eval,
                    rtol=rtol, atol=atol_rel * scale)
    return np.array([(phi(t) - q0 / C[0]) / R_open for t, q0 in zip(sol.t, sol.y[0])])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--adaptive-batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--fast-steps", type=int, default=400)
    args = ap.parse_args()
    t_eval = CV.sample_times(POINTS)
    rng = np.random.default_rng(0)
    out = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                       "cpu_count": os.cpu_count(), "python": platform.python_version()},
           "jax": jax.__version__, "jax_backend": jax.default_backend(), "scipy": scipy.__version__,
           "problem": {"n_slits": N_SLITS, **PARAMS, "protocol": "CV 0-1 V, 1e8 V/s, 1 cycle",
                       "outputs_per_curve": POINTS + 1}}

    with jaxpnp.float64():
        def curve(R_c, gamma, method, **kw):
            m = circuits.NCM(N_SLITS, PARAMS["R_open"], PARAMS["C_open"], PARAMS["C_slit"], R_c, gamma)
            return circuits.solve(m, CV, points_per_cycle=POINTS, method=method, **kw).current_density

        rc0, g0 = jnp.asarray(PARAMS["R_c"]), jnp.asarray(PARAMS["gamma"])
        ref = np.asarray(curve(rc0, g0, "adaptive", rtol=1e-11, atol=1e-13))
        results = {}
        configs = (("adaptive", "adaptive", dict(rtol=1e-7, atol=1e-9)), ("fixed", "fixed", dict(steps=args.steps)),
                   ("fast", "fast", dict(steps=args.fast_steps)),
                   ("fast_tuned", "fast", dict(steps=200, first_step=3e-4, growth=1.03)))
        for name, method, kw in configs:
            kernel = jax.jit(lambda rc, g, method=method, kw=kw: curve(rc, g, method, **kw))
            t0 = time.perf_counter()
            cur = np.asarray(jax.block_until_ready(kernel(rc0, g0)))
            compile_s = time.perf_counter() - t0
            per_curve = _median_time(lambda: kernel(rc0, g0), max(20, args.repeats))
            end_to_end = _median_time(lambda: curve(rc0, g0, method, **kw), args.repeats)
            err = float(np.max(np.abs(cur - ref)) / np.max(np.abs(ref)))
            # worst case over a few parameter sets of the vmapped range (gamma up to 0.9)
            errs_other = {}
            others = ((1e-10, 0.9), (PARAMS["R_c"] * np.exp(0.5), 0.0), (PARAMS["R_c"] * np.exp(-0.5), 0.9))
            refs_o = []
            for rc_o, g_o in others:
                ref_o = np.asarray(curve(jnp.asarray(rc_o), jnp.asarray(g_o), "adaptive", rtol=1e-11, atol=1e-13,
                                         max_steps=100000))
                refs_o.append(ref_o)
                got_o = np.asarray(kernel(jnp.asarray(rc_o), jnp.asarray(g_o)))
                errs_other[f"R_c={rc_o:.3g},gamma={g_o}"] = float(np.max(np.abs(got_o - ref_o)) / np.max(np.abs(ref_o)))
            batch = args.batch if method != "adaptive" else args.adaptive_batch
            rcs = jnp.asarray(PARAMS["R_c"] * np.exp(rng.uniform(-0.5, 0.5, batch)))
            gs = jnp.asarray(rng.uniform(0.0, 1.0, batch))
            # the accuracy sets (reference above) go first, so the batched results are checked too
            acc_rc = jnp.asarray([PARAMS["R_c"]] + [o[0] for o in others])
            acc_g = jnp.asarray([PARAMS["gamma"]] + [o[1] for o in others])
            acc_ref = [ref] + refs_o

            def vmapped(extra):
                vk = jax.jit(jax.vmap(lambda rc, g, method=method, kw={**kw, **extra}: curve(rc, g, method, **kw)))
                t0 = time.perf_counter()
                out = np.asarray(jax.block_until_ready(vk(rcs, gs)))
                compile_v = time.perf_counter() - t0
                b_s = _median_time(lambda: vk(rcs, gs), max(3, args.repeats // 2))
                got = np.asarray(vk(acc_rc, acc_g))
                err_v = max(float(np.max(np.abs(g_ - r_)) / np.max(np.abs(r_))) for g_, r_ in zip(got, acc_ref))
                return {"batch_s": b_s, "curves_per_s": batch / b_s, "first_call_s": compile_v,
                        "max_rel_error_vs_tight_reference": err_v}

            res = {
                "options": kw, "n_steps": _n_steps(method, kw), "compile_s": compile_s, "per_curve_ms": 1e3 * per_curve,
                "end_to_end_solve_ms": 1e3 * end_to_end,
                "max_rel_error_vs_tight_reference": err, "max_rel_error_other_parameters": errs_other,
                "vmap_batch": batch,
            }
            v = vmapped({})
            res.update(vmap_batch_s=v["batch_s"], vmap_curves_per_s=v["curves_per_s"],
                       vmap_max_rel_error=v["max_rel_error_vs_tight_reference"])
            line = f"vmap {batch} -> {v['curves_per_s']:9.1f} curves/s"
            if method != "adaptive":
                for tag, extra in (("plain", dict(batch_chunk=0)), ("float32", dict(batch_dtype="float32"))):
                    v = vmapped(extra)
                    res.update({f"vmap_{tag}_batch_s": v["batch_s"], f"vmap_{tag}_curves_per_s": v["curves_per_s"],
                                f"vmap_{tag}_max_rel_error": v["max_rel_error_vs_tight_reference"]})
                    line += f" | {tag} {v['curves_per_s']:9.1f} (err {v['max_rel_error_vs_tight_reference']:.1e})"
            results[name] = res
            print(f"{name:10s} steps {_n_steps(method, kw)} | compile {compile_s:6.2f} s | per curve {1e3 * per_curve:8.3f} ms | "
                  f"solve() {1e3 * end_to_end:8.3f} ms | {line} | max rel err {err:.1e}", flush=True)

    t_sc = _median_time(lambda: scipy_curve(PARAMS["R_c"], PARAMS["gamma"], t_eval), 3)
    sc = scipy_curve(PARAMS["R_c"], PARAMS["gamma"], t_eval)
    sc_err = float(np.max(np.abs(sc - ref)) / np.max(np.abs(ref)))
    print(f"scipy Radau per curve {1e3 * t_sc:.2f} ms, max rel err {sc_err:.1e}")
    out["scipy_radau"] = {"per_curve_ms": 1e3 * t_sc, "rtol": 1e-7, "max_rel_error_vs_tight_reference": sc_err}
    out["results"] = results
    for method, r in results.items():
        r["speedup_per_curve_vs_scipy"] = t_sc / (r["per_curve_ms"] / 1e3)
        r["speedup_vmap_vs_scipy"] = r["vmap_curves_per_s"] * t_sc
        if "vmap_plain_curves_per_s" in r:
            r["vmap_speedup_vs_plain_vmap"] = r["vmap_curves_per_s"] / r["vmap_plain_curves_per_s"]
    out["targets"] = {"per_curve_ms<=5": {m: r["per_curve_ms"] <= 5 for m, r in results.items()},
                      "vmap_curves_per_s>=1e4": {m: r["vmap_curves_per_s"] >= 1e4 for m, r in results.items()},
                      "vmap_float32_curves_per_s>=1e4": {m: r["vmap_float32_curves_per_s"] >= 1e4
                                                         for m, r in results.items() if "vmap_float32_curves_per_s" in r}}
    path = Path(__file__).parent / "results" / "ncm.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
