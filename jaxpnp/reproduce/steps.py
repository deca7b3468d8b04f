"""The steps of the reproduction, each a function with typed inputs and a dataclass output.

The science is in the libraries (``jaxpnp``, ``discovery``, ``circuits``); a step calls
them, writes its figures and data files, and returns what later steps and the report
need. ``summary(result)`` turns any step result into plain JSON-able numbers (fields
marked ``_OBJECT`` stay out: models, Datasets).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

import circuits
import discovery
import jaxpnp

from . import figures
from .config import Regime, ReproduceConfig, electrode_for, electrolyte_for, protocol_for

_OBJECT = dict(summary=False)  # dataclass field metadata: not part of summary.json


def summary(result) -> Any:
    """Plain Python (JSON-able) view of a step result: dataclasses without their object fields."""
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return {f.name: summary(getattr(result, f.name)) for f in dataclasses.fields(result)
                if f.metadata.get("summary", True)}
    if isinstance(result, dict):  # float keys (slit sizes) as 1.5, 3 (not 3.0)
        return {(f"{k:g}" if isinstance(k, float) else str(k)): summary(v) for k, v in result.items()}
    if isinstance(result, (list, tuple)):
        return [summary(v) for v in result]
    if isinstance(result, (np.bool_, bool)):
        return bool(result)
    if isinstance(result, np.integer):
        return int(result)
    if isinstance(result, (float, np.floating)):
        return float(result) if math.isfinite(float(result)) else None
    if isinstance(result, np.ndarray):
        return summary(result.tolist())
    return result


def _log(msg, progress):
    if progress:
        print(f"[reproduce] {msg}", flush=True)


def _reuse(path: Path):
    """A complete run saved at ``path`` (``attrs['solver_complete'] == 1``), else None."""
    if not path.exists():
        return None
    try:
        ds = jaxpnp.load(path)
        return ds if int(ds.attrs.get("solver_complete", 0)) == 1 else None
    except Exception:  # noqa: BLE001 - a broken file is recomputed
        return None


# ---------------------------------------------------------------------------
# mPNP runs and equilibrium states


@dataclasses.dataclass
class MpnpRuns:
    runs: dict = dataclasses.field(metadata=_OBJECT)  # {slit_nm: Dataset}, complete runs only
    info: dict  # {slit_nm: path, reused, wall_s, run_time_s}
    failed: dict  # {slit_nm: error}
    scan_rate_V_s: float
    half_period_debye: float
    paper: Any = dataclasses.field(default=None, metadata=_OBJECT)  # the paper case's run (first slit size)


def _run_or_reuse(config: ReproduceConfig, d: float, cv: jaxpnp.CV, path: Path, label: str,
                  progress: bool) -> tuple:
    """(Dataset, info) of one mPNP CV of slit ``d`` nm, reused from ``path`` when complete."""
    ds = _reuse(path)
    if ds is not None:
        _log(f"{label}: mPNP reused from {path}", progress)
        return ds, dict(path=str(path), reused=True, run_time_s=float(ds.attrs.get("solver_run_time_s", math.nan)))
    _log(f"{label}: mPNP, grid {config.grid_nm} nm, {cv.scan_rate_V_s:.3g} V/s", progress)
    t0 = time.perf_counter()
    ds = jaxpnp.simulate(electrolyte_for(config), electrode_for(config, d), cv, grid_nm=config.grid_nm,
                         boundary=config.boundary, points_per_cycle=config.points_per_cycle,
                         snapshot_times_s=[f * cv.period for f in config.snapshot_fractions],
                         progress=progress, checkpoint_path=str(path))
    return ds, dict(path=str(path), reused=False, wall_s=time.perf_counter() - t0,
                    run_time_s=float(ds.attrs.get("solver_run_time_s", math.nan)))


def mpnp_runs(config: ReproduceConfig, regime: Regime, datadir: Path, progress: bool) -> MpnpRuns:
    """One mPNP CV per slit size of the regime (``data/{regime}/mpnp_d{d}nm.nc``, reused when complete)."""
    cv = protocol_for(config, regime)
    runs, info, failed = {}, {}, {}
    for d in config.slits_for(regime):
        try:
            ds, info[float(d)] = _run_or_reuse(config, d, cv, datadir / f"mpnp_d{d:g}nm.nc",
                                               f"{regime.name}: d = {d:g} nm", progress)
        except Exception as err:  # noqa: BLE001 - report and go on with the other sizes
            failed[f"{d:g}"] = f"{type(err).__name__}: {' '.join(str(err).split())}"
            continue
        runs[float(d)] = ds
    return MpnpRuns(runs=runs, info={f"{k:g}": v for k, v in info.items()}, failed=failed,
                    scan_rate_V_s=cv.scan_rate_V_s, half_period_debye=config.half_period_debye,
                    paper=runs.get(float(config.slits_for(regime)[0])))


@dataclasses.dataclass
class SlowerRuns:
    """The paper case at the regime's ``slower_scans`` (k: 1/k the scan rate, k times the half-period)."""

    runs: dict = dataclasses.field(metadata=_OBJECT)  # {k: Dataset}
    info: dict  # {k: path, reused, wall_s, run_time_s, scan_rate_V_s, half_period_debye}
    protocols: dict = dataclasses.field(metadata=_OBJECT)  # {k: jaxpnp.CV}


