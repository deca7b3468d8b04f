"""circuits.SaltLadder: the NCM limit, charge and salt conservation, the salt balance's physics."""

import dataclasses

import numpy as np
import pytest
import xarray as xr

import circuits
import jaxpnp

N_SLITS = 3
C = np.array([0.6, 3.0, 2.5, 2.0])  # F/m^2
R_C = np.array([1.0e-9, 1.4e-9, 1.8e-9])  # ohm m^2
GAMMA = np.array([0.1, 0.6, 0.5])
Q_MAX = np.array([1.2, 0.8, 0.4])  # C/m^2
CV = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=2e7)
STEPS = 300


def _uptake():
    """Bikerman-like uptake: excess ions 0.6 |q|/F at large charge, quadratic at small (mol/m^2)."""
    q = np.linspace(0.0, 3.0, 31)
    w = 0.6 * q ** 2 / (q + 0.3) / 96485.33212
    return np.tile(q, (N_SLITS + 1, 1)), np.tile(w, (N_SLITS + 1, 1))


def _model(**kw):
    qc, ws = _uptake()
    with jaxpnp.float64():
        return circuits.SaltLadder(N_SLITS, 6.7e-10, C, R_C, GAMMA, Q_MAX, qc, ws, separator_m=1e-8,
                                   capacitor=circuits.BikermanCapacitor(0.35), separator_nodes=4, **kw)


def test_frozen_salt_is_the_ncm():
    """Salt frozen, links not saturated: the NCM (gamma_open = 0) on the same ROS2 grid, to rounding."""
    m = _model(salt="frozen", saturate=False)
    ncm = circuits.NCM(N_SLITS, 6.7e-10, C[0], C[1:], R_C, GAMMA, q_max=Q_MAX, capacitor=circuits.BikermanCapacitor(0.35))
    # the NCM's fast path forms the Jacobian at every step: so does this one here
    a = circuits.solve_salt_ladder(m, CV, points_per_cycle=60, steps=STEPS, jacobian_every=1)
    with pytest.warns(UserWarning):  # nonlinear capacitor on the fast path
        b = circuits.solve(ncm, CV, points_per_cycle=60, method="fast", steps=STEPS)
    ia, ib = np.asarray(a.current_density), np.asarray(b.current_density)
    assert np.max(np.abs(ia - ib)) < 1e-9 * np.max(np.abs(ib))
    assert np.max(np.abs(np.asarray(a.slit_charge) - np.asarray(b.slit_charge))) < 1e-9 * np.max(np.abs(b.slit_charge))
    assert np.all(np.asarray(a.separator_concentration) == 1.0)


@pytest.mark.parametrize("release", ["none", "equilibrium"])
def test_closed_cell_conserves_charge_and_salt(release):
    """Symmetric (closed) cell: node charges sum to int I dt; separator + node salt constant while it moves."""
    s = circuits.solve(_model(boundary="symmetric", salt_release=release), CV, points_per_cycle=60, steps=STEPS)
    q, Qe = np.asarray(s.slit_charge).sum(axis=1), np.asarray(s.electrode_charge)
    t, I = np.asarray(s.time), np.asarray(s.current_density)
    assert np.max(np.abs(q - Qe)) < 1e-12 * np.max(np.abs(Qe))
    # the state's electrode charge is the integral of the current (second order on 60 outputs)
    integral = np.concatenate([[0.0], np.cumsum(0.5 * (I[1:] + I[:-1]) * np.diff(t))])
    assert np.max(np.abs(integral - Qe)) < 2e-2 * np.max(Qe)
    salt = np.asarray(s.total_salt)
    assert np.ptp(salt) < 1e-9 * salt[0]
    c = np.asarray(s.separator_concentration)
    assert np.min(c) < 0.7  # not trivial: the separator really is depleted
    assert np.all(np.asarray(s.reservoir_flux) == 0.0)


