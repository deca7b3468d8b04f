"""The reproduction pipeline: sequencing only; every step is timed, reported and resumable.

For each regime of the config (default: the paper's weakly crowded window 0 -> 0.2 V and
the crowded 1 V case), in ``outdir/{regime}/``:

``mpnp``         mPNP CV runs per slit size (the paper case first), ``data/mpnp_d{d}nm.nc``;
                 a complete file is reused.
``mpnp_slower``  (regimes with ``slower_scans``) the paper case at 1/k the scan rate,
                 ``data/mpnp_d{d}nm_slower{k}.nc``, reused likewise.
``equilibrium``  ``jaxpnp.equilibrium`` of the paper case 0 .. v_max/2: the nodes' capacitors.
``fluxes``       Figure 1: sign relations of the flux parts (``jaxpnp.flux_relations``).
``discovery``    Figure 2: ``discovery.trans_slit_law`` on every run, all links.
``ncm``          Figure 3c: the NCMs ``circuits.extract`` builds from the paper-case run, against its CV.
``rates``        (with slower runs) that NCM, not refitted, against each slower run.
``salt``         the salt-aware model ``circuits.from_mpnp(kind="salt")`` (``config.salt``).
``fit``          ``circuits.fit`` of one R_c and one gamma factor on the NCM's discovered laws to
                 the paper-case CV, jointly with the slower runs where the regime has them.
``tlm``          Figures 3d-f: the paper's NCM against the TLM (CV asymmetry, charge per slit).
``peak_map``     Figure 3g.
``speed``        NCM against mPNP wall time on the same CV.
``impedance``    (regimes with ``impedance``) ``jaxpnp.impedance`` of the paper case at 0 V beside
                 ``circuits.impedance`` of the extracted NCM and its TLM (Nyquist figure).

The science is in the libraries (see ``steps``); ``summary.json`` is keyed by regime
(``regimes -> name -> results / errors / timings_s / findings``), ``REPORT.md`` reports all.
"""

from __future__ import annotations

import dataclasses
import json
import time
import traceback
from pathlib import Path

import jaxpnp

from . import report, steps
from .config import FULL, QUICK, Regime, ReproduceConfig

ERROR_KEY = "errors"


class _Steps:
    """Runs steps, records each one's time and error; a failing step is reported and the rest go on."""

    def __init__(self, prefix: str, progress: bool):
        self.prefix, self.progress = prefix, progress
        self.timings, self.errors = {}, {}

    def run(self, name, fn, *args, needs=()):
        missing = [n for n, v in needs if v is None]
        if missing:
            self.errors[name] = f"skipped: no result from {', '.join(missing)}"
            return None
        steps._log(f"{self.prefix}: step {name} ...", self.progress)
        t0 = time.perf_counter()
        try:
            out = fn(*args)
            self.errors[name] = None
            return out
        except Exception as err:  # noqa: BLE001 - a failing step is reported, the rest goes on
            self.errors[name] = f"{type(err).__name__}: {' '.join(str(err).split())[:500]}"
            steps._log(f"{self.prefix}: step {name} FAILED: {self.errors[name]}", self.progress)
            if self.progress:
                traceback.print_exc()
            return None
        finally:
            self.timings[name] = time.perf_counter() - t0


