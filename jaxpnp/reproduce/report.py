"""Findings (paper claim -> this run, reproduced or not) per regime, and ``REPORT.md``.

Every number in the text comes from the config or the results (the electrolyte's
concentration and Debye length, the regime's voltage in kT/e, ...).
"""

from __future__ import annotations

import math

import numpy as np

from .config import electrolyte_for

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


def headline(S, config) -> dict:
    """The regime's headline numbers from its step results: NCM NRMSE, discovered and fitted laws."""
    R = S["results"]
    d0 = f"{config.paper_slit_nm:g}"
    out = {}
    disc0 = (R.get("discovery") or {}).get(d0)
    if disc0:
        out["discovered"] = dict(R_c=disc0["R_c"], gamma=disc0["gamma"], units={"R_c": "ohm m^2"},
                                 paper_form_links=disc0["paper_form_links"], inner_links=disc0["inner_links"],
                                 projected=disc0["projected"])
    if R.get("ncm"):
        out["ncm_vs_mpnp_nrmse"] = R["ncm"]["nrmse"]
        node = {i: v for i, v in (R["ncm"].get("node_links") or {}).items() if int(i) >= 1}
        if node:  # the headline NCM's own link laws (node potentials), inner-link mean
            out["discovered_node_potential"] = dict(R_c=float(np.mean([v["R_c"] for v in node.values()])),
                                                    gamma=float(np.mean([v["gamma"] for v in node.values()])),
                                                    units={"R_c": "ohm m^2"})
    if R.get("rates"):  # the same NCM, not refitted, on the slower runs: {slow-down k: NRMSE}
        out["ncm_vs_mpnp_nrmse_slower"] = {k: v["nrmse"] for k, v in R["rates"].items()}
    if R.get("salt") and R["salt"]["available"]:
        out["salt_ncm_vs_mpnp_nrmse"] = R["salt"]["nrmse"]
    if R.get("fit"):
        out["fitted"] = dict(R_c=R["fit"]["R_c"], gamma=R["fit"]["gamma"], units={"R_c": "ohm m^2"},
                             data=R["fit"].get("data"), links=R["fit"].get("links"))
    return out


def _resolution(idf) -> list:
    """[R_c factor, gamma factor] resolutions of an identifiability summary."""
    return [v["resolution"] for v in idf["parameters"].values()][:2]


def _run_name(k) -> str:
    return "reproduce-rate" if float(k) == 1.0 else f"{float(k):g}x slower"


def _fit_data(fit) -> str:
    """Which runs and links the fit used, in words."""
    ks = fit.get("data") or [1.0]
    runs = "the reproduce-rate CV" if len(ks) == 1 else "the reproduce-rate CV jointly with the " + ", ".join(
        f"{k:g}x slower" for k in ks[1:]) + " one"
    held = "inner links scaled, link 0 held as extracted" if fit.get("links") == "inner" else "every link scaled"
    return f"{runs}; {held}"


