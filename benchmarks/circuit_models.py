"""Circuit models against the mPNP: the salt-aware models (and the NCM) as extracted, nothing fitted to the CV.

For each regime (cell window 0 -> 0.2 V, the paper's; 0 -> 1 V, the crowded case), 6
sheets, d = 1.5 nm, the quick reproduce grid (0.25 nm), reservoir boundary:

* the mPNP CV at the reproduce half-period (1000 Debye times) and at 5x and 20x slower
  ones, and with 4 and 8 sheets (runs reused from ``--runs``; computed when missing);
* ``jaxpnp.equilibrium`` curves of each electrode at several bulk concentrations;
* ``circuits.from_mpnp(ds, kind="salt", equilibrium=...)`` (``circuits.SaltLadder``: the
  node-potential NCM's laws plus a separator salt balance) on the reproduce-rate 6-sheet
  run, then the same model (no refitting) on the slower runs and, re-assembled (links
  along the normalised depth, the new electrode's own equilibrium curves), for 4 and 8 sheets;
  beside it its variants (salt frozen, series open law, unsaturated links) and the
  node-potential NCM (same links, the open-space law ``R_open (1 - gamma_open Q/Q_max)``);
* the charged separator line (``separator="charged"``: a coarse Bikerman-PNP of the separator) alone and
  with co-ions (``benchmarks/charged_separator.py`` measures just these, with predictions);
* the co-ion-aware SaltLadder (``coions="dynamic"``: each slit's co-ions a state, the uniform-slit
  Bikerman potentials on the equilibrium tables) and its variants (``COION_VARIANTS``), two of them
  also on the predictions; ``--confirm DIR``: the 1 V headline on DIR's run (another grid);
* ``--content``: the ion-content model ``circuits.SaltNCM`` (``salt_model="content"``; slow compile);
  ``--ncm``: ``circuits.from_mpnp(ds, kind="ncm")`` with the discovered laws (slow: discovery).

NRMSE = RMS(I_model - I_mPNP) / RMS(I_mPNP) over the cycle. Writes
``benchmarks/results/circuit_models.json``.

    python benchmarks/circuit_models.py [--runs _runs] [--prefix NAME_] [--content] [--ncm] [--regimes 0.2 1.0] [--confirm DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

# run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

import circuits  # noqa: E402
import jaxpnp  # noqa: E402
from _common import write_result  # noqa: E402

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


def equilibria(runs: Path, n_sheets, prefix="", concentrations=CONCENTRATIONS_M):
    out, cost = [], 0.0
    for c in concentrations:
        path = runs / f"{prefix}equilibrium_n{n_sheets}_c{c:g}.nc"
        if path.exists():
            ds = xr.load_dataset(path)
        else:
            t0 = time.perf_counter()
            ds = jaxpnp.equilibrium(jaxpnp.Electrolyte(concentration_M=c), electrode(n_sheets), POTENTIALS_V,
                                    grid_nm=GRID_NM, boundary="reservoir")
            ds.attrs["wall_s"] = time.perf_counter() - t0  # contended machine: as measured
            ds.to_netcdf(path, engine="h5netcdf")
        cost += float(ds.attrs.get("wall_s", ds.attrs.get("equilibrium_run_time_s", 0.0)))
        out.append(ds)
    return out, cost


def nrmse(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.sqrt(np.mean((a - b) ** 2)) / np.sqrt(np.mean(b ** 2)))


def with_sheets(model: circuits.SaltNCM, n_slits: int) -> circuits.SaltNCM:
    """SaltNCM for another number of slits: link 0 and node 0 kept, the slits' storage and the
    inner links' R_c replaced by their means (no refitting)."""
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


