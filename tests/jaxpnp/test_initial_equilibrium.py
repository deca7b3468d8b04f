"""Protocols that start at a non-zero voltage start from the discrete equilibrium there."""

import numpy as np
import pytest

import jaxpnp

EL = jaxpnp.Electrolyte()
TAU = EL.debye_time_s
# the one-slit network of test_mpnp / test_equilibrium (shares their compiled solvers)
TINY = jaxpnp.Electrode(n_sheets=2, slit_nm=1.2, sheet_length_nm=1.8, sheet_gap_nm=0.6,
                        sheet_thickness_nm=0.3, separator_nm=1.2)


def test_hold_at_the_initial_voltage_draws_no_current():
    hold = jaxpnp.PotentialStep(v_initial=0.3, v_step=0.3, duration_s=200 * TAU)
    ds = jaxpnp.simulate(EL, TINY, hold, grid_nm=0.3, points_per_cycle=8, progress=False)
    eq = jaxpnp.equilibrium(EL, TINY, [0.15], grid_nm=0.3, boundary="symmetric")
    q_eq = float(eq.electrode_charge[0])
    np.testing.assert_allclose(ds.electrode_charge, q_eq, rtol=1e-9)
    np.testing.assert_allclose(ds.slit_charge.values, np.broadcast_to(eq.slit_charge.values, ds.slit_charge.shape),
                               rtol=1e-8)
    # a start from the uniform bulk would pass all of q_eq within a few RC times
    assert np.max(np.abs(ds.current_density.values)) * hold.duration_s < 1e-9 * q_eq


def test_cv_from_a_nonzero_vertex_starts_on_the_equilibrium_branch():
    hp = 4000 * TAU  # half period: slow against the cell's RC time
    cv = jaxpnp.CV(v_min=0.1, v_max=0.2, scan_rate_V_s=0.1 / hp)
    ds = jaxpnp.simulate(EL, TINY, cv, grid_nm=0.3, points_per_cycle=40, progress=False)
    rising = ds.time.values < 0.99 * hp
    phi = ds.electrode_potential.values[rising]
    d = 1e-4  # V
    eq = jaxpnp.equilibrium(EL, TINY, np.concatenate([[0.05], phi - d, phi + d]), grid_nm=0.3,
                            boundary="symmetric")
    q = eq.electrode_charge.values
    # charge is continuous with the equilibrium at the start
    assert float(ds.electrode_charge[0]) == pytest.approx(q[0], rel=1e-10)
    # no relaxation transient: after the instantaneous dielectric step at t = 0 the current
    # follows the quasi-static C_eq(phi) dphi/dt (C_eq falls by 2.4x over the sweep);
    # a start off equilibrium would add a decaying transient of order Q / RC
    n = phi.size
    quasi_static = (q[1 + n:] - q[1:1 + n]) / (2 * d) * 0.5 * cv.scan_rate_V_s
    ratio = ds.current_density.values[rising][1:] / quasi_static[1:]
    np.testing.assert_allclose(ratio, 1.0, atol=0.03)


def test_differentiable_run_refuses_a_nonzero_start():
    cv = jaxpnp.CV(v_min=0.1, v_max=0.2, scan_rate_V_s=0.1 / (100 * TAU))
    with pytest.raises(NotImplementedError, match="0 V"):
        jaxpnp.differentiable_run(EL, TINY, cv, [10 * TAU], grid_nm=0.3)
