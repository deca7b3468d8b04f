"""Benchmark: jaxpnp.impedance, a 50-frequency spectrum (1e3 - 1e12 Hz) of the paper case at 0.125 nm.

The 6-sheet staggered electrode (d = 1.5 nm), reservoir boundary, zero bias and 0.2 V
per electrode. Reports the cold call (discretisation, equilibrium, Jacobian assembly
included) and a warm repeat, split into setup and per-frequency time.
Run: python benchmarks/impedance.py [--grid 0.125] [--frequencies 50]
Writes benchmarks/results/impedance.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import jax  # noqa: E402
import numpy as np  # noqa: E402

import jaxpnp  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--grid", type=float, default=0.125)
    parser.add_argument("--frequencies", type=int, default=50)
    parser.add_argument("--output", default=str(Path(__file__).resolve().parent / "results" / "impedance.json"))
    args = parser.parse_args()
    el, electrode = jaxpnp.Electrolyte(), jaxpnp.Electrode()
    freqs = np.logspace(3, 12, args.frequencies)
    rows = []
    for label, bias in (("cold_0V", 0.0), ("warm_0V", 0.0), ("warm_0.2V", 0.2)):
        t = time.perf_counter()
        ds = jaxpnp.impedance(el, electrode, freqs, bias, grid_nm=args.grid)
        wall = time.perf_counter() - t
        setup = float(ds.attrs["impedance_setup_time_s"])
        row = dict(run=label, bias_V=bias, wall_s=wall, setup_s=setup,
                   per_frequency_s=(float(ds.attrs["impedance_run_time_s"]) - setup) / freqs.size,
                   unknowns=3 * int(ds.attrs["nx"]) * int(ds.attrs["ny"]), method=ds.attrs["impedance_method"],
                   exact_solves=int(ds.attrs["impedance_exact_solves"]),
                   reduced_error=float(ds.attrs["impedance_reduced_error"]),
                   z_low_ohm_m2=[float(ds.impedance_real[0]), float(ds.impedance_imag[0])],
                   z_high_ohm_m2=[float(ds.impedance_real[-1]), float(ds.impedance_imag[-1])],
                   low_frequency_capacitance_F_m2=float(-1 / (2 * np.pi * freqs[0] * ds.impedance_imag[0])))
        print(json.dumps(row))
        rows.append(row)
    out = dict(benchmark="impedance", case="paper (6 sheets, d 1.5 nm, reservoir)", grid_nm=args.grid,
               n_frequencies=int(freqs.size), target_s=60.0, machine=platform.processor() or platform.machine(),
               cpus=os.cpu_count(), load_average=os.getloadavg(), jax_backend=jax.default_backend(),
               results=rows)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
