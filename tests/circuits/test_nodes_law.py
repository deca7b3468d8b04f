"""Link laws on the slits' charge (NCM(charge="nodes"), discovery charge="nodes", their extraction).

Known answers: an independent scipy integration of the node-charge ODE, and synthetic mPNP-like
runs made by a ladder whose elements are known.
"""

import dataclasses

import numpy as np
import pytest
import sympy
import xarray as xr
from scipy.integrate import solve_ivp

import circuits
import discovery
import jaxpnp

N = 3
TRUE = dict(R_open=3e-10, C_open=0.04, C_slit=np.array([0.10, 0.08, 0.12]), R_c=np.array([2e-10, 1.0e-10, 1.5e-10]),
            gamma=np.array([0.3, 0.5, 0.4]), q_max=np.array([0.05, 0.04, 0.03]), gamma_open=-1.5, q_max_open=0.06)
CV = jaxpnp.CV(v_min=0.0, v_max=0.6, scan_rate_V_s=3e7)


def _truth():
    return circuits.NCM(N, TRUE["R_open"], TRUE["C_open"], TRUE["C_slit"], TRUE["R_c"], TRUE["gamma"],
                        q_max=TRUE["q_max"], gamma_open=TRUE["gamma_open"], q_max_open=TRUE["q_max_open"],
                        charge="nodes")


def test_nodes_law_matches_an_independent_node_charge_integration():
    model = _truth()
    ds = circuits.simulate(model, CV, points_per_cycle=100, rtol=1e-10, atol=1e-12)
    C = np.r_[TRUE["C_open"], TRUE["C_slit"]]
    phi = lambda t: 0.5 * CV.v_max * (1 - abs(2 * (t / CV.period % 1.0) - 1))  # noqa: E731

    def rhs(t, q, passed=False):  # node charges q_0..q_N; link i reads the mean charge of nodes i and i+1
        u = q / C
        Q = np.cumsum(q[::-1])[::-1][1:] if passed else 0.5 * (q[:-1] + q[1:])
        R = TRUE["R_c"] * (1 - TRUE["gamma"] * Q / TRUE["q_max"])
        J = (u[:-1] - u[1:]) / R
        I = (phi(t) - u[0]) / (TRUE["R_open"] * (1 - TRUE["gamma_open"] * np.sum(q) / TRUE["q_max_open"]))
        return np.concatenate([[I], np.zeros(N)]) - np.concatenate([J, [0.0]]) + np.concatenate([[0.0], J]), I

    t = ds.time.values
    sol = solve_ivp(lambda s, y: rhs(s, y)[0], (0, t[-1]), np.zeros(N + 1), t_eval=t, method="Radau", rtol=1e-10,
                    atol=1e-14, max_step=CV.half_period / 4)
    ref = np.array([rhs(s, y)[1] for s, y in zip(sol.t, sol.y.T)])
    scale = np.max(np.abs(ref))
    assert np.max(np.abs(ds.current_density.values - ref)) < 1e-5 * scale
    # the fast ROS2 path (the kernel's tridiagonal Jacobian of this law) follows it too
    fast = circuits.solve(model, CV, times=t, method="fast").current_density
    assert np.max(np.abs(np.asarray(fast) - ref)) < 3e-3 * scale
    # the law's variable matters: read on the passed charges, the same numbers make another circuit
    sol = solve_ivp(lambda s, y: rhs(s, y, True)[0], (0, t[-1]), np.zeros(N + 1), t_eval=t, method="Radau",
                    rtol=1e-8, atol=1e-14, max_step=CV.half_period / 4)
    other = np.array([rhs(s, y, True)[1] for s, y in zip(sol.t, sol.y.T)])
    assert np.max(np.abs(other - ref)) > 0.02 * scale


def _as_mpnp(ds):
    """A circuit Dataset in the mPNP's layout (ionic-sign charges and currents, node potentials)."""
    phi_m = 0.5 * ds["cell_voltage"].values
    q = ds["slit_charge"].values
    V = phi_m[:, None] - q / np.r_[TRUE["C_open"], TRUE["C_slit"]]
    link = -np.concatenate([ds["link_current"].values, np.zeros((ds.sizes["time"], 1))], axis=1)
    return xr.Dataset({"electrode_potential": (("time",), phi_m), "cell_voltage": (("time",), 2 * phi_m),
                       "current_density": (("time",), ds["current_density"].values),
                       "slit_charge": (("time", "slit"), -q), "slit_potential": (("time", "slit"), V),
                       "trans_slit_current": (("time", "slit"), link)},
                      coords={"time": ds["time"].values, "slit": np.arange(N + 1)}, attrs=jaxpnp.protocol_attrs(CV))


@pytest.fixture(scope="module")
def synthetic():
    ds = circuits.simulate(_truth(), CV, points_per_cycle=800, rtol=1e-10, atol=1e-12)
    return ds, _as_mpnp(ds)