def slower_runs(config: ReproduceConfig, regime: Regime, datadir: Path, progress: bool) -> SlowerRuns:
    """The paper-case mPNP CV at each of ``regime.slower_scans`` (``data/mpnp_d{d}nm_slower{k}.nc``, reused)."""
    d = config.paper_slit_nm
    runs, info, prots = {}, {}, {}
    for k in regime.slower_scans:
        k = float(k)
        cv = protocol_for(config, regime, rate_factor=1.0 / k)
        ds, rec = _run_or_reuse(config, d, cv, datadir / f"mpnp_d{d:g}nm_slower{k:g}.nc",
                                f"{regime.name}: d = {d:g} nm, {k:g}x slower", progress)
        runs[k], prots[k] = ds, cv
        info[k] = dict(rec, scan_rate_V_s=cv.scan_rate_V_s, half_period_debye=k * config.half_period_debye)
    return SlowerRuns(runs=runs, info=info, protocols=prots)


def equilibrium_states(config: ReproduceConfig, regime: Regime, datadir: Path, progress: bool) -> xr.Dataset:
    """``jaxpnp.equilibrium`` of the paper case on the run's grid, 0..v_max/2 (``data/{regime}/equilibrium.nc``)."""
    path = datadir / f"equilibrium_d{config.paper_slit_nm:g}nm.nc"
    potentials = np.linspace(0.0, 0.5 * regime.v_max, config.equilibrium_points)
    if path.exists():  # reused when it is the same request
        ds = jaxpnp.load(path)
        if ds.sizes["potential"] == potentials.size and np.allclose(np.asarray(ds["potential"]), potentials) \
                and float(ds.attrs.get("grid_nm", -1)) == float(config.grid_nm):
            return ds
    ds = jaxpnp.equilibrium(electrolyte_for(config), electrode_for(config, config.paper_slit_nm), potentials,
                            grid_nm=config.grid_nm, boundary=config.boundary, progress=progress)
    ds.to_netcdf(path, engine="h5netcdf")
    return ds


# ---------------------------------------------------------------------------
# Figure 1: flux split


def fluxes(runs: MpnpRuns, figdir: Path) -> dict:
    """{d: jaxpnp.flux_relations} and Figures 1c/f, 1d/g."""
    out = {f"{d:g}": jaxpnp.flux_relations(ds) for d, ds in sorted(runs.runs.items())}
    figures.flux_split(runs.runs, figdir / "fig1cf_flux_split.png")
    figures.potential_profiles(runs.runs, figdir / "fig1dg_potential.png")
    return out


# ---------------------------------------------------------------------------
# Figure 2: discovery


@dataclasses.dataclass
class Discovery:
    result: Any = dataclasses.field(metadata=_OBJECT)  # discovery.TransSlitResult (slits="all")
    links: dict  # {link: expression, engine, r2, form, paper_form, R_c, gamma, projected, R(t) extrema, ...}
    inner_links: list
    R_c: float  # inner-link means (ohm m^2), the paper's NCM
    gamma: float
    R_max: float
    R_min: float
    paper_form_links: int
    projected: bool


def _law_summary(result, i) -> dict:
    law = result.all_links()[i]
    R_p, g_p, r2_p = discovery.paper_form_projection(result.prepared, i)
    R_c, gamma, projected = discovery.paper_parameters(result, i)
    r = result.resistance.sel(link=i)
    charging = np.asarray(r["charging"])
    tt = np.asarray(r["cycle_time"]) - float(r["cycle_time"][0])
    t_end = float(result.prepared.attrs["charging_end_s"]) - float(result.prepared.attrs["charging_start_s"])
    rc = np.asarray(r)[charging]
    return dict(expression=str(law.law.expression), engine=str(law.law.engine), r2=law.r2,
                differential_r2=law.differential_r2, form=law.form, paper_form=bool(law.paper_form),
                R_c=R_c, gamma=gamma, projected=projected, R_c_projected=R_p, gamma_projected=g_p,
                projection_r2=r2_p, charge_scale=law.charge_scale, open_space=bool(law.open_space),
                # R(t) of the discovered law on the charging half-cycle (the law's training range)
                R_max_charging=float(np.max(rc)), R_min_charging=float(np.min(rc)),
                t_R_max_fraction=float(tt[charging][np.argmax(rc)] / t_end),
                t_R_min_fraction=float(tt[charging][np.argmin(rc)] / t_end))


