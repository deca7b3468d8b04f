"""Parameter sweeps: the CV current-peak map (paper Fig. 3g) and the charge/discharge asymmetry (Fig. S12).

Asymmetry metric. A triangular CV satisfies ``V(t + T/2) = v_min + v_max - V(t)``:
the discharging branch visits the charging branch's voltages mirrored about the
window's centre. A linear time-invariant ladder (the TLM, any parameters) in its
periodic steady state answers a half-wave-antisymmetric drive antisymmetrically,
``I(t + T/2) = -I(t)``, i.e. its CV is point-symmetric about the window centre.
We report the L1 departure from that symmetry over the last cycle's charging half,

    asymmetry = sum_t |I(t) + I(t + T/2)| / sum_t |I(t)|,

0 for the (periodic) TLM, > 0 when the trans-slit resistance depends on the charge.
``peak_asymmetry`` = (max I_charge - max |I_discharge|) / max I_charge is reported too.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

import jaxpnp
from jaxpnp import float64

from ._ncm import AbstractLadder
from ._simulate import solve


def peak_map(model: AbstractLadder, protocol, gammas, R_cs, *, points_per_cycle: int = 400,
             method: str = "adaptive", **solver_options) -> xr.Dataset:
    """CV current peak over a (gamma, R_c) grid, vmapped (paper Fig. 3g).

    ``model``: an :class:`NCM` template (its other parameters are kept); ``protocol``:
    a ``jaxpnp.CV`` (the first charging sweep is analysed); ``gammas`` (-), ``R_cs``
    (ohm m^2). Returns ``peak_current`` (A/m^2, max current on the first rising sweep),
    ``peak_voltage`` (V, cell voltage there) and ``peak_ratio`` = peak current / current
    at the upper vertex (> 1: the CV has a peak before the vertex).

    Q_max convention: unless the model sets ``q_max``, ``Q_i^max = dphi_max * sum_{k>i} C_k``
    (the charge link i passes when the whole ladder is charged to the window), so
    ``Q_i / Q_i^max <= 1`` and the law stays in its domain. With it no peak appears
    anywhere we looked (20 slits, gamma <= 1, R_c 1e-10..1e-7 ohm m^2, 1e7..1e8 V/s:
    peak_ratio <= 1.0005): in a rate-limited sweep the links never approach Q^max, so
    R_d stays small exactly where it would matter. Peaks need Q/Q^max -> 1 while the
    ladder is still resistance limited, e.g. Q^max = the charge actually passed in the
    sweep (rate-dependent normalisation, as the paper's regression on the charging
    half-cycle suggests); a fixed ``q_max`` = 0.1-0.3 of the default gives peaks but also
    drives Q/Q^max past 1 (R clipped at its floor), outside the law's domain.
    """
    if not isinstance(protocol, jaxpnp.CV):
        raise ValueError("peak_map needs a jaxpnp.CV protocol")
    gammas = np.atleast_1d(np.asarray(gammas, dtype=float))
    R_cs = np.atleast_1d(np.asarray(R_cs, dtype=float))
    if np.any(~np.isfinite(R_cs)) or np.any(R_cs <= 0):
        raise ValueError("R_cs must be positive and finite")
    if np.any(~np.isfinite(gammas)) or (not getattr(model, "allow_gamma_outside_unit", False)
                                        and (np.any(gammas < 0) or np.any(gammas > 1))):
        raise ValueError("gammas must lie in [0, 1]")
    cv = dataclasses.replace(protocol, cycles=1)
    times = np.asarray(cv.sample_times(points_per_cycle))
    rising = times <= cv.half_period * (1 + 1e-12)
    times = times[rising]
    g, r = np.meshgrid(gammas, R_cs, indexing="ij")

    def one(gamma, R_c):
        m = eqx.tree_at(lambda m: (m.gamma, m.R_c), model, (gamma, R_c))
        sol = solve(m, cv, times=times, method=method, **solver_options)
        i = jnp.argmax(sol.current_density)
        return sol.current_density[i], sol.cell_voltage[i], sol.current_density[-1]

    with float64():
        peak, volt, vertex = jax.jit(jax.vmap(one))(jnp.asarray(g.ravel()), jnp.asarray(r.ravel()))
    shape = g.shape
    return xr.Dataset(
        {
            "peak_current": (("gamma", "R_c"), np.asarray(peak).reshape(shape), {"units": "A/m^2"}),
            "peak_voltage": (("gamma", "R_c"), np.asarray(volt).reshape(shape), {"units": "V"}),
            "peak_ratio": (("gamma", "R_c"), (np.asarray(peak) / np.asarray(vertex)).reshape(shape),
                           {"units": "1", "long_name": "peak current / current at the upper vertex"}),
        },
        coords={"gamma": ("gamma", gammas, {"units": "1"}), "R_c": ("R_c", R_cs, {"units": "ohm m^2"})},
        attrs={**{k: (str(v) if isinstance(v, list) else v) for k, v in model.parameters().items()},
               "scan_rate_V_s": float(cv.scan_rate_V_s), "v_min": float(cv.v_min), "v_max": float(cv.v_max)},
    )


def _elmore_delay(model: AbstractLadder) -> float:
    """Elmore delay (s) of the uncharged ladder seen from the bulk: an upper bound on its slowest time constant."""
    with float64():
        c = np.asarray(model.capacitances())
        r = np.asarray(model.linear_resistances())
    downstream = np.cumsum(c[::-1])[::-1]  # C seen behind R_open, then behind each link
    return float(float(model.R_open) * downstream[0] + np.sum(r * downstream[1:]))


def _asymmetry_of(current: np.ndarray, points_per_cycle: int):
    """Metric of the module docstring on the last cycle of a sampled CV current."""
    half = points_per_cycle // 2
    last = current[-(points_per_cycle + 1):]
    charge, discharge = last[:half + 1], last[half:]
    asym = np.sum(np.abs(charge + discharge)) / np.sum(np.abs(charge))
    peak = (np.max(charge) - np.max(-discharge)) / np.max(charge)
    return float(asym), float(peak)


def cv_asymmetry(model: AbstractLadder, n_slits, scan_rates_V_s, *, v_min: float = 0.0, v_max: float = 1.0,
                 cycles: int | None = None, points_per_cycle: int = 400, method: str = "adaptive",
                 **solver_options) -> xr.Dataset:
    """Charge/discharge CV asymmetry (see module docstring) vs number of slits and scan rate.

    ``model``: template with scalar per-slit parameters; the electrode is made thicker
    by adding slits of the same ``C_slit``/``R_c``. ``cycles`` cycles are run and the
    last is analysed; the default runs until the ladder's slowest transient (bounded by
    its Elmore delay at zero charge) has decayed by e^-8, so the last cycle is
    periodic to ~3e-4 and the TLM's metric is ~0. Returns ``asymmetry`` and
    ``peak_asymmetry`` (dimensionless) on (n_slits, scan_rate).
    """
    n_slits = [int(n) for n in np.atleast_1d(n_slits)]
    rates = np.atleast_1d(np.asarray(scan_rates_V_s, dtype=float))
    if points_per_cycle % 2:
        raise ValueError("points_per_cycle must be even (the metric pairs t with t + T/2)")
    asym = np.zeros((len(n_slits), len(rates)))
    peak = np.zeros_like(asym)
    for a, n in enumerate(n_slits):
        m = dataclasses.replace(model, n_slits=n)
        for b, rate in enumerate(rates):
            period = 2.0 * (v_max - v_min) / float(rate)
            n_cycles = cycles if cycles is not None else min(200, max(3, int(np.ceil(8 * _elmore_delay(m) / period)) + 1))
            cv = jaxpnp.CV(v_min=v_min, v_max=v_max, scan_rate_V_s=float(rate), cycles=n_cycles)
            sol = solve(m, cv, points_per_cycle=points_per_cycle, method=method, **solver_options)
            asym[a, b], peak[a, b] = _asymmetry_of(np.asarray(sol.current_density), points_per_cycle)
    return xr.Dataset(
        {
            "asymmetry": (("n_slits", "scan_rate"), asym, {
                "units": "1", "long_name": "sum|I(t) + I(t+T/2)| / sum|I(t)| over the last cycle"}),
            "peak_asymmetry": (("n_slits", "scan_rate"), peak, {
                "units": "1", "long_name": "(max I_charge - max|I_discharge|) / max I_charge"}),
        },
        coords={"n_slits": ("n_slits", np.asarray(n_slits)),
                "scan_rate": ("scan_rate", rates, {"units": "V/s"})},
        attrs={k: (str(v) if isinstance(v, list) else v) for k, v in model.parameters().items() if k != "n_slits"},
    )