def test_reservoir_supplies_what_the_electrode_takes_up():
    """Reservoir cell: total salt changes by exactly int(reservoir flux) dt; depletion raises R_open."""
    s = circuits.solve(_model(), CV, points_per_cycle=200, steps=STEPS)
    t, salt, flux = (np.asarray(x) for x in (s.time, s.total_salt, s.reservoir_flux))
    supplied = np.concatenate([[0.0], np.cumsum(0.5 * (flux[1:] + flux[:-1]) * np.diff(t))])
    assert np.max(np.abs(salt - salt[0] - supplied)) < 2e-2 * np.max(supplied)
    assert np.max(supplied) > 0.1 * 2 * 1e3 * 1e-8  # a tenth of the separator's salt comes in
    c = np.asarray(s.separator_concentration)
    assert np.all(np.diff(c[np.argmax(np.asarray(s.cell_voltage))]) < 0)  # depleted towards the electrode
    R = np.asarray(s.open_resistance)
    assert np.max(R) > 1.2 * 6.7e-10
    # the salt makes a difference to the current
    frozen = circuits.solve(dataclasses.replace(_model(), salt="frozen"), CV, points_per_cycle=200, steps=STEPS)
    assert np.max(np.abs(np.asarray(frozen.current_density) - np.asarray(s.current_density))) > 0.05 * np.max(
        np.abs(np.asarray(frozen.current_density)))


def test_jacobian_reuse_keeps_the_second_order_solution():
    """ROS2 is a W-method: with the Jacobian kept over 3 steps (the default) the solution stays second
    order; on the same grid its error against a 4x finer reference is within a small factor of the
    error with a fresh Jacobian at every step (measured 2.3x with 4 steps)."""
    m = _model()
    every = circuits.solve_salt_ladder(m, CV, points_per_cycle=60, steps=STEPS, jacobian_every=1)
    kept = circuits.solve(m, CV, points_per_cycle=60, steps=STEPS)  # the default: every 3 steps
    fine = circuits.solve_salt_ladder(m, CV, points_per_cycle=60, steps=4 * STEPS, jacobian_every=1)
    I1, I3, Iref = (np.asarray(s.current_density) for s in (every, kept, fine))
    peak = np.max(np.abs(Iref))
    err1, err3 = np.max(np.abs(I1 - Iref)) / peak, np.max(np.abs(I3 - Iref)) / peak
    assert err1 < 2e-3 and err3 < 3.0 * err1 and np.max(np.abs(I3 - I1)) > 0.0
    salt = np.asarray(kept.total_salt)  # the linear invariants hold with any matrix in the steps
    t, flux = np.asarray(kept.time), np.asarray(kept.reservoir_flux)
    supplied = np.concatenate([[0.0], np.cumsum(0.5 * (flux[1:] + flux[:-1]) * np.diff(t))])
    assert np.max(np.abs(salt - salt[0] - supplied)) < 2e-2 * np.max(supplied)
    with pytest.raises(ValueError, match="jacobian_every"):
        circuits.solve_salt_ladder(m, CV, steps=STEPS, jacobian_every=0)


def test_saturated_links_hold_the_law_at_q_max():
    m = _model()
    with jaxpnp.float64():
        R = np.asarray(m.link_resistance(np.array([0.0, 1.6, 10.0])))
    expected = R_C * np.maximum(1 - GAMMA * np.minimum([0.0, 1.6, 10.0], Q_MAX) / Q_MAX, 1e-3)
    np.testing.assert_allclose(R, expected, rtol=1e-14)
    assert R[2] == pytest.approx(R_C[2] * (1 - GAMMA[2]))


def test_bad_input_is_refused():
    qc, ws = _uptake()
    with pytest.raises(ValueError, match="uptake"):
        circuits.SaltLadder(N_SLITS, 6.7e-10, C, R_C, GAMMA, Q_MAX, qc[:, ::-1], ws, separator_m=1e-8)
    with pytest.raises(ValueError, match="open_law"):
        circuits.SaltLadder(N_SLITS, 6.7e-10, C, R_C, GAMMA, Q_MAX, qc, ws, separator_m=1e-8, open_law="x")
    with pytest.raises(ValueError, match="gamma"):
        circuits.SaltLadder(N_SLITS, 6.7e-10, C, R_C, np.array([0.1, 1.5, 0.2]), Q_MAX, qc, ws, separator_m=1e-8)


