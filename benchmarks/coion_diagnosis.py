"""Why the SaltLadder misses the 1 V vertex: the slits' ion contents and the separator's salt flux, from mPNP fields.

One 1 V, 6-sheet, 0.25 nm reservoir CV at the reproduce half-period (the settings of
``circuit_models.mpnp_run``) with the c+, c-, potential fields kept at every output time
(``snapshot_times_s``). Per region (the ``slit`` dimension: open space, slits 1..5):

* cation (co-ion) and anion contents, packing, and the equilibrium co-ions at the slit's own charge
  (``jaxpnp.equilibrium`` tables); the packed bound ``F (V/(a^3 N_A) - 2 N+)`` on the charge;
* each species' region-mean electrochemical potential against ``SaltLadder.ion_potentials`` (the
  equilibrium tables' ``U(q)`` plus the uniform-slit Bikerman correction) and against ``U(q)`` alone;
* each link's species conductances (species current / its potential difference) against the
  nodes' concentration shares;
* the separator's total-ion flux from the balance of the fields against its diffusive part
  ``-D d/dx(-ln(1 - a^3 N_A c_t)/(a^3 N_A))``: the rest is migration of the expanded space charge.

Writes ``benchmarks/results/coion_diagnosis.json`` and ``coion_diagnosis.png``.

    python benchmarks/coion_diagnosis.py [--runs /work/runs/cache] [--equilibrium PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import dataclasses  # noqa: E402

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

import circuit_models as cm  # noqa: E402
import circuits  # noqa: E402
import jaxpnp  # noqa: E402
from jaxpnp._geometry import build_grid  # noqa: E402  (the regions' node sets and control volumes)

F = 96485.33212
NA = 6.02214076e23


def snapshot_run(runs: Path):
    path = runs / "coion_mpnp_v1_hp1000_n6_snap.nc"
    if path.exists():
        return jaxpnp.load(path)
    base = cm.mpnp_run(runs, 1.0, cm.HALF_PERIOD_DEBYE, 6)
    t0 = time.perf_counter()
    with jaxpnp.float64():
        ds = jaxpnp.simulate(jaxpnp.Electrolyte(), cm.electrode(6), cm.protocol(1.0, cm.HALF_PERIOD_DEBYE),
                             grid_nm=cm.GRID_NM, boundary="reservoir", points_per_cycle=200, progress=False,
                             snapshot_times_s=np.asarray(base["time"]))
    ds.attrs["wall_s"] = time.perf_counter() - t0
    ds.to_netcdf(path, engine="h5netcdf")
    return ds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="/work/runs/cache")
    ap.add_argument("--equilibrium", default="/work/runs/cache/salt1v_equilibrium_n6_c1.nc")
    ap.add_argument("--out", default="benchmarks/results/coion_diagnosis.json")
    args = ap.parse_args()
    ds = snapshot_run(Path(args.runs))
    eq = xr.load_dataset(args.equilibrium)
    g = build_grid(cm.electrode(6), cm.GRID_NM)
    h = cm.GRID_NM * 1e-9
    w = g.volume * h * h / ((g.ny - 1) * h)  # m per node, per projected area
    R, n = g.region, g.n_regions
    a3 = float(ds.attrs["ion_diameter_nm"]) ** 3 * 1e-27 * NA
    vt = float(ds.attrs["thermal_voltage_V"])
    cp, cn = ds["c_plus"].values * 1e3, ds["c_minus"].values * 1e3
    mask = g.ion_node & np.isfinite(cp[0])
    cp, cn = np.where(mask, cp, 0.0), np.where(mask, cn, 0.0)
    cells = [(R == k) & mask for k in range(n)]
    Np = np.stack([np.sum(cp * w * c, (1, 2)) for c in cells], 1)
    Nn = np.stack([np.sum(cn * w * c, (1, 2)) for c in cells], 1)
    V = np.array([np.sum(w * c) for c in cells])
    t, phi = ds["time"].values, ds["electrode_potential"].values
    q = F * (Nn - Np)
    cap = V / a3
    qe, Ne = -eq["slit_charge"].values, eq["slit_ion_content"].values
    pe = 0.5 * (Ne - qe / F)
    out = dict(run=str(Path(args.runs) / "coion_mpnp_v1_hp1000_n6_snap.nc"), region_volume_nm=(V * 1e9).tolist(),
               packed_capacity_umol_m2=(cap * 1e6).tolist(), slits={})
    vertex = int(np.argmax(phi))
    for k in range(1, n):
        i = int(np.argmax(q[:, k]))
        p_eq = float(np.interp(q[i, k], qe[:, k], pe[:, k]))
        out["slits"][k] = dict(
            max_charge=float(q[i, k]), at_t_over_T=float(t[i] / t[-1]), cations_umol=float(Np[i, k] * 1e6),
            equilibrium_cations_at_that_charge_umol=p_eq * 1e6, fill=float((Np[i, k] + Nn[i, k]) / cap[k]),
            packed_bound=float(F * (cap[k] - 2 * Np[i, k])), equilibrium_charge_at_phi_max=float(qe[-1, k]),
            cations_at_vertex_umol=float(Np[vertex, k] * 1e6),
            equilibrium_cations_at_vertex_charge_umol=float(np.interp(q[vertex, k], qe[:, k], pe[:, k]) * 1e6))
    # electrochemical potentials: region means weighted by each species
    f = a3 * (cp + cn)
    with np.errstate(all="ignore"):
        lf = np.log(np.where(mask, 1 - f, 1.0)) - np.log(1 - a3 * 2e3)
        pip = ds["potential"].values + vt * (np.log(np.where(mask, cp, 1.0) / 1e3) - lf)
        pin = -ds["potential"].values + vt * (np.log(np.where(mask, cn, 1.0) / 1e3) - lf)
    PIp = np.stack([np.sum(pip * cp * w * c, (1, 2)) / np.sum(cp * w * c, (1, 2)) for c in cells], 1)
    PIn = np.stack([np.sum(pin * cn * w * c, (1, 2)) / np.sum(cn * w * c, (1, 2)) for c in cells], 1)
    um_mpnp, up_mpnp = phi[:, None] + PIn, phi[:, None] - PIp
    model = circuits.from_mpnp(cm.mpnp_run(Path(args.runs), 1.0, cm.HALF_PERIOD_DEBYE, 6), kind="salt", equilibrium=[eq], **cm.NEUTRAL)
    model = dataclasses.replace(model, coions="dynamic")
    with jaxpnp.float64():
        pots = [tuple(np.asarray(a) for a in model.ion_potentials(q[i], Np[i, 1:])) for i in range(len(t))]
        U = np.stack([np.asarray(model.node_voltage(q[i])) for i in range(len(t))])
    um_law, up_law = np.stack([p[0] for p in pots]), np.stack([p[1] for p in pots])
    out["ion_potentials_V"] = dict(
        max_abs_anion_law_minus_mpnp=float(np.max(np.abs(um_law - um_mpnp)[:, 1:])),
        max_abs_cation_law_minus_mpnp=float(np.max(np.abs(up_law - up_mpnp)[:, 1:])),
        max_abs_U_eq_minus_mpnp_anion=float(np.max(np.abs(U - um_mpnp)[:, 1:])))
    # species link currents from the regions' balances (deepest first)
    dNp, dNn = np.gradient(Np, t, axis=0), np.gradient(Nn, t, axis=0)
    Ip = np.stack([-F * np.sum(dNp[:, i + 1:], 1) for i in range(n - 1)], 1)
    In = np.stack([F * np.sum(dNn[:, i + 1:], 1) for i in range(n - 1)], 1)
    sel = np.arange(30, 150)
    links = {}
    cpn, cnn = Np / V, Nn / V
    for i in range(1, n - 1):
        dm, dp = (um_mpnp[:, i] - um_mpnp[:, i + 1])[sel], (up_mpnp[:, i] - up_mpnp[:, i + 1])[sel]
        ok = (np.abs(dm) > 2e-3) & (np.abs(dp) > 2e-3)
        ratio = (Ip[sel, i] / dp) / (In[sel, i] / dm)
        s = cpn / (cpn + cnn)
        shares = dict(min=np.minimum(s[:, i], s[:, i + 1])[sel],
                      mean=((cpn[:, i] + cpn[:, i + 1]) / (cpn[:, i] + cpn[:, i + 1] + cnn[:, i] + cnn[:, i + 1]))[sel])
        share = ratio / (1 + ratio)  # measured cation share of the link's conductance
        links[i] = {k: float(np.exp(np.median(np.log(share[ok] / v[ok])))) for k, v in shares.items()}
    out["link_cation_share_measured_over_rule_median"] = links
    # the separator's total-ion flux: balance vs diffusion
    x = ds["x"].values * 1e-9
    ct = (ds["c_plus"] + ds["c_minus"]).mean("y").values * 1e3
    Jres = np.gradient(ds["total_salt"].values, t)
    dct = np.gradient(ct, t, axis=0)
    hx = x[1] - x[0]
    sep = {}
    for i in (48, 72, vertex, 120):
        Jbal = Jres[i] - np.cumsum(dct[i] * hx) + 0.5 * dct[i] * hx
        Jdiff = -float(ds.attrs["diffusivity_m2_s"]) * np.gradient(-np.log(1 - a3 * ct[i]) / a3, x)
        pick = [int(np.argmin(np.abs(x - xx * 1e-9))) for xx in (1.125, 4.125, 6.125, 7.125, 8.125)]
        sep[f"{t[i] / t[-1]:.3f}"] = dict(x_nm=[float(x[j] * 1e9) for j in pick],
                                          balance_mol_m2_s=[float(Jbal[j]) for j in pick],
                                          diffusive_mol_m2_s=[float(Jdiff[j]) for j in pick],
                                          current_over_F=float(ds["current_density"].values[i] / F))
    out["separator_total_ion_flux"] = sep
    res = Path(args.out)
    res.parent.mkdir(parents=True, exist_ok=True)
    res.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=1))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
        tt = t / t[-1]
        with jaxpnp.float64():
            for label, change in (("SaltLadder (as extracted)", dict(coions="equilibrium")), ("coions dynamic", dict(coions="dynamic"))):
                sol = circuits.solve(dataclasses.replace(model, **change), cm.cv_of(ds), times=t)
                ax[0].plot(tt, np.asarray(sol.current_density), label=label)
                if change["coions"] == "dynamic":
                    ax[1].plot(tt, np.asarray(sol.cation_content)[:, 1:] * 1e6, "--")
        ax[0].plot(tt, ds["current_density"].values, "k", label="mPNP")
        ax[0].set(xlabel="t / T", ylabel="I (A/m^2)", title="1 V, 6 sheets, hp1000")
        ax[0].legend()
        ax[1].plot(tt, Np[:, 1:] * 1e6, "k")
        ax[1].set(xlabel="t / T", ylabel="slit cations (umol/m^2)", title="co-ions: mPNP (black), model (dashed)")
        ax[2].plot(tt, (U - um_mpnp)[:, 1:], ":")
        ax[2].plot(tt, (um_law - um_mpnp)[:, 1:], "-")
        ax[2].set(xlabel="t / T", ylabel="V", title="anion potential - mPNP: U_eq(q) (dotted), co-ion law (solid)")
        fig.tight_layout()
        fig.savefig(res.with_suffix(".png"), dpi=90)
    except ImportError:
        pass


if __name__ == "__main__":
    main()
