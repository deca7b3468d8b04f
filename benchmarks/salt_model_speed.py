"""Speed of the salt-aware circuits against the mPNP, in one process: the mPNP CV (0.25 nm, 6 sheets,
reservoir, hp1000; first call, then warm) and each SaltLadder variant's warm solve (median of 5), wall
and CPU seconds (XLA single-threaded: on a shared machine the CPU ratio is the steadier one).

Run: python benchmarks/salt_model_speed.py [--runs DIR]  (DIR holds or receives the 1 M equilibrium table)
Writes benchmarks/results/salt_model_speed.json.
"""
import argparse, sys, time, json, statistics
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parent))
import circuit_models as cm  # noqa: E402
import circuits, jaxpnp  # noqa: E402
ap = argparse.ArgumentParser()
ap.add_argument("--runs", default="_runs")
ap.add_argument("--machine", default="2-core CPU shared with other jobs (contended): wall times as measured")
args = ap.parse_args()
runs = Path(args.runs)
runs.mkdir(parents=True, exist_ok=True)
eq = cm.equilibria(runs, 6, "", (1.0,))[0][0]
out = dict(machine=f"{args.machine}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", grid_nm=0.25,
           salt_ladder_steps=circuits._salt_ladder.SALT_LADDER_STEPS)
for v in (1.0, 0.2):
    cv = cm.protocol(v, 1000)
    walls, cpus = [], []
    for _ in range(3 if v == 1.0 else 2):
        t0, c0 = time.perf_counter(), time.process_time()
        with jaxpnp.float64():
            ds = jaxpnp.simulate(jaxpnp.Electrolyte(), cm.electrode(6), cv, grid_nm=0.25, boundary="reservoir",
                                 points_per_cycle=200, progress=False)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    # CPU seconds (single-threaded XLA): on a shared machine, a steadier ratio than the wall's
    R = out[f"{v:g}V"] = dict(mpnp_wall_s=walls, mpnp_warm_s=min(walls[1:]), mpnp_cpu_s=cpus, mpnp_warm_cpu_s=min(cpus[1:]))
    with jaxpnp.float64():
        # "default_jacobian_every_step": the default model with the Jacobian formed at every ROS2 step (as
        # before session 7; the default keeps it over SALT_LADDER_STEPS["jacobian_every"] steps)
        for name, kw, solver in (("neutral", dict(coions="equilibrium", separator="neutral"), {}), ("default", {}, {}),
                                 ("default_jacobian_every_step", {}, dict(jacobian_every=1)),
                                 ("species", dict(links_from="species"), {})):
            m = circuits.from_mpnp(ds, kind="salt", equilibrium=[eq], **kw)
            ts, cs = [], []
            for _ in range(6):
                t0, c0 = time.perf_counter(), time.process_time()
                I = np.asarray(circuits.solve_salt_ladder(m, cm.cv_of(ds), times=np.asarray(ds.time),
                                                          **solver).current_density)
                ts.append(time.perf_counter() - t0)
                cs.append(time.process_time() - c0)
            med, cpu = statistics.median(ts[1:]), statistics.median(cs[1:])
            R[name] = dict(warm_median_s=med, speedup=R["mpnp_warm_s"] / med, warm_median_cpu_s=cpu,
                           speedup_cpu=R["mpnp_warm_cpu_s"] / cpu, first_call_s=ts[0],
                           nrmse=cm.nrmse(I, ds.current_density))
    print(v, json.dumps(R), flush=True)
res = Path(__file__).resolve().parent / "results" / "salt_model_speed.json"
res.write_text(json.dumps(out, indent=2))
print("wrote", res)
