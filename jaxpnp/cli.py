"""The ``jaxpnp`` command line.

    jaxpnp simulate CONFIG.toml -o run.nc     one mPNP run from a TOML description
    jaxpnp reproduce [--quick] [-o DIR]       the paper's chain: mPNP -> discovery -> NCM -> report
    jaxpnp sweep SWEEP.toml -o DIR            a parameter sweep on Dask [--workers N | --scheduler ADDRESS]

Benchmarks are scripts of the source checkout: ``python benchmarks/run_all.py [--quick]``.
The CLI is the application layer: it imports the core and the reproduce pipeline (which
imports circuits and discovery) at module top; nothing in the core imports it.

Exit codes: 0 success, 1 a run that failed while computing (the partial result is
kept where possible), 2 bad input (unreadable or invalid configuration, bad
arguments), 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tomllib
from pathlib import Path

import numpy as np

import jaxpnp
from jaxpnp import sweeps
from jaxpnp.reproduce import reproduce


class _UsageError(Exception):
    """Bad input: reported as one line, exit code 2."""


def _fail(message: str, code: int = 2) -> int:
    print(f"jaxpnp: error: {message}", file=sys.stderr)
    return code


# ---------------------------------------------------------------------------
# simulate
# ---------------------------------------------------------------------------

_SIMULATE_KWARGS = {
    "grid_nm", "boundary", "points_per_cycle", "snapshot_times_s", "rtol", "atol", "solver",
    "max_steps_per_segment", "krylov_rtol", "segments_per_sweep", "preconditioner_reuse",
    "allow_subnanometre_slits",
}


def _load_config(path: str):
    """(electrolyte, electrode, protocol, kwargs) or _UsageError with a one-line reason."""
    if not os.path.isfile(path) and path not in jaxpnp.named_configs():
        raise _UsageError(f"config file not found: {path} (nor a shipped parameter set: "
                          f"{', '.join(jaxpnp.named_configs())})")
    try:
        electrolyte, electrode, protocol, kwargs = jaxpnp.read_config(path)
    except tomllib.TOMLDecodeError as err:
        raise _UsageError(f"{path} is not valid TOML: {err}") from None
    except (ValueError, TypeError) as err:
        raise _UsageError(f"{path}: {_one_line(err)}") from None
    unknown = sorted(set(kwargs) - _SIMULATE_KWARGS)
    if unknown:
        raise _UsageError(f"{path}: unknown key(s) in [simulation]: {unknown}; "
                          f"allowed: {sorted(_SIMULATE_KWARGS)}")
    try:
        jaxpnp.validate(electrolyte, electrode, protocol, kwargs.get("grid_nm", 0.1),
                        kwargs.get("boundary", "symmetric"),
                        bool(kwargs.get("allow_subnanometre_slits", False)))
    except (ValueError, TypeError, NotImplementedError) as err:
        raise _UsageError(f"{path}: {_one_line(err)}") from None
    return electrolyte, electrode, protocol, kwargs


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def _summary(ds) -> str:
    t = np.asarray(ds["time"])
    lines = [
        f"  time points     : {t.size} over {t[-1] * 1e9 if t.size else 0.0:.4g} ns",
        f"  geometry        : {ds.attrs.get('layout')} {ds.attrs.get('n_sheets')} sheets, "
        f"d = {ds.attrs.get('slit_nm')} nm, grid {ds.attrs.get('grid_nm')} nm "
        f"({ds.attrs.get('unknowns')} unknowns)",
    ]
    if t.size:
        i = np.asarray(ds["current_density"])
        q = np.asarray(ds["electrode_charge"])
        salt = np.asarray(ds["total_salt"])
        lines += [
            f"  peak current    : {np.max(np.abs(i)):.4g} A/m^2",
            f"  max charge      : {np.max(np.abs(q)):.4g} C/m^2 ({np.max(np.abs(q)) * 100:.4g} uC/cm^2)",
            f"  salt drift      : {abs(salt[-1] - salt[0]) / max(abs(salt[0]), 1e-300):.2e} (relative)",
        ]
    lines.append(f"  solver          : {int(ds.attrs.get('solver_accepted', 0))} steps "
                 f"({int(ds.attrs.get('solver_rejected', 0))} rejected), "
                 f"{ds.attrs.get('solver_run_time_s', math.nan):.1f} s")
    return "\n".join(lines)


def cmd_simulate(args) -> int:
    try:
        electrolyte, electrode, protocol, kwargs = _load_config(args.config)
    except _UsageError as err:
        return _fail(str(err))
    out = Path(args.output)
    if out.parent and not out.parent.exists():
        return _fail(f"output directory does not exist: {out.parent}")
    kwargs = dict(kwargs)
    kwargs["progress"] = not args.no_progress
    kwargs["checkpoint_path"] = str(out)
    print(f"jaxpnp simulate: {args.config} -> {out}", file=sys.stderr)
    try:
        ds = jaxpnp.simulate(electrolyte, electrode, protocol, **kwargs)
    except jaxpnp.SimulationError as err:
        return _fail(f"{_one_line(err)}; partial result kept in {out}", 1)
    except KeyboardInterrupt:
        print(f"\ninterrupted; the segments finished so far are in {out}", file=sys.stderr)
        return 130
    except (ValueError, TypeError, NotImplementedError) as err:
        return _fail(f"{args.config}: {_one_line(err)}")
    print(f"wrote {out}")
    print(_summary(ds))
    return 0


# ---------------------------------------------------------------------------
# reproduce
# ---------------------------------------------------------------------------

def cmd_reproduce(args) -> int:
    try:
        summary = reproduce(args.output, quick=args.quick, progress=not args.no_progress,
                            engine=args.engine)
    except KeyboardInterrupt:
        print(f"\ninterrupted; rerun the same command to resume from the files in {args.output}",
              file=sys.stderr)
        return 130
    except (ValueError, OSError) as err:
        return _fail(_one_line(err))
    failed = [k for k, v in summary.get("errors", {}).items() if v]
    print(f"wrote {Path(args.output) / 'REPORT.md'} and summary.json "
          f"({summary['timings_s'].get('total', math.nan):.0f} s)")
    if failed:
        print(f"steps that failed (see REPORT.md): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------
# sweep
# ---------------------------------------------------------------------------

def cmd_sweep(args) -> int:
    if args.workers is not None and args.scheduler is not None:
        return _fail("give --workers (a local cluster) or --scheduler (a running one), not both")
    try:
        options = sweeps.read_sweep(args.config)
        if args.discover:
            options["discover"] = True
        if args.engine is not None:
            options["engine"] = args.engine
        spec = sweeps.make_spec(options["base"], options.get("over"), options.get("points"))
    except tomllib.TOMLDecodeError as err:
        return _fail(f"{args.config} is not valid TOML: {_one_line(err)}")
    except (ValueError, TypeError) as err:
        return _fail(f"{args.config}: {_one_line(err)}")
    print(f"jaxpnp sweep: {args.config}: {len(spec.points)} points over {', '.join(spec.dims)} -> {args.output}",
          file=sys.stderr)
    try:
        result = sweeps.sweep(**options, outdir=args.output, workers=args.workers, scheduler=args.scheduler,
                              progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"\ninterrupted; rerun the same command to resume from the files in {args.output}",
              file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError) as err:
        return _fail(_one_line(err))
    print(f"{result.computed} computed, {result.skipped} already complete, {len(result.failed)} failed "
          f"({result.wall_time_s:.1f} s); read with jaxpnp.open_sweep({str(args.output)!r})")
    for pid, message in result.failed.items():
        print(f"  failed {pid}: {message}", file=sys.stderr)
    if options.get("discover") and result.computed + result.skipped:
        laws = sweeps.open_sweep(args.output)
        if "law_r2" in laws:  # the per-point table of the discovered laws
            print(laws[["law_R_c", "law_gamma", "law_R_0", "law_r2"]].to_dataframe().to_string())
    return 1 if result.failed else 0


# ---------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxpnp", description="mPNP simulation of nanoslit electrodes "
                                     "and the reproduction of Zhan et al.'s nano-circuitry paper")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="one mPNP run from a TOML config")
    p.add_argument("config", help="TOML file: [electrolyte], [electrode], [protocol], [simulation]")
    p.add_argument("-o", "--output", default="run.nc", help="netCDF output (rewritten after every segment)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("reproduce", help="the paper's chain; figures, netCDF, summary.json, REPORT.md")
    p.add_argument("--quick", action="store_true", help="two slit sizes on a coarser grid (<= 15 min on 2 cores)")
    p.add_argument("-o", "--output", default="reproduce_out", help="output directory (resumable)")
    p.add_argument("--engine", default="operon", help="discovery engine: operon, sparse, pysr, auto")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("sweep", help="a parameter sweep of mPNP runs on Dask (resumable)")
    p.add_argument("config", help="sweep TOML: base = \"run.toml\" (or [base.*] tables), [over] axes or [[points]]")
    p.add_argument("-o", "--output", default="sweep_out", help="output directory: one netCDF per point")
    p.add_argument("--workers", type=int, default=None, help="local worker processes (default: one per core)")
    p.add_argument("--scheduler", default=None, help="address or scheduler file of a running Dask cluster")
    p.add_argument("--discover", action="store_true", help="also discover the trans-slit law per point")
    p.add_argument("--engine", default=None, help="discovery engine (default sparse)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sweep)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
