"""circuits.SaltLadder(coions="dynamic"): slit co-ions as states, against a uniform Bikerman-Donnan slit."""

import dataclasses

import jax
import numpy as np
import pytest

import circuits
import jaxpnp

from donnan_ladder import A3NA, C0, F, N_SLITS, NU, STERN, VOLUME, VT
from donnan_ladder import donnan as _donnan
from donnan_ladder import equilibrium as _equilibrium
from donnan_ladder import ladder as _model


def test_region_volumes_are_the_uncharged_contents():
    np.testing.assert_allclose(circuits.region_volumes(_equilibrium()), VOLUME, rtol=1e-12)


def test_ion_potentials_are_the_uniform_slits():
    """Off equilibrium (extra co-ions at the same charge) the anions and cations of a uniform Bikerman
    slit see u_-+ = q/C_S +- V_T ln(c_-+ (1 - nu) / (c0 (1 - f))) (closed form); the model gets it from the
    equilibrium tables plus its correction, to the tables' interpolation."""
    m = _model()
    q = np.array([0.05, 0.45, 0.30])
    p_eq = np.array([np.interp(qk, *_donnan(np.linspace(0, 30, 20001), k)[:2]) for k, qk in enumerate(q)])
    extra = np.array([1.0, 2.0, 4.0])  # co-ions over their equilibrium content
    with jaxpnp.float64():
        um, up, cat, an = (np.asarray(a) for a in m.ion_potentials(q, (extra * p_eq)[1:]))
        u_eq = np.asarray(m.node_voltage(q))
        um0, up0, _, _ = (np.asarray(a) for a in m.ion_potentials(q, p_eq[1:]))
    np.testing.assert_allclose(cat[1:], (extra * p_eq)[1:], rtol=1e-12)
    np.testing.assert_allclose(an - cat, q / F, rtol=1e-9)
    f = A3NA * (cat + an) / VOLUME
    exact_m = q / STERN + VT * np.log(an / VOLUME * (1 - NU) / (C0 * (1 - f)))
    exact_p = q / STERN - VT * np.log(cat / VOLUME * (1 - NU) / (C0 * (1 - f)))
    assert np.max(np.abs(um - exact_m)) < 1e-4 and np.max(np.abs(up - exact_p)) < 1e-4
    # the corrections are not small here (cations: ~ V_T ln 2 and ln 4; anions: the packing)
    assert np.min(np.abs(up - u_eq)[1:]) > 0.015 and np.max(np.abs(um - u_eq)) > 0.02
    # at equilibrium contents both species see the capacitor's voltage
    np.testing.assert_allclose(um0, u_eq, atol=2e-5)
    np.testing.assert_allclose(up0, u_eq, atol=2e-5)


def test_held_voltage_relaxes_to_the_equilibrium_slit():
    """A long hold: every slit's charge and co-ions reach the equilibrium at the electrode potential."""
    step = jaxpnp.PotentialStep(v_step=0.5, duration_s=2e-7, rise_time_s=1e-9)
    m = _model(salt="frozen")
    s = circuits.solve(m, step, points_per_cycle=20, steps=400)
    q = np.asarray(s.slit_charge)[-1]
    p = np.asarray(s.cation_content)[-1]
    eq = _equilibrium()
    q_eq = -eq["slit_charge"].interp(potential=0.25).values
    p_eq = 0.5 * (eq["slit_ion_content"].interp(potential=0.25).values - q_eq / F)
    np.testing.assert_allclose(q, q_eq, rtol=2e-3)
    np.testing.assert_allclose(p[1:], p_eq[1:], rtol=2e-2)
    # on the way the slits hold more co-ions than at equilibrium at their charge (they leave by transport)
    qs, ps = np.asarray(s.slit_charge)[:, 1:], np.asarray(s.cation_content)[:, 1:]
    q_tab, N_tab = -eq["slit_charge"].values, eq["slit_ion_content"].values
    p_at_q = np.stack([0.5 * (np.interp(qs[:, k], q_tab[:, k + 1], N_tab[:, k + 1]) - qs[:, k] / F)
                       for k in range(N_SLITS)], 1)
    ratio = ps / p_at_q
    assert np.max(ratio) > 1.1 and np.min(ratio) > 0.99


def test_closed_cell_conserves_charge_and_salt_with_coion_states():
    """Closed cell: the slits' own ions (q/F + 2 p) and the separator's add up to a constant."""
    cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=2e7)
    s = circuits.solve(_model(boundary="symmetric"), cv, points_per_cycle=60, steps=200)
    q, Qe = np.asarray(s.slit_charge).sum(axis=1), np.asarray(s.electrode_charge)
    assert np.max(np.abs(q - Qe)) < 1e-12 * np.max(np.abs(Qe))
    salt = np.asarray(s.total_salt)
    assert np.ptp(salt) < 1e-9 * salt[0]
    assert np.min(np.asarray(s.separator_concentration)) < 0.9  # the salt really moves


@pytest.mark.slow
def test_coion_ladder_is_differentiable():
    """d loss / d R_c through the whole ROS2 scan matches central finite differences. The smooth
    (mean) co-ion share: "min" has a kink where two nodes' shares tie (every untouched node at t = 0),
    and the Rosenbrock step, which uses the Jacobian, then depends on the branch."""
    cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=2e7)
    m = _model(link_share="mean")

    def loss(scale):
        mm = dataclasses.replace(m, R_c=m.R_c * scale)
        return jax.numpy.mean(circuits.solve(mm, cv, points_per_cycle=20, steps=100).current_density ** 2)

    with jaxpnp.float64():
        g = float(jax.grad(loss)(1.0))
        # a wide step: the tables' knots make the Rosenbrock map step-wise rough at small scales
        h = 1e-2
        fd = (float(loss(1.0 + h)) - float(loss(1.0 - h))) / (2 * h)
    assert g == pytest.approx(fd, rel=1e-3)
    assert abs(g) > 0


def test_coions_need_the_node_volumes():
    m = _model()
    with pytest.raises(ValueError, match="region_volume_m"):
        dataclasses.replace(m, region_volume_m=None)
    with pytest.raises(ValueError, match="coions"):
        dataclasses.replace(m, coions="x")
    with pytest.raises(ValueError, match="link_law"):
        dataclasses.replace(m, coions="equilibrium", link_law="content")
