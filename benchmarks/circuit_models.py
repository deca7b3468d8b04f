"""Circuit models against the mPNP: the salt-aware NCM (and the NCM) as extracted, nothing fitted to the CV.

For each regime (cell window 0 -> 0.2 V, the paper's; 0 -> 1 V, the crowded case), 6
sheets, d = 1.5 nm, the quick reproduce grid (0.25 nm), reservoir boundary:

* the mPNP CV at the reproduce half-period (1000 Debye times) and at 5x and 20x slower
  ones, and with 4 and 8 sheets (runs reused from ``--runs``; computed when missing);
* ``jaxpnp.equilibrium`` curves of each electrode at several bulk concentrations;
* ``circuits.from_mpnp(ds, kind="salt", equilibrium=...)`` on the reproduce-rate 6-sheet
  run, then the same model (no refitting) on the slower runs and, re-assembled with the
  same per-slit elements, for 4 and 8 sheets;
* ``circuits.from_mpnp(ds, kind="ncm", equilibrium=...)`` (discovered laws) beside it
  with ``--ncm``.

NRMSE = RMS(I_model - I_mPNP) / RMS(I_mPNP) over the cycle. Writes
``benchmarks/results/circuit_models.json``.

    python benchmarks/circuit_models.py [--runs _runs] [--ncm] [--regimes 0.2 1.0]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import xarray as xr

import circuits
import jaxpnp
from circuits._salt_extract import salt_ncm_from_mpnp

GRID_NM = 0.25
HALF_PERIOD_DEBYE = 1000.0
CONCENTRATIONS_M = (1.0, 0.5, 0.25, 0.1)
POTENTIALS_V = np.concatenate([np.linspace(0, 0.1, 11), np.linspace(0.12, 0.5, 20)])


def electrode(n_sheets):
    return jaxpnp.Electrode(n_sheets=n_sheets, slit_nm=1.5, sheet_length_nm=10.0, sheet_gap_nm=1.0,
                            sheet_thickness_nm=0.335, separator_nm=10.0)


def protocol(v_max, half_period_debye):
    tau = float(jaxpnp.Electrolyte().debye_time_s)
    return jaxpnp.CV(v_min=0.0, v_max=v_max, scan_rate_V_s=v_max / (half_period_debye * tau))


def mpnp_run(runs: Path, v_max, hp, n_sheets):
    path = runs / f"mpnp_v{v_max:g}_hp{int(hp)}_n{n_sheets}.nc"
    if path.exists():
        return jaxpnp.load(path)
    cv = protocol(v_max, hp)
    with jaxpnp.float64():
        ds = jaxpnp.simulate(jaxpnp.Electrolyte(), electrode(n_sheets), cv, grid_nm=GRID_NM, boundary="reservoir",
                             points_per_cycle=200, progress=False)
    ds.to_netcdf(path, engine="h5netcdf")
    return ds


def equilibria(runs: Path, n_sheets):
    out, cost = [], 0.0
    for c in CONCENTRATIONS_M:
        path = runs / f"equilibrium_n{n_sheets}_c{c:g}.nc"
        if path.exists():
            ds = xr.load_dataset(path)
        else:
            t0 = time.perf_counter()
            ds = jaxpnp.equilibrium(jaxpnp.Electrolyte(concentration_M=c), electrode(n_sheets), POTENTIALS_V,
                                    grid_nm=GRID_NM, boundary="reservoir")
            ds.attrs["wall_s"] = time.perf_counter() - t0
            ds.to_netcdf(path, engine="h5netcdf")
        cost += float(ds.attrs.get("wall_s", ds.attrs.get("equilibrium_run_time_s", 0.0)))
        out.append(ds)
    return out, cost


def nrmse(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.sqrt(np.mean((a - b) ** 2)) / np.sqrt(np.mean(b ** 2)))


def with_sheets(model: circuits.SaltNCM, n_slits: int) -> circuits.SaltNCM:
    """The same per-slit elements for another number of slits: link 0 and node 0 kept, the
    slits' storage and the inner links' R_c replaced by their means (no refitting)."""
    st = model.storage
    mean = lambda a: float(np.mean(np.asarray(a)))  # noqa: E731
    slits = circuits.DonnanStorage(np.full(n_slits, mean(st.slits.volume_m)),
                                   np.full(n_slits, mean(st.slits.capacitance_F_m2)),
                                   np.full(n_slits, mean(st.slits.neutral_volume_m)))
    storage = circuits.SplitStorage(st.open_space, slits)
    R = np.asarray(model.links.R_c)
    R_new = np.concatenate([R[:1], np.full(n_slits - 1, R[1:].mean())])
    env = model.env()
    with jaxpnp.float64():
        _, N0, _ = storage.state(jnp.zeros(n_slits + 1), jnp.full(n_slits + 1, env.c0), env)
    links = dataclasses.replace(model.links, R_c=R_new, content0=np.asarray(N0))
    return dataclasses.replace(model, n_slits=n_slits, storage=storage, links=links)


def run_circuit(model, ds):
    cv = jaxpnp.CV(v_min=0.0, v_max=float(ds.attrs["v_max"]), scan_rate_V_s=float(ds.attrs["scan_rate_V_s"]))
    times = np.asarray(ds["time"])
    t0 = time.perf_counter()
    sol = circuits.solve_salt(model, cv, times=times)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    sol = circuits.solve_salt(model, cv, times=times)
    sol.current_density.block_until_ready()
    again = time.perf_counter() - t0
    return np.asarray(sol.current_density), first, again


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="_runs")
    ap.add_argument("--regimes", nargs="+", type=float, default=[0.2, 1.0])
    ap.add_argument("--ncm", action="store_true", help="also the NCM from the discovered laws (slow: discovery)")
    ap.add_argument("--out", default="benchmarks/results/circuit_models.json")
    args = ap.parse_args()
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    result = dict(grid_nm=GRID_NM, half_period_debye=HALF_PERIOD_DEBYE, concentrations_M=list(CONCENTRATIONS_M),
                  metric="RMS(I_model - I_mPNP) / RMS(I_mPNP), one cycle", regimes={})
    eq6, eq_cost = equilibria(runs, 6)
    for v_max in args.regimes:
        R = result["regimes"][f"{v_max:g}V"] = {}
        base = mpnp_run(runs, v_max, HALF_PERIOD_DEBYE, 6)
        with jaxpnp.float64():
            t0 = time.perf_counter()
            model, info = salt_ncm_from_mpnp(base, equilibrium=eq6)
            extract_s = time.perf_counter() - t0
            I, first, again = run_circuit(model, base)
        Im = np.asarray(base["current_density"])
        mpnp_s = float(base.attrs.get("solver_run_time_s", np.nan))
        R["salt_ncm"] = dict(nrmse=nrmse(I, Im), R_c=info["R_c"], storage_misfit=info["storage_misfit"],
                             extraction_s=extract_s, equilibrium_s=eq_cost, first_call_s=first, solve_s=again,
                             mpnp_s=mpnp_s, speedup=mpnp_s / again, build_s=extract_s + eq_cost + first)
        print(f"{v_max:g} V: SaltNCM as extracted NRMSE {R['salt_ncm']['nrmse']:.4f}; solve {again:.3f} s vs mPNP "
              f"{mpnp_s:.1f} s ({mpnp_s / again:.0f}x); build {R['salt_ncm']['build_s']:.1f} s", flush=True)
        frozen = dataclasses.replace(model, salt="frozen")
        with jaxpnp.float64():
            If, _, _ = run_circuit(frozen, base)
        R["salt_ncm_frozen_salt"] = dict(nrmse=nrmse(If, Im))
        print(f"   same model, salt frozen at c0: {R['salt_ncm_frozen_salt']['nrmse']:.4f}", flush=True)
        preds = R["predictions"] = {}
        for label, hp, ns in (("rate/5", 5 * HALF_PERIOD_DEBYE, 6), ("rate/20", 20 * HALF_PERIOD_DEBYE, 6),
                              ("4 sheets", HALF_PERIOD_DEBYE, 4), ("8 sheets", HALF_PERIOD_DEBYE, 8)):
            ds = mpnp_run(runs, v_max, hp, ns)
            m = model if ns == 6 else with_sheets(model, ns - 1)
            try:
                with jaxpnp.float64():
                    Ip, _, t_p = run_circuit(m, ds)
                preds[label] = dict(nrmse=nrmse(Ip, ds["current_density"]), solve_s=t_p,
                                    mpnp_s=float(ds.attrs.get("solver_run_time_s", np.nan)))
            except Exception as err:  # noqa: BLE001 - reported, the rest goes on
                preds[label] = dict(error=f"{type(err).__name__}: {str(err)[:200]}")
            print(f"   prediction {label}: {preds[label]}", flush=True)
        if args.ncm:
            try:
                with jaxpnp.float64():
                    t0 = time.perf_counter()
                    ncm = circuits.from_mpnp(base, kind="ncm", equilibrium=eq6[0])
                    ncm_build = time.perf_counter() - t0
                    cv = protocol(v_max, HALF_PERIOD_DEBYE)
                    sim = circuits.simulate(ncm, cv, times=np.asarray(base["time"]))
                R["ncm_discovered"] = dict(nrmse=nrmse(sim["current_density"], Im), build_s=ncm_build)
            except Exception as err:  # noqa: BLE001
                R["ncm_discovered"] = dict(error=f"{type(err).__name__}: {str(err)[:200]}")
            print(f"   NCM from the discovered laws: {R['ncm_discovered']}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
