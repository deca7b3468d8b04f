"""What building a circuit costs against one mPNP run, measured back to back in one process
(issue 10: "building it costs less than one mPNP run").

Per regime (cell window 0 -> 0.2 V, the paper's, and 0 -> 1 V; 6 sheets, d = 1.5 nm, the quick
reproduce grid 0.25 nm, reservoir, half-period 1000 Debye times: ``circuit_models.mpnp_run``'s
settings):

* ``mpnp``: ``jaxpnp.simulate`` of that CV, ``--reps`` times (the first compiles);
* ``ncm``: the NCM build, cold: ``jaxpnp.equilibrium`` (the nodes' capacitors, the potentials of
  ``ncm_paper_regime`` at 0.2 V and ``circuit_models`` at 1 V), then
  ``circuits.from_mpnp(ds, kind="ncm", equilibrium=...)`` on the run just made (node potentials,
  discovery of every link's law with Operon, the open-space law), then the circuit's first
  ``circuits.simulate`` (its compile); ``--reps`` times with from_mpnp's defaults (``search="once"``,
  Operon 300 x 60) and ``--before-reps`` times as it was before (``search="per_link"``, Operon 500 x 100);
* ``salt`` (1 V): ``circuits.from_mpnp(kind="salt")`` (SaltLadder) on the same equilibrium, and its first solve.

Each entry has wall and process CPU seconds and the load average around it (the 2-core machine is
shared: wall times are contended). Each NCM's NRMSE against the run it was built from is recorded
to show the build did not change the model.

Each NCM build also has a ``stages`` breakdown (wall and CPU s; the first build of a regime pays the
compiles): ``equilibrium_newton`` (the sparse Newton continuation, SciPy), ``equilibrium_observables``
(the jitted Poisson solve and region sums of all potentials; its first call compiles),
``operon_search`` (the one pooled Operon search), ``polish`` (sympy tidy, constant refits and pruning
of the search's Pareto front), ``per_link_refit`` (each link's refit of those forms and its choice),
and ``other`` (the rest of from_mpnp: node potentials, prepare, selection, open-space law, the NCM).

    python benchmarks/build_cost.py [--regimes 0.2 1.0] [--reps 3] [--before-reps 1]

Writes benchmarks/results/build_cost.json.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402

import circuit_models  # noqa: E402  (benchmarks/ is on sys.path: this script's folder)
import circuits  # noqa: E402
import jaxpnp  # noqa: E402
import jaxpnp._equilibrium as _equilibrium  # noqa: E402  (stage timers only)
from discovery.engines import AbstractEngine, OperonEngine  # noqa: E402
import ncm_paper_regime  # noqa: E402
from _common import RESULTS  # noqa: E402

HALF_PERIOD_DEBYE = 1000
BEFORE_OPTIONS = dict(population_size=500, generations=100)  # OperonEngine's defaults: from_mpnp's before 2026-12-02
N_SHEETS = 6


def timed(fn):
    """(result, wall s, process CPU s, load average before, after)."""
    load0 = os.getloadavg()[0]
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, dict(wall_s=time.perf_counter() - w0, cpu_s=time.process_time() - c0, load_before=load0,
                     load_after=os.getloadavg()[0])


# (owner, attribute, stage): the functions whose time each stage of a build is
STAGES = ((_equilibrium.EquilibriumSolver, "_continue", "equilibrium_newton"),
          (_equilibrium, "_observables", "equilibrium_observables"),
          (OperonEngine, "_search", "operon_search"),
          (AbstractEngine, "_polish", "polish"),
          (AbstractEngine, "refit_forms", "per_link_refit"))


@contextlib.contextmanager
def stage_timers():
    """Wrap the STAGES functions with wall/CPU timers for the duration; yields {stage: {wall_s, cpu_s}}."""
    acc = collections.defaultdict(lambda: dict(wall_s=0.0, cpu_s=0.0, calls=0))
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in STAGES]

    def timer(fn, stage):
        def wrapped(*args, **kwargs):
            w0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                a = acc[stage]
                a["wall_s"] += time.perf_counter() - w0
                a["cpu_s"] += time.process_time() - c0
                a["calls"] += 1
        return wrapped

    for (owner, name, fn), (_, _, stage) in zip(saved, STAGES):
        setattr(owner, name, timer(fn, stage))
    try:
        yield acc
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)


def summary(samples):
    """Median and all samples of a list of timed() records."""
    keys = ("wall_s", "cpu_s")
    return dict({f"median_{k}": statistics.median(s[k] for s in samples) for k in keys},
                first_wall_s=samples[0]["wall_s"], samples=samples)


def mpnp(v_max):
    cv = circuit_models.protocol(v_max, HALF_PERIOD_DEBYE)
    return jaxpnp.simulate(jaxpnp.Electrolyte(), circuit_models.electrode(N_SHEETS), cv, grid_nm=circuit_models.GRID_NM,
                           boundary="reservoir", points_per_cycle=200, progress=False)


def potentials(v_max):
    return ncm_paper_regime.POTENTIALS_V if v_max <= 0.2 else circuit_models.POTENTIALS_V


def ncm_build(ds, v_max, search, options):
    """Equilibrium + from_mpnp + first simulate, each timed; the model's NRMSE against ``ds``."""
    with stage_timers() as stages:
        eq, t_eq = timed(lambda: jaxpnp.equilibrium(jaxpnp.Electrolyte(), circuit_models.electrode(N_SHEETS),
                                                    potentials(v_max), grid_nm=circuit_models.GRID_NM,
                                                    boundary="reservoir"))
        model, t_ex = timed(lambda: circuits.from_mpnp(ds, kind="ncm", equilibrium=eq, search=search,
                                                       discovery_options=options))
    stages = {k: dict(v) for k, v in stages.items()}
    known = [v for k, v in stages.items() if not k.startswith("equilibrium")]
    stages["other"] = {k: t_ex[k] - sum(v[k] for v in known) for k in ("wall_s", "cpu_s")}
    cv, times = jaxpnp.protocol_from_attrs(ds.attrs), np.asarray(ds["time"])
    sim, t_sim = timed(lambda: circuits.simulate(model, cv, times=times))
    _, t_warm = timed(lambda: np.asarray(circuits.simulate(model, cv, times=times)["current_density"]))
    return eq, dict(equilibrium=t_eq, from_mpnp=t_ex, stages=stages, first_simulate=t_sim, warm_simulate=t_warm,
                    build_wall_s=t_eq["wall_s"] + t_ex["wall_s"], build_cpu_s=t_eq["cpu_s"] + t_ex["cpu_s"],
                    build_with_first_call_wall_s=t_eq["wall_s"] + t_ex["wall_s"] + t_sim["wall_s"],
                    nrmse=jaxpnp.nrmse(sim["current_density"], ds["current_density"]),
                    R_c=np.asarray(model.R_c).tolist(), gamma=np.asarray(model.gamma).tolist())


