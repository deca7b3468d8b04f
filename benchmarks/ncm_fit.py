"""Issue 10's fit target in the paper regime: does ``circuits.fit`` of R_c and gamma to the mPNP CV
agree with the discovered values within 10%, and how well does the CV pin them at all?

The model is the headline NCM (``circuits.extract`` on the 0.2 V, 6-sheet, 0.25 nm reservoir run at
the reproduce half-period hp1000 with its equilibrium table; node potentials, "nodes" link law, nothing
fitted to a CV). Fits (Levenberg-Marquardt from neutral starts, nothing started at the answer) to the
CV at hp1000, at the 5x slower hp5000, and to both jointly, in four parametrisations:

* ``law_scale``: the discovered per-link laws with one R_c factor s and one gamma factor g on every
  link (``circuits.scaled_laws``; the discovery is s = g = 1: the apples-to-apples comparison);
* ``law_scale_inner``: the same on the inner links, link 0 (open space -> slit 1) held as extracted;
* ``inner_pair``: one (R_c, gamma) on the inner links, link 0 held (discovery: the inner-link means);
* ``one_pair``: one (R_c, gamma) on every link (the paper's NCM form; discovery: the inner-link means,
  the all-link means beside).

For each, ``circuits.identifiability`` at the discovered values and at the fit: NRMSE, Gauss-Newton
standard errors and correlation, the NRMSE a 10% change of one parameter causes, the "resolution"
(the relative change whose effect equals the present misfit) and the Gauss-Newton step (where a
least-squares fit started at the discovery goes, to first order). Beside: the per-link parameters'
identifiability at the discovered values, and the profile of the objective over (s, g).

    python benchmarks/ncm_fit.py [--runs /work/runs/cache] [--quick]

Writes benchmarks/results/ncm_fit.json (--quick: ncm_fit_quick.json, hp1000 only, law_scale only).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

import circuits  # noqa: E402
import jaxpnp  # noqa: E402
from jaxpnp.reproduce.config import QUICK  # noqa: E402

TARGET = 0.10
POLISH_STEPS = 40


def load(runs: Path):
    data = {hp: jaxpnp.load(runs / f"mpnp_v0.2_hp{hp}_n6.nc") for hp in (1000, 5000)}
    eq = xr.load_dataset(runs / "ncm02_eq_n6_g0.25.nc")
    t0 = time.perf_counter()
    with jaxpnp.float64():
        ex = circuits.extract(data[1000], equilibrium=eq, engine=QUICK.engine, seed=0,
                              discovery_options=dict(QUICK.discovery_options))
    return data, ex.model, time.perf_counter() - t0


def inner_pair(model, R_c, gamma):
    """One trainable (R_c, gamma) on the inner links, link 0 held as extracted."""
    R_k, g_k = np.asarray(model.R_c, dtype=float), np.asarray(model.gamma, dtype=float)
    inner = np.arange(R_k.size) >= 1

    def fn(Q, q_max, R_link, p):
        R, g = jnp.where(inner, p["R_c"], R_link), jnp.where(inner, p["gamma"], g_k)
        return R * jnp.maximum(1.0 - g * Q / q_max, model.resistance_floor)  # the NCM's law, floored as it is

    return dataclasses.replace(model, law=circuits.ResistanceLaw(fn, dict(R_c=np.asarray(R_c, float),
                                                                          gamma=np.asarray(gamma, float))))


def routes(model):
    """{route: (model at value (a, b), params, transforms, discovered (a, b), starts)}."""
    R_k, g_k = np.asarray(model.R_c, dtype=float), np.asarray(model.gamma, dtype=float)
    R_in, g_in = float(np.mean(R_k[1:])), float(np.mean(g_k[1:]))
    n = model.n_slits
    neutral = lambda a: [(2.0 * a, 0.0), (0.5 * a, 0.0)]  # noqa: E731 - R_c 2x / 0.5x, no gamma
    return {
        "law_scale": (lambda a, b: circuits.scaled_laws(model, scale=a, gamma_scale=b), circuits.SCALED_LAW_PARAMS,
                      None, (1.0, 1.0), neutral(1.0)),
        "law_scale_inner": (lambda a, b: circuits.scaled_laws(model, scale=a, gamma_scale=b, links=range(1, n)),
                            circuits.SCALED_LAW_PARAMS, None, (1.0, 1.0), neutral(1.0)),
        "inner_pair": (lambda a, b: inner_pair(model, a, b), ("law.params.R_c", "law.params.gamma"),
                       {"law.params.R_c": "log", "law.params.gamma": "identity"}, (R_in, g_in), neutral(R_in)),
        "one_pair": (lambda a, b: dataclasses.replace(model, R_c=a, gamma=b), ("R_c", "gamma"), {"gamma": "identity"},
                     (R_in, g_in), neutral(R_in)),
    }


def _protocols(ds_list):
    return [jaxpnp.protocol_from_attrs(d.attrs) for d in ds_list]


def rel(value, ref):
    return float(value / ref - 1.0)


def run_route(name, spec, datasets, model):
    make, params, transforms, disc, starts = spec
    out = {}
    for label, ds_list in datasets.items():
        t0 = time.perf_counter()
        with jaxpnp.float64():
            idf = circuits.identifiability(make(*disc), ds_list, params, protocol=_protocols(ds_list))
        rec = dict(discovered=dict(values=list(disc), identifiability=idf.summary(), wall_s=time.perf_counter() - t0),
                   fits=[])
        print(f"{name:16s} {label:6s} discovered {np.round(disc, 12).tolist()}: NRMSE {np.round(idf.nrmse, 4).tolist()}"
              f"; 10% moves NRMSE by {np.round(idf.current_change, 4).tolist()} (linearised), resolution "
              f"{np.round(idf.resolution, 3).tolist()}; GN step {np.round(idf.gauss_newton_step, 12).tolist()}", flush=True)
        for start in starts:
            t0 = time.perf_counter()
            with jaxpnp.float64():
                res = circuits.fit(make(*start), ds_list, params, protocol=_protocols(ds_list), transforms=transforms,
                                   steps=0, polish_steps=POLISH_STEPS, progress=False)
            a, b = (float(res.params[p]) for p in params)
            f = dict(start=list(start), values=[a, b], nrmse=res.nrmse.tolist(), fit_s=time.perf_counter() - t0,
                     rel_diff=[rel(a, disc[0]), rel(b, disc[1])], identifiability=res.identifiability.summary(),
                     met=bool(abs(rel(a, disc[0])) <= TARGET and abs(rel(b, disc[1])) <= TARGET))
            if name == "one_pair":  # against the all-link means too
                R_k, g_k = np.asarray(model.R_c, float), np.asarray(model.gamma, float)
                f["rel_diff_all_links_mean"] = [rel(a, np.mean(R_k)), rel(b, np.mean(g_k))]
            rec["fits"].append(f)
            print(f"  fit from {np.round(start, 12).tolist()}: {a:.4g}, {b:.4g} (rel {f['rel_diff'][0]:+.3f}, "
                  f"{f['rel_diff'][1]:+.3f}); NRMSE {np.round(res.nrmse, 4).tolist()} ({f['fit_s']:.0f} s)", flush=True)
        out[label] = rec
    return out


def per_link(model, datasets):
    """Identifiability of every link's own R_c and gamma at the discovered values."""
    out = {}
    for label, ds_list in datasets.items():
        with jaxpnp.float64():
            idf = circuits.identifiability(model, ds_list, ("R_c", "gamma"), protocol=_protocols(ds_list))
        out[label] = idf.summary()
        print(f"per link {label}: resolution {np.round(idf.resolution, 2).tolist()}", flush=True)
    return out


