"""The optional Stern layer: a Robin condition psi_s = phi_m - (eps / C_S) E_n on conductors."""

import jax
import numpy as np
import pytest
import scipy.optimize

import jaxpnp
from jaxpnp._geometry import build_grid
from jaxpnp._poisson import FastPoisson, _second_difference_x, _second_difference_y, robin_rows

C_S = 0.2  # F/m^2


def _stern_potential_V(el, phi_m_V, c_s):
    """Diffuse-layer potential psi_D of a flat Bikerman electrode behind a Stern layer:
    phi_m = psi_D + q_B(psi_D) / C_S."""
    f = lambda p: p + float(el.bikerman_charge_C_m2(p)) / c_s - phi_m_V
    return scipy.optimize.brentq(f, 0.0, phi_m_V, xtol=1e-15, rtol=1e-14)


def test_planar_steady_state_matches_bikerman_plus_stern():
    el = jaxpnp.Electrolyte()
    planar = jaxpnp.Electrode(layout="planar", separator_nm=3.0, stern_capacitance_F_m2=C_S)
    for v in (0.2, 1.0):  # cell voltage; the electrode sits at v / 2
        # an array step height: the second run reuses the compiled solver
        step = jaxpnp.PotentialStep(v_step=np.asarray(v), duration_s=200 * el.debye_time_s)
        ds = jaxpnp.simulate(el, planar, step, grid_nm=0.015, boundary="reservoir",
                             points_per_cycle=4, snapshot_times_s=[step.duration_s], progress=False)
        q = float(ds.electrode_charge[-1])
        assert abs(float(ds.current_density[-1])) * step.duration_s < 1e-5 * abs(q)
        psi_d = _stern_potential_V(el, v / 2, C_S)
        expected = float(el.bikerman_charge_C_m2(psi_d))
        # the Stern layer carries most of the voltage here: far from the Stern-free charge
        assert expected < 0.5 * float(el.bikerman_charge_C_m2(v / 2))
        assert q == pytest.approx(expected, rel=1e-3), (v, q, expected)
        assert float(ds.ionic_charge[-1]) == pytest.approx(-expected, rel=1e-3)
        # the surface node is the outer Helmholtz plane, at psi_D
        surface = ds.potential.isel(snapshot_time=-1, x=-1).values
        np.testing.assert_allclose(surface, psi_d, rtol=1e-3)
        assert ds.attrs["stern_capacitance_F_m2"] == C_S


def test_poisson_with_stern_is_exact(tiny_electrode):
    g = build_grid(tiny_electrode, 0.3)
    lam, phi_m, scale = 3.7, 0.7, 0.3
    with jaxpnp.float64():
        base = FastPoisson.build(g, stern=True)
        rho = np.random.default_rng(0).normal(size=(g.nx, g.ny)) * g.ion_node
        psi = np.asarray(base.with_stern(lam)(rho, phi_m, scale))
        dirichlet = np.asarray(FastPoisson.build(g)(rho, phi_m, scale))
        # without a Stern layer the solver built for one is the plain one, to the bit
        np.testing.assert_array_equal(np.asarray(base(rho, phi_m, scale)), dirichlet)
        thin = np.asarray(base.with_stern(1e-9)(rho, phi_m, scale))
    a0 = np.kron(_second_difference_x(g.nx), np.eye(g.ny)) + np.kron(np.eye(g.nx), _second_difference_y(g.ny))
    f = 0.5 * scale * rho
    residual = (a0 @ psi.ravel()).reshape(g.nx, g.ny) - f
    assert np.abs(residual[g.free_node]).max() < 1e-10
    # Robin rows on the surface nodes, the metal at phi_m
    surface, idx, w, vol = robin_rows(g)
    p, fl = psi.ravel(), f.ravel()
    robin = p[surface] + lam * (np.sum(w * p[idx], axis=1) - vol * fl[surface])
    assert np.abs(robin - phi_m).max() < 1e-12
    assert np.all(psi[~g.ion_node] == phi_m)
    assert np.abs(psi[g.surface_node] - phi_m).min() > 1e-3
    # Gauss: the charge behind the Stern layer balances the ions and the mid-plane field
    length = np.asarray(g.volume).ravel()[surface] / vol
    metal = np.sum(length / lam * (phi_m - p[surface]))
    assert metal == pytest.approx(np.sum(g.area_mid * 2.0 * psi[0]) - np.sum(g.volume * f), rel=1e-12)
    # a vanishing Stern layer is the Dirichlet condition
    assert np.abs(thin - dirichlet)[g.ion_node].max() < 1e-7