def test_from_mpnp_recovers_a_known_salt_ladder():
    """A run generated by a known ladder (capacitors = the equilibrium curves): the extraction recovers
    its link laws, Q_max, uptake and the separator's bulk resistance."""
    el = jaxpnp.Electrolyte()
    Q_GEN = np.array([2.0, 1.2, 0.6])  # C/m^2, the generator's law scale (not saturated)
    pots = np.linspace(0.0, 0.5, 26)
    law = circuits.BikermanCapacitor(0.35)
    with jaxpnp.float64():
        q_eq = np.stack([np.asarray(law.charge(pots, c)) for c in C], axis=1)  # (P, n+1)
    w_eq = 0.6 * q_eq ** 2 / (q_eq + 0.3) / 96485.33212
    attrs = dict(concentration_M=1.0, ion_diameter_nm=0.66, thermal_voltage_V=float(el.thermal_voltage_V),
                 relative_permittivity=78.5, snapped_separator_nm=10.0, diffusivity_m2_s=2e-9,
                 anion_diffusivity_m2_s=2e-9, temperature_K=298.15, boundary="reservoir")
    eq = xr.Dataset({"slit_charge": (("potential", "slit"), -q_eq),
                     "slit_ion_content": (("potential", "slit"), 3e-6 + w_eq)},
                    coords={"potential": pots, "slit": np.arange(N_SLITS + 1)}, attrs=attrs)
    cap, C_eq = circuits.equilibrium_capacitor(eq)
    qc, ws = circuits.uptake_tables(eq)
    gen = circuits.SaltLadder(N_SLITS, 1e-8 / float(el.conductivity_S_m), C_eq, R_C, GAMMA, Q_GEN,
        qc, ws, separator_m=1e-8, capacitor=cap, salt="frozen", saturate=False)
    cv = jaxpnp.CV(v_min=0.0, v_max=0.8, scan_rate_V_s=2e7)
    sol = circuits.solve(gen, cv, points_per_cycle=400, steps=STEPS)
    n_t = sol.time.shape[0]
    run = xr.Dataset({"slit_charge": (("time", "slit"), -np.asarray(sol.slit_charge)),
                      "trans_slit_current": (("time", "slit"), -np.concatenate(
                          [np.asarray(sol.link_current), np.zeros((n_t, 1))], 1)),
                      "electrode_potential": ("time", 0.5 * np.asarray(sol.cell_voltage)),
                      "cell_voltage": ("time", np.asarray(sol.cell_voltage)),
                      "current_density": ("time", np.asarray(sol.current_density))},
                     coords={"time": np.asarray(sol.time), "slit": np.arange(N_SLITS + 1)}, attrs=attrs)
    model = circuits.from_mpnp(run, kind="salt", equilibrium=eq)
    assert isinstance(model, circuits.SaltLadder) and model.n_slits == N_SLITS
    # Q_max: the largest charge each link passed while charging; gamma is per that scale
    half = int(np.argmax(np.asarray(sol.cell_voltage))) + 1
    t, J = np.asarray(sol.time)[:half], np.asarray(sol.link_current)[:half]
    Q = np.concatenate([np.zeros((1, N_SLITS)), np.cumsum(0.5 * (J[1:] + J[:-1]) * np.diff(t)[:, None], 0)])
    np.testing.assert_allclose(np.asarray(model.q_max), Q.max(axis=0), rtol=1e-2)
    np.testing.assert_allclose(np.asarray(model.R_c), R_C, rtol=2e-2)
    gamma_true = GAMMA * Q.max(axis=0) / Q_GEN
    assert np.all(gamma_true[1:] > 0.2)  # the law's charge dependence is visible in the data
    np.testing.assert_allclose(np.asarray(model.gamma), gamma_true, atol=3e-2)
    np.testing.assert_allclose(np.asarray(model.uptake_salt), ws, rtol=1e-12)
    assert float(model.R_open) == pytest.approx(1e-8 / float(el.conductivity_S_m), rel=1e-9)
    assert model.salt == "dynamic" and model.separator_nodes == 8
    # a reservoir run gets the crowded case's pairing, the run's permittivity on the charged line
    assert model.separator == "charged" and model.coions == "dynamic"
    assert float(model.relative_permittivity) == attrs["relative_permittivity"]
    neutral = circuits.from_mpnp(run, kind="salt", equilibrium=eq, coions="equilibrium", separator="neutral")
    assert neutral.separator == "neutral" and neutral.coions == "equilibrium"
    np.testing.assert_allclose(np.asarray(neutral.R_c), np.asarray(model.R_c), rtol=1e-12)
    closed = circuits.from_mpnp(run, kind="salt", equilibrium=eq, boundary="symmetric")
    assert closed.separator == "neutral" and closed.coions == "equilibrium" and closed.boundary == "symmetric"
    with pytest.raises(ValueError):
        circuits.from_mpnp(run, kind="salt", equilibrium=eq, separator="ionic")