def profile(model, datasets, s_grid, g_grid):
    """NRMSE over the (s, g) grid of ``law_scale`` per dataset, and its profile over g (min over s)."""
    out = {}
    for label, ds_list in datasets.items():
        prots = _protocols(ds_list)
        grid = np.empty((len(g_grid), len(s_grid)))
        t0 = time.perf_counter()
        with jaxpnp.float64():
            base = circuits.scaled_laws(model)
            for i, g in enumerate(g_grid):
                for j, s in enumerate(s_grid):
                    m = dataclasses.replace(base, law=dataclasses.replace(base.law, scale=s, gamma_scale=g))
                    sq = [jaxpnp.nrmse(np.asarray(circuits.solve(m, p, times=np.asarray(d["time"])).current_density),
                                       np.asarray(d["current_density"])) ** 2 for p, d in zip(prots, ds_list)]
                    grid[i, j] = float(np.sqrt(np.mean(sq)))
        k = np.argmin(grid, axis=1)
        out[label] = dict(s=list(map(float, s_grid)), g=list(map(float, g_grid)), nrmse=grid.tolist(),
                          profile_over_g=dict(g=list(map(float, g_grid)), nrmse=grid.min(axis=1).tolist(),
                                              best_s=[float(s_grid[j]) for j in k]), wall_s=time.perf_counter() - t0)
        print(f"profile {label}: min over s at g = {np.round(g_grid, 2).tolist()}: "
              f"{np.round(grid.min(axis=1), 4).tolist()} (best s {np.round(s_grid[k], 3).tolist()})", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="/work/runs/cache")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--routes", default=None, help="comma-separated routes to rerun into an existing --out JSON "
                    "(no per-link and profile parts)")
    args = ap.parse_args()
    data, model, build_s = load(Path(args.runs))
    R_k, g_k = np.asarray(model.R_c, float), np.asarray(model.gamma, float)
    print(f"NCM ({model.charge} law) built in {build_s:.0f} s: R_c {np.round(R_k * 1e9, 4).tolist()} nOhm m^2, gamma "
          f"{np.round(g_k, 4).tolist()}", flush=True)
    datasets = {"hp1000": [data[1000]]} if args.quick else \
        {"hp1000": [data[1000]], "hp5000": [data[5000]], "joint": [data[1000], data[5000]]}
    result = dict(grid_nm=0.25, v_max=0.2, n_sheets=6, target_rel=TARGET, fit="Levenberg-Marquardt, "
                  f"{POLISH_STEPS} steps, no Adam", note="2-core machine shared with other jobs: contended timings",
                  model=dict(R_c=R_k.tolist(), gamma=g_k.tolist(), q_max=np.asarray(model.q_max).tolist(),
                             inner_mean=dict(R_c=float(np.mean(R_k[1:])), gamma=float(np.mean(g_k[1:]))),
                             all_mean=dict(R_c=float(np.mean(R_k)), gamma=float(np.mean(g_k))), build_s=build_s),
                  routes={})
    specs = routes(model)
    out = Path(args.out or f"benchmarks/results/ncm_fit{'_quick' if args.quick else ''}.json")
    chosen = args.routes.split(",") if args.routes else (["law_scale"] if args.quick else list(specs))
    if args.routes and out.exists():  # rerun some routes, keep the rest of the file
        result = json.loads(out.read_text())
    for name in chosen:
        result["routes"][name] = run_route(name, specs[name], datasets, model)
    if not args.quick and not args.routes:
        result["per_link_at_discovered"] = per_link(model, datasets)
        result["profile_law_scale"] = profile(model, {k: datasets[k] for k in ("hp1000", "hp5000")},
                                              np.linspace(0.7, 1.3, 13), np.linspace(-0.5, 2.0, 11))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
