"""Benchmark: jaxpnp.sweep of the same 8 mPNP points on 1 and 2 Dask worker processes.

8 points (v_max x scan rate, 2 x 4) of a small network (3 sheets, 1.5 nm slits, grid
0.3 nm, one CV). For each worker count:
- cold: ``jaxpnp.sweep(..., workers=n)`` end to end on an empty directory: cluster start,
  each worker's one-off solver compilation, the 8 runs, the files, the cluster's close;
- warm: a LocalCluster of n workers that have compiled the solver (a warm-up point of
  the same geometry), then the 8 points timed.
Baseline: the 8 points one after another with plain ``jaxpnp.simulate`` in this process
(warm). Per-task overhead = (warm 1-worker wall - sum of the task times measured inside
the tasks) / 8: what Dask's scheduling, transfers and the sweep's bookkeeping add per
point (independent of the machine's load, unlike a comparison with the baseline run at
another moment); the in-task part (checkpoints, the netCDF, atomic renames) is
``in_task_overhead_s`` = mean of (task time - the run's own solver_run_time_s).
Run: python benchmarks/sweep.py [--quick]   (--quick: 4 points)
Writes benchmarks/results/sweep.json.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from distributed import Client, LocalCluster  # noqa: E402

import jaxpnp  # noqa: E402

EL = jaxpnp.Electrolyte()
TAU = EL.debye_time_s
ELECTRODE = jaxpnp.Electrode(n_sheets=3, slit_nm=1.5, sheet_length_nm=3.6, sheet_gap_nm=1.2,
                             sheet_thickness_nm=0.3, separator_nm=3.0)
OPTIONS = dict(grid_nm=0.3, points_per_cycle=100)
BASE = (EL, ELECTRODE, jaxpnp.CV(v_max=1.0, scan_rate_V_s=1.0 / (1000 * TAU)), OPTIONS)


def _over(quick):
    rates = [1.0 / (k * TAU) for k in (500, 1000, 1500, 2000)]
    return {"v_max": [0.5, 1.0], "scan_rate_V_s": rates[:2] if quick else rates}


def _points(over):
    return [(v, r) for v in over["v_max"] for r in over["scan_rate_V_s"]]


def main(quick=False):
    over = _over(quick)
    n_points = len(_points(over))
    work = Path(tempfile.mkdtemp(prefix="jaxpnp_sweep_bench_"))
    rows = {}
    try:
        # baseline: one process, warm
        t = time.perf_counter()
        jaxpnp.simulate(EL, ELECTRODE, jaxpnp.CV(v_max=0.7, scan_rate_V_s=1.0 / (800 * TAU)), **OPTIONS,
                        progress=False)
        first = time.perf_counter() - t
        t = time.perf_counter()
        for v, r in _points(over):
            jaxpnp.simulate(EL, ELECTRODE, jaxpnp.CV(v_max=v, scan_rate_V_s=r), **OPTIONS, progress=False)
        baseline = time.perf_counter() - t
        rows["baseline"] = dict(first_run_s=first, points_s=baseline, per_point_s=baseline / n_points)
        print(json.dumps({"baseline": rows["baseline"]}))
        for n in (1, 2):
            t = time.perf_counter()
            cold = jaxpnp.sweep(BASE, over=over, outdir=work / f"cold{n}", workers=n, progress=False)
            cold_s = time.perf_counter() - t
            assert cold.computed == n_points and not cold.failed, cold.failed
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
            try:
                warmup = [{"v_max": 0.6 + 0.05 * k} for k in range(n)]  # one compile per worker
                jaxpnp.sweep(BASE, points=warmup, outdir=work / f"warmup{n}", client=client, progress=False)
                t = time.perf_counter()
                warm = jaxpnp.sweep(BASE, over=over, outdir=work / f"warm{n}", client=client, progress=False)
                warm_s = time.perf_counter() - t
                t = time.perf_counter()
                rerun = jaxpnp.sweep(BASE, over=over, outdir=work / f"warm{n}", client=client, progress=False)
                rerun_s = time.perf_counter() - t
            finally:
                client.close()
                cluster.close()
            assert warm.computed == n_points and rerun.computed == 0
            task_s = sum(r["time_s"] for r in warm.records)
            run_s = sum(float(jaxpnp.load(work / f"warm{n}" / f"{r['point_id']}.nc").attrs["solver_run_time_s"])
                        for r in warm.records)
            rows[f"{n}_workers"] = dict(cold_wall_s=cold_s, warm_wall_s=warm_s, warm_task_time_sum_s=task_s,
                                        rerun_all_skipped_s=rerun_s,
                                        in_task_overhead_s=(task_s - run_s) / n_points,
                                        cold_task_time_max_s=max(r["time_s"] for r in cold.records))
            print(json.dumps({f"{n}_workers": rows[f"{n}_workers"]}))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    one, two = rows["1_workers"], rows["2_workers"]
    summary = dict(speedup_warm=one["warm_wall_s"] / two["warm_wall_s"],
                   speedup_cold=one["cold_wall_s"] / two["cold_wall_s"],
                   per_task_overhead_s=(one["warm_wall_s"] - one["warm_task_time_sum_s"]) / n_points,
                   in_task_overhead_s=one["in_task_overhead_s"])
    print(json.dumps(summary))
    out = dict(benchmark="sweep", machine=platform.processor() or platform.machine(), cpus=os.cpu_count(),
               load_average_at_end=os.getloadavg(), points=n_points, over=over,
               electrode=dict(n_sheets=3, slit_nm=1.5, sheet_length_nm=3.6, sheet_gap_nm=1.2,
                              sheet_thickness_nm=0.3, separator_nm=3.0), options=OPTIONS,
               results=rows, summary=summary)
    path = Path(__file__).resolve().parent / "results" / "sweep.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
