"""The reproduction's figures (matplotlib, Agg; PNG)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import circuits  # noqa: E402
import jaxpnp  # noqa: E402

FLUX_COLOURS = {"migration": "tab:blue", "diffusion": "tab:red", "steric": "tab:purple"}


def _period(ds):
    return jaxpnp.protocol_from_attrs(ds.attrs).period


def _save(fig, path):
    fig.savefig(path, dpi=120)
    plt.close(fig)


def flux_split(runs, path):
    """Figure 1c/f: flux parts / max|I_m| over the cycle; open space (paper case) and inner links per d."""
    ds_list = sorted(runs.items())
    fig, axes = plt.subplots(2, 1 + len(ds_list), figsize=(4 * (1 + len(ds_list)), 6),
                             constrained_layout=True, sharex=True, gridspec_kw=dict(height_ratios=[3, 1]))
    d0, ds0 = ds_list[0]
    t = np.asarray(ds0["time"]) / _period(ds0)
    imax = np.max(np.abs(np.asarray(ds0["current_density"])))
    ax = axes[0, 0]
    for k, c in FLUX_COLOURS.items():
        ax.plot(t, np.asarray(ds0[f"surface_flux_{k}"]) / imax, color=c, label=k)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_title(f"open space (d = {d0:g} nm run)")
    ax.set_ylabel("net-ion current / max $I_m$")
    ax.legend(frameon=False, fontsize=8)
    for j, (d, ds) in enumerate(ds_list, start=1):
        t = np.asarray(ds["time"]) / _period(ds)
        imax = np.max(np.abs(np.asarray(ds["current_density"])))
        links = list(range(1, int(ds.sizes["slit"]) - 1))
        ax = axes[0, j]
        for k, c in FLUX_COLOURS.items():
            v = np.asarray(ds[f"flux_{k}"].sel(slit=links).sum("slit")) if links else np.zeros_like(t)
            ax.plot(t, v / imax, color=c, label=k)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"nanoslits, d = {d:g} nm (links {links[0]}..{links[-1]} summed)" if links else f"d = {d:g} nm")
    for j in range(1 + len(ds_list)):
        ds = ds0 if j == 0 else ds_list[j - 1][1]
        t = np.asarray(ds["time"]) / _period(ds)
        phi = np.asarray(ds["electrode_potential"])
        ax = axes[1, j]
        ax.plot(t, phi, "k")
        half = t <= 0.5
        ax.fill_between(t, 0, phi.max(), where=half, color="tab:blue", alpha=0.15)
        ax.fill_between(t, 0, phi.max(), where=~half, color="gold", alpha=0.2)
        ax.set_xlabel("time (cycles)")
        ax.set_ylabel(r"$\phi_m$ (V)")
    _save(fig, path)


def potential_profiles(runs, path):
    """Figure 1d/g: potential along x (depth) at the snapshots, through the slits' mid-line and
    through the sheet gap; plus the 2D potential at the vertex (paper case, Figure 3a style)."""
    ds_list = [(d, ds) for d, ds in sorted(runs.items()) if "potential" in ds]
    if not ds_list:
        raise RuntimeError("no snapshots in the mPNP runs")
    fig, axes = plt.subplots(1, len(ds_list) + 1, figsize=(4.2 * (len(ds_list) + 1), 3.6), constrained_layout=True)
    for ax, (d, ds) in zip(axes, ds_list):
        pot = np.asarray(ds["potential"])
        x = np.asarray(ds["x"])
        j = pot.shape[2] // 2
        for k, ts in enumerate(np.asarray(ds["snapshot_time"])):
            ax.plot(x, pot[k, :, j] * 1e3, label=f"t = {ts / _period(ds):.2f} T")
        ax.set_xlabel("x, depth from mid-plane (nm)")
        ax.set_ylabel("potential (mV)")
        ax.set_title(f"d = {d:g} nm, along x at y = {float(ds['y'][j]):.1f} nm")
        ax.legend(frameon=False, fontsize=7)
    d, ds = ds_list[0]
    k = int(np.argmin(np.abs(np.asarray(ds["snapshot_time"]) - 0.5 * _period(ds))))
    ax = axes[-1]
    mesh = ax.pcolormesh(np.asarray(ds["x"]), np.asarray(ds["y"]), np.asarray(ds["potential"])[k].T * 1e3,
                         shading="auto", cmap="viridis")
    fig.colorbar(mesh, ax=ax, label="mV")
    ax.set_title(f"d = {d:g} nm at the vertex")
    ax.set_xlabel("x (nm)")
    ax.set_ylabel("y (nm)")
    _save(fig, path)


def discovery_figures(runs, results, figdir):
    """Figure 2a (law vs data, I and dphi vs t), 2b (R(t) over the cycle), 2c (R max/min vs d);
    ``results``: {slit_nm: steps.Discovery}, the paper case first."""
    d0 = next(iter(results))
    res, summ = results[d0].result, results[d0]
    prep = res.prepared
    links = [int(i) for i in prep["link"].values if int(i) >= 1]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    ax = axes[0]
    for i in links:
        p = prep.sel(link=i)
        t = (np.asarray(p["cycle_time"]) - float(p["cycle_time"][0])) * 1e9
        ax.plot(t, np.asarray(p["cycle_current"]) / np.max(np.abs(np.asarray(p["cycle_current"]))), label=f"I_{i}")
        ax.plot(t, np.asarray(p["cycle_voltage"]) / np.max(np.abs(np.asarray(p["cycle_voltage"]))), "--")
    ax.set_xlabel("time (ns)")
    ax.set_ylabel("normalised (solid I_i, dashed voltage drop)")
    ax.set_title(f"trans-slit I and voltage, d = {d0:g} nm")
    ax.legend(frameon=False, fontsize=7)
    ax = axes[1]
    for i in links:
        p = prep.sel(link=i)
        x, a = np.asarray(p["charge"]), np.asarray(p["voltage_integral"])
        ax.plot(x, a, "s", ms=2, alpha=0.5)
        law = res.links[i].law
        xs = np.linspace(0, 1, 100)
        with np.errstate(all="ignore"):
            ax.plot(xs, np.asarray(law.predict(xs[:, None]), float) * np.ones_like(xs), "-", lw=1,
                    label=f"link {i}")
    ax.set_xlabel(r"$\int I\,dt$ / max")
    ax.set_ylabel(r"$\int \Delta\phi\,dt$ / max")
    ax.set_title("discovered laws (lines) vs mPNP (squares)")
    ax.legend(frameon=False, fontsize=7)
    ax = axes[2]
    for i in links:
        L = summ.links[i]
        ax.text(0.02, 0.95 - 0.12 * (i - 1), f"{i}: {L['expression'][:60]}", transform=ax.transAxes, fontsize=6)
    ax.axis("off")
    ax.set_title("laws (a = F(q))")
    _save(fig, figdir / "fig2a_discovery.png")

    # 2b: R(t) over the cycle, for the run closest to d = 2 nm
    d2 = min(results, key=lambda d: abs(d - 2.0))
    res2, summ2 = results[d2].result, results[d2]
    fig, ax = plt.subplots(figsize=(5.5, 3.8), constrained_layout=True)
    prep2 = res2.prepared
    for i in [int(v) for v in prep2["link"].values if int(v) >= 1]:
        r = res2.resistance.sel(link=i)
        t = (np.asarray(r["cycle_time"]) - float(r["cycle_time"][0])) / _period(runs[d2])
        ch = np.asarray(r["charging"])
        ax.plot(t[ch], np.asarray(r)[ch], label=f"law, link {i}")
        L = summ2.links[i]
        qc = np.asarray(prep2.sel(link=i)["cycle_charge"])
        ax.plot(t, L["R_c"] * (1 - L["gamma"] * qc), ":", color=ax.lines[-1].get_color())
    ax2 = ax.twinx()
    qe = -np.asarray(runs[d2]["slit_charge"]).sum(1)
    tt = np.asarray(runs[d2]["time"]) / _period(runs[d2])
    ax2.plot(tt, qe / qe.max(), "--", color="grey")
    ax2.set_ylabel("net ions in slits / max (dashed)")
    ax.set_xlabel("time (cycles)")
    ax.set_ylabel(r"$R_c + R_d$ ($\Omega$ m$^2$)")
    ax.set_title(f"R(t), d = {d2:g} nm (solid: discovered, charging; dotted: paper form)", fontsize=8)
    ax.legend(frameon=False, fontsize=6)
    _save(fig, figdir / "fig2b_resistance.png")

    fig, ax = plt.subplots(figsize=(4.5, 3.6), constrained_layout=True)
    ds_ = sorted(results)
    ax.plot(ds_, [results[d].R_max for d in ds_], "v", color="tab:blue", label="R max")
    ax.plot(ds_, [results[d].R_min for d in ds_], "^", color="tab:orange", label="R min")
    ax.set_xlabel("slit size d (nm)")
    ax.set_ylabel(r"R ($\Omega$ m$^2$), mean over inner links")
    ax.set_yscale("log")
    ax.legend(frameon=False)
    _save(fig, figdir / "fig2c_resistance_vs_d.png")


def ncm_vs_mpnp(mpnp, sims, path):
    fig, ax = plt.subplots(figsize=(5, 3.8), constrained_layout=True)
    ax.plot(np.asarray(mpnp["cell_voltage"]), np.asarray(mpnp["current_density"]), "k-", lw=2, label="mPNP")
    for (label, sim), style in zip(sims.items(), ["--", ":", "-.", (0, (1, 1))]):
        ax.plot(np.asarray(sim["cell_voltage"]), np.asarray(sim["current_density"]), ls=style, label=label)
    ax.set_xlabel("cell voltage $V_m$ (V)")
    ax.set_ylabel("current density (A m$^{-2}$)")
    ax.set_title(f"{int(mpnp.attrs['n_sheets'])} layers, d = {mpnp.attrs['slit_nm']:g} nm")
    ax.legend(frameon=False, fontsize=7)
    _save(fig, path)


def fit_figure(mpnp, sim, res, path):
    """The fitted NCM's CV beside the mPNP's, and the fit's loss history (``res.loss_history``)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
    axes[0].plot(np.asarray(mpnp["cell_voltage"]), np.asarray(mpnp["current_density"]), "k-", lw=2, label="mPNP")
    axes[0].plot(np.asarray(sim["cell_voltage"]), np.asarray(sim["current_density"]), "--", label="NCM fitted")
    axes[0].set_xlabel("cell voltage (V)")
    axes[0].set_ylabel("current density (A m$^{-2}$)")
    axes[0].legend(frameon=False, fontsize=8)
    axes[1].semilogy(np.asarray(res.loss_history))
    axes[1].set_xlabel("iteration (Adam, then the last: Levenberg-Marquardt)")
    axes[1].set_ylabel("normalised MSE")
    _save(fig, path)


