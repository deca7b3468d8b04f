"""What the mPNP benchmark scripts share: the cases they run, the solver options they take,
and the machine numbers they record. Scripts import it as ``_common`` (run as
``python benchmarks/<name>.py``, their folder is on ``sys.path``)."""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path

import jaxpnp

RESULTS = Path(__file__).resolve().parent / "results"

QUICK_CASE = "quick (3 sheets, 3.6 nm)"
PAPER_CASE = "paper (6 staggered sheets, d = 1.5 nm, 10 nm sheets)"


def case_electrode(quick: bool) -> tuple[jaxpnp.Electrode, str]:
    """The electrode of a benchmark's quick case (3 short sheets, seconds on a laptop) or of
    the paper case, with the case's name for the JSON record."""
    if quick:
        return jaxpnp.Electrode(n_sheets=3, slit_nm=1.5, sheet_length_nm=3.6, sheet_gap_nm=1.2,
                                sheet_thickness_nm=0.3, separator_nm=3.0), QUICK_CASE
    return jaxpnp.Electrode(), PAPER_CASE


def add_solver_arguments(parser, half_period_debye: float = 2000.0) -> None:
    """The CV and step-control options every mPNP benchmark takes (SI-free: Debye times, units of c0)."""
    parser.add_argument("--half-period-debye", type=float, default=half_period_debye)
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--rtol", type=float, default=1e-5)
    parser.add_argument("--atol", type=float, default=1e-7)


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load_average() -> float | None:
    """One-minute load average, or None where the OS does not give one."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def write_result(path, result: dict) -> Path:
    """Write a benchmark's JSON record (parents created) and say where."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return out