def builds(ds, v_max, search, options, reps):
    out = [ncm_build(ds, v_max, search, options)[1] for _ in range(reps)]
    return dict(search=search, discovery_options=options if options is not None else "from_mpnp default (Operon 300 x 60)",
                median_build_wall_s=statistics.median(o["build_wall_s"] for o in out),
                median_build_cpu_s=statistics.median(o["build_cpu_s"] for o in out),
                median_build_with_first_call_wall_s=statistics.median(o["build_with_first_call_wall_s"] for o in out),
                first_build_wall_s=out[0]["build_wall_s"], nrmse=out[0]["nrmse"],
                median_stages={k: {m: statistics.median(o["stages"][k][m] for o in out) for m in ("wall_s", "cpu_s")}
                               for k in out[0]["stages"]},
                first_stages=out[0]["stages"], samples=out)


def print_stages(label, stages):
    print(f"   {label}: " + ", ".join(f"{k} {v['wall_s']:.2f} s ({v['cpu_s']:.2f} CPU)" for k, v in stages.items()),
          flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--regimes", nargs="+", type=float, default=[0.2, 1.0])
    ap.add_argument("--reps", type=int, default=3, help="mPNP runs and search='once' builds per regime")
    ap.add_argument("--before-reps", type=int, default=1, help="search='per_link' builds per regime (0: none)")
    ap.add_argument("--out", default=str(RESULTS / "build_cost.json"))
    args = ap.parse_args()
    result = dict(machine=dict(cpus=os.cpu_count(), note="2-core CPU shared with other jobs: wall times contended; "
                               "process CPU seconds beside them", xla_flags=os.environ.get("XLA_FLAGS", "")),
                  grid_nm=circuit_models.GRID_NM, n_sheets=N_SHEETS, half_period_debye=HALF_PERIOD_DEBYE,
                  engine="operon (from_mpnp's default)", regimes={})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with jaxpnp.float64():
        for v_max in args.regimes:
            R = result["regimes"][f"{v_max:g}V"] = {}
            runs = [timed(lambda: mpnp(v_max)) for _ in range(args.reps)]
            ds = runs[-1][0]
            R["mpnp"] = summary([t for _, t in runs])
            R["mpnp"]["solver_run_time_s"] = [float(d.attrs.get("solver_run_time_s", np.nan)) for d, _ in runs]
            del runs
            print(f"{v_max:g} V mPNP: median {R['mpnp']['median_wall_s']:.1f} s wall, first {R['mpnp']['first_wall_s']:.1f}",
                  flush=True)
            R["ncm"] = builds(ds, v_max, "once", None, args.reps)  # from_mpnp's defaults
            print(f"   NCM build (search='once'): median {R['ncm']['median_build_wall_s']:.1f} s wall "
                  f"({R['ncm']['median_build_cpu_s']:.1f} s CPU), NRMSE {R['ncm']['nrmse']:.4f}", flush=True)
            print_stages("first build's stages", R["ncm"]["first_stages"])
            print_stages("median stages", R["ncm"]["median_stages"])
            if args.before_reps:
                R["ncm_per_link_search"] = builds(ds, v_max, "per_link", BEFORE_OPTIONS, args.before_reps)
                print(f"   NCM build (search='per_link', before): median "
                      f"{R['ncm_per_link_search']['median_build_wall_s']:.1f} s wall, "
                      f"NRMSE {R['ncm_per_link_search']['nrmse']:.4f}", flush=True)
            if v_max > 0.2:
                eq, t_eq = timed(lambda: jaxpnp.equilibrium(jaxpnp.Electrolyte(), circuit_models.electrode(N_SHEETS),
                                                         potentials(v_max), grid_nm=circuit_models.GRID_NM,
                                                         boundary="reservoir"))
                salt = []
                for _ in range(args.reps):
                    model, t_ex = timed(lambda: circuits.from_mpnp(ds, kind="salt", equilibrium=eq))
                    sol, t_first = timed(lambda: np.asarray(circuits.solve(model, circuit_models.cv_of(ds),
                                                                           times=np.asarray(ds["time"])).current_density))
                    salt.append(dict(from_mpnp=t_ex, first_solve=t_first,
                                     nrmse=jaxpnp.nrmse(sol, ds["current_density"])))
                R["salt"] = dict(median_from_mpnp_wall_s=statistics.median(s["from_mpnp"]["wall_s"] for s in salt),
                                 median_first_solve_wall_s=statistics.median(s["first_solve"]["wall_s"] for s in salt),
                                 equilibrium=t_eq, samples=salt)
            ratio = R["ncm"]["median_build_wall_s"] / R["mpnp"]["median_wall_s"]
            R["ncm_build_over_mpnp"] = ratio
            R["ncm_build_over_mpnp_cpu"] = R["ncm"]["median_build_cpu_s"] / R["mpnp"]["median_cpu_s"]
            print(f"   build / mPNP run: {ratio:.2f} (wall), {R['ncm_build_over_mpnp_cpu']:.2f} (CPU)", flush=True)
            out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
