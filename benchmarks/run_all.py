"""Run every benchmark script in benchmarks/ and write one table (markdown and JSON).

Run: python benchmarks/run_all.py [--quick] [--only NAME ...] [--no-run]
Each script runs as a subprocess (with --quick when it accepts it); a missing or failing
script is recorded, not fatal. Results: benchmarks/results/summary.{md,json}.
--no-run only tabulates the JSON files already in benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
KNOWN = ("mpnp_cv", "ncm", "discovery_engines", "mpnp_vs_ncm")  # in this order; others after


def _scripts():
    found = {p.stem: p for p in HERE.glob("*.py") if p.stem not in ("run_all", "__init__") and not p.stem.startswith("_")}
    order = [k for k in KNOWN if k in found] + sorted(set(found) - set(KNOWN))
    return {k: found[k] for k in order}


def _run(name, path, quick, timeout):
    cmd = [sys.executable, str(path)]
    if quick and "--quick" in path.read_text():
        cmd.append("--quick")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=HERE.parent)
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:] }"
    except subprocess.TimeoutExpired:
        status = f"timeout after {timeout} s"
    return dict(command=" ".join(cmd[1:]), status=status, wall_s=time.perf_counter() - t0)


def _load(name):
    p = RESULTS / f"{name}.json"
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError:
        return None


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _flat_numbers(d, prefix="", out=None, depth=0):
    out = {} if out is None else out
    if isinstance(d, dict) and depth < 4:
        for k, v in d.items():
            _flat_numbers(v, f"{prefix}{k}.", out, depth + 1)
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        out[prefix[:-1]] = d
    return out


def table_rows(results):
    rows = []  # (benchmark, quantity, value, unit)
    mp = results.get("mpnp_cv")
    if mp:
        jx, sc = mp.get("jaxpnp", {}), mp.get("scipy_bdf", {})
        b = "mPNP paper CV (1 cycle)"
        rows += [
            (b, "grid (nm) / unknowns", f"{mp.get('chosen_grid_nm')} / {jx.get('unknowns')}", ""),
            (b, "CV current difference to the next finer grid", jx.get("difference_to_next_finer"), ""),
            (b, "accepted / rejected steps", f"{jx.get('accepted_steps')} / {jx.get('rejected_steps')}", ""),
            (b, "jaxpnp run time (compiled)", jx.get("run_time_s"), "s"),
            (b, "jaxpnp compile time", jx.get("compile_time_s"), "s"),
            (b, "peak memory (process RSS)", jx.get("peak_rss_mb"), "MB"),
            (b, "scipy BDF (sparse pattern) full cycle" + ("" if sc.get("finished") else ", projected"),
             sc.get("projected_full_cycle_s"), "s"),
            (b, "speed-up vs scipy BDF", mp.get("speedup_vs_scipy"), "x"),
        ]
    nc = results.get("ncm")
    if nc:
        rows.append(("NCM 20 slits", "scipy Radau per curve", _get(nc, "scipy_radau", "per_curve_ms"), "ms"))
        for m, r in (_get(nc, "results") or {}).items():
            rows.append(("NCM 20 slits", f"{m}: per curve", r.get("per_curve_ms"), "ms"))
            rows.append(("NCM 20 slits", f"{m}: vmapped", r.get("vmap_curves_per_s"), "curves/s"))
            rows.append(("NCM 20 slits", f"{m}: speed-up vs scipy (per curve / vmapped)",
                         f"{r.get('speedup_per_curve_vs_scipy', float('nan')):.3g} / {r.get('speedup_vmap_vs_scipy', float('nan')):.3g}", "x"))
    dc = results.get("discovery_engines")
    if dc:
        for eng, s in (_get(dc, "summary") or {}).items():
            rows.append(("discovery", f"{eng}: median wall per law", s.get("median_wall_s"), "s"))
            rows.append(("discovery", f"{eng}: structure recovered", f"{s.get('structure_recovered')}/{s.get('cases')}", ""))
    mv = results.get("mpnp_vs_ncm")
    if mv:
        p = mv.get("problem", {})
        tag = f"{p.get('n_sheets')} sheets, d={p.get('slit_nm')} nm, grid {p.get('grid_nm')} nm"
        rows.append(("mPNP vs NCM, same CV", f"mPNP run ({tag})", mv.get("mpnp_run_s"), "s"))
        rows.append(("mPNP vs NCM, same CV", "NCM per curve (compiled)", mv.get("ncm_per_curve_s"), "s"))
        rows.append(("mPNP vs NCM, same CV", "speed ratio mPNP / NCM", mv.get("speed_ratio"), "x"))
        rows.append(("fit", f"circuits.fit R_c, gamma ({mv.get('fit_steps')} Adam steps)", mv.get("fit_s"), "s"))
    return rows


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return "n/a" if v is None else str(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--no-run", action="store_true")
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args()
    runs = {}
    scripts = _scripts()
    for name in KNOWN:
        if name not in scripts:
            runs[name] = dict(status="missing")
    if not args.no_run:
        for name, path in scripts.items():
            if args.only and name not in args.only:
                continue
            print(f"[bench] {name} ...", flush=True)
            runs[name] = _run(name, path, args.quick, args.timeout)
            print(f"[bench] {name}: {runs[name]['status']} ({runs[name]['wall_s']:.0f} s)", flush=True)
    results = {name: _load(name) for name in set(scripts) | set(KNOWN)}
    rows = table_rows(results)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "summary.json").write_text(json.dumps(dict(quick=args.quick, runs=runs, rows=[
        dict(benchmark=b, quantity=q, value=v, unit=u) for b, q, v, u in rows]), indent=2))
    lines = ["# Benchmarks", "", f"quick: {args.quick}", "", "| benchmark | quantity | value | unit |", "|---|---|---|---|"]
    lines += [f"| {b} | {q} | {_fmt(v)} | {u} |" for b, q, v, u in rows]
    lines += ["", "## Script runs", ""]
    lines += [f"- {k}: {v.get('status')}" + (f" ({v['wall_s']:.0f} s)" if "wall_s" in v else "") for k, v in runs.items()]
    (RESULTS / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(v.get("status") in ("ok", "missing") for v in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