def discover(config: ReproduceConfig, ds: xr.Dataset, potential: str = "slit_potential") -> Discovery:
    """``discovery.trans_slit_law`` on every link of one run, with each link's paper-form values."""
    result = discovery.trans_slit_law(ds, engine=config.engine, slits="all", seed=0, potential=potential,
                                      **config.discovery_options)
    links = {i: _law_summary(result, i) for i in result.all_links()}
    inner = [i for i in links if i >= 1]
    mean = lambda k: float(np.mean([links[i][k] for i in inner])) if inner else math.nan  # noqa: E731
    return Discovery(result=result, links=links, inner_links=inner, R_c=mean("R_c"), gamma=mean("gamma"),
                     R_max=mean("R_max_charging"), R_min=mean("R_min_charging"),
                     paper_form_links=int(sum(links[i]["paper_form"] for i in inner)),
                     projected=any(links[i]["projected"] for i in inner))


def discover_all(config: ReproduceConfig, runs: MpnpRuns, datadir: Path, figdir: Path, progress: bool) -> dict:
    """{d: Discovery} for every run, Figures 2a-c, and the R(t) curves in ``data/``."""
    out = {}
    first = config.paper_slit_nm
    for d, ds in sorted(runs.runs.items(), key=lambda kv: (kv[0] != first, kv[0])):  # the paper case first
        _log(f"discovery on d = {d:g} nm ({config.engine})", progress)
        out[d] = discover(config, ds)
        out[d].result.resistance.to_dataset().to_netcdf(datadir / f"resistance_d{d:g}nm.nc", engine="h5netcdf")
    figures.discovery_figures(runs.runs, out, figdir)
    return out


# ---------------------------------------------------------------------------
# Figure 3c: circuits from the mPNP data


@dataclasses.dataclass
class Circuits:
    headline: str  # which model is the headline NCM
    nrmse: float  # headline NCM vs mPNP
    nrmse_of_peak: float  # RMS difference / peak mPNP current
    nrmse_midslit_laws: float | None  # same capacitors, mid-slit laws, ohmic R_open
    nrmse_linear: float  # the paper's NCM: linear C, one R_c and gamma
    nrmse_calibrated: float | None  # headline with C and R_open fitted on the CV
    calibrated_params: dict | None
    circuit: dict  # the headline's elements and where they came from
    node_links: dict | None  # per-link laws on the node potentials
    model: dict  # the headline's parameters
    ncm_first_call_s: float
    ncm_time_s: float
    paper_ncm_time_s: float
    headline_model: Any = dataclasses.field(default=None, metadata=_OBJECT)
    paper_model: Any = dataclasses.field(default=None, metadata=_OBJECT)  # linear, one law: Figures 3d-g
    extraction: Any = dataclasses.field(default=None, metadata=_OBJECT)


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _circuit_record(ex: circuits.Extraction) -> dict:
    m = ex.model
    rec = dict(n_slits=m.n_slits, C_open=float(ex.capacitance[0]), C_slit=ex.capacitance[1:].tolist(),
               C_total=float(np.sum(ex.capacitance)), R_open=float(m.R_open), R_open_source=ex.R_open_source,
               q_max=np.asarray(m.q_max if m.q_max is not None else np.full(m.n_slits, np.nan)).tolist(),
               capacitor=type(m.capacitor_law()).__name__, link_voltage=ex.potential, link_charge=m.charge,
               R_c=ex.link_R_c.tolist(), gamma=ex.link_gamma.tolist(), projected=ex.projected.tolist())
    if ex.open_law is not None:
        rec.update(gamma_open=ex.open_law.gamma_open, q_max_open=ex.open_law.q_max_open, open_law_r2=ex.open_law.r2)
    return rec