def ncm_vs_tlm(a, b, asym_n, asym_t, figdir):
    fig, ax = plt.subplots(figsize=(5, 3.8), constrained_layout=True)
    circuits.plot.cv([a, b], labels=["NCM", "TLM (gamma = 0)"], styles=["-", "--"], ax=ax)
    ax.set_title(f"{a.attrs['n_slits'] + 1} layers, two cycles")
    _save(fig, figdir / "fig3d_ncm_vs_tlm.png")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    vmax = max(float(np.max(np.abs(a["slit_charge"]))), float(np.max(np.abs(b["slit_charge"]))))
    for ax, ds, name in zip(axes, (a, b), ("NCM", "TLM")):
        circuits.plot.slit_charge(ds.assign(slit_charge=ds["slit_charge"] / vmax), ax=ax, normalise=False)
        ax.set_title(f"{name}: charge per node / common max")
    _save(fig, figdir / "fig3ef_slit_charge.png")
    fig, ax = plt.subplots(figsize=(5, 3.6), constrained_layout=True)
    for j, r in enumerate(np.asarray(asym_n["scan_rate"])):
        ax.plot(np.asarray(asym_n["n_slits"]) + 1, np.asarray(asym_n["asymmetry"])[:, j], "o-", label=f"NCM {r:.3g} V/s")
        ax.plot(np.asarray(asym_t["n_slits"]) + 1, np.asarray(asym_t["asymmetry"])[:, j], "x--", label=f"TLM {r:.3g} V/s")
    ax.set_xlabel("layers")
    ax.set_ylabel("CV asymmetry")
    ax.legend(frameon=False, fontsize=7)
    _save(fig, figdir / "figS12_asymmetry.png")


