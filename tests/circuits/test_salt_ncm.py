"""circuits.SaltNCM: the NCM limit, conservation, storage laws against analytic results, extraction."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from scipy.integrate import quad, solve_ivp

import circuits
import jaxpnp

F = 96485.33212
NA = 6.02214076e23


def _env(c_M=1.0):
    with jaxpnp.float64():
        return _model_env(c_M)


def _model_env(c_M):
    m = circuits.SaltNCM(1, circuits.DonnanStorage([1e-9, 1e-9], [1.0, 1.0]),
                         circuits.IonContentLinks(1e-9, [1e-6, 1e-6]), separator_m=1e-8, concentration_M=c_M)
    return m.env()


def _donnan_model(boundary="symmetric", n=3, salt="dynamic"):
    storage = circuits.SplitStorage(circuits.PlanarStorage([1.0], [1.25e-9]),
                                    circuits.DonnanStorage(np.full(n, 1.5e-9), np.full(n, 6.0), np.full(n, 0.08e-9)))
    m = circuits.SaltNCM(n, storage, circuits.IonContentLinks(2e-9, np.ones(n + 1)), separator_m=1e-8,
                         boundary=boundary, salt=salt)
    with jaxpnp.float64():
        _, N0, _ = storage.state(jnp.zeros(n + 1), jnp.full(n + 1, 1e3), m.env())
    return dataclasses.replace(m, links=circuits.IonContentLinks(2e-9, np.asarray(N0)))


def test_frozen_salt_is_the_ncm():
    """Salt held at c0 with the NCM's capacitor and link law: the NCM's currents (different state, same physics)."""
    n = 3
    cap = circuits.BikermanCapacitor(0.35)
    C = np.array([0.5, 4.0, 3.0, 2.0])
    q_max = np.array([0.6, 0.4, 0.2])
    sm = circuits.SaltNCM(n, circuits.CapacitorStorage(C, np.full(n + 1, 1e-9), cap),
                          circuits.ChargeLawLinks(1.2e-9, 0.6, q_max), separator_m=1e-8, salt="frozen")
    with jaxpnp.float64():
        ncm = circuits.NCM(n, float(sm.separator_resistance()), C[0], C[1:], 1.2e-9, 0.6, q_max=q_max, capacitor=cap)
    cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=2e7)
    a = circuits.solve_salt(sm, cv, points_per_cycle=80, rtol=1e-9, atol=1e-11)
    b = circuits.solve(ncm, cv, points_per_cycle=80, rtol=1e-9, atol=1e-11)
    ia, ib = np.asarray(a.current_density), np.asarray(b.current_density)
    assert np.max(np.abs(ia - ib)) < 1e-6 * np.max(np.abs(ib))
    qa, qb = np.asarray(a.slit_charge), np.asarray(b.slit_charge)
    assert np.max(np.abs(qa - qb)) < 1e-6 * np.max(np.abs(qb))
    # the salt stays frozen
    assert np.all(np.asarray(a.node_concentration) == 1.0)


# the ion-content SaltNCM is no longer from_mpnp's default (SaltLadder, tests/circuits/test_salt_ladder.py,
# covers conservation and extraction in CI); its own checks run with -m slow
@pytest.mark.slow
def test_closed_cell_conserves_charge_and_salt():
    """Closed half cell, 0.6 V: stored charge = int I dt and total salt constant, while salt really moves."""
    m = _donnan_model("symmetric")
    cv = jaxpnp.CV(v_min=0.0, v_max=0.6, scan_rate_V_s=1e7)
    s = circuits.solve_salt(m, cv, points_per_cycle=80, rtol=1e-8, atol=1e-10, max_steps=100000)
    q = np.asarray(s.slit_charge).sum(axis=1)
    Qe = np.asarray(s.electrode_charge)
    assert np.max(np.abs(q - Qe)) < 1e-8 * np.max(np.abs(Qe))
    salt = np.asarray(s.total_salt)
    assert np.ptp(salt) < 1e-8 * salt[0]
    # not a trivial run: the separator is depleted and the slits take up and give back salt
    assert np.min(np.asarray(s.separator_concentration)) < 0.8
    N = np.asarray(s.slit_ion_content)
    assert np.max(np.abs(N[:, 1:] - N[0, 1:])) > 0.1 * N[0, 1]


def test_donnan_storage_limits():
    """Small signal: inner and Donnan capacitances in series; large p: counter-ions at close packing."""
    env = _env()
    v, C, b = 1.5e-9, 6.0, 0.1e-9
    st = circuits.DonnanStorage([v], [C], [b])
    with jaxpnp.float64():
        c = jnp.array([1e3])
        dq = jax.jvp(lambda p: st.state(p, c, env)[0], (jnp.zeros(1),), (jnp.ones(1),))[1]
        du = jax.jvp(lambda p: st.state(p, c, env)[2], (jnp.zeros(1),), (jnp.ones(1),))[1]
        vt = float(env.V_T)
        c_donnan = 2 * F * F * v * 1e3 / (F * vt)  # 2 F^2 v c / RT
        assert float(dq[0] / du[0]) == pytest.approx(1.0 / (1.0 / C + 1.0 / c_donnan), rel=1e-10)
        q_big = float(st.state(jnp.array([40.0]), c, env)[0][0])
        a = 0.66e-9
        assert q_big == pytest.approx(F * v / (a ** 3 * NA), rel=1e-6)
        _, N0, _ = st.state(jnp.zeros(1), c, env)
        assert float(N0[0]) == pytest.approx(2e3 * (v + b), rel=1e-12)


def test_planar_storage_is_the_bikerman_layer():
    """Charge = analytic Bikerman charge; excess salt = the profile integrated by an independent ODE solve."""
    el = jaxpnp.Electrolyte()
    env = _env()
    st = circuits.PlanarStorage([1.0], [0.0], permittivity_F_m=el.permittivity_F_m)
    vt = float(el.thermal_voltage_V)
    nu = el.packing_parameter
    lam = el.debye_length_m
    for phi in (0.05, 0.3, 0.5):
        with jaxpnp.float64():
            q, N, u = st.state(jnp.array([phi / vt]), jnp.array([1e3]), env)
        assert float(u[0]) == pytest.approx(phi, rel=1e-12)
        assert float(q[0]) == pytest.approx(float(el.bikerman_charge_C_m2(phi)), rel=1e-10)
        # potential profile from the first integral dphi/dx = -sqrt((2/nu) ln(1 + 2 nu sinh^2(phi/2))), x in lambda_D
        p0 = phi / vt
        slope = lambda x, y: [-np.sqrt((2 / nu) * np.log1p(2 * nu * np.sinh(y[0] / 2) ** 2))]  # noqa: E731
        sol = solve_ivp(slope, (0, 60), [p0], dense_output=True, rtol=1e-11, atol=1e-13, method="DOP853")
        excess = lambda x: (2 * np.cosh(sol.sol(x)[0]) / (1 + 2 * nu * np.sinh(sol.sol(x)[0] / 2) ** 2) - 2)  # noqa: E731
        w = quad(excess, 0, 60, limit=200, epsabs=1e-12)[0] * 1e3 * lam
        assert float(N[0]) == pytest.approx(w, rel=1e-5)


@pytest.mark.slow
def test_gradient_through_a_solve():
    """jax.grad of a CV functional with respect to the link resistance matches finite differences."""
    m = _donnan_model("reservoir", n=1)
    cv = jaxpnp.CV(v_min=0.0, v_max=0.4, scan_rate_V_s=5e7)

    def loss(r):
        mm = dataclasses.replace(m, links=dataclasses.replace(m.links, R_c=r))
        return jnp.sum(circuits.solve_salt(mm, cv, points_per_cycle=20, rtol=1e-9, atol=1e-11).current_density ** 2)

    with jaxpnp.float64():
        r0 = jnp.asarray(2e-9)
        g = float(jax.grad(loss)(r0))
        h = 1e-3 * 2e-9
        fd = (float(loss(r0 + h)) - float(loss(r0 - h))) / (2 * h)
    assert np.isfinite(g) and g < 0
    assert g == pytest.approx(fd, rel=1e-4)


def _synthetic_equilibrium(storage, concentrations, potentials, separator_nm, attrs):
    """Equilibrium Datasets (as jaxpnp.equilibrium writes them) generated by a known storage law."""
    out = []
    n = storage.n_nodes()
    for c_M in concentrations:
        env = _env(c_M)
        p = np.linspace(0, 40, 4001)
        with jaxpnp.float64():
            q, N, u = jax.vmap(lambda pp: storage.state(jnp.full(n, pp), jnp.full(n, c_M * 1e3), env))(jnp.asarray(p))
        q, N, u = (np.asarray(a) for a in (q, N, u))
        qs = np.stack([np.interp(potentials, u[:, k], q[:, k]) for k in range(n)], 1)
        Ns = np.stack([np.interp(potentials, u[:, k], N[:, k]) for k in range(n)], 1)
        Ns[:, 0] += 2 * c_M * 1e3 * circuits._salt.separator_volume_in_line(separator_nm * 1e-9, 2)
        ds = xr.Dataset({"slit_charge": (("potential", "slit"), -qs), "slit_ion_content": (("potential", "slit"), Ns)},
                        coords={"potential": potentials, "slit": np.arange(n)})
        ds.attrs.update(attrs, concentration_M=c_M, boundary="reservoir")
        out.append(ds)
    return out


# the ion-content SaltNCM is no longer from_mpnp's default (SaltLadder, tests/circuits/test_salt_ladder.py,
# covers conservation and extraction in CI); its own checks run with -m slow
@pytest.mark.slow
def test_from_mpnp_salt_recovers_a_known_model():
    """Synthetic equilibrium curves and a synthetic run with known storage and link resistances."""
    el = jaxpnp.Electrolyte()
    n = 2
    truth = circuits.SplitStorage(circuits.PlanarStorage([0.9], [1.6e-9], permittivity_F_m=el.permittivity_F_m),
                                  circuits.DonnanStorage([1.4e-9, 1.6e-9], [5.0, 7.0], [0.05e-9, 0.1e-9]))
    attrs = dict(concentration_M=1.0, ion_diameter_nm=0.66, thermal_voltage_V=float(el.thermal_voltage_V),
                 relative_permittivity=78.5, snapped_separator_nm=10.0, diffusivity_m2_s=2e-9,
                 anion_diffusivity_m2_s=2e-9, temperature_K=298.15, boundary="reservoir")
    pots = np.linspace(0, 0.5, 26)
    eqs = _synthetic_equilibrium(truth, (1.0, 0.3), pots, 10.0, attrs)
    R_true = np.array([1.0e-9, 2.5e-9])
    gen = circuits.SaltNCM(n, truth, circuits.ChargeLawLinks(R_true, 0.0, 1.0), separator_m=1e-8, salt="frozen")
    cv = jaxpnp.CV(v_min=0.0, v_max=0.4, scan_rate_V_s=2e7)
    sol = circuits.solve_salt(gen, cv, points_per_cycle=200, rtol=1e-10, atol=1e-12)
    run = xr.Dataset({"slit_charge": (("time", "slit"), -np.asarray(sol.slit_charge)),
                      "trans_slit_current": (("time", "slit"), -np.concatenate(
                          [np.asarray(sol.link_current), np.zeros((sol.time.shape[0], 1))], 1)),
                      "electrode_potential": ("time", 0.5 * np.asarray(sol.cell_voltage)),
                      "current_density": ("time", np.asarray(sol.current_density))},
                     coords={"time": np.asarray(sol.time), "slit": np.arange(n + 1)}, attrs=attrs)
    model = circuits.from_mpnp(run, kind="salt", salt_model="content", equilibrium=eqs)
    assert isinstance(model, circuits.SaltNCM) and model.n_slits == n
    st = model.storage
    np.testing.assert_allclose(np.asarray(st.slits.volume_m), [1.4e-9, 1.6e-9], rtol=1e-3)
    np.testing.assert_allclose(np.asarray(st.slits.capacitance_F_m2), [5.0, 7.0], rtol=1e-3)
    np.testing.assert_allclose(np.asarray(st.open_space.area), [0.9], rtol=1e-3)
    np.testing.assert_allclose(np.asarray(model.links.R_c), R_true, rtol=0.02)
    assert float(model.separator_m) == pytest.approx(1e-8)
    with pytest.raises(ValueError, match="equilibrium"):
        circuits.from_mpnp(run, kind="salt")


def test_bad_input():
    st = circuits.DonnanStorage(np.full(3, 1e-9), np.full(3, 5.0))
    links = circuits.IonContentLinks(1e-9, np.full(3, 1e-6))
    with pytest.raises(ValueError, match="storage"):
        circuits.SaltNCM(2, "donnan", links, separator_m=1e-8)
    with pytest.raises(ValueError, match="links"):
        circuits.SaltNCM(2, st, 1e-9, separator_m=1e-8)
    with pytest.raises(ValueError, match="nodes"):
        circuits.SaltNCM(4, st, links, separator_m=1e-8)
    with pytest.raises(ValueError, match="boundary"):
        circuits.SaltNCM(2, st, links, separator_m=1e-8, boundary="open")
    with pytest.raises(ValueError, match="salt"):
        circuits.SaltNCM(2, st, links, separator_m=1e-8, salt="fixed")
    with pytest.raises(ValueError, match="separator_m"):
        circuits.SaltNCM(2, st, links, separator_m=-1e-8)
    with pytest.raises(ValueError, match="separator_nodes"):
        circuits.SaltNCM(2, st, links, separator_m=1e-8, separator_nodes=0)
    with pytest.raises(ValueError, match="volume_m"):
        circuits.DonnanStorage([1e-9, -1e-9], [5.0, 5.0])
    with pytest.raises(ValueError, match="packing"):
        circuits.SaltNCM(2, st, links, separator_m=1e-8, concentration_M=6.0)
    m = circuits.SaltNCM(2, st, links, separator_m=1e-8)
    with pytest.raises(ValueError, match="voltage-controlled"):
        circuits.solve_salt(m, jaxpnp.Galvanostatic(current_density_A_m2=1e6, charge_time_s=1e-8))
    with pytest.raises(ValueError, match="start at 0 V"):
        circuits.solve_salt(m, jaxpnp.CV(v_min=0.2, v_max=1.0, scan_rate_V_s=1e7))
    with pytest.raises(ValueError, match="method"):
        circuits.solve_salt(m, jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=1e7), method="fast")
    with pytest.raises(TypeError):
        circuits.solve_salt(circuits.TLM(2, 1e-9, 0.1, 1.0, 1e-9), jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=1e7))