def build_circuits(config: ReproduceConfig, regime: Regime, paper: xr.Dataset, equilibrium: xr.Dataset | None,
                   disc: Discovery, datadir: Path, figdir: Path, progress: bool) -> Circuits:
    """The NCMs built from the paper-case run (``circuits.extract``), each against its CV."""
    cv = protocol_for(config, regime)
    times = np.asarray(paper["time"])
    ref = np.asarray(paper["current_density"])
    opts = dict(engine=config.engine, seed=0, discovery_options=config.discovery_options)
    sims, extra = {}, {}
    if equilibrium is not None:
        ex = circuits.extract(paper, equilibrium=equilibrium, potential="node_potential", **opts)
        headline = "NCM: every element's law on the circuit node potentials"
        xr.Dataset({"node_potential": (("time", "slit"), ex.node_potential, dict(units="V"))},
                   coords={"time": paper["time"], "slit": paper["slit"]}).to_netcdf(
            datadir / f"node_potential_d{config.paper_slit_nm:g}nm.nc", engine="h5netcdf")
        mid = circuits.extract(paper, equilibrium=equilibrium, potential="slit_potential", laws=disc.result).model
        sims["NCM: mid-slit laws (paper's trans-slit voltage), ohmic R_open"] = sim_mid = \
            circuits.simulate(mid, cv, times=times)
        extra["nrmse_midslit_laws"] = jaxpnp.nrmse(sim_mid["current_density"], ref)
        extra["node_links"] = {i: {k: v[k] for k in ("expression", "R_c", "gamma", "paper_form", "projection_r2", "r2")}
                               for i, v in ((i, _law_summary(ex.laws, i)) for i in ex.laws.all_links())}
    else:
        ex = circuits.extract(paper, potential="slit_potential", laws=disc.result)
        headline = "NCM: each link's discovered law, chord capacitors"
    model = ex.model
    sim, first = _timed(lambda: circuits.simulate(model, cv, times=times))
    sim, again = _timed(lambda: circuits.simulate(model, cv, times=times))
    sims = {headline: sim, **sims}
    err_cal, cal_params = None, None
    if config.calibrate:  # diagnostic: storage and open-space elements fitted on the CV, R_c and gamma kept
        cal = circuits.fit(model, paper, params=("R_open", "C_open", "C_slit"), protocol=cv, steps=config.fit_steps,
                           polish=config.fit_polish_steps > 0, polish_steps=max(config.fit_polish_steps, 1),
                           progress=progress)
        sims["NCM, C and R_open calibrated"] = sim_cal = circuits.simulate(cal.model, cv, times=times)
        err_cal, cal_params = jaxpnp.nrmse(sim_cal["current_density"], ref), cal.params
    paper_model = circuits.extract(paper, potential="slit_potential", laws=disc.result, per_link=False).model
    circuits.simulate(paper_model, cv, times=times)
    sim_lin, lin_s = _timed(lambda: circuits.simulate(paper_model, cv, times=times))
    sims["paper's NCM (linear C, one R_c and gamma)"] = sim_lin
    sim.to_netcdf(datadir / "ncm_vs_mpnp.nc", engine="h5netcdf")
    figures.ncm_vs_mpnp(paper, sims, figdir / "fig3c_ncm_vs_mpnp.png")
    diff = np.asarray(sim["current_density"]) - ref
    return Circuits(headline=headline, nrmse=jaxpnp.nrmse(sim["current_density"], ref),
                    nrmse_of_peak=float(np.sqrt(np.mean(diff ** 2)) / np.max(np.abs(ref))),
                    nrmse_midslit_laws=extra.get("nrmse_midslit_laws"),
                    nrmse_linear=jaxpnp.nrmse(sim_lin["current_density"], ref), nrmse_calibrated=err_cal,
                    calibrated_params=cal_params, circuit=_circuit_record(ex), node_links=extra.get("node_links"),
                    model=model.parameters(), ncm_first_call_s=first, ncm_time_s=again, paper_ncm_time_s=lin_s,
                    headline_model=model, paper_model=paper_model, extraction=ex)


# ---------------------------------------------------------------------------
# the salt-aware model (circuits.from_mpnp(kind="salt"), filled in by the salt model's module)


@dataclasses.dataclass
class SaltModel:
    available: bool
    nrmse: float | None = None
    note: str = ""
    model: dict | None = None


def salt_model(config: ReproduceConfig, regime: Regime, paper: xr.Dataset, equilibrium: xr.Dataset | None,
               disc: Discovery) -> SaltModel:
    """The salt-aware NCM of the paper-case run against its CV, nothing fitted to it.

    Interface (for the salt model's author): ``circuits.from_mpnp(paper, kind="salt",
    equilibrium=equilibrium, laws=disc.result, engine=..., seed=0, discovery_options=...)``
    must return a ladder ``circuits.simulate`` accepts; until ``"salt"`` is among
    ``circuits.FROM_MPNP_KINDS`` the step reports ``available = False``.
    """
    if "salt" not in circuits.FROM_MPNP_KINDS:
        return SaltModel(available=False, note="circuits.from_mpnp(kind='salt') is not available yet")
    if equilibrium is None:
        return SaltModel(available=False, note="needs equilibrium states (config.equilibrium_points > 0)")
    model = circuits.from_mpnp(paper, kind="salt", equilibrium=equilibrium, laws=disc.result, engine=config.engine,
                               seed=0, discovery_options=config.discovery_options)
    try:
        sim = circuits.simulate(model, protocol_for(config, regime), times=np.asarray(paper["time"]))
    except Exception as err:  # noqa: BLE001 - the model is built; its stiff crowded limit may defeat the solver
        return SaltModel(available=False, note=f"salt model ({type(model).__name__}) solver failed: {type(err).__name__}: "
                         f"{' '.join(str(err).split())[:160]}", model=model.parameters())
    return SaltModel(available=True, nrmse=jaxpnp.nrmse(sim["current_density"], paper["current_density"]),
                     model=model.parameters())