def run_regime(config: ReproduceConfig, regime: Regime, outdir: Path, progress: bool) -> dict:
    """The chain at one regime; its summary (results, headline numbers, errors, timings, findings)."""
    datadir, figdir = outdir / "data", outdir / "figures"
    datadir.mkdir(parents=True, exist_ok=True)
    figdir.mkdir(parents=True, exist_ok=True)
    s = _Steps(regime.name, progress)
    runs = s.run("mpnp", steps.mpnp_runs, config, regime, datadir, progress)
    if runs is not None and runs.failed:
        s.errors["mpnp"] = "; ".join(f"d={k} nm: {v}" for k, v in runs.failed.items())
    paper = runs.paper if runs is not None else None
    slower = None
    if regime.slower_scans:
        slower = s.run("mpnp_slower", steps.slower_runs, config, regime, datadir, progress)
    eq = None
    if config.equilibrium_points:
        eq = s.run("equilibrium", steps.equilibrium_states, config, regime, datadir, progress,
                   needs=[("mpnp", paper)])
    flux = s.run("fluxes", steps.fluxes, runs, figdir, needs=[("mpnp", paper)])
    disc = s.run("discovery", steps.discover_all, config, runs, datadir, figdir, progress, needs=[("mpnp", paper)])
    disc0 = disc.get(config.paper_slit_nm) if disc else None
    built = s.run("ncm", steps.build_circuits, config, regime, paper, eq, disc0, datadir, figdir, progress,
                  needs=[("mpnp", paper), ("discovery", disc0)])
    rates = None
    if regime.slower_scans:
        rates = s.run("rates", steps.rate_predictions, config, regime, built, slower, datadir,
                      needs=[("ncm", built), ("mpnp_slower", slower)])
    salt = None
    if config.salt:
        salt = s.run("salt", steps.salt_model, config, regime, paper, eq, disc0, needs=[("ncm", built)])
    # a failed slower run leaves the fit to the reproduce-rate run alone (the summary says which data)
    fit = s.run("fit", steps.fit_route, config, regime, paper, built, disc0, slower, figdir, progress,
                needs=[("ncm", built)])
    tlm = pm = None
    if regime.figures:
        paper_model = built.paper_model if built is not None else None
        tlm = s.run("tlm", steps.ncm_vs_tlm, config, regime, paper_model, datadir, figdir, needs=[("ncm", built)])
        pm = s.run("peak_map", steps.peak_map, config, regime, paper_model, datadir, figdir, needs=[("ncm", built)])
    sp = s.run("speed", steps.speed, paper, built, needs=[("ncm", built)])
    imp = None
    if regime.impedance and config.impedance_points:
        headline_model = built.headline_model if built is not None else None
        imp = s.run("impedance", steps.impedance_spectra, config, regime, headline_model, datadir, figdir, progress,
                    needs=[("ncm", built)])
    results = dict(mpnp=runs, mpnp_slower=slower, rates=rates, fluxes=flux, discovery=disc, ncm=built, salt=salt, fit=fit, tlm=tlm, peak_map=pm,
                   speed=sp, impedance=imp)
    out = dict(regime=dataclasses.asdict(regime), results=steps.summary(results), timings_s=s.timings,
               errors=s.errors)
    out.update(report.headline(out, config))
    out["findings"] = report.findings(out, config)
    return out


def reproduce(outdir="reproduce_out", config: ReproduceConfig | None = None, *, quick: bool = False,
              progress: bool = True, engine: str | None = None) -> dict:
    """Run the chain at every regime; returns the summary dict (also ``outdir/summary.json``)."""
    if config is None:
        config = QUICK if quick else FULL
    if engine is not None and engine != config.engine:
        config = dataclasses.replace(config, engine=engine,
                                     discovery_options={} if engine == "sparse" else config.discovery_options)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    S = dict(config=config.to_dict(), regimes={})
    with jaxpnp.float64():
        for regime in config.regimes:
            S["regimes"][regime.name] = run_regime(config, regime, outdir / regime.name, progress)
    S["timings_s"] = {"total": time.perf_counter() - t0,
                      **{name: sum(r["timings_s"].values()) for name, r in S["regimes"].items()}}
    S[ERROR_KEY] = {f"{name}/{k}": v for name, r in S["regimes"].items() for k, v in r[ERROR_KEY].items()}
    S = steps.summary(S)
    try:
        report.write_report(S, config, outdir / "REPORT.md")
    except Exception as err:  # noqa: BLE001 - the summary is still written
        S[ERROR_KEY]["report"] = f"{type(err).__name__}: {err}"
    with open(outdir / "summary.json", "w") as fh:
        json.dump(S, fh, indent=2)
    return S