def test_stern_drop_of_a_charge_free_planar_cell():
    # no ions: psi is linear from 0 at the mid-plane to psi_s at the collector node, and
    # psi_s = phi_m - lam E_n gives psi_s = phi_m x_s / (x_s + lam) exactly
    g = build_grid(jaxpnp.Electrode(layout="planar", separator_nm=3.0), 0.3)
    lam, phi_m = 2.5, 1.3
    with jaxpnp.float64():
        psi = np.asarray(FastPoisson.build(g, stern=True).with_stern(lam)(np.zeros((g.nx, g.ny)), phi_m, 1.0))
    x = np.arange(g.nx) + 0.5
    x_s = x[-1]
    np.testing.assert_allclose(psi, (phi_m * x / (x_s + lam))[:, None] * np.ones(g.ny), rtol=1e-12)


def test_stern_length_is_permittivity_over_capacitance_in_grid_units():
    # the preconditioner with the Stern rows is checked against the exact stage matrix in
    # test_discretisation.test_sparse_preconditioner_is_the_exact_stage_matrix
    el = jaxpnp.Electrolyte()
    e = jaxpnp.Electrode(n_sheets=3, slit_nm=1.2, sheet_length_nm=1.8, sheet_gap_nm=0.6,
                         sheet_thickness_nm=0.3, separator_nm=1.2, stern_capacitance_F_m2=C_S)
    with jaxpnp.float64():
        model, _ = jaxpnp.build_model(el, e, jaxpnp.CV(), 0.3, "reservoir")
    assert float(model.poisson.stern_length) == pytest.approx(el.permittivity_F_m / C_S / 0.3e-9)


def test_stern_off_means_none_or_inf():
    assert not jaxpnp.Electrode().has_stern_layer
    assert not jaxpnp.Electrode(stern_capacitance_F_m2=float("inf")).has_stern_layer
    assert jaxpnp.Electrode(stern_capacitance_F_m2=0.1).has_stern_layer
    with jaxpnp.float64():
        model, _ = jaxpnp.build_model(jaxpnp.Electrolyte(), jaxpnp.Electrode(stern_capacitance_F_m2=float("inf")),
                                      jaxpnp.CV(), 0.25, "symmetric")
    assert model.poisson.stern_length is None


@pytest.mark.parametrize("value", [0.0, -0.2, float("nan"), float("-inf"), "0.2", True])
def test_bad_stern_capacitance_is_refused_before_compute(value):
    with pytest.raises(ValueError, match="stern_capacitance_F_m2"):
        e = jaxpnp.Electrode(stern_capacitance_F_m2=value)
        jaxpnp.simulate(jaxpnp.Electrolyte(), e, jaxpnp.CV(), grid_nm=0.1, progress=False)


def test_stern_capacitance_from_a_toml_config(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[electrode]\nlayout = "planar"\nseparator_nm = 3.0\nstern_capacitance_F_m2 = 0.15\n'
                    '[protocol]\ntype = "step"\nv_step = 0.5\n')
    _, electrode, _, _ = jaxpnp.read_config(path)
    assert electrode.stern_capacitance_F_m2 == 0.15 and electrode.has_stern_layer
    path.write_text('[electrode]\nstern_capacitance_F_m2 = -1.0\n')
    with pytest.raises(ValueError, match="stern_capacitance_F_m2"):
        jaxpnp.read_config(path)