# ---------------------------------------------------------------------------
# the fitting route


@dataclasses.dataclass
class FitRoute:
    """``circuits.fit`` of the headline NCM's discovered per-link laws, scaled by one R_c factor
    ``scale`` and one gamma factor ``gamma_scale`` (``circuits.scaled_laws``; the discovery is
    1, 1) on the links ``links`` (``"inner"``: link 0 held as extracted), to the mPNP CVs at the
    slow-down factors ``data`` (1: the reproduce rate; several: one joint fit), from a neutral
    start. ``R_c``/``gamma`` are the fitted laws' inner-link means (``scale`` / ``gamma_scale``
    times the discovered ones), ``nrmse`` the fit's on the first run, the reproduce-rate one
    (``nrmse_per_run``: each run's), ``identifiability`` holds ``circuits.identifiability`` at the discovered values
    (on the fitted data, and on each run alone) and at the fit."""

    start: dict
    R_c: float
    gamma: float
    stderr: dict
    final_loss: float
    nrmse: float
    fit_time_s: float
    discovered_R_c: float  # inner-link means of the model the fit starts from (its own discovered laws)
    discovered_gamma: float
    mid_slit_discovered_R_c: float = math.nan  # the paper's reading (mid-slit potentials, passed charge), for reference
    mid_slit_discovered_gamma: float = math.nan
    route: str = "law_scale"
    links: str = "inner"
    data: list = dataclasses.field(default_factory=list)  # slow-down factors of the fitted runs
    scale: float = math.nan
    gamma_scale: float = math.nan
    nrmse_discovered: float = math.nan  # RMS over the fitted runs at the discovered values
    nrmse_per_run: dict = dataclasses.field(default_factory=dict)  # {k: NRMSE of the fit on that run}
    identifiability: dict = dataclasses.field(default_factory=dict)
    optimizer: dict = dataclasses.field(default_factory=dict)  # adam_steps, lm_steps (at most), restarts
    fitted_model: Any = dataclasses.field(default=None, metadata=_OBJECT)
    loss_history: list = dataclasses.field(default_factory=list, metadata=_OBJECT)


def _fit_start(disc: Discovery) -> float:
    """R_c guess independent of the discovered law: median measured U/I on the inner links at large current."""
    ratios = []
    for i in disc.inner_links:
        p = disc.result.prepared.sel(link=i)
        u, cur = np.asarray(p["voltage"]), np.asarray(p["current"])
        big = np.abs(cur) > 0.2 * np.max(np.abs(cur))
        ratios.append(np.median(u[big] / cur[big]))
    return float(np.median(ratios)) if ratios and np.median(ratios) > 0 else float(disc.R_c)


MAX_FIT_RESTARTS = 2


