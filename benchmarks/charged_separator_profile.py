"""The charged separator line's profile against the mPNP's separator at 1 V (issue 10).

``SaltLadder(coions="dynamic", separator="charged")`` from ``circuits.from_mpnp`` on the 1 V, 6-sheet,
hp1000 run; the mPNP's c+ and c- from the field snapshots of that run (``--snap``, written by
``coion_diagnosis.py``), averaged over y and over each line node's x-bin (reservoir at x = 0).
Writes ``benchmarks/results/charged_separator_profile.json``: mean concentration (c+ + c-)/2 and
c+ - c- (mol/L) per node at t/T 0.375, 0.5 (vertex), 0.625.

    python benchmarks/charged_separator_profile.py --runs /work/runs/cache --prefix salt1v_ \
        --snap /work/runs/cache/coion_mpnp_v1_hp1000_n6_snap.nc
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

import circuit_models as cm  # noqa: E402
import circuits  # noqa: E402
import jaxpnp  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="_runs")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--snap", required=True)
    ap.add_argument("--out", default="benchmarks/results/charged_separator_profile.json")
    args = ap.parse_args()
    runs = Path(args.runs)
    base = cm.mpnp_run(runs, 1.0, cm.HALF_PERIOD_DEBYE, 6)
    eqs, _ = cm.equilibria(runs, 6, args.prefix, (1.0,))
    snap = xr.open_dataset(args.snap)
    with jaxpnp.float64():
        model = dataclasses.replace(circuits.from_mpnp(base, kind="salt", equilibrium=eqs), coions="dynamic",
                                    separator="charged")
        s = circuits.solve(model, cm.cv_of(base), times=np.asarray(base["time"]))
    m, L = model.separator_nodes, float(model.separator_m) * 1e9
    mask = snap["electrolyte_mask"] > 0
    out = dict(nodes_x_nm=[(j + 0.5) * L / m for j in range(m)], profiles={},
               note="the mPNP's last bin holds the open-space double layer (the model's node 0), not comparable")
    for i in (len(snap.snapshot_time) * 3 // 8, len(snap.snapshot_time) // 2, len(snap.snapshot_time) * 5 // 8):
        cp = snap.c_plus.isel(snapshot_time=i).where(mask).mean("y")
        cn = snap.c_minus.isel(snapshot_time=i).where(mask).mean("y")
        bins = [(snap.x >= j * L / m) & (snap.x < (j + 1) * L / m) for j in range(m)]
        mp, mn = np.array([float(cp.where(b).mean()) for b in bins]), np.array([float(cn.where(b).mean()) for b in bins])
        t_over_T = float(snap.snapshot_time[i] / snap.snapshot_time[-1])
        out["profiles"][f"{t_over_T:.3f}"] = dict(
            mpnp_mean_M=(0.5 * (mp + mn)).round(4).tolist(), mpnp_net_M=(mp - mn).round(4).tolist(),
            model_mean_M=np.asarray(s.separator_concentration)[i].round(4).tolist(),
            model_net_M=np.asarray(s.separator_net_charge)[i].round(4).tolist())
        print(t_over_T, out["profiles"][f"{t_over_T:.3f}"], flush=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