def peak_map(pm, path):
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    circuits.plot.peak_map(pm, ax=axes[0])
    circuits.plot.peak_map(pm, ax=axes[1], variable="peak_ratio")
    _save(fig, path)


def impedance_nyquist(freqs, spectra, R_open, split_Hz, path):
    """Small-signal impedance at 0 V: Nyquist plot (left) and |Z| against frequency (right).

    ``spectra``: {label: complex Z (ohm m^2)}; ``R_open`` (ohm m^2) marked on both panels.
    """
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for k, (label, z) in enumerate(spectra.items()):
        ls = "--" if k == 2 else "-"  # the TLM lies on the NCM at 0 V: dashed, both visible
        ax.plot(z.real, -z.imag, marker=".", ls=ls, ms=3, label=label)
        bx.loglog(freqs, np.abs(z), ls=ls, label=label)
    re_max = max(float(np.max(z.real)) for z in spectra.values())
    lim = 3.0 * max(re_max, R_open, 1e-30)  # the high-frequency arcs; the capacitive tail leaves the frame
    ax.axvline(R_open, color="k", lw=0.5, ls=":")
    ax.set_xlim(0, lim)
    ax.set_ylim(0, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("Re Z (ohm m$^2$)")
    ax.set_ylabel("-Im Z (ohm m$^2$)")
    ax.set_title("Nyquist, half cell, 0 V (dotted: R_open)")
    ax.legend(frameon=False, fontsize=8)
    bx.axhline(R_open, color="k", lw=0.5, ls=":")
    bx.axvline(split_Hz, color="grey", lw=0.5, ls="--")
    bx.set_xlabel("frequency (Hz)")
    bx.set_ylabel("|Z| (ohm m$^2$)")
    bx.legend(frameon=False, fontsize=8)
    _save(fig, path)