def _fit_differences(fit) -> tuple:
    """(relative R_c difference, gamma difference) of the fit against the discovered inner-link mean."""
    return (fit["R_c"] - fit["discovered_R_c"]) / fit["discovered_R_c"], fit["gamma"] - fit["discovered_gamma"]


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
        links = {int(k): v for k, v in dd["links"].items()}
        inner = [int(i) for i in dd["inner_links"]]
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
    rates = R.get("rates")
    if rates:
        F["ncm_predicts_slower_rates"] = _finding(
            "(project target) the NCM extracted at the reproduce rate predicts the mPNP CV at slower rates, "
            "not refitted",
            "NRMSE " + ", ".join(f"{100 * v['nrmse']:.1f}% at {k}x slower" for k, v in rates.items()),
            bool(all(v["nrmse"] <= NCM_TARGET for v in rates.values())), rates, f"target <= {100 * NCM_TARGET:.0f}%")
    salt = R.get("salt")
    if salt and salt["available"]:
        F["salt_ncm_matches_mpnp"] = _finding(
            "(project target) the salt-aware NCM as extracted reproduces the mPNP CV",
            f"NRMSE {100 * salt['nrmse']:.1f}%", bool(salt["nrmse"] <= NCM_TARGET), dict(nrmse=salt["nrmse"]),
            f"target <= {100 * NCM_TARGET:.0f}%")
    fit = R.get("fit")
    disc_s = S.get("discovered")
    if fit and disc_s:
        rel_R_c, d_gamma = _fit_differences(fit)
        ok = abs(rel_R_c) <= FIT_TARGET and abs(d_gamma) <= FIT_TARGET * max(abs(fit["discovered_gamma"]), 0.1)
        own = dict(R_c=fit["discovered_R_c"], gamma=fit["discovered_gamma"])
        idf = (fit.get("identifiability") or {}).get("discovered")
        res = _resolution(idf) if idf else None
        per_run = (fit.get("identifiability") or {}).get("discovered_per_run") or {}
        F["fit_matches_discovery"] = _finding(
            "(project target) circuits.fit of R_c, gamma to the mPNP CV agrees with the discovered values within 10%",
            f"fitted R_c = {fit['R_c']:.4g} vs discovered {own['R_c']:.4g} ohm m^2 ({100 * rel_R_c:+.0f}%); "
            f"fitted gamma = {fit['gamma']:.3f} vs discovered {own['gamma']:.3f} (one factor each on the NCM's own "
            f"discovered link laws, inner-link mean); fit to {_fit_data(fit)}; fit NRMSE {100 * fit['nrmse']:.1f}%",
            bool(ok), dict(fitted=dict(R_c=fit["R_c"], gamma=fit["gamma"]), discovered=own, mid_slit_discovered=disc_s,
                           resolution=res, data=fit.get("data"), links=fit.get("links"),
                           resolution_per_run={k: _resolution(v) for k, v in per_run.items()}),
            ("" if not res else f"the fitted CVs pin R_c to {100 * res[0]:.0f}% and gamma to {100 * res[1]:.0f}% "
             "against the model's own misfit")
            + "".join(f"; the {_run_name(k)} run alone: {100 * r[0]:.0f}% / {100 * r[1]:.0f}%"
                      for k, r in ((k, _resolution(v)) for k, v in per_run.items())))
    tlm = R.get("tlm")
    if tlm:
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
            f"same {config.n_sheets}-layer CV: mPNP {sp['mpnp_s']:.1f} s, the paper's NCM {1e3 * sp['ncm_s']:.1f} ms (compiled): "
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


def _setup(config, w):
    el = electrolyte_for(config)
    w("## Set-up\n")
    w(f"- mPNP: {float(el.concentration_M):g} M symmetric electrolyte (`jaxpnp.Electrolyte`"
      f"{', ' + str(config.electrolyte) if config.electrolyte else ' defaults'}: ion diameter "
      f"{float(el.ion_diameter_nm):g} nm, D = {float(el.diffusivity_m2_s):.3g} m^2/s; Debye length "
      f"{1e9 * float(el.debye_length_m):.3g} nm, Debye time {1e12 * float(el.debye_time_s):.3g} ps, kT/e = "
      f"{1e3 * float(el.thermal_voltage_V):.4g} mV), {config.n_sheets} sheets, staggered, sheet {config.sheet_length_nm} nm, "
      f"gap {config.sheet_gap_nm} nm, thickness {config.sheet_thickness_nm} nm, separator {config.separator_nm} nm; "
      f"grid {config.grid_nm} nm; open space held at bulk ({config.boundary}).")
    w(f"- Regimes (CV of the cell voltage 0 -> v_max -> 0, one cycle, each sweep {config.half_period_debye:g} Debye "
      "times: our choice, fast enough that charging is rate-limited; the paper gives no rate): "
      + "; ".join(f"{r.name}: v_max {r.v_max:g} V (electrode {0.5 * r.v_max / float(el.thermal_voltage_V):.1f} kT/e), "
                  f"slits {list(config.slits_for(r))} nm" for r in config.regimes) + ".")
    w(f"- Discovery engine: {config.engine} {config.discovery_options}; laws per link `int U dt = F(int I dt)` on "
      "normalised integrals of the charging half-cycle (`discovery.trans_slit_law`).")
    if config.equilibrium_points:
        w(f"- NCM elements (`circuits.extract`, nothing fitted to the CV): each node's capacitor is its equilibrium "
          f"charge curve q_k^eq(phi_m) from `jaxpnp.equilibrium` ({config.equilibrium_points} potentials, same grid) as a "
          "`circuits.TabulatedCapacitor`; inverting it on the run's own charges gives each node's circuit potential "
          "V_k = phi_m - (q_k^eq)^-1(q_k) (0 V at equilibrium, unlike the mid-slit potential). Every element's law is "
          "found on V: each link's by the discovery engine (paper-form values per link), the open-space branch's by "
          "least squares of the same form (R_open, gamma_open). Q_i^max per link = the discovery's charge scale. "
          "Beside it: the same capacitors with the mid-slit laws and the separator's ohmic R_open, and the paper's "
          "NCM (linear chord capacitors, one R_c and gamma).")
    else:
        w("- NCM elements from the same mPNP run: chord capacitors, least-squares R_open on the charging half-cycle, "
          "per-link R_c and gamma of the discovered laws (paper-form projection where needed).")
    w("")