def ladder_with_sheets(model: circuits.SaltLadder, ds_new, eq_new) -> circuits.SaltLadder:
    """SaltLadder for another electrode depth, no refitting: the new electrode's own equilibrium
    capacitors and uptake; link 0 kept; the inner links' R_c, gamma and Q_max / Q_eq (the charge
    passed at the vertex over the downstream equilibrium charge at phi_max) interpolated along
    the normalised depth of the extracted model."""
    n_new = int(ds_new.sizes["slit"]) - 1
    cap, C = circuits.equilibrium_capacitor(eq_new)
    qc, ws = circuits.uptake_tables(eq_new)
    phi_max = 0.5 * float(ds_new.attrs["v_max"])

    def downstream(capacitor, capacitances, n):
        with jaxpnp.float64():
            q = np.asarray(capacitor.charge(jnp.full((n + 1,), phi_max), jnp.asarray(capacitances)))
        return np.cumsum(q[::-1])[::-1][1:]

    n_old = model.n_slits
    ratio_old = np.asarray(model.q_max) / downstream(model.capacitor, model.capacitances, n_old)
    x_old = np.arange(1, n_old) / max(n_old - 1, 1)
    x_new = np.arange(1, n_new) / max(n_new - 1, 1)

    def along(v):
        v = np.asarray(v, float)
        return np.concatenate([v[:1], np.interp(x_new, x_old, v[1:])])

    q_max = along(ratio_old) * downstream(cap, C, n_new)
    return dataclasses.replace(model, n_slits=n_new, capacitances=np.asarray(C), capacitor=cap, R_c=along(model.R_c),
                               gamma=along(model.gamma), q_max=q_max, uptake_charge=qc, uptake_salt=ws,
                               region_volume_m=circuits.region_volumes(eq_new))


def timed(solve, *args, **kw):
    """(current, first-call s, warm s)."""
    t0 = time.perf_counter()
    sol = solve(*args, **kw)
    np.asarray(sol.current_density)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    sol = solve(*args, **kw)
    np.asarray(sol.current_density)
    return np.asarray(sol.current_density), first, time.perf_counter() - t0


def cv_of(ds):
    return jaxpnp.CV(v_min=0.0, v_max=float(ds.attrs["v_max"]), scan_rate_V_s=float(ds.attrs["scan_rate_V_s"]))


def node_potential_ncm(ds, eq):
    """The node-potential NCM: the same links as the SaltLadder, the open-space law on V_0."""
    R_c, gamma, q_max = circuits.node_potential_links(ds, eq)
    law = circuits.open_space_law(ds, circuits.node_potentials(ds, eq))
    cap, C = circuits.equilibrium_capacitor(eq)
    n = int(ds.sizes["slit"]) - 1
    return circuits.NCM(n, law.R_open, float(C[0]), C[1:], R_c, gamma, q_max=q_max, capacitor=cap,
                        allow_gamma_outside_unit=True, gamma_open=min(law.gamma_open, 1.0), q_max_open=law.q_max_open)


# the SaltLadder of session 5 (equilibrium co-ions, neutral separator line): "salt_ladder" and the
# base the variants below change; from_mpnp's default is now "salt_ladder_coions_charged_separator"
NEUTRAL = dict(coions="equilibrium", separator="neutral")
PREDICTIONS = (("rate/5", 5, 6), ("rate/20", 20, 6), ("4 sheets", 1, 4), ("8 sheets", 1, 8))
# the co-ion-aware variants (coion, issue 10): each slit's co-ions a state; "min"/"mean" co-ion share of a link
COION_VARIANTS = {
    "salt_ladder_coions": dict(coions="dynamic"),
    "salt_ladder_coions_series_open_law": dict(coions="dynamic", open_law="series"),
    "salt_ladder_coions_mean_share": dict(coions="dynamic", link_share="mean"),
    "salt_ladder_coions_mean_share_series_open_law": dict(coions="dynamic", link_share="mean", open_law="series"),
    "salt_ladder_coions_content_links_series_open_law": dict(coions="dynamic", link_law="content", open_law="series"),
    "salt_ladder_coions_4_separator_nodes": dict(coions="dynamic", separator_nodes=4),
    # the charged (Nernst-Planck-Poisson) separator line (sepline, issue 10); benchmarks/charged_separator.py
    "salt_ladder_charged_separator": dict(separator="charged"),
    "salt_ladder_coions_charged_separator": dict(coions="dynamic", separator="charged"),
}
PREDICTED_VARIANTS = ("salt_ladder_coions", "salt_ladder_coions_series_open_law", "salt_ladder_coions_mean_share_series_open_law",
                      "salt_ladder_coions_charged_separator")