def test_discovery_on_the_slits_charge_finds_the_law(synthetic):
    _, mpnp_like = synthetic
    res = discovery.trans_slit_law(mpnp_like, engine="sparse", slits="all", charge="nodes")
    assert res.prepared.attrs["charge"] == "nodes"
    for i in range(N):
        R_c, gamma, _ = discovery.paper_parameters(res, i)
        q_s = res.all_links()[i].charge_scale  # the law is R_c (1 - gamma Q / q_s): gamma / q_s is the physics
        assert R_c == pytest.approx(TRUE["R_c"][i], rel=1e-3)
        assert gamma / q_s == pytest.approx(TRUE["gamma"][i] / TRUE["q_max"][i], rel=3e-3)


def test_paper_form_of_a_differential_law():
    q = sympy.Symbol("q")
    f = discovery.paper_form_resistance(1.5 - 0.6 * q)
    assert f["paper"] and f["form"] == "linear" and f["R_c"] == pytest.approx(1.5) and f["gamma"] == pytest.approx(0.4)
    assert discovery.paper_form_resistance(sympy.Float(2.0) + 0 * q)["form"] == "constant"
    assert not discovery.paper_form_resistance(1 + q ** 2)["paper"]
    assert not discovery.paper_form_resistance(1 / (1 + q))["paper"]
    assert not discovery.paper_form_resistance(-1 + q)["paper"]  # no positive resistance at q = 0


def test_extraction_recovers_a_nodes_law_ladder_and_its_cv(synthetic):
    circuit_ds, mpnp_like = synthetic
    C = np.r_[TRUE["C_open"], TRUE["C_slit"]]
    potentials = np.linspace(0.0, 0.4, 41)
    eq = xr.Dataset({"slit_charge": (("potential", "slit"), -np.outer(potentials, C))},
                    coords={"potential": potentials, "slit": np.arange(N + 1)})
    ex = circuits.extract(mpnp_like, equilibrium=eq, engine="sparse")  # node potentials: charge="nodes" by default
    m = ex.model
    assert m.charge == "nodes"
    np.testing.assert_allclose(np.asarray(m.R_c), TRUE["R_c"], rtol=1e-3)
    np.testing.assert_allclose(np.asarray(m.gamma) / np.asarray(m.q_max), TRUE["gamma"] / TRUE["q_max"], rtol=3e-3)
    assert m.R_open == pytest.approx(TRUE["R_open"], rel=1e-3)
    assert float(m.gamma_open) / float(m.q_max_open) == pytest.approx(TRUE["gamma_open"] / TRUE["q_max_open"], rel=3e-3)
    again = circuits.simulate(m, CV, times=circuit_ds["time"].values)
    ref = circuit_ds["current_density"].values
    assert jaxpnp.nrmse(again["current_density"].values, ref) < 2e-3
    with pytest.raises(ValueError, match="charge"):
        circuits.extract(mpnp_like, equilibrium=eq, charge="passed", laws=ex.laws)


def test_at_depth_keeps_the_ends_and_averages_the_inner_elements():
    C = np.array([0.1, 0.2, 0.3, 0.5, 0.7])
    tab = circuits.TabulatedCapacitor(np.array([0.0, 0.1, 0.2]), np.outer(np.ones(6), [0.0, 0.1, 0.15]))
    m = circuits.NCM(5, 1e-10, 0.05, C, np.array([1.0, 2.0, 3.0, 4.0, 5.0]) * 1e-10, np.array([0.1, 0.2, 0.3, 0.4, 0.5]),
                     q_max=np.array([0.1, 0.2, 0.2, 0.2, 0.6]), capacitor=tab, charge="nodes", gamma_open=-0.5,
                     q_max_open=0.03)
    deep = circuits.at_depth(m, 7)
    assert deep.n_slits == 7 and deep.charge == "nodes" and float(deep.gamma_open) == -0.5
    np.testing.assert_allclose(np.asarray(deep.capacitances()), np.r_[0.05, 0.1, np.full(5, 1.0 / 3.0), 0.7])
    np.testing.assert_allclose(np.asarray(deep.R_c), np.r_[1.0, np.full(6, 3.5)] * 1e-10)
    np.testing.assert_allclose(np.asarray(deep.gamma), np.r_[0.1, np.full(6, 0.35)])
    np.testing.assert_allclose(np.asarray(deep.q_max), np.r_[0.1, np.full(6, 0.3)])
    # the same depth with uniform inner elements is the model itself
    flat = dataclasses.replace(m, C_slit=np.array([0.1, 0.4, 0.4, 0.4, 0.7]), R_c=np.r_[1.0, 3.0, 3.0, 3.0, 3.0] * 1e-10,
                               gamma=np.r_[0.1, 0.3, 0.3, 0.3, 0.3], q_max=np.r_[0.1, 0.2, 0.2, 0.2, 0.2])
    with jaxpnp.float64():
        a = np.asarray(circuits.solve(flat, CV, points_per_cycle=40, method="fast").current_density)
        b = np.asarray(circuits.solve(circuits.at_depth(flat, 5), CV, points_per_cycle=40, method="fast").current_density)
    assert np.max(np.abs(b - a)) < 1e-9 * np.max(np.abs(a))
    with pytest.raises(ValueError, match="at_depth"):
        circuits.at_depth(m, 1)
