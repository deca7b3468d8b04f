"""SaltLadder with the charged (Nernst-Planck-Poisson) separator line against the mPNP (issue 10).

The models of ``circuit_models.py`` (``circuits.from_mpnp(kind="salt")``, nothing fitted to the CV)
with ``separator="neutral"`` (default) or ``"charged"``, co-ions ``"equilibrium"`` or ``"dynamic"``:
the reproduce-rate 6-sheet headline and the four predictions (rate/5, rate/20, 4 and 8 sheets) per
regime. NRMSE = RMS(I_model - I_mPNP) / RMS(I_mPNP). Writes ``benchmarks/results/charged_separator.json``.

    python benchmarks/charged_separator.py --runs /work/runs/cache --prefix salt1v_ [--regimes 0.2 1.0]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import circuit_models as cm  # noqa: E402
import circuits  # noqa: E402
import jaxpnp  # noqa: E402
from _common import write_result  # noqa: E402

VARIANTS = {
    "default": {},
    "coions": dict(coions="dynamic"),
    "charged_separator": dict(separator="charged"),
    "coions_charged_separator": dict(coions="dynamic", separator="charged"),
}
EXTRA = {  # headline only
    "coions_charged_separator_16_nodes": dict(coions="dynamic", separator="charged", separator_nodes=16),
    "coions_charged_separator_mean_share": dict(coions="dynamic", separator="charged", link_share="mean"),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="_runs")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--regimes", nargs="+", type=float, default=[1.0, 0.2])
    ap.add_argument("--out", default="benchmarks/results/charged_separator.json")
    args = ap.parse_args()
    runs = Path(args.runs)
    eqs = {ns: cm.equilibria(runs, ns, args.prefix, (1.0,))[0] for ns in (4, 6, 8)}
    result = dict(metric="RMS(I_model - I_mPNP) / RMS(I_mPNP), one cycle", grid_nm=cm.GRID_NM,
                  machine="2-core CPU shared by 4 helpers (contended): wall times as measured", regimes={})
    for v_max in args.regimes:
        R = result["regimes"][f"{v_max:g}V"] = {}
        base = cm.mpnp_run(runs, v_max, cm.HALF_PERIOD_DEBYE, 6)
        Im, times = np.asarray(base["current_density"]), np.asarray(base["time"])
        with jaxpnp.float64():
            model = circuits.from_mpnp(base, kind="salt", equilibrium=eqs[6], **cm.NEUTRAL)
        for name, change in {**VARIANTS, **EXTRA}.items():
            m = dataclasses.replace(model, **change)
            t0 = time.perf_counter()
            with jaxpnp.float64():
                s = circuits.solve(m, cm.cv_of(base), times=times)
            R[name] = dict(nrmse=cm.nrmse(s.current_density, Im), change={k: str(v) for k, v in change.items()},
                           first_call_s=time.perf_counter() - t0,
                           min_separator_M=float(np.nanmin(np.asarray(s.separator_concentration))))
            print(f"{v_max:g} V {name}: {R[name]['nrmse']:.4f}", flush=True)
            if name in VARIANTS:
                R[name]["predictions"] = cm.predictions(m, runs, v_max, eqs)
                print("   predictions: " + ", ".join(f"{k} {v.get('nrmse', v.get('error'))}"
                                                     for k, v in R[name]["predictions"].items()), flush=True)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
