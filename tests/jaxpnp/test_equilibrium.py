"""jaxpnp.equilibrium: the discrete steady state by Newton, against Bikerman and simulate; protocols
that start at a non-zero voltage start from it."""

import math

import numpy as np
import pytest

import jaxpnp

EL = jaxpnp.Electrolyte()
TAU = EL.debye_time_s
PLANAR = jaxpnp.Electrode(layout="planar", separator_nm=3.0)
# one slit behind one sheet (the same geometry as test_mpnp's grid-convergence case)
TINY = jaxpnp.Electrode(n_sheets=2, slit_nm=1.2, sheet_length_nm=1.8, sheet_gap_nm=0.6,
                        sheet_thickness_nm=0.3, separator_nm=1.2)


def test_planar_charge_converges_to_analytic_bikerman_at_second_order():
    pots = np.array([-0.25, 0.1, 0.5])  # V per electrode; 0.5 V is deep in the crowded regime
    exact = EL.bikerman_charge_C_m2(pots)
    errors = []
    for h in (0.06, 0.03):
        ds = jaxpnp.equilibrium(EL, PLANAR, pots, grid_nm=h)
        q = ds.electrode_charge.values
        errors.append(np.abs(q / exact - 1))
        # the ions carry the opposite charge (one region; the 3 nm separator leaves a tail)
        np.testing.assert_allclose(ds.slit_charge.values[:, 0], -q, rtol=1e-3)
    assert np.all(errors[1] < 5e-4), errors
    order = np.log2(errors[0] / errors[1])
    assert np.all(order > 1.8), order
    np.testing.assert_array_equal(ds.potential.values, pots)  # input order kept
    np.testing.assert_allclose(ds.reference_concentration, EL.concentration_M)


@pytest.mark.slow
def test_planar_reservoir_equals_long_time_limit_of_simulate():
    v = 1.0
    step = jaxpnp.PotentialStep(v_step=v, duration_s=300 * TAU)
    sim = jaxpnp.simulate(EL, PLANAR, step, grid_nm=0.06, boundary="reservoir", points_per_cycle=2,
                          progress=False)
    eq = jaxpnp.equilibrium(EL, PLANAR, [v / 2], grid_nm=0.06, boundary="reservoir")
    assert float(sim.electrode_charge[-1]) == pytest.approx(float(eq.electrode_charge[0]), rel=1e-6)
    assert float(sim.total_salt[-1]) == pytest.approx(float(eq.total_salt[0]), rel=1e-6)
    assert float(sim.slit_potential[-1, 0]) == pytest.approx(float(eq.slit_potential[0, 0]), rel=1e-6)


def test_closed_cell_equals_long_time_limit_of_simulate():
    v = 0.3
    step = jaxpnp.PotentialStep(v_step=v, duration_s=3000 * TAU)
    sim = jaxpnp.simulate(EL, TINY, step, grid_nm=0.3, boundary="symmetric", points_per_cycle=2,
                          progress=False)
    eq = jaxpnp.equilibrium(EL, TINY, [v / 2], grid_nm=0.3, boundary="symmetric")
    np.testing.assert_allclose(sim.slit_charge.values[-1], eq.slit_charge.values[0], rtol=1e-6)
    np.testing.assert_allclose(sim.slit_potential.values[-1], eq.slit_potential.values[0], rtol=1e-5)
    assert float(sim.electrode_charge[-1]) == pytest.approx(float(eq.electrode_charge[0]), rel=1e-6)
    # the closed cell keeps its salt, and the separator is depleted below the bulk
    assert float(eq.total_salt[0]) == pytest.approx(float(sim.total_salt[0]), rel=1e-12)
    assert float(eq.reference_concentration[0]) < 0.99 * EL.concentration_M


def test_closed_cell_keeps_salt_and_is_antisymmetric_in_potential(assert_cf):
    pots = np.array([-0.4, -0.1, 0.0, 0.1, 0.4])
    ds = jaxpnp.equilibrium(EL, TINY, pots, grid_nm=0.3, boundary="symmetric")
    assert_cf(ds)
    np.testing.assert_allclose(ds.total_salt, ds.total_salt[2], rtol=1e-12)
    # D+ = D-, equal ion sizes: reversing the potential reverses every charge
    q = ds.slit_charge.values
    np.testing.assert_allclose(q[::-1], -q, atol=1e-9 * np.abs(q).max())
    np.testing.assert_allclose(ds.slit_ion_content.values[::-1], ds.slit_ion_content.values, rtol=1e-9)
    assert np.all(np.diff(ds.electrode_charge.values) > 0)  # charge rises with potential
    # the slit regions' ion content adds up to the total
    np.testing.assert_allclose(ds.slit_ion_content.sum("slit"), ds.total_salt, rtol=1e-12)
    reservoir = jaxpnp.equilibrium(EL, TINY, pots, grid_nm=0.3, boundary="reservoir")
    # an open cell draws salt in from the bulk; the closed one cannot
    assert np.all(reservoir.total_salt.values[[0, -1]] > 1.05 * ds.total_salt.values[[0, -1]])


@pytest.mark.parametrize("kwargs, match", [
    (dict(potentials_V=[]), "non-empty"),
    (dict(potentials_V=[[0.1]]), "1D"),
    (dict(potentials_V=[0.1, float("nan")]), "finite"),
    (dict(potentials_V="abc"), "potentials_V"),
    (dict(boundary="open"), "boundary"),
    (dict(grid_nm=0.5), "Debye"),
    (dict(grid_nm=-0.1), "grid_nm"),
])
def test_bad_input_is_refused(kwargs, match):
    args = dict(potentials_V=[0.1], grid_nm=0.3, boundary="reservoir") | kwargs
    pots = args.pop("potentials_V")
    with pytest.raises(ValueError, match=match):
        jaxpnp.equilibrium(EL, TINY, pots, **args)


def test_subnanometre_slit_needs_permission():
    e = jaxpnp.Electrode(n_sheets=2, slit_nm=0.9, sheet_length_nm=1.8, sheet_gap_nm=0.6,
                         sheet_thickness_nm=0.3, separator_nm=1.2)
    with pytest.raises(ValueError, match="allow_subnanometre_slits"):
        jaxpnp.equilibrium(EL, e, [0.1], grid_nm=0.15)
    ds = jaxpnp.equilibrium(EL, e, [0.1], grid_nm=0.15, allow_subnanometre_slits=True)
    assert math.isfinite(float(ds.electrode_charge[0]))


# ---------------------------------------------------------------------------
# protocols that start at a non-zero voltage start from the discrete equilibrium there
# (in this file so the hold shares the compiled PotentialStep solve of
# test_closed_cell_equals_long_time_limit_of_simulate: same cell, same output count)


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
