"""circuits.SaltLadder(separator="charged"): the separator as a coarse Nernst-Planck-Poisson line."""

import dataclasses
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import circuits
import jaxpnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_salt_coions import _equilibrium, _model  # noqa: E402  (the uniform-slit Bikerman-Donnan ladder)


def _charged(**kw):
    return dataclasses.replace(_model(), separator="charged", **kw)


def test_line_potential_solves_the_discrete_poisson_equation():
    """The line's potential (closed form in the model) against a direct solve of its discrete Poisson
    equation: node charges F (c+ - c-) dx, faces eps/dx (the two end faces, half cells, 2 eps/dx),
    0 V at the reservoir, phi - U(q_0') past the last node."""
    m = _charged(separator_nodes=6)
    with jaxpnp.float64():
        scale = m.charge_unit(0.5)
        y = np.asarray(m.initial_state())
        rng = np.random.default_rng(3)
        y = y + 0.02 * rng.standard_normal(y.shape)  # a charged, depleted line off equilibrium
        phi = 0.4
        f = m.fluxes(jax.numpy.asarray(y), phi, scale)
        psi = np.asarray(f["separator_potential"])
        rho = np.asarray(m.separator_net_charge(jax.numpy.asarray(y)))
        u0 = float(np.asarray(f["node_voltage"])[0])
    k, dx = m.separator_nodes, float(m.separator_m) / m.separator_nodes
    eps = float(m.relative_permittivity) * 8.8541878128e-12
    g = np.r_[2.0, np.ones(k - 1), 2.0] * eps / dx
    A = np.diag(g[:-1] + g[1:]) - np.diag(g[1:-1], 1) - np.diag(g[1:-1], -1)
    b = 1.602176634e-19 * 6.02214076e23 * rho * dx  # F = e N_A (exact SI)
    b[-1] += g[-1] * (phi - u0)
    assert np.max(np.abs(rho)) > 1.0  # the line carries a real space charge here
    np.testing.assert_allclose(psi, np.linalg.solve(A, b), rtol=1e-11, atol=1e-14)


def test_held_voltage_relaxes_to_the_equilibrium_with_a_neutral_line():
    """A long hold at 0.5 V: the slits reach the equilibrium charge, the line's space charge and
    depletion vanish (known answer: the separator at c0, neutral; no current)."""
    step = jaxpnp.PotentialStep(v_step=0.5, duration_s=1e-6, rise_time_s=1e-9)
    s = circuits.solve(_charged(), step, points_per_cycle=20, steps=400)
    q = np.asarray(s.slit_charge)[-1]
    q_eq = -_equilibrium()["slit_charge"].interp(potential=0.25).values
    np.testing.assert_allclose(q, q_eq, rtol=2e-3)
    np.testing.assert_allclose(np.asarray(s.separator_concentration)[-1], 1.0, atol=2e-3)
    rho = np.asarray(s.separator_net_charge)
    assert np.max(np.abs(rho[-1])) < 1e-6
    I = np.abs(np.asarray(s.current_density))
    assert I[-1] < 1e-3 * I.max() and np.max(np.abs(np.asarray(s.separator_concentration) - 1)) > 1e-4  # salt moved


@pytest.mark.slow  # two compiled ladders (~60 s contended)
def test_charged_line_is_the_neutral_one_when_the_salt_barely_moves():
    """Fast CV to 0.2 V at 1 M: the space charge is negligible, so the charged line carries the
    current of the neutral line (its resistance is the bulk L / kappa = R_open) to ~1%."""
    cv = jaxpnp.CV(v_min=0.0, v_max=0.2, scan_rate_V_s=2e7)
    a = circuits.solve(_model(), cv, points_per_cycle=60, steps=200)
    b = circuits.solve(_charged(), cv, points_per_cycle=60, steps=200)
    Ia, Ib = np.asarray(a.current_density), np.asarray(b.current_density)
    assert np.sqrt(np.mean((Ia - Ib) ** 2) / np.mean(Ia ** 2)) < 0.01
