"""Circuit extraction from mPNP data (circuits.from_mpnp and its parts), on synthetic runs with a known answer."""

import numpy as np
import pytest
import xarray as xr

import circuits
import jaxpnp
from circuits import node_potentials, open_space_law


def _run(time, phi_m, q_electrode, current=None):
    data = {"electrode_potential": (("time",), phi_m), "cell_voltage": (("time",), 2 * phi_m),
            "slit_charge": (("time", "slit"), -q_electrode)}
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
    law = open_space_law(ds, np.stack([V0, V0], axis=1))
    assert law.R_open == pytest.approx(R_open, rel=1e-3) and law.gamma_open == pytest.approx(gamma_open, rel=1e-3)
    assert law.q_max_open == pytest.approx(q_max, rel=1e-3) and law.r2 > 0.9999


# ---------------------------------------------------------------------------
# from_mpnp on a synthetic ladder with known elements


N = 3
TRUE = dict(R_open=3e-10, C_open=0.04, C_slit=np.array([0.10, 0.08, 0.12]), R_c=np.array([2e-10, 1.0e-10, 1.5e-10]),
            gamma=np.array([0.3, 0.6, 0.45]), q_max=np.array([0.05, 0.04, 0.02]), gamma_open=-1.5, q_max_open=0.06)
CV = jaxpnp.CV(v_min=0.0, v_max=0.6, scan_rate_V_s=3e7)


def _as_mpnp(ds):
    """A circuit Dataset in the mPNP's layout: ionic-sign slit charges and trans-slit currents (on
    the slit dimension; the last slit passes none), mid-slit (node) potentials."""
    phi_m = 0.5 * ds["cell_voltage"].values
    q = ds["slit_charge"].values  # electrode side
    C = np.r_[TRUE["C_open"], TRUE["C_slit"]]
    V = phi_m[:, None] - q / C  # the electrolyte potential of each node
    link = -np.concatenate([ds["link_current"].values, np.zeros((ds.sizes["time"], 1))], axis=1)
    return xr.Dataset({"electrode_potential": (("time",), phi_m), "cell_voltage": (("time",), 2 * phi_m),
                       "current_density": (("time",), ds["current_density"].values),
                       "slit_charge": (("time", "slit"), -q), "slit_potential": (("time", "slit"), V),
                       "trans_slit_current": (("time", "slit"), link)},
                      coords={"time": ds["time"].values, "slit": np.arange(N + 1)}, attrs=jaxpnp.protocol_attrs(CV))


def _equilibrium(potentials):
    """What jaxpnp.equilibrium returns for linear capacitors: q_k = C_k phi (ionic sign)."""
    C = np.r_[TRUE["C_open"], TRUE["C_slit"]]
    return xr.Dataset({"slit_charge": (("potential", "slit"), -np.outer(potentials, C))},
                      coords={"potential": potentials, "slit": np.arange(N + 1)})


@pytest.fixture(scope="module")
def synthetic():
    truth = circuits.NCM(N, TRUE["R_open"], TRUE["C_open"], TRUE["C_slit"], TRUE["R_c"], TRUE["gamma"],
                         q_max=TRUE["q_max"], gamma_open=TRUE["gamma_open"], q_max_open=TRUE["q_max_open"])
    ds = circuits.simulate(truth, CV, points_per_cycle=800, rtol=1e-10, atol=1e-12)
    return truth, ds, _as_mpnp(ds)


def test_from_mpnp_recovers_the_elements_of_a_known_ladder(synthetic):
    truth, circuit_ds, mpnp_like = synthetic
    # the truth reads its passed charges (the paper's law); node potentials default to charge="nodes"
    ex = circuits.extract(mpnp_like, equilibrium=_equilibrium(np.linspace(0.0, 0.4, 41)), charge="passed",
                          engine="sparse")
    m = ex.model
    assert ex.potential == "node_potential" and m.n_slits == N
    np.testing.assert_allclose(np.asarray(m.capacitances()), np.r_[TRUE["C_open"], TRUE["C_slit"]], rtol=1e-3)
    np.testing.assert_allclose(np.asarray(m.R_c), TRUE["R_c"], rtol=1e-3)
    # gamma is quoted per the discovery's charge scale Q^max (the charge passed while charging):
    # the law R_c (1 - gamma Q / Q^max) itself is what must come back
    np.testing.assert_allclose(np.asarray(m.gamma) / np.asarray(m.q_max), TRUE["gamma"] / TRUE["q_max"], rtol=2e-3)
    assert m.R_open == pytest.approx(TRUE["R_open"], rel=1e-3)
    assert float(m.gamma_open) / float(m.q_max_open) == pytest.approx(TRUE["gamma_open"] / TRUE["q_max_open"],
                                                                     rel=2e-3)
    # and the extracted circuit reproduces the ladder's CV
    again = circuits.simulate(m, CV, times=circuit_ds["time"].values)
    ref = circuit_ds["current_density"].values
    assert np.sqrt(np.mean((again["current_density"].values - ref) ** 2) / np.mean(ref ** 2)) < 2e-3


def test_from_mpnp_paper_ncm_and_refusals(synthetic):
    _, _, mpnp_like = synthetic
    paper = circuits.from_mpnp(mpnp_like, potential="slit_potential", per_link=False, engine="sparse")
    assert np.ndim(paper.R_c) == 0 and isinstance(paper.capacitor_law(), circuits.LinearCapacitor)
    # one R_c: the slit-to-slit links' mean (mid-slit potential = node potential for this ladder)
    assert float(paper.R_c) == pytest.approx(float(np.mean(TRUE["R_c"][1:])), rel=1e-3)
    with pytest.raises(ValueError, match="equilibrium"):
        circuits.from_mpnp(mpnp_like, potential="node_potential")
    with pytest.raises(ValueError, match="kind"):
        circuits.from_mpnp(mpnp_like, kind="salt")
    with pytest.raises(ValueError, match="mPNP Dataset"):
        circuits.from_mpnp(mpnp_like.drop_vars("trans_slit_current"), potential="slit_potential")
