"""The reproduce pipeline's circuit extraction from mPNP data, on synthetic runs with a known answer."""

import numpy as np
import pytest
import xarray as xr

from jaxpnp.reproduce.pipeline import node_potentials, open_space_law


def _run(time, phi_m, q_electrode, current=None):
    data = {"electrode_potential": (("time",), phi_m), "slit_charge": (("time", "slit"), -q_electrode)}
    if current is not None:
        data["current_density"] = (("time",), current)
    return xr.Dataset(data, coords={"time": time, "slit": np.arange(q_electrode.shape[1])})


def test_node_potentials_invert_the_equilibrium_charge_curves():
    # equilibrium: node k holds q_k = C_k tanh(phi / v_k) (a saturating double layer)
    C, v_s = np.array([1.0, 2.0, 1.5]), np.array([0.2, 0.1, 0.15])
    q_eq = lambda phi: C * np.tanh(np.asarray(phi)[..., None] / v_s)  # noqa: E731
    t_eq = np.linspace(0, 2, 801)
    phi_eq = 0.5 * (1 - np.abs(1 - t_eq))  # 0 -> 0.5 -> 0 V
    eq = _run(t_eq, phi_eq, q_eq(phi_eq))
    # a run whose nodes sit at known potentials V_k(t) (a lag behind the electrode)
    t = np.linspace(0, 1, 101)
    phi_m = 0.4 * t
    V_true = np.stack([0.3 * phi_m, 0.5 * phi_m, 0.8 * phi_m], axis=1)
    q = C * np.tanh((phi_m[:, None] - V_true) / v_s)
    V = node_potentials(_run(t, phi_m, q), eq)
    assert np.max(np.abs(V - V_true)) < 2e-3  # piecewise-linear table of 401 points
    # at equilibrium (q = q_eq(phi_m)) every node potential is the bulk's, 0 V
    assert np.max(np.abs(node_potentials(_run(t, phi_m, q_eq(phi_m)), eq))) < 2e-3
    with pytest.raises(ValueError, match="regions"):
        node_potentials(_run(t, phi_m, q[:, :2]), eq)


def test_open_space_law_recovers_a_charge_dependent_resistance():
    R_open, gamma_open = 6e-10, -4.0
    t = np.linspace(0, 2e-8, 2001)
    phi = np.minimum(t, 2e-8 - t) * 5e7  # 0 -> 0.5 -> 0 V
    current = 1e8 * np.sin(np.pi * t / 2e-8) + 2e7
    Q = np.concatenate([[0.0], np.cumsum(0.5 * (current[1:] + current[:-1]) * np.diff(t))])
    q_max = Q[np.argmax(phi)]
    V0 = current * R_open * (1 - gamma_open * Q / q_max)
    q = np.stack([np.zeros_like(t), np.zeros_like(t)], axis=1)
    ds = _run(t, phi, q, current)
    R, g, qm, r2 = open_space_law(ds, np.stack([V0, V0], axis=1))
    assert R == pytest.approx(R_open, rel=1e-3) and g == pytest.approx(gamma_open, rel=1e-3)
    assert qm == pytest.approx(q_max, rel=1e-3) and r2 > 0.9999