def fit_laws(model: circuits.NCM, runs: dict, protocols: dict, start_R_c: float, *, links: str = "inner",
             steps: int = 0, polish_steps: int = 20, progress: bool = False, **solver_options) -> FitRoute:
    """``circuits.fit`` of one R_c and one gamma factor on ``model``'s per-link laws (``links``:
    "inner" holds link 0, "all" scales every link) to ``runs`` ({slow-down k: Dataset}, jointly
    when several; ``protocols`` {k: jaxpnp.CV}), started at inner-link mean R_c ``start_R_c``
    (ohm m^2) and gamma 0; identifiability at the discovered values (jointly and per run) and at the fit.
    ``solver_options`` go to ``circuits.fit`` / ``circuits.identifiability`` (e.g. ``method``)."""
    if links not in ("inner", "all"):
        raise ValueError(f"links must be 'inner' or 'all', got {links!r}")
    if not float(start_R_c) > 0:
        raise ValueError(f"start_R_c must be a positive resistance (ohm m^2), got {start_R_c!r}")
    ks = [float(k) for k in runs]
    if not ks or set(ks) != {float(k) for k in protocols}:
        raise ValueError(f"runs and protocols must name the same slow-down factors, got {sorted(ks)} and "
                         f"{sorted(protocols)}")
    n = model.n_slits
    R_k = np.broadcast_to(np.asarray(model.R_c, dtype=float), (n,))
    g_k = np.broadcast_to(np.asarray(model.gamma, dtype=float), (n,))
    inner = slice(1, None) if n > 1 else slice(None)
    R_in, g_in = float(np.mean(R_k[inner])), float(np.mean(g_k[inner]))
    chosen = range(1, n) if (links == "inner" and n > 1) else None
    data, prots = [runs[k] for k in ks], [protocols[k] for k in ks]
    params = circuits.SCALED_LAW_PARAMS
    with jaxpnp.float64():
        disc_model = circuits.scaled_laws(model, links=chosen)
        at_disc = circuits.identifiability(disc_model, data, params, protocol=prots, **solver_options)
        per_run = {f"{k:g}": circuits.identifiability(disc_model, [d], params, protocol=[p], **solver_options).summary()
                   for k, d, p in zip(ks, data, prots)} if len(ks) > 1 else {}
    start = circuits.scaled_laws(model, scale=start_R_c / R_in, gamma_scale=0.0, links=chosen)
    t0 = time.perf_counter()
    restarts = 0
    while True:
        res = circuits.fit(start, data, params=params, protocol=prots, steps=steps, polish=polish_steps > 0,
                           polish_steps=max(polish_steps, 1), progress=progress, **solver_options)
        # the family holds the discovered point, so a converged fit cannot miss the data by more than it
        # does; on a flat objective LM can stop early (seen on the tiny test cell): restart it where it
        # stopped (fresh damping), never from the discovered values
        worse = float(np.sqrt(np.mean(np.asarray(res.nrmse) ** 2))) > at_disc.nrmse_total + 1e-6
        if not worse or restarts >= MAX_FIT_RESTARTS:
            break
        start, restarts = res.model, restarts + 1
    fit_s = time.perf_counter() - t0
    s, g = float(res.params[params[0]]), float(res.params[params[1]])
    nrmse = dict(zip((f"{k:g}" for k in ks), np.atleast_1d(np.asarray(res.nrmse, dtype=float)).tolist()))
    return FitRoute(start=dict(R_c=start_R_c, gamma=0.0, scale=start_R_c / R_in, gamma_scale=0.0), R_c=s * R_in,
                    gamma=g * g_in, stderr=dict(R_c=float(res.stderr[params[0]]) * R_in,
                                                gamma=float(res.stderr[params[1]]) * g_in,
                                                scale=float(res.stderr[params[0]]), gamma_scale=float(res.stderr[params[1]])),
                    final_loss=res.final_loss, nrmse=nrmse[f"{ks[0]:g}"], fit_time_s=fit_s, discovered_R_c=R_in,
                    discovered_gamma=g_in, route="law_scale_inner" if chosen is not None else "law_scale",
                    links="inner" if chosen is not None else "all", data=ks, scale=s, gamma_scale=g,
                    nrmse_discovered=at_disc.nrmse_total, nrmse_per_run=nrmse,
                    identifiability=dict(discovered=at_disc.summary(), discovered_per_run=per_run,
                                         fitted=res.identifiability.summary()),
                    optimizer=dict(adam_steps=int(steps), lm_steps=int(polish_steps), restarts=restarts),
                    fitted_model=res.model, loss_history=list(res.loss_history))


def fit_route(config: ReproduceConfig, regime: Regime, paper: xr.Dataset, built: Circuits, disc: Discovery,
              slower: SlowerRuns | None, figdir: Path, progress: bool) -> FitRoute:
    """``fit_laws`` of the headline NCM to the paper-case CV, jointly with the regime's slower runs
    (``slower``, when there are), started at the measured U/I and gamma 0 (``figures/fit_route.png``)."""
    runs, prots = {1.0: paper}, {1.0: protocol_for(config, regime)}
    if slower is not None:
        runs.update(slower.runs)
        prots.update(slower.protocols)
    # Levenberg-Marquardt alone: on the 0.2 V joint fit (ncm_fit.py's model, start (2, 0)) 10 LM steps
    # land where 80 Adam + 20 LM do, to 3 digits (1.0345, 1.056), in 197 s against 332 s (contended)
    fit = fit_laws(built.headline_model, runs, prots, _fit_start(disc), links=config.fit_links,
                   steps=0, polish_steps=config.fit_polish_steps, progress=progress)
    fit.mid_slit_discovered_R_c, fit.mid_slit_discovered_gamma = disc.R_c, disc.gamma
    sim = circuits.simulate(fit.fitted_model, prots[1.0], times=np.asarray(paper["time"]))
    figures.fit_figure(paper, sim, fit, figdir / "fit_route.png")
    return fit


# ---------------------------------------------------------------------------
# the NCM extracted at the reproduce rate, predicting the slower runs (nothing refitted)


def rate_predictions(config: ReproduceConfig, regime: Regime, built: Circuits, slower: SlowerRuns,
                     datadir: Path) -> dict:
    """{k: half_period_debye, nrmse, nrmse_of_peak} of the headline NCM (extracted from the
    reproduce-rate run) against each slower run; ``data/ncm_vs_mpnp_slower{k}.nc``."""
    out = {}
    for k, ds in slower.runs.items():
        ref = np.asarray(ds["current_density"])
        sim = circuits.simulate(built.headline_model, slower.protocols[k], times=np.asarray(ds["time"]))
        sim.to_netcdf(datadir / f"ncm_vs_mpnp_slower{k:g}.nc", engine="h5netcdf")
        diff = np.asarray(sim["current_density"]) - ref
        out[f"{k:g}"] = dict(half_period_debye=k * config.half_period_debye,
                             nrmse=jaxpnp.nrmse(sim["current_density"], ref),
                             nrmse_of_peak=float(np.sqrt(np.mean(diff ** 2)) / np.max(np.abs(ref))))
    return out


