"""Findings (paper claim -> this run, reproduced or not) and ``REPORT.md``."""

from __future__ import annotations

import math

SAME_SIGN_ALWAYS = 0.95  # "during the entire CV cycle": >= 95% of the significant samples
NCM_TARGET = 0.05
FIT_TARGET = 0.10


def _g(d, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d or d[k] is None:
            return default
        d = d[k]
    return d


def _finding(paper, ours, reproduced, numbers, note=""):
    return dict(paper=paper, ours=ours, reproduced=reproduced, numbers=numbers, note=note)


def findings(S, config) -> dict:
    R = S["results"]
    F = {}
    d0 = f"{config.paper_slit_nm:g}"
    fx = R.get("fluxes") or {}

    os_ = _g(fx, d0, "open_space")
    if os_:
        f = os_["migration_diffusion_same_sign_fraction"]
        F["open_space_destructive"] = _finding(
            "open space: migration opposite to diffusion (and steric) during the entire CV (Fig. 1c)",
            f"migration and diffusion have the same sign in {100 * f:.0f}% of the significant samples "
            f"(correlation {os_['migration_diffusion_correlation']:+.2f})",
            bool(f <= 1 - SAME_SIGN_ALWAYS), os_)
    sl = {d: _g(v, "slits") for d, v in fx.items() if _g(v, "slits")}
    if sl:
        fr = {d: v["migration_diffusion_same_sign_fraction"] for d, v in sl.items()}
        F["slits_constructive"] = _finding(
            "nanoslits: migration and diffusion of net ions aligned during the entire CV, for all d (Fig. 1f, S4)",
            "same-sign fraction per d: " + ", ".join(f"d={d} nm: {100 * v:.0f}%" for d, v in fr.items()),
            bool(all(v >= SAME_SIGN_ALWAYS for v in fr.values())), sl)
        st = {float(d): v["migration_steric_correlation"] for d, v in sl.items()}
        small = [c for d, c in st.items() if d < 2.0]
        large = [c for d, c in st.items() if d > 2.0]
        ok = bool(small and large and all(c > 0 for c in small) and all(c < 0 for c in large))
        F["steric_direction_vs_d"] = _finding(
            "steric flux along migration for d < 2 nm, against it in larger slits",
            "steric-migration correlation per d: " + ", ".join(f"d={d:g}: {c:+.2f}" for d, c in sorted(st.items())),
            ok if (small and large) else None, st,
            "" if (small and large) else "needs runs on both sides of 2 nm")

    disc = R.get("discovery") or {}
    if d0 in disc:
        dd = disc[d0]
        links = dd["links"]
        inner = dd["inner_links"]
        ratios = [links[i]["R_max_charging"] / links[i]["R_min_charging"] for i in inner
                  if links[i]["R_min_charging"] > 0]
        F["nonlinear_iv"] = _finding(
            "trans-slit I-V is nonlinear: not a constant resistance (Fig. 2a, S8)",
            "R_max/R_min of the discovered law on the charging half-cycle per inner link: "
            + ", ".join(f"{r:.2f}" for r in ratios),
            bool(ratios and min(ratios) > 1.2), dict(ratios=ratios))
        n_paper = dd["paper_form_links"]
        gam = [links[i]["gamma"] for i in inner]
        F["paper_law"] = _finding(
            "the EA finds R = R_c (1 - gamma Q/Q^max), 0 <= gamma <= 1 (eqs. 1-3)",
            f"{n_paper}/{len(inner)} inner links' discovered laws have the paper's form; laws: "
            + "; ".join(f"link {i}: {links[i]['expression'][:80]}" for i in inner)
            + f". Paper-form projection: gamma per link {', '.join(f'{g:.2f}' for g in gam)}, "
            "projection R^2 " + ", ".join(format(links[i]["projection_r2"], ".4f") for i in inner),
            bool(n_paper == len(inner) and all(0 <= g <= 1 for g in gam)),
            dict(paper_form_links=n_paper, inner_links=len(inner), gamma=gam))
        tmax = [links[i]["t_R_max_fraction"] for i in inner]
        tmin = [links[i]["t_R_min_fraction"] for i in inner]
        F["R_extrema_timing"] = _finding(
            "R(t) is largest at the start of charging and smallest at the start of discharging (Fig. 2b)",
            "argmax/argmin of the discovered R on the charging half-cycle (fraction of the half-cycle): "
            + ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(tmax, tmin)),
            bool(all(a <= 0.1 for a in tmax) and all(b >= 0.9 for b in tmin)), dict(t_max=tmax, t_min=tmin))
    if len(disc) >= 2:
        ds_ = sorted(disc, key=float)
        rmax = [disc[d]["R_max"] for d in ds_]
        rmin = [disc[d]["R_min"] for d in ds_]
        flat = max(rmax) / min(rmax) if min(rmax) > 0 else math.inf
        rising = all(b > a for a, b in zip(rmin, rmin[1:]))
        F["R_vs_d"] = _finding(
            "R max nearly constant with d; R min increases with d (Fig. 2c)",
            "d: " + ", ".join(ds_) + "; R_max: " + ", ".join(f"{v:.3g}" for v in rmax)
            + "; R_min: " + ", ".join(f"{v:.3g}" for v in rmin) + " ohm m^2",
            bool(flat < 1.5 and rising), dict(d=ds_, R_max=rmax, R_min=rmin, R_max_spread=flat),
            "'nearly constant' taken as max/min of R_max < 1.5")

    ncm = R.get("ncm")
    if ncm:
        F["ncm_matches_mpnp"] = _finding(
            "NCM CV agrees well with mPNP, 6 layers, d = 1.5 nm (Fig. 3c)",
            f"NRMSE {100 * ncm['nrmse']:.1f}% (RMS diff / RMS mPNP current) with every element extracted from the data"
            + ("" if ncm.get("nrmse_midslit_laws") is None else
               f"; {100 * ncm['nrmse_midslit_laws']:.1f}% with the mid-slit laws and ohmic R_open")
            + ("" if ncm.get("nrmse_linear") is None else f"; the paper's NCM {100 * ncm['nrmse_linear']:.1f}%")
            + ("" if ncm["nrmse_calibrated"] is None else
               f"; {100 * ncm['nrmse_calibrated']:.1f}% with C and R_open calibrated on the CV"),
            bool(ncm["nrmse"] <= NCM_TARGET),
            dict(nrmse=ncm["nrmse"], nrmse_of_peak=ncm["nrmse_of_peak"], nrmse_calibrated=ncm["nrmse_calibrated"],
                 nrmse_midslit_laws=ncm.get("nrmse_midslit_laws"), nrmse_linear=ncm.get("nrmse_linear")),
            f"target <= {100 * NCM_TARGET:.0f}%")
    fit = R.get("fit")
    disc_s = S.get("discovered")
    if fit and disc_s:
        ok = abs(fit["rel_diff_R_c"]) <= FIT_TARGET and abs(fit["diff_gamma"]) <= FIT_TARGET * max(abs(disc_s["gamma"]), 0.1)
        F["fit_matches_discovery"] = _finding(
            "(project target) optax fit of R_c, gamma to the mPNP CV agrees with the discovered values within 10%",
            f"fitted R_c = {fit['R_c']:.4g} vs discovered {disc_s['R_c']:.4g} ohm m^2 ({100 * fit['rel_diff_R_c']:+.0f}%); "
            f"fitted gamma = {fit['gamma']:.3f} vs discovered {disc_s['gamma']:.3f}; fit NRMSE {100 * fit['nrmse']:.1f}%",
            bool(ok), dict(fitted=dict(R_c=fit["R_c"], gamma=fit["gamma"]), discovered=disc_s))
    tlm = R.get("tlm")
    if tlm:
        import numpy as np

        an, at = np.asarray(tlm["asymmetry_ncm"]), np.asarray(tlm["asymmetry_tlm"])
        grows = bool(an.shape[0] < 2 or np.all(np.diff(an, axis=0) >= 0))
        grows_rate = bool(an.shape[1] < 2 or np.all(np.diff(an, axis=1) >= 0))
        F["ncm_asymmetry"] = _finding(
            "NCM CV is charge/discharge asymmetric, TLM is not; the asymmetry grows with layers and scan rate (Fig. 3d, S12-13)",
            f"asymmetry NCM {an.round(3).tolist()} vs TLM {at.round(3).tolist()} "
            f"(rows layers {tlm['asymmetry_layers']}, columns scan rates {[f'{r:.3g}' for r in tlm['asymmetry_scan_rates_V_s']]}); "
            f"grows with layers: {grows}, with rate: {grows_rate}",
            bool(np.all(an > 3 * np.maximum(at, 1e-3)) and grows and grows_rate),
            dict(ncm=an.tolist(), tlm=at.tolist(), gamma=tlm["gamma"]))
        F["ncm_more_ions_in_slits"] = _finding(
            "NCM stores more ions inside the slits than the TLM, larger CV area (Fig. 3d-f, S14)",
            f"time-mean slit charge NCM {tlm['slit_charge_time_mean_ncm']:.4g} vs TLM {tlm['slit_charge_time_mean_tlm']:.4g} C/m^2; "
            f"deep half max NCM {tlm['deep_slit_charge_max_ncm']:.4g} vs TLM {tlm['deep_slit_charge_max_tlm']:.4g}; "
            f"CV area NCM {tlm['cv_area_ncm']:.4g} vs TLM {tlm['cv_area_tlm']:.4g}",
            bool(tlm["slit_charge_time_mean_ncm"] > tlm["slit_charge_time_mean_tlm"] and tlm["cv_area_ncm"] > tlm["cv_area_tlm"]),
            {k: tlm[k] for k in ("slit_charge_time_mean_ncm", "slit_charge_time_mean_tlm", "cv_area_ncm", "cv_area_tlm")})
    pm = R.get("peak_map")
    if pm:
        hi = pm["peak_ratio_high_gamma_high_Rc"]
        F["current_peak"] = _finding(
            "a CV current peak (peak/vertex current > 1) appears when gamma and R_c are large (Fig. 3g)",
            f"peak ratio at (gamma=1, R_c max) {hi:.3f}; (gamma=0, R_c min) {pm['peak_ratio_low_gamma_low_Rc']:.3f}; "
            f"(gamma=0, R_c max) {pm['peak_ratio_gamma0_high_Rc']:.3f}; (gamma=1, R_c min) {pm['peak_ratio_high_gamma_low_Rc']:.3f}",
            bool(hi > 1.0 and hi >= max(pm["peak_ratio_low_gamma_low_Rc"], pm["peak_ratio_gamma0_high_Rc"])),
            {k: v for k, v in pm.items() if k.startswith("peak_ratio_")})
    sp = R.get("speed")
    if sp:
        F["ncm_fast"] = _finding(
            "NCM takes seconds where mPNP takes weeks (20 layers, laptop)",
            f"same 6-layer CV: mPNP {sp['mpnp_s']:.1f} s, the paper's NCM {1e3 * sp['ncm_s']:.1f} ms (compiled): "
            f"ratio {sp['ratio']:.3g}; the extracted NCM (tabulated capacitors, per-link laws) "
            f"{1e3 * sp.get('extracted_ncm_s', float('nan')):.1f} ms: ratio {sp.get('ratio_extracted', float('nan')):.3g}",
            bool(sp["ratio"] > 100), sp, "our mPNP is coarse-grid and 2D; the ratio grows with refinement")
    return F