def _regime_section(name, S, config, w):
    R = S["results"]
    el = electrolyte_for(config)
    v_max = S["regime"]["v_max"]
    w(f"## Regime {name}: 0 -> {v_max:g} V\n")
    w("### Findings: paper vs this run\n")
    w("| # | paper | this run | reproduced |")
    w("|---|---|---|---|")
    for k, (key, f) in enumerate(S.get("findings", {}).items(), start=1):
        rep = {True: "yes", False: "**NO**", None: "n/a"}[f["reproduced"]]
        note = f" ({f['note']})" if f.get("note") else ""
        w(f"| {k} | {f['paper']} | {f['ours']}{note} | {rep} |")
    w("")
    w("### Key numbers\n")
    disc, fit = S.get("discovered"), S.get("fitted")
    w(f"- NCM vs mPNP normalised RMS current difference: **{_num(S.get('ncm_vs_mpnp_nrmse'), '.3f')}** "
      f"(target <= {NCM_TARGET})")
    if S.get("salt_ncm_vs_mpnp_nrmse") is not None:
        w(f"- salt-aware NCM vs mPNP: **{_num(S['salt_ncm_vs_mpnp_nrmse'], '.3f')}**")
    elif R.get("salt"):
        w(f"- salt-aware NCM: {R['salt']['note']}")
    ncm = R.get("ncm")
    if ncm:
        c = ncm["circuit"]
        w(f"  - headline: {ncm['headline']}; C_open = {_num(c['C_open'])} F/m^2, C_slit = "
          f"{[float(f'{v:.4g}') for v in c['C_slit']]} F/m^2 ({c['capacitor']}), R_open = {_num(c['R_open'])} ohm m^2 "
          f"({c['R_open_source']}), Q^max per link = {[float(f'{v:.4g}') for v in c['q_max']]} C/m^2")
        if c.get("gamma_open") is not None:
            w(f"  - open-space law: R_open (1 - gamma_open Q_e/Q_e^max), gamma_open = {_num(c['gamma_open'], '.3g')} "
              f"(the resistance changes {1 - c['gamma_open']:.3g}x over the charging half-cycle), Q_e^max = "
              f"{_num(c['q_max_open'])} C/m^2, integral-form R^2 {_num(c.get('open_law_r2'), '.5f')}")
        if ncm.get("node_links"):
            w("  - link laws on the node potentials (paper-form values per link): " + "; ".join(
                f"link {i}: R_c {_num(v['R_c'])}, gamma {_num(v['gamma'], '.3f')} (projection R^2 "
                f"{_num(v['projection_r2'], '.4f')})" for i, v in ncm["node_links"].items()))
        if ncm.get("nrmse_midslit_laws") is not None:
            w(f"  - the same capacitors with the mid-slit laws and the separator's ohmic R_open: NRMSE "
              f"{_num(ncm['nrmse_midslit_laws'], '.3f')}")
        w(f"  - the paper's NCM (linear chord capacitors, one R_c and gamma: the inner-link mean): NRMSE "
          f"{_num(ncm['nrmse_linear'], '.3f')}")
        if ncm["nrmse_calibrated"] is not None:
            w(f"  - with C and R_open calibrated on the CV (R_c, gamma kept): NRMSE {_num(ncm['nrmse_calibrated'], '.3f')}; "
              f"calibrated values {ncm['calibrated_params']}")
    if S.get("ncm_vs_mpnp_nrmse_slower"):
        w("- the same NCM, not refitted, predicting the slower runs: " + "; ".join(
            f"{k}x slower ({_num(v['half_period_debye'], '.0f')} Debye times per sweep): NRMSE **{_num(v['nrmse'], '.3f')}**"
            for k, v in R["rates"].items()) + f" (target <= {NCM_TARGET})")
    if disc:
        w(f"- discovered (paper case, mean of inner links): R_c = {_num(disc['R_c'])} ohm m^2, gamma = "
          f"{_num(disc['gamma'], '.3f')} ({disc['paper_form_links']}/{len(disc['inner_links'])} links' laws of the "
          f"paper's form{'; values from the paper-form projection' if disc['projected'] else ''})")
    dn = S.get("discovered_node_potential")
    if dn:
        w(f"- discovered on the circuit node potentials (the headline NCM's laws, mean of inner links): "
          f"R_c = {_num(dn['R_c'])} ohm m^2, gamma = {_num(dn['gamma'], '.3f')}")
    if fit and disc:
        f = R["fit"]
        rel_R_c, d_gamma = _fit_differences(f)
        opt = f.get("optimizer") or {}
        w(f"- fitted (`circuits.fit`, {opt.get('adam_steps', 0)} Adam + at most {opt.get('lm_steps', '?')} "
          f"Levenberg-Marquardt steps{', restarted ' + str(opt['restarts']) + 'x' if opt.get('restarts') else ''} "
          f"through the NCM, of "
          f"one R_c factor and one gamma factor on the discovered per-link laws, `circuits.scaled_laws`, to "
          f"{_fit_data(f)}; start R_c = {_num(f['start']['R_c'])} (measured U/I), "
          f"gamma = 0): factors {_num(f.get('scale'), '.3f')}, {_num(f.get('gamma_scale'), '.3f')} (discovery: 1, 1), "
          f"i.e. inner-link mean R_c = {_num(fit['R_c'])} ohm m^2, gamma = {_num(fit['gamma'], '.3f')}; against the "
          f"discovered links (inner mean R_c = {_num(f['discovered_R_c'])}, gamma = {_num(f['discovered_gamma'], '.3f')}): "
          f"relative difference in R_c {_num(100 * rel_R_c, '+.1f')}%, gamma difference {_num(d_gamma, '+.3f')}; fit NRMSE "
          f"{_num(f['nrmse'], '.3f')} on the reproduce-rate run"
          + "".join(f", {_num(v, '.3f')} on the {_run_name(k)}" for k, v in (f.get("nrmse_per_run") or {}).items()
                    if float(k) != 1.0)
          + f" (RMS at the discovered values: {_num(f.get('nrmse_discovered'), '.3f')}); fit time "
          f"{_num(f['fit_time_s'], '.1f')} s")
        idf = (f.get("identifiability") or {}).get("discovered")
        if idf:
            (ns, ps), (ng, pg) = list(idf["parameters"].items())[:2]
            w(f"  - identifiability at the discovered values (`circuits.identifiability`): a "
              f"{100 * idf['rel_step']:.0f}% change of the R_c factor alone moves the current by NRMSE "
              f"{_num(ps['current_change'], '.4f')}, of the gamma factor by {_num(pg['current_change'], '.4f')}, against "
              f"the model's own misfit {_num(idf['nrmse_total'], '.4f')}: a structural error of that size can move a fit "
              f"by {_num(100 * ps['resolution'], '.0f')}% in R_c and {_num(100 * pg['resolution'], '.0f')}% in gamma "
              f"(Gauss-Newton step from the discovery: {_num(ps['gauss_newton_step'], '+.3f')}, "
              f"{_num(pg['gauss_newton_step'], '+.3f')}; correlation {_num(idf['correlation'][0][1], '.2f')})")
        for k, one in ((f.get("identifiability") or {}).get("discovered_per_run") or {}).items():
            r = _resolution(one)
            w(f"  - the {_run_name(k)} run alone would pin the R_c factor to {_num(100 * r[0], '.0f')}% and the gamma factor to "
              f"{_num(100 * r[1], '.0f')}% (its own misfit {_num(one['nrmse_total'], '.4f')})")
        if abs(rel_R_c) > FIT_TARGET or abs(d_gamma) > FIT_TARGET * max(abs(f["discovered_gamma"]), 0.1):
            w("  - **The fit and the discovery disagree by more than 10%.** They answer different questions: the "
              "discovery regresses each link's own voltage-current integrals (a local law), the fit tunes the laws "
              "so that the whole ladder reproduces the terminal current, and whatever the NCM lacks is absorbed into "
              "the fitted values; where the resolution above exceeds 10%, the CV cannot pin that parameter to 10% "
              "against the model's own structural error.")
    imp = R.get("impedance")
    if imp:
        c, rn, rt = imp["low_frequency_capacitance"], imp["rel_diff"]["ncm"], imp["rel_diff"]["tlm"]
        split = f"{imp['split_Hz'] / 1e9:g} GHz"
        w(f"- small-signal impedance at 0 V ({imp['frequencies']} frequencies, {imp['frequency_range_Hz'][0]:.3g}-"
          f"{imp['frequency_range_Hz'][1]:.3g} Hz; `jaxpnp.impedance` beside `circuits.impedance` of the extracted NCM "
          f"and its TLM, nothing fitted): low-frequency capacitance mPNP {_num(c['mpnp'])}, NCM {_num(c['ncm'])}, TLM "
          f"{_num(c['tlm'])} F/m^2; |Z_NCM/Z_mPNP - 1| max {_num(rn['max_below'], '.2g')} (median "
          f"{_num(rn['median_below'], '.2g')}) below {split}, max {_num(rn['max_above'], '.2g')} above (TLM "
          f"{_num(rt['max_below'], '.2g')} / {_num(rt['max_above'], '.2g')}); above a few GHz the circuits tend to "
          f"R_open = {_num(imp['R_open'])} ohm m^2 while the mPNP turns capacitive again: the separator's bulk dielectric "
          f"relaxation (Debye time {1e12 * imp['debye_time_s']:.3g} ps), which no ladder element holds (figure "
          "impedance_nyquist)")
    if R.get("discovery"):
        w("\n#### Laws per run (inner links)\n")
        for d, dd in R["discovery"].items():
            w(f"- d = {d} nm: R_max {_num(dd['R_max'])}, R_min {_num(dd['R_min'])} ohm m^2 (discovered law, charging "
              f"half-cycle, mean over inner links); R_c {_num(dd['R_c'])}, gamma {_num(dd['gamma'], '.3f')}")
            for i, v in dd["links"].items():
                w(f"  - link {i}{' (open space)' if v['open_space'] else ''}: `{v['expression']}` "
                  f"[R^2 {_num(v['r2'], '.6f')}, form {v['form']}, paper-form projection R_c {_num(v['R_c_projected'])}, "
                  f"gamma {_num(v['gamma_projected'], '.3f')}, projection R^2 {_num(v['projection_r2'], '.5f')}]")
    w("\n### Timings (s)\n")
    for k, v in S.get("timings_s", {}).items():
        w(f"- {k}: {_num(v, '.1f')}")
    w("\n### Figures\n")
    for fig in ("fig1cf_flux_split", "fig1dg_potential", "fig2a_discovery", "fig2b_resistance",
                "fig2c_resistance_vs_d", "fig3c_ncm_vs_mpnp", "fit_route", "fig3d_ncm_vs_tlm", "fig3ef_slit_charge",
                "figS12_asymmetry", "fig3g_peak_map"):
        w(f"![{fig}]({name}/figures/{fig}.png)")
    if imp:
        w(f"![impedance_nyquist]({name}/figures/impedance_nyquist.png)")
    w("")


def write_report(S, config, path):
    L = []
    w = L.append
    w(f"# Reproduction report: Zhan et al., nano-circuitry from mPNP ({config.name} run)\n")
    _setup(config, w)
    for name, regime_summary in S.get("regimes", {}).items():
        _regime_section(name, regime_summary, config, w)
    w("## Failed steps\n")
    errs = {k: v for k, v in S.get("errors", {}).items() if v}
    for k, v in errs.items():
        w(f"- **{k}**: {v}")
    if not errs:
        w("- none")
    el = electrolyte_for(config)
    w("\n## Caveats\n")
    w(f"- The grid, the scan rate and the geometry (Supporting Information unavailable) are our choices; this run "
      f"uses a {config.grid_nm:g} nm grid (Debye length {1e9 * float(el.debye_length_m):.2f} nm; "
      f"{config.paper_slit_nm / config.grid_nm:.0f} cells across the {config.paper_slit_nm:g} nm slit).")
    w(f"- 'During the entire cycle' is tested as >= {100 * SAME_SIGN_ALWAYS:.0f}% of the samples where both flux parts "
      "exceed 2% of their maximum.")
    with open(path, "w") as fh:
        fh.write("\n".join(L) + "\n")