# ---------------------------------------------------------------------------
# Figures 3d-g: the paper's NCM against the TLM, and its peak map


def _depth(model: circuits.NCM, n: int) -> circuits.NCM:
    """The paper's NCM (one R_c, gamma; mean slit capacitance) at another number of slits."""
    return circuits.NCM(n, model.R_open, model.C_open, float(np.mean(np.asarray(model.C_slit))), model.R_c,
                        model.gamma, capacitor=model.capacitor, allow_gamma_outside_unit=model.allow_gamma_outside_unit)


def ncm_vs_tlm(config: ReproduceConfig, regime: Regime, model: circuits.NCM, datadir: Path, figdir: Path) -> dict:
    n = config.tlm_layers - 1
    ncm = _depth(model, n)
    tlm = circuits.TLM(n, ncm.R_open, ncm.C_open, ncm.C_slit, ncm.R_c, capacitor=ncm.capacitor)
    cv2 = protocol_for(config, regime, cycles=2)
    a = circuits.simulate(ncm, cv2, points_per_cycle=config.ncm_points_per_cycle)
    b = circuits.simulate(tlm, cv2, points_per_cycle=config.ncm_points_per_cycle)
    a.to_netcdf(datadir / f"ncm_{config.tlm_layers}layers.nc", engine="h5netcdf")
    b.to_netcdf(datadir / f"tlm_{config.tlm_layers}layers.nc", engine="h5netcdf")
    rates = [protocol_for(config, regime).scan_rate_V_s * f for f in config.asymmetry_rate_factors]
    layers = [m - 1 for m in config.asymmetry_layers]
    kw = dict(points_per_cycle=config.ncm_points_per_cycle, cycles=config.asymmetry_cycles)
    asym_n = circuits.cv_asymmetry(ncm, layers, rates, **kw)
    asym_t = circuits.cv_asymmetry(dataclasses.replace(ncm, gamma=0.0), layers, rates, **kw)
    figures.ncm_vs_tlm(a, b, asym_n, asym_t, figdir)
    qa, qb = np.asarray(a["slit_charge"])[:, 1:], np.asarray(b["slit_charge"])[:, 1:]
    area = lambda ds: float(abs(np.trapezoid(np.asarray(ds["current_density"]), np.asarray(ds["cell_voltage"]))))  # noqa: E731
    return dict(n_slits=n, gamma=float(ncm.gamma), R_c=float(ncm.R_c),
                asymmetry_ncm=np.asarray(asym_n["asymmetry"]).tolist(),
                asymmetry_tlm=np.asarray(asym_t["asymmetry"]).tolist(),
                peak_asymmetry_ncm=np.asarray(asym_n["peak_asymmetry"]).tolist(),
                asymmetry_layers=list(config.asymmetry_layers), asymmetry_scan_rates_V_s=rates,
                slit_charge_time_mean_ncm=float(np.mean(qa.sum(1))), slit_charge_time_mean_tlm=float(np.mean(qb.sum(1))),
                deep_slit_charge_max_ncm=float(np.max(qa[:, n // 2:].sum(1))),
                deep_slit_charge_max_tlm=float(np.max(qb[:, n // 2:].sum(1))),
                cv_area_ncm=area(a), cv_area_tlm=area(b))


def peak_map(config: ReproduceConfig, regime: Regime, model: circuits.NCM, datadir: Path, figdir: Path) -> dict:
    R_cs = float(np.mean(np.asarray(model.R_c))) * np.logspace(-1, 1, config.peak_grid)
    gammas = np.linspace(0.0, 1.0, config.peak_grid)
    pm = circuits.peak_map(model, protocol_for(config, regime), gammas, R_cs,
                           points_per_cycle=config.ncm_points_per_cycle)
    pm.to_netcdf(datadir / "peak_map.nc", engine="h5netcdf")
    figures.peak_map(pm, figdir / "fig3g_peak_map.png")
    ratio = np.asarray(pm["peak_ratio"])
    return dict(gammas=gammas.tolist(), R_c=R_cs.tolist(), peak_ratio=ratio.tolist(),
                peak_ratio_high_gamma_high_Rc=float(ratio[-1, -1]), peak_ratio_low_gamma_low_Rc=float(ratio[0, 0]),
                peak_ratio_gamma0_high_Rc=float(ratio[0, -1]), peak_ratio_high_gamma_low_Rc=float(ratio[-1, 0]))


def speed(paper: xr.Dataset, built: Circuits) -> dict:
    """mPNP against the NCM on the same CV (the paper's claim is about its NCM; the extracted one beside it)."""
    mp = float(paper.attrs.get("solver_run_time_s", math.nan))
    return dict(mpnp_s=mp, ncm_s=built.paper_ncm_time_s, ncm_first_call_s=built.ncm_first_call_s,
                ratio=mp / built.paper_ncm_time_s, extracted_ncm_s=built.ncm_time_s,
                ratio_extracted=mp / built.ncm_time_s)


# ---------------------------------------------------------------------------
# small-signal impedance: the mPNP beside the circuits built from the same run (issue 14)


@dataclasses.dataclass
class ImpedanceSpectra:
    bias_V: float  # electrode potential phi_m (V) of the linearisation
    frequencies: int
    frequency_range_Hz: list
    split_Hz: float  # the comparison below / above this frequency
    low_frequency_capacitance: dict  # {mpnp, ncm, tlm}: -1 / (w Im Z) at the lowest frequency (F/m^2)
    rel_diff: dict  # {ncm, tlm}: max / median |Z / Z_mPNP - 1| below and above split_Hz
    R_open: float  # the circuits' high-frequency limit (ohm m^2)
    debye_time_s: float  # the separator's bulk dielectric relaxation time
    mpnp_method: str
    mpnp_s: float  # jaxpnp.impedance wall time (s)


IMPEDANCE_SPLIT_HZ = 1e9


def _rel_stats(z, ref, f, split):
    rel = np.abs(z / ref - 1.0)
    lo, hi = rel[f < split], rel[f >= split]
    stat = lambda a, fn: float(fn(a)) if a.size else math.nan  # noqa: E731
    return dict(max_below=stat(lo, np.max), median_below=stat(lo, np.median),
                max_above=stat(hi, np.max), median_above=stat(hi, np.median))


def impedance_spectra(config: ReproduceConfig, regime: Regime, model, datadir: Path, figdir: Path,
                      progress: bool) -> ImpedanceSpectra:
    """``jaxpnp.impedance`` of the paper case at 0 V beside ``circuits.impedance`` of the extracted NCM
    ``model`` and its TLM twin (gamma = 0); ``data/impedance.nc`` and ``figures/impedance_nyquist.png``."""
    el = electrolyte_for(config)
    f = np.logspace(np.log10(config.impedance_range_Hz[0]), np.log10(config.impedance_range_Hz[1]),
                    config.impedance_points)
    ds, mpnp_s = _timed(lambda: jaxpnp.impedance(el, electrode_for(config, config.paper_slit_nm), f, 0.0,
                                                 grid_nm=config.grid_nm, boundary=config.boundary, progress=progress))
    z = {"mPNP (linearised)": np.asarray(ds["impedance_real"]) + 1j * np.asarray(ds["impedance_imag"])}
    tlm = circuits.TLM(model.n_slits, model.R_open, model.C_open, model.C_slit, model.R_c, capacitor=model.capacitor)
    z["NCM (extracted)"] = np.asarray(circuits.impedance(model, f, charge_fraction=0.0))
    z["TLM (gamma = 0)"] = np.asarray(circuits.impedance(tlm, f, charge_fraction=0.0))
    keys = dict(zip(("mpnp", "ncm", "tlm"), z))
    w0 = 2.0 * np.pi * f[0]
    xr.Dataset({f"impedance_{part}_{k}": ("frequency", getattr(z[label], part),
                                          dict(units="ohm m2", long_name=f"{part} part of Z, {label}"))
                for k, label in keys.items() for part in ("real", "imag")},
               coords={"frequency": ("frequency", f, dict(units="Hz", long_name="frequency"))},
               attrs=dict(Conventions="CF-1.10", bias_V=0.0)).to_netcdf(
        datadir / "impedance.nc", engine="h5netcdf")
    figures.impedance_nyquist(f, z, float(model.R_open), IMPEDANCE_SPLIT_HZ, figdir / "impedance_nyquist.png")
    ref = z[keys["mpnp"]]
    return ImpedanceSpectra(
        bias_V=0.0, frequencies=int(f.size), frequency_range_Hz=[float(f[0]), float(f[-1])],
        split_Hz=IMPEDANCE_SPLIT_HZ,
        low_frequency_capacitance={k: float(-1.0 / (w0 * z[label][0].imag)) for k, label in keys.items()},
        rel_diff={k: _rel_stats(z[keys[k]], ref, f, IMPEDANCE_SPLIT_HZ) for k in ("ncm", "tlm")},
        R_open=float(model.R_open), debye_time_s=float(el.debye_time_s),
        mpnp_method=str(ds.attrs.get("impedance_method", "")), mpnp_s=mpnp_s)