def predictions(model, runs, v_max, eqs):
    out = {}
    for label, slower, ns in PREDICTIONS:
        ds = mpnp_run(runs, v_max, slower * HALF_PERIOD_DEBYE, ns)
        try:
            with jaxpnp.float64():
                m = model if ns == 6 else ladder_with_sheets(model, ds, eqs[ns][0])
                Ip, _, t_p = timed(circuits.solve, m, cv_of(ds), times=np.asarray(ds["time"]))
            out[label] = dict(nrmse=nrmse(Ip, ds["current_density"]), solve_s=t_p,
                              mpnp_s=float(ds.attrs.get("solver_run_time_s", np.nan)))
        except Exception as err:  # noqa: BLE001 - reported, the rest goes on
            out[label] = dict(error=f"{type(err).__name__}: {str(err)[:200]}")
    return out


def confirm(directory: Path):
    """The headline on another grid's run: DIR/mpnp_v1_hp1000_n6.nc with DIR/equilibrium_n6_c1.nc."""
    ds = jaxpnp.load(directory / "mpnp_v1_hp1000_n6.nc")
    eq = xr.load_dataset(directory / "equilibrium_n6_c1.nc")
    Im = np.asarray(ds["current_density"])
    out = dict(grid_nm=float(ds.attrs["grid_nm"]), run=str(directory / "mpnp_v1_hp1000_n6.nc"))
    with jaxpnp.float64():
        model = circuits.from_mpnp(ds, kind="salt", equilibrium=[eq], **NEUTRAL)
        for name, change in {"salt_ladder": {}, **COION_VARIANTS}.items():
            I = np.asarray(circuits.solve(dataclasses.replace(model, **change), cv_of(ds),
                                          times=np.asarray(ds["time"])).current_density)
            out[name] = nrmse(I, Im)
            print(f"   {directory.name} {name}: {out[name]:.4f}", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="_runs")
    ap.add_argument("--prefix", default="", help="file-name prefix of the equilibrium Datasets written to --runs")
    ap.add_argument("--regimes", nargs="+", type=float, default=[0.2, 1.0])
    ap.add_argument("--content", action="store_true", help="also the ion-content SaltNCM (slow compile)")
    ap.add_argument("--ncm", action="store_true", help="also the NCM from the discovered laws (slow: discovery)")
    ap.add_argument("--out", default="benchmarks/results/circuit_models.json")
    ap.add_argument("--confirm", default=None, help="also the 1 V headline on DIR's run (e.g. /work/runs/cache125)")
    args = ap.parse_args()
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    result = dict(grid_nm=GRID_NM, half_period_debye=HALF_PERIOD_DEBYE,
                  metric="RMS(I_model - I_mPNP) / RMS(I_mPNP), one cycle",
                  machine="2-core CPU shared by 4 helpers (contended): wall times as measured", regimes={})
    eqs = {}
    t0 = time.perf_counter()
    eqs[6], eq_cost = equilibria(runs, 6, args.prefix, CONCENTRATIONS_M if args.content else (1.0,))
    eq_cost_1M = float(eqs[6][0].attrs.get("wall_s", np.nan))
    for ns in (4, 8):
        eqs[ns], _ = equilibria(runs, ns, args.prefix, (1.0,))
    for v_max in args.regimes:
        R = result["regimes"][f"{v_max:g}V"] = {}
        base = mpnp_run(runs, v_max, HALF_PERIOD_DEBYE, 6)
        Im = np.asarray(base["current_density"])
        times = np.asarray(base["time"])
        mpnp_s = float(base.attrs.get("solver_run_time_s", np.nan))
        with jaxpnp.float64():
            t0 = time.perf_counter()
            model = circuits.from_mpnp(base, kind="salt", equilibrium=eqs[6], **NEUTRAL)
            extract_s = time.perf_counter() - t0
            I, first, warm = timed(circuits.solve, model, cv_of(base), times=times)
            t0 = time.perf_counter()
            circuits.from_mpnp(base, kind="salt", equilibrium=eqs[6], **NEUTRAL)
            extract_again = time.perf_counter() - t0
        R["salt_ladder"] = dict(
            nrmse=nrmse(I, Im), parameters=model.parameters(), extraction_s=extract_s,
            equilibrium_s=eq_cost_1M, first_call_s=first, solve_s=warm, mpnp_s=mpnp_s, speedup=mpnp_s / warm,
            build_cold_s=eq_cost_1M + extract_s + first, build_warm_s=extract_again + warm,
            build_cold_without_equilibrium_s=extract_s + first)
        print(f"{v_max:g} V: SaltLadder as extracted NRMSE {R['salt_ladder']['nrmse']:.4f}; solve {warm:.3f} s vs "
              f"mPNP {mpnp_s:.1f} s ({mpnp_s / warm:.0f}x); build cold {R['salt_ladder']['build_cold_s']:.1f} s "
              f"(equilibrium {eq_cost_1M:.1f}, extraction {extract_s:.1f}, first call {first:.1f}), warm "
              f"{R['salt_ladder']['build_warm_s']:.2f} s", flush=True)
        variants = {"salt_ladder_frozen_salt": dict(salt="frozen"), "salt_ladder_series_open_law": dict(open_law="series"),
                    "salt_ladder_unsaturated_links": dict(saturate=False),
                    "salt_ladder_equilibrium_salt_release": dict(salt_release="equilibrium"),
                    "salt_ladder_4_separator_nodes": dict(separator_nodes=4),
                    "salt_ladder_16_separator_nodes": dict(separator_nodes=16), **COION_VARIANTS}
        for name, change in variants.items():
            with jaxpnp.float64():
                Iv = np.asarray(circuits.solve(dataclasses.replace(model, **change), cv_of(base),
                                               times=times).current_density)
            R[name] = dict(nrmse=nrmse(Iv, Im), change={k: str(v) for k, v in change.items()})
            print(f"   {name}: {R[name]['nrmse']:.4f}", flush=True)
        with jaxpnp.float64():
            ncm = node_potential_ncm(base, eqs[6][0])
            In, first_n, warm_n = timed(circuits.solve, ncm, cv_of(base), times=times)
        R["ncm_node_potential"] = dict(nrmse=nrmse(In, Im), first_call_s=first_n, solve_s=warm_n,
                                       gamma_open=float(ncm.gamma_open))
        print(f"   node-potential NCM (same links, open-space law): {R['ncm_node_potential']['nrmse']:.4f}", flush=True)
        R["predictions"] = predictions(model, runs, v_max, eqs)
        for label, p in R["predictions"].items():
            print(f"   prediction {label}: {p}", flush=True)
        for name in PREDICTED_VARIANTS:
            R[name]["predictions"] = predictions(dataclasses.replace(model, **COION_VARIANTS[name]), runs, v_max, eqs)
            print(f"   {name} predictions: " + ", ".join(f"{k} {v.get('nrmse', v.get('error'))}"
                                                       for k, v in R[name]["predictions"].items()), flush=True)
        if args.content:
            try:
                with jaxpnp.float64():
                    t0 = time.perf_counter()
                    content = circuits.from_mpnp(base, kind="salt", salt_model="content", equilibrium=eqs[6])
                    ext = time.perf_counter() - t0
                    Ic, first_c, warm_c = timed(circuits.solve, content, cv_of(base), times=times)
                R["salt_ncm_content"] = dict(nrmse=nrmse(Ic, Im), extraction_s=ext, first_call_s=first_c,
                                             solve_s=warm_c, equilibrium_s=eq_cost)
            except Exception as err:  # noqa: BLE001
                R["salt_ncm_content"] = dict(error=f"{type(err).__name__}: {str(err)[:200]}")
            print(f"   ion-content SaltNCM: {R['salt_ncm_content']}", flush=True)
        if args.ncm:
            try:
                with jaxpnp.float64():
                    t0 = time.perf_counter()
                    ncm = circuits.from_mpnp(base, kind="ncm", equilibrium=eqs[6][0])
                    ncm_build = time.perf_counter() - t0
                    sim = circuits.simulate(ncm, cv_of(base), times=times)
                R["ncm_discovered"] = dict(nrmse=nrmse(sim["current_density"], Im), build_s=ncm_build)
            except Exception as err:  # noqa: BLE001
                R["ncm_discovered"] = dict(error=f"{type(err).__name__}: {str(err)[:200]}")
            print(f"   NCM from the discovered laws: {R['ncm_discovered']}", flush=True)
    if args.confirm:
        result["confirm"] = confirm(Path(args.confirm))
    write_result(args.out, result)


if __name__ == "__main__":
    main()