def _num(x, fmt=".4g"):
    if x is None:
        return "n/a"
    try:
        return format(float(x), fmt)
    except (TypeError, ValueError):
        return str(x)


def write_report(S, config, path):
    R = S["results"]
    L = []
    w = L.append
    w(f"# Reproduction report: Zhan et al., nano-circuitry from mPNP ({config.name} run)\n")
    mp = R.get("mpnp") or {}
    w("## Set-up\n")
    w(f"- mPNP: 1 M KCl-like electrolyte (defaults of `jaxpnp.Electrolyte` plus {config.electrolyte or 'no overrides'}), "
      f"{config.n_sheets} sheets, staggered, sheet {config.sheet_length_nm} nm, gap {config.sheet_gap_nm} nm, "
      f"thickness {config.sheet_thickness_nm} nm, separator {config.separator_nm} nm; slit sizes {list(config.slits_nm)} nm "
      f"(paper case {config.paper_slit_nm} nm); grid {config.grid_nm} nm.")
    w(f"- CV of the cell voltage 0 -> {config.v_max} V -> 0, one cycle, scan rate {_num(mp.get('scan_rate_V_s'))} V/s "
      f"(a sweep of {config.half_period_debye:g} Debye times: our choice, fast enough that charging is rate-limited; "
      "the paper gives no rate).")
    w(f"- Discovery engine: {config.engine} {config.discovery_options}; laws per link `int U dt = F(int I dt)` on normalised "
      "integrals of the charging half-cycle (`discovery.trans_slit_law`).")
    if config.equilibrium_half_period_debye:
        w(f"- NCM elements from the mPNP data (the headline NCM): each node's capacitor is its equilibrium charge curve "
          f"q_k^eq(phi_m), from a companion sweep {config.equilibrium_half_period_debye / config.half_period_debye:g}x "
          "slower (`circuits.TabulatedCapacitor`); inverting it on the run's own charges gives each node's circuit "
          "potential V_k = phi_m - (q_k^eq)^-1(q_k) (0 V at equilibrium, unlike the mid-slit potential). Every element's "
          "law is then found on V: each link's by the discovery engine (`potential=\"node_potential\"`, paper-form "
          "projection R_c, gamma per link), the open-space branch's by least squares of the same form "
          "(R_open, gamma_open over the electrode charge; `NCM(gamma_open=...)`). Q_i^max per link = the discovery's "
          "charge scale. Beside it: the same capacitors with the mid-slit laws (the paper's trans-slit voltage) and the "
          "separator's ohmic R_open, and the paper's NCM (linear chord capacitors, one R_c and gamma).")
    else:
        w("- NCM elements from the same mPNP run: C per node = max stored electrode-side charge / max phi_m (chord "
          "capacitance); R_open by least squares of I = (phi_m - q_0/C_open)/R_open on the charging half-cycle; R_c and "
          "gamma = mean over inner links of the discovered law (or of its paper-form projection when the law found is "
          "not of the paper's form); Q_i^max per link = the discovery's charge scale.")
    w("")
    w("## Findings: paper vs this run\n")
    w("| # | paper | this run | reproduced |")
    w("|---|---|---|---|")
    for k, (name, f) in enumerate(S.get("findings", {}).items(), start=1):
        rep = {True: "yes", False: "**NO**", None: "n/a"}[f["reproduced"]]
        note = f" ({f['note']})" if f.get("note") else ""
        w(f"| {k} | {f['paper']} | {f['ours']}{note} | {rep} |")
    w("")
    w("## Key numbers\n")
    disc, fit = S.get("discovered"), S.get("fitted")
    w(f"- NCM vs mPNP normalised RMS current difference: **{_num(S.get('ncm_vs_mpnp_nrmse'), '.3f')}** (target <= 0.05)")
    if R.get("ncm"):
        c = R["ncm"]["circuit"]
        w(f"  - extracted: C_open = {_num(c['C_open'])} F/m^2, C_slit = {[float(f'{v:.4g}') for v in c['C_slit']]} F/m^2, "
          f"R_open = {_num(c['R_open'])} ohm m^2 ({c.get('R_open_source', 'least squares')}), Q^max per link = {[float(f'{v:.4g}') for v in c['q_max']]} C/m^2")
        if "gamma_open" in c:
            w(f"  - open-space law: R_open = {_num(c['R_open'])} ohm m^2 x (1 - gamma_open Q_e/Q_e^max), gamma_open = "
              f"{_num(c['gamma_open'], '.3g')} (a resistance that rises {1 - c['gamma_open']:.3g}x over the charging "
              f"half-cycle: salt depletion of the open space), Q_e^max = {_num(c['q_max_open'])} C/m^2, "
              f"integral-form R^2 {_num(c.get('open_law_r2'), '.5f')}")
        if R["ncm"].get("node_links"):
            w("  - link laws on the node potentials (paper-form projection per link): " + "; ".join(
                f"link {i}: R_c {_num(l['R_c'])}, gamma {_num(l['gamma'], '.3f')} (projection R^2 "
                f"{_num(l['projection_r2'], '.4f')})" for i, l in R["ncm"]["node_links"].items()))
        if R["ncm"].get("nrmse_midslit_laws") is not None:
            w(f"  - the same capacitors with the mid-slit laws and the separator's ohmic R_open: NRMSE "
              f"{_num(R['ncm']['nrmse_midslit_laws'], '.3f')}")
        w(f"  - capacitors: {c.get('capacitor', 'linear (chord over the swing)')}"
          + (" (C = chord of each node's equilibrium curve at the vertex)" if "capacitor_shape_V" in c else ""))
        if R["ncm"].get("nrmse_linear") is not None:
            w(f"  - the paper's NCM (linear chord capacitors, one R_c and gamma: the inner-link mean): NRMSE {_num(R['ncm']['nrmse_linear'], '.3f')}")
        if R["ncm"]["nrmse_calibrated"] is not None:
            w(f"  - with C and R_open calibrated on the CV (R_c, gamma kept): NRMSE {_num(R['ncm']['nrmse_calibrated'], '.3f')}; "
              f"calibrated values {R['ncm']['calibrated_params']}")
    if disc:
        w(f"- discovered (paper case, mean of inner links): R_c = {_num(disc['R_c'])} ohm m^2, gamma = {_num(disc['gamma'], '.3f')} "
          f"({disc['paper_form_links']}/{len(disc['inner_links'])} links' laws of the paper's form"
          f"{'; values from the paper-form projection' if disc['projected'] else ''})")
    dn = S.get("discovered_node_potential")
    if dn:
        w(f"- discovered on the circuit node potentials (the laws the headline NCM uses, mean of inner links): "
          f"R_c = {_num(dn['R_c'])} ohm m^2, gamma = {_num(dn['gamma'], '.3f')}")
    if fit:
        f = R["fit"]
        w(f"- fitted (optax + LM through the NCM, start R_c = {_num(f['start']['R_c'])}, gamma = 0.5): R_c = {_num(fit['R_c'])} "
          f"ohm m^2, gamma = {_num(fit['gamma'], '.3f')}; relative difference in R_c {_num(100 * f['rel_diff_R_c'], '+.1f')}%, "
          f"gamma difference {_num(f['diff_gamma'], '+.3f')}; fit NRMSE {_num(f['nrmse'], '.3f')}; fit time {_num(f['fit_time_s'], '.1f')} s")
        if abs(f["rel_diff_R_c"]) > FIT_TARGET or abs(f["diff_gamma"]) > FIT_TARGET * max(abs(disc["gamma"]), 0.1):
            w("  - **The fit and the discovery disagree by more than 10%.** They answer different questions: the "
              "discovery regresses each link's own voltage-current integrals (a local law), the fit tunes one R_c and "
              "gamma so that the whole ladder (with the extracted capacitors) reproduces the terminal current. Whatever the "
              "NCM lacks (concentration polarisation of the open space, the slits' equilibrium potential offset, "
              "with linear capacitors also the crowding-limited capacitance at 0.5 V = 19 kT/e) is absorbed into the "
              "fitted R_c and gamma.")
    if R.get("discovery"):
        w("\n### Laws per run (inner links)\n")
        for d, dd in R["discovery"].items():
            w(f"- d = {d} nm: R_max {_num(dd['R_max'])}, R_min {_num(dd['R_min'])} ohm m^2 (discovered law, charging "
              f"half-cycle, mean over inner links); R_c {_num(dd['R_c'])}, gamma {_num(dd['gamma'], '.3f')}")
            for i, l in dd["links"].items():
                w(f"  - link {i}{' (open space)' if l['open_space'] else ''}: `{l['expression']}` "
                  f"[R^2 {_num(l['r2'], '.6f')}, form {l['form']}, paper-form projection R_c {_num(l['R_c_projected'])}, "
                  f"gamma {_num(l['gamma_projected'], '.3f')}, projection R^2 {_num(l['projection_r2'], '.5f')}]")
    w("\n## Timings (s)\n")
    for k, v in S.get("timings_s", {}).items():
        w(f"- {k}: {_num(v, '.1f')}")
    errs = {k: v for k, v in S.get("errors", {}).items() if v}
    w("\n## Failed steps\n")
    if errs:
        for k, v in errs.items():
            w(f"- **{k}**: {v}")
    else:
        w("- none")
    w("\n## Figures\n")
    for name in ("fig1cf_flux_split", "fig1dg_potential", "fig2a_discovery", "fig2b_resistance",
                 "fig2c_resistance_vs_d", "fig3c_ncm_vs_mpnp", "fit_route", "fig3d_ncm_vs_tlm", "fig3ef_slit_charge",
                 "figS12_asymmetry", "fig3g_peak_map"):
        w(f"![{name}](figures/{name}.png)")
    w("\n## Caveats\n")
    w(f"- The grid, the scan rate and the geometry (Supporting Information unavailable) are our choices; this run "
      f"uses a {config.grid_nm:g} nm grid (Debye length 0.30 nm; {config.paper_slit_nm / config.grid_nm:.0f} cells "
      f"across the {config.paper_slit_nm:g} nm slit).")
    w("- 'During the entire cycle' is tested as >= 95% of the samples where both flux parts exceed 2% of their maximum.")
    with open(path, "w") as fh:
        fh.write("\n".join(L) + "\n")
