"""Benchmark: jaxpnp.equilibrium on the paper case (6 sheets, d = 1.5 nm), seconds per potential.

For each grid (0.25, 0.125 nm) and boundary: the first call (discretisation and the
exact Poisson factorisation included), then a 21-potential sweep 0 -> 0.5 V per
electrode (cell 0 -> 1 V) on the warm discretisation, and the equilibria of the sweep's
vertex alone (continuation from 0 V). Run: python benchmarks/equilibrium.py
Writes benchmarks/results/equilibrium.json.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402

import jaxpnp  # noqa: E402

EL = jaxpnp.Electrolyte()
ELECTRODE = jaxpnp.Electrode()  # the paper case
SWEEP = np.linspace(0.0, 0.5, 21)


def main():
    rows = []
    for grid in (0.25, 0.125):
        for boundary in ("reservoir", "symmetric"):
            t = time.perf_counter()
            jaxpnp.equilibrium(EL, ELECTRODE, [0.05], grid_nm=grid, boundary=boundary)
            first = time.perf_counter() - t
            t = time.perf_counter()
            ds = jaxpnp.equilibrium(EL, ELECTRODE, SWEEP, grid_nm=grid, boundary=boundary)
            sweep = time.perf_counter() - t
            t = time.perf_counter()
            one = jaxpnp.equilibrium(EL, ELECTRODE, [0.5], grid_nm=grid, boundary=boundary)
            vertex = time.perf_counter() - t
            row = dict(grid_nm=grid, boundary=boundary, nodes=int(ds.attrs["nx"] * ds.attrs["ny"]),
                       first_call_s=first, sweep_s=sweep, per_potential_s=sweep / SWEEP.size,
                       vertex_alone_s=vertex, newton_iterations_sweep=int(ds.newton_iterations.sum()),
                       electrode_charge_C_m2_at_0p5V=float(one.electrode_charge[0]),
                       reference_concentration_M_at_0p5V=float(one.reference_concentration[0]),
                       max_slit_charge_C_m2=float(np.abs(ds.slit_charge).max()))
            print(json.dumps(row))
            rows.append(row)
    out = dict(benchmark="equilibrium", machine=platform.processor() or platform.machine(),
               cpus=os.cpu_count(), load_average=os.getloadavg(), potentials_V=SWEEP.tolist(), results=rows)
    path = Path(__file__).resolve().parent / "results" / "equilibrium.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
