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
from jaxpnp import float64, to_cf

from ._ncm import AbstractLadder
from ._sharding import sharded_vmap
from ._simulate import solve


def peak_map(model: AbstractLadder, protocol, gammas, R_cs, *, points_per_cycle: int = 400,
             method: str = "adaptive", q_max: str = "window", q_max_iterations: int = 6,
             **solver_options) -> xr.Dataset:
    """CV current peak over a (gamma, R_c) grid, vmapped (paper Fig. 3g), the grid split
    over the local devices (:func:`sharded_vmap`).

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

    ``q_max`` chooses the convention (ignored if the model sets ``q_max`` itself):

    * ``"window"`` (default): the one above, ``Q_i^max = dphi_max * sum_{k>i} C_k``;
    * ``"passed"``: ``Q_i^max`` = the charge link ``i`` actually passes during the charging
      sweep of this protocol (so rate- and parameter-dependent), found self-consistently
      for every grid point: start from the window value and iterate
      ``Q^max <- sqrt(Q^max Q_i(Q^max))`` ``q_max_iterations`` times, ``Q_i`` the largest
      charge link i has passed on the sweep (see :func:`passed_q_max`). Then ``Q_i / Q_i^max`` reaches 1 at the upper vertex in every
      link. ``q_max_residual`` (max over links of ``|Q_i(T/2) / Q_i^max - 1|`` after the
      last iteration) is returned to show convergence.

      Measured (20 slits, benchmark parameters, 1e8 V/s, 12 iterations, fast solver):
      converged (residual < 1e-4) for gamma <= 0.5 at R_c = 1e-10..1e-7 and for all gamma
      at R_c = 1e-10; there the current is raised (peak / TLM peak up to 1.5 at gamma 0.5)
      but its maximum stays at the vertex (peak_ratio = 1) except gamma = 1, R_c = 1e-10
      (peak_ratio 1.016 at 0.99 V). For gamma >= 0.8 with R_c >= 1e-9 the iteration does
      not settle (links reach the resistance floor; residual O(1) or larger): treat those
      entries as unreliable.
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
    if int(q_max_iterations) < 1:
        raise ValueError("q_max_iterations must be >= 1")
    cv = dataclasses.replace(protocol, cycles=1)
    times = np.asarray(cv.sample_times(points_per_cycle))
    rising = times <= cv.half_period * (1 + 1e-12)
    times = times[rising]
    g, r = np.meshgrid(gammas, R_cs, indexing="ij")

    if q_max not in ("window", "passed"):
        raise ValueError(f"q_max must be 'window' or 'passed', got {q_max!r}")
    self_consistent = q_max == "passed" and getattr(model, "q_max", None) is None

    def one(gamma, R_c):
        m = eqx.tree_at(lambda m: (m.gamma, m.R_c), model, (gamma, R_c))
        residual = jnp.zeros(())
        if self_consistent:
            qm, residual = _passed_q_max(m, cv, times, q_max_iterations, method, solver_options)
            m = dataclasses.replace(m, q_max=qm)
        sol = solve(m, cv, times=times, method=method, **solver_options)
        i = jnp.argmax(sol.current_density)
        return sol.current_density[i], sol.cell_voltage[i], sol.current_density[-1], residual

    with float64():
        peak, volt, vertex, resid = sharded_vmap(one)(jnp.asarray(g.ravel()), jnp.asarray(r.ravel()))
    shape = g.shape
    extra = {}
    if self_consistent:
        extra["q_max_residual"] = (("gamma", "R_c"), np.asarray(resid).reshape(shape), {
            "units": "1", "long_name": "max_i |Q_i(T/2) / Q_i^max - 1| after the last fixed-point iteration"})
    return to_cf(xr.Dataset(
        {
            **extra,
            "peak_current": (("gamma", "R_c"), np.asarray(peak).reshape(shape), {"units": "A/m^2"}),
            "peak_voltage": (("gamma", "R_c"), np.asarray(volt).reshape(shape), {"units": "V"}),
            "peak_ratio": (("gamma", "R_c"), (np.asarray(peak) / np.asarray(vertex)).reshape(shape),
                           {"units": "1", "long_name": "peak current / current at the upper vertex"}),
        },
        coords={"gamma": ("gamma", gammas, {"units": "1"}), "R_c": ("R_c", R_cs, {"units": "ohm m^2"})},
        attrs={**{k: (str(v) if isinstance(v, list) else v) for k, v in model.parameters().items()},
               "scan_rate_V_s": float(cv.scan_rate_V_s), "v_min": float(cv.v_min), "v_max": float(cv.v_max),
               "q_max_convention": q_max if getattr(model, "q_max", None) is None else "model"},
    ))


def _passed_q_max(model, cv, times, iterations, method, solver_options):
    """Fixed point ``Q^max = Q(T/2; Q^max)`` on the charging sweep ``times`` (traceable).

    ``Q(T/2; Q^max)`` decreases with ``Q^max`` (a larger ``Q^max`` keeps R higher), so the
    plain iteration oscillates; it is damped geometrically, ``Q^max <- sqrt(Q^max Q)``.
    """
    def passed(qm):
        m = model if qm is None else dataclasses.replace(model, q_max=qm)
        q = jnp.max(solve(m, cv, times=times, method=method, **solver_options).link_charge, axis=0)
        return jnp.maximum(q, 1e-6 * jnp.max(q))  # links that pass ~nothing: R = R_c there anyway

    qm = passed(None)  # from the window convention
    residual = jnp.zeros(())
    for _ in range(int(iterations)):
        new = passed(qm)
        residual = jnp.max(jnp.abs(new / qm - 1.0))
        qm = jnp.sqrt(qm * new)
    return qm, residual


def passed_q_max(model: AbstractLadder, protocol, *, iterations: int = 6, points_per_cycle: int = 400,
                 method: str = "adaptive", **solver_options):
    """Self-consistent ``Q_i^max`` (C/m^2): the charge link ``i`` passes during the first charging sweep.

    Iterates ``Q^max <- Q_i(t = T/2)`` (simulated with ``q_max = Q^max``) ``iterations``
    times from the window convention; returns ``(q_max, residual)`` with ``residual`` =
    ``max_i |Q_i(T/2) / Q_i^max - 1|`` of the last iteration. ``protocol``: a ``jaxpnp.CV``.
    Use the result as ``NCM(..., q_max=q_max)`` (see :func:`peak_map`, ``q_max="passed"``).
    """
    if not isinstance(protocol, jaxpnp.CV):
        raise ValueError("passed_q_max needs a jaxpnp.CV protocol")
    if iterations < 1:
        raise ValueError("iterations must be >= 1")
    cv = dataclasses.replace(protocol, cycles=1)
    times = np.asarray(cv.sample_times(points_per_cycle))
    times = times[times <= cv.half_period * (1 + 1e-12)]
    with float64():
        qm, residual = _passed_q_max(model, cv, times, iterations, method, solver_options)
    return np.asarray(qm), float(residual)


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
    return to_cf(xr.Dataset(
        {
            "asymmetry": (("n_slits", "scan_rate"), asym, {
                "units": "1", "long_name": "sum|I(t) + I(t+T/2)| / sum|I(t)| over the last cycle"}),
            "peak_asymmetry": (("n_slits", "scan_rate"), peak, {
                "units": "1", "long_name": "(max I_charge - max|I_discharge|) / max I_charge"}),
        },
        coords={"n_slits": ("n_slits", np.asarray(n_slits)),
                "scan_rate": ("scan_rate", rates, {"units": "V/s"})},
        attrs={k: (str(v) if isinstance(v, list) else v) for k, v in model.parameters().items() if k != "n_slits"},
    ))
