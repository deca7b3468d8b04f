"""Benchmark the equation-discovery engines (and gplearn beside them) on synthetic laws.

    python benchmarks/discovery_engines.py [--dataset run.nc] [--quick] [--out benchmarks/results/discovery_engines.json]

Per law (training x in [0, 1], with and without 1% noise) and engine: wall time, whether
the exact structure was recovered (``discovery.same_structure``: rational laws by their
cancelled p/q coefficients within 2%, others numerically on [1, 2] with the same
functions), R^2 on held-out in-range points, and the extrapolation error (max relative
error on x in [1, 2]). With ``--dataset``, the trans-slit pipeline runs on that mPNP
netCDF file too. Target: at most 60 s per law and engine on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_HERE))  # run from a checkout without installing

import numpy as np  # noqa: E402
import sympy  # noqa: E402

import discovery  # noqa: E402

LAWS = [
    # name, law in x0 (x1), variables, search functions (Operon/PySR), library functions (Sparse)
    ("quadratic", "0.8*x0 - 0.3*x0**2", 1, (), ()),
    ("rational", "2*x0/(0.5 + x0)", 1, (), ()),
    ("cubic", "0.5 + x0 - 0.8*x0**3", 1, (), ()),
    ("rational2", "(1 + 0.5*x0**2)/(1 + 2*x0)", 1, (), ()),
    ("bilinear", "0.7*x0 + 1.2*x0*x1", 2, (), ()),
    ("exponential", "1.5*exp(-0.8*x0)", 1, ("exp", "log"), ("exp", "log")),
]


def machine():
    import importlib.metadata as md

    versions = {}
    for pkg in ("pyoperon", "gplearn", "numpy", "sympy", "scipy", "jax", "pysr"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
    except OSError:
        pass
    return {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu,
            "cpu_count": os.cpu_count(), "versions": versions}


def make_data(law, k, noise, seed=0):
    rng = np.random.default_rng(seed)
    syms = sympy.symbols(f"x0:{k}")
    f = sympy.lambdify(syms, sympy.sympify(law), "numpy")
    X = rng.uniform(0.0, 1.0, size=(300, k))
    y = f(*X.T) * np.ones(len(X))
    if noise:
        y = y + noise * np.std(y) * rng.standard_normal(len(y))
    Xt = rng.uniform(0.0, 1.0, size=(200, k))  # held-out, in range, noise-free
    Xe = rng.uniform(1.0, 2.0, size=(200, k))  # extrapolation
    return X, y, Xt, f(*Xt.T) * np.ones(200), Xe, f(*Xe.T) * np.ones(200)


def gplearn_expression(X, y, functions, seed):
    from gplearn.genetic import SymbolicRegressor

    function_set = ("add", "sub", "mul", "div") + tuple(f for f in functions if f in ("log", "sqrt"))
    model = SymbolicRegressor(population_size=2000, generations=40, function_set=function_set,
                              parsimony_coefficient=0.0005, const_range=(-5.0, 5.0),
                              random_state=seed, n_jobs=1, p_crossover=0.7,
                              p_subtree_mutation=0.1, p_hoist_mutation=0.05, p_point_mutation=0.1,
                              max_samples=1.0, stopping_criteria=1e-10, verbose=0)
    model.fit(X, y)
    names = {f"X{j}": sympy.Symbol(f"x{j}") for j in range(X.shape[1])}
    local = dict(names, add=lambda a, b: a + b, sub=lambda a, b: a - b, mul=lambda a, b: a * b,
                 div=lambda a, b: a / b, log=lambda a: sympy.log(sympy.Abs(a)),
                 sqrt=lambda a: sympy.sqrt(sympy.Abs(a)))
    return sympy.sympify(str(model._program), locals=local)


def _numpy(expr, syms):
    """``X (n, k) -> (n,)`` values of a sympy expression (public sympy.lambdify)."""
    fn = sympy.lambdify(syms, expr, "numpy")
    return lambda X: np.broadcast_to(np.asarray(fn(*np.asarray(X, float).T), float), (np.shape(X)[0],))


def evaluate(expr, names, truth, Xt, yt, Xe, ye):
    syms = [sympy.Symbol(n) for n in names]
    pt, pe = _numpy(expr, syms)(Xt), _numpy(expr, syms)(Xe)
    r2 = 1 - np.sum((pt - yt) ** 2) / np.sum((yt - yt.mean()) ** 2)
    extrap = float(np.max(np.abs(pe - ye)) / np.max(np.abs(ye))) if np.all(np.isfinite(pe)) else float("inf")
    return {"structure_recovered": bool(discovery.same_structure(expr, truth, names, rtol=0.02, X=Xe)),
            "r2": float(r2), "extrapolation_error": extrap, "expression": str(expr)}


def engines(quick, pysr_ok):
    pop, gens = (300, 60) if quick else (1000, 150)
    out = {
        "operon": lambda fns: discovery.OperonEngine(population_size=pop, generations=gens,
                                                     functions=fns, n_threads=1),
        "sparse": lambda fns: discovery.SparseEngine(functions=fns),
    }
    if pysr_ok:
        out["pysr"] = lambda fns: discovery.PySREngine(functions=fns, niterations=20 if quick else 40)
    return out


def run_synthetic(quick):
    try:
        discovery.PySREngine().check_available()
        pysr_ok, pysr_note = True, "available"
    except discovery.EngineUnavailableError as err:
        pysr_ok, pysr_note = False, str(err)
    rows = []
    for name, law, k, search_fns, library_fns in LAWS:
        for noise in (0.0, 0.01):
            X, y, Xt, yt, Xe, ye = make_data(law, k, noise)
            names = [f"x{j}" for j in range(k)]
            for engine, make in engines(quick, pysr_ok).items():
                fns = library_fns if engine == "sparse" else search_fns
                start = time.perf_counter()
                fitted = make(fns).fit(X, y, names).law_
                wall = time.perf_counter() - start
                row = {"law": name, "truth": law, "noise": noise, "engine": engine, "wall_s": wall,
                       "complexity": fitted.complexity, **evaluate(fitted.expression, names, law, Xt, yt, Xe, ye)}
                rows.append(row)
                _print(row)
            start = time.perf_counter()
            expr = gplearn_expression(X, y, search_fns, seed=0)
            wall = time.perf_counter() - start
            row = {"law": name, "truth": law, "noise": noise, "engine": "gplearn", "wall_s": wall,
                   "complexity": discovery._expression.tree_size(expr),
                   **evaluate(expr, names, law, Xt, yt, Xe, ye)}
            rows.append(row)
            _print(row)
    return rows, pysr_note


def _print(row):
    print(f"{row['law']:12s} noise={row['noise']:<5g} {row['engine']:8s} {row['wall_s']:7.2f} s  "
          f"structure={'yes' if row['structure_recovered'] else 'no ':3s}  R2={row['r2']:.6f}  "
          f"extrap={row['extrapolation_error']:.2e}  {row['expression'][:70]}", flush=True)


def run_dataset(path, quick):
    import xarray as xr

    rows = []
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    for engine in ("operon", "sparse"):
        options = dict(population_size=300, generations=60) if (engine == "operon" and quick) else {}
        start = time.perf_counter()
        result = discovery.trans_slit_law(ds, engine=engine, slits="all", **options)
        wall = time.perf_counter() - start
        for i, law in result.all_links().items():
            row = {"engine": engine, "link": i, "wall_s_all_links": wall, "expression": str(law.law.expression),
                   "r2": law.r2, "differential_r2": law.differential_r2, "form": law.form,
                   "paper_form": law.paper_form, "R_c_ohm_m2": law.R_c, "gamma": law.gamma,
                   "R_max_ohm_m2": float(result.R_max.sel(link=i)),
                   "R_min_ohm_m2": float(result.R_min.sel(link=i)), "open_space": law.open_space}
            rows.append(row)
            print(f"dataset {engine:7s} link {i}: {row['expression'][:60]}  R2={law.r2:.6f} "
                  f"form={law.form} R_c={law.R_c:.4g} gamma={law.gamma:.4g}", flush=True)
    return rows


def summarise(rows):
    out = {}
    for engine in sorted({r["engine"] for r in rows}):
        mine = [r for r in rows if r["engine"] == engine]
        out[engine] = {
            "cases": len(mine),
            "structure_recovered": sum(r["structure_recovered"] for r in mine),
            "median_wall_s": float(np.median([r["wall_s"] for r in mine])),
            "max_wall_s": float(np.max([r["wall_s"] for r in mine])),
            "median_r2": float(np.median([r["r2"] for r in mine])),
            "median_extrapolation_error": float(np.median([r["extrapolation_error"] for r in mine])),
        }
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", help="netCDF file from jaxpnp.simulate (optional)")
    parser.add_argument("--quick", action="store_true", help="small populations (smoke run)")
    parser.add_argument("--out", default=os.path.join(_HERE, "results", "discovery_engines.json"))
    args = parser.parse_args(argv)
    rows, pysr_note = run_synthetic(args.quick)
    summary = summarise(rows)
    print("\nsummary (structure recovered / cases, median wall, median R2, median extrapolation error):")
    for engine, s in summary.items():
        print(f"  {engine:8s} {s['structure_recovered']:2d}/{s['cases']:<2d}  {s['median_wall_s']:6.2f} s "
              f"(max {s['max_wall_s']:.1f})  R2={s['median_r2']:.6f}  extrap={s['median_extrapolation_error']:.2e}")
    print(f"  pysr: {pysr_note}")
    report = {"machine": machine(), "quick": args.quick, "pysr": pysr_note, "summary": summary,
              "synthetic": rows}
    if args.dataset:
        report["dataset"] = {"path": args.dataset, "links": run_dataset(args.dataset, args.quick)}
    else:
        report["dataset"] = None
        print("no --dataset given: skipped the mPNP dataset")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2, default=float)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
