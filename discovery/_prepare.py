"""`prepare`: mPNP Dataset -> per-link time integrals on the charging half-cycle, normalised.

Sign convention (sign-agnostic, documented here once). For link i (slit i -> slit i+1):
- ``orientation`` s_i = +1 or -1 is chosen so that the transferred charge
  ``Q_i(t) = s_i * int_{t0}^{t} I_i dt`` (C/m^2) ends the charging half-cycle positive;
- the link voltage is the drop along that direction (passive sign convention),
  ``U_i = s_i * (phi_i - phi_{i+1}) = -s_i * dphi_i`` (V), so that a resistive link has
  ``U_i = R I_i`` with R > 0 (ohm m^2) whatever the electrode's polarity.

Normalisation (as the paper): ``q = Q / Q^max`` and ``a = A / max|A|`` with
``A = int_{t0}^{t} U dt`` (V s), maxima over the charging half-cycle; the scales are kept
(``charge_scale`` = Q^max in C/m^2, ``voltage_integral_scale`` in V s) so that laws
convert back to SI: ``R = (voltage_integral_scale / charge_scale) * dF/dq``.

The law's charge variable (``charge=``): ``"passed"`` (the paper's) is the transferred
charge ``Q_i`` above. ``"nodes"`` is a state of the slits instead: the mean net charge of
the two regions the link joins, ``Q_i = s' (q_i + q_{i+1}) / 2`` (``q`` the regions'
``slit_charge``, ``s'`` = +-1 so that it ends the charging half-cycle positive); a law
in it cannot be integrated in time, so the regression is differential:
``resistance`` ``r = U / I`` (ohm m^2) against ``q``, on the charging samples with
``|I| >= min_current * max|I|`` (``usable``).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.integrate import cumulative_trapezoid

REQUIRED = ("cell_voltage", "slit_potential", "trans_slit_current")
MIN_POINTS = 10
CHARGES = ("passed", "nodes")  # the law's charge variable (see the module docstring)


def _runs(mask):
    """(start, stop) index pairs of the True runs of a boolean array (stop exclusive)."""
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def charging_window(time, cell_voltage, cycle=0):
    """Sample indices (start, end, cycle_end), inclusive, of the ``cycle``-th rising run of
    the cell voltage (the charging half-cycle) and of the end of the falling run after it."""
    v = np.asarray(cell_voltage, dtype=float)
    dv = np.diff(v)
    eps = 1e-12 * max(np.ptp(v), 1e-300)
    rising = _runs(dv > eps)
    if len(rising) <= cycle:
        raise ValueError(f"no charging half-cycle number {cycle}: the cell voltage rises in "
                         f"{len(rising)} separate run(s)")
    start, stop = rising[cycle]  # dv[start:stop] > 0 -> samples start..stop rise
    end = stop
    following = [r for r in rising if r[0] > start]
    cycle_end = following[0][0] if following else len(v) - 1
    return int(start), int(end), int(cycle_end)


def _cumulative(y, t):
    return cumulative_trapezoid(y, t, axis=0, initial=0.0)


def _links(slit_values, slits):
    n_slits = int(np.max(slit_values))
    available = [i for i in range(n_slits) if i in slit_values and i + 1 in slit_values]
    if slits is None:
        chosen = [i for i in available if i >= 1]
        if not chosen:
            raise ValueError("no inner links (slit i -> i+1 with i >= 1): the dataset has "
                             f"{n_slits} slit(s); pass slits=[0] to analyse the open-space link")
        return chosen
    if isinstance(slits, str) and slits == "all":
        return available
    chosen = [int(i) for i in np.atleast_1d(slits)]
    for i in chosen:
        if i not in available:
            raise ValueError(f"link {i} does not exist: links are slit i -> slit i+1 for "
                             f"i in {available}")
    return chosen


def prepare(dataset, slits=None, cycle=0, potential="slit_potential", charge="passed", min_current=0.1):
    """Per-link normalised integrals on the charging half-cycle of a ``jaxpnp.simulate``
    Dataset. ``slits``: link indices i (slit i -> i+1); default the inner links
    1..n_slits-1; ``"all"`` adds the open-space link 0. ``cycle``: which charging
    half-cycle (0 = first). ``potential``: the (time, slit) variable whose differences
    are the link voltages (V): the paper's mid-slit potential by default, or e.g. a
    circuit node potential. ``charge``: ``"passed"`` (the paper's transferred charge) or
    ``"nodes"`` (the mean charge of the two regions the link joins; needs ``slit_charge``),
    ``min_current``: the fraction of max|I| below which ``"nodes"`` samples are not used.
    Returns an ``xarray.Dataset`` (see module docstring):

    - on ``time`` (the charging half-cycle) x ``link``: ``charge`` q, ``voltage_integral``
      a (both dimensionless), ``current`` I (A/m^2) and ``voltage`` U (V), oriented;
    - on ``cycle_time`` x ``link``: ``cycle_charge`` q over the whole cycle (charging
      and the discharging half-cycle that follows), ``cycle_current``, ``cycle_voltage``;
    - on ``link``: ``charge_scale`` (C/m^2), ``voltage_integral_scale`` (V s),
      ``orientation`` (+1/-1), ``open_space`` (link 0).
    """
    if not isinstance(dataset, xr.Dataset):
        raise ValueError(f"prepare needs an xarray.Dataset, got {type(dataset).__name__}")
    if charge not in CHARGES:
        raise ValueError(f"charge must be one of {CHARGES}, got {charge!r}")
    if not 0.0 <= float(min_current) < 1.0:
        raise ValueError(f"min_current must be in [0, 1), got {min_current!r}")
    required = tuple(potential if v == "slit_potential" else v for v in REQUIRED)
    required += ("slit_charge",) if charge == "nodes" else ()
    missing = [v for v in required if v not in dataset.variables]
    missing += [c for c in ("time", "slit") if c not in dataset.coords]
    if missing:
        raise ValueError(f"dataset lacks {missing}: prepare needs variables {list(required)} "
                         "on coordinates time (s) and slit")
    time = np.asarray(dataset["time"].values, dtype=float)
    slit_values = [int(s) for s in dataset["slit"].values]
    links = _links(slit_values, slits)
    if time.size < MIN_POINTS:
        raise ValueError(f"too few time samples: {time.size} < {MIN_POINTS}")
    voltage_cell = np.asarray(dataset["cell_voltage"].values, dtype=float)
    if not np.all(np.isfinite(voltage_cell)) or not np.all(np.isfinite(time)):
        raise ValueError("time and cell_voltage must be finite")
    if np.any(np.diff(time) <= 0):
        raise ValueError("time must be strictly increasing")
    start, end, cycle_end = charging_window(time, voltage_cell, cycle)
    if end - start + 1 < MIN_POINTS:
        raise ValueError(f"too few samples in the charging half-cycle: {end - start + 1} < {MIN_POINTS}")

    phi = dataset[potential].transpose("time", "slit")
    current = dataset["trans_slit_current"].transpose("time", "slit")
    cyc = slice(start, cycle_end + 1)
    t_cycle = time[cyc]
    n_charge = end - start + 1
    out = {k: [] for k in ("q", "a", "I", "U", "qc", "Ic", "Uc", "qs", "as", "s", "r", "ok")}
    region_charge = dataset["slit_charge"].transpose("time", "slit") if charge == "nodes" else None
    for i in links:
        I = np.asarray(current.sel(slit=i).values, dtype=float)[cyc]
        dphi = np.asarray(phi.sel(slit=i + 1).values - phi.sel(slit=i).values, dtype=float)[cyc]
        if not (np.all(np.isfinite(I)) and np.all(np.isfinite(dphi))):
            raise ValueError(f"link {i}: non-finite potential or current in the analysed cycle")
        Q = _cumulative(I, t_cycle)
        if not np.any(I[:n_charge]) or Q[n_charge - 1] == 0:
            raise ValueError(f"link {i}: no charge passes it during the charging half-cycle")
        s = 1.0 if Q[n_charge - 1] > 0 else -1.0
        I, Q, U = s * I, s * Q, -s * dphi
        A = _cumulative(U, t_cycle)
        a_scale = float(np.max(np.abs(A[:n_charge])))
        if charge == "nodes":  # the law's variable: the mean charge of the two regions, a state
            m = 0.5 * np.asarray(region_charge.sel(slit=i).values + region_charge.sel(slit=i + 1).values,
                                 dtype=float)[cyc]
            if not np.all(np.isfinite(m)) or m[n_charge - 1] == 0:
                raise ValueError(f"link {i}: the regions it joins hold no charge at the end of charging")
            Q = np.sign(m[n_charge - 1]) * m
            big = np.abs(I[:n_charge]) >= float(min_current) * np.max(np.abs(I[:n_charge]))
            usable = big & (I[:n_charge] != 0)
            r = np.where(usable, U[:n_charge] / np.where(usable, I[:n_charge], 1.0), np.nan)
            if np.count_nonzero(usable) < MIN_POINTS:
                raise ValueError(f"link {i}: fewer than {MIN_POINTS} charging samples carry "
                                 f">= {min_current} of the peak current")
        else:
            usable = np.ones(n_charge, dtype=bool)
            r = np.full(n_charge, np.nan)
        q_scale = float(np.max(Q[:n_charge]))
        if not (q_scale > 0 and a_scale > 0):
            raise ValueError(f"link {i}: zero transferred charge or voltage integral while charging")
        out["r"].append(r)
        out["ok"].append(usable)
        out["q"].append(Q[:n_charge] / q_scale)
        out["a"].append(A[:n_charge] / a_scale)
        out["I"].append(I[:n_charge])
        out["U"].append(U[:n_charge])
        out["qc"].append(Q / q_scale)
        out["Ic"].append(I)
        out["Uc"].append(U)
        out["qs"].append(q_scale)
        out["as"].append(a_scale)
        out["s"].append(s)

    def stack(key):
        return np.stack(out[key], axis=1)

    charge_dims, cycle_dims = ("time", "link"), ("cycle_time", "link")
    prepared = xr.Dataset(
        {
            "charge": (charge_dims, stack("q"), {"units": "1", "long_name": "Q / Q^max"}),
            "voltage_integral": (charge_dims, stack("a"),
                                 {"units": "1", "long_name": "int U dt / max|int U dt|"}),
            "current": (charge_dims, stack("I"), {"units": "A/m^2"}),
            "voltage": (charge_dims, stack("U"), {"units": "V", "long_name": "voltage drop along the link"}),
            "cycle_charge": (cycle_dims, stack("qc"), {"units": "1"}),
            "cycle_current": (cycle_dims, stack("Ic"), {"units": "A/m^2"}),
            "cycle_voltage": (cycle_dims, stack("Uc"), {"units": "V"}),
            "charge_scale": ("link", np.array(out["qs"]), {"units": "C/m^2", "long_name": "Q^max"}),
            "voltage_integral_scale": ("link", np.array(out["as"]), {"units": "V s"}),
            "orientation": ("link", np.array(out["s"])),
            "resistance": (charge_dims, stack("r"), {"units": "ohm m^2", "long_name": "U / I (charge='nodes')"}),
            "usable": (charge_dims, stack("ok"), {"long_name": "sample used by a differential regression"}),
        },
        coords={
            "time": ("time", time[start:end + 1], {"units": "s"}),
            "cycle_time": ("cycle_time", t_cycle, {"units": "s"}),
            "link": ("link", np.array(links)),
            "open_space": ("link", np.array([i == 0 for i in links])),
            "charging": ("cycle_time", np.arange(t_cycle.size) < n_charge),
        },
        attrs=dict(dataset.attrs),
    )
    prepared.attrs.update(
        potential=str(potential), charge=str(charge), min_current=float(min_current),
        charging_start_s=float(time[start]), charging_end_s=float(time[end]), cycle=int(cycle),
        convention=("Q = s int I dt > 0 at end of charging; U = s (phi_i - phi_{i+1}); "
                    "R = U / I > 0 for a resistive link"),
    )
    return prepared
