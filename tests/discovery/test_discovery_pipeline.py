"""prepare -> trans_slit_law -> sweep on synthetic Datasets with the DATA CONTRACT's names,
built from nonlinear RC ladders whose link resistance we choose; integral -> differential."""

import math

import numpy as np
import pytest
import sympy
import xarray as xr
from scipy.integrate import solve_ivp

import discovery

FAST_OPERON = dict(population_size=300, generations=60)
CAPACITANCE = 0.2  # F/m^2 per slit


def ladder_dataset(resistance, n_slits=4, v_max=1.0, half_period=0.05, cycles=1, n_samples=801,
                   slit_nm=1.5, flip=False):
    """Half-cell RC ladder: open space (slit 0) at 0 V, slits 1..n with CAPACITANCE to the
    electrode at phi_m(t) (triangle 0 -> v_max/2 -> 0), link i conducting
    I_i = (phi_i - phi_{i+1}) / resistance(i, |Q_i|), Q_i = int I_i dt (C/m^2).
    ``flip`` negates potentials and currents (a negative electrode)."""
    sign = -1.0 if flip else 1.0

    def phi_m(t):
        x = (t / half_period) % 2.0
        return sign * 0.5 * v_max * np.where(x < 1, x, 2 - x)

    def voltages(t, Q):
        qslit = np.concatenate([Q[:-1] - Q[1:], [Q[-1]]])
        return np.concatenate([[0.0], phi_m(t) + qslit / CAPACITANCE]), qslit

    def currents(t, Q):
        v, _ = voltages(t, Q)
        return np.array([(v[i] - v[i + 1]) / resistance(i, abs(Q[i])) for i in range(n_slits)])

    t = np.linspace(0.0, 2 * half_period * cycles, n_samples)
    sol = solve_ivp(currents, (t[0], t[-1]), np.zeros(n_slits), t_eval=t, rtol=1e-11,
                    atol=1e-14, method="LSODA")
    assert sol.success
    Q = sol.y.T
    phi = np.array([voltages(tk, Qk)[0] for tk, Qk in zip(t, Q)])
    qs = np.array([np.concatenate([[-Qk[0]], voltages(tk, Qk)[1]]) for tk, Qk in zip(t, Q)])
    current = np.array([np.concatenate([currents(tk, Qk), [0.0]]) for tk, Qk in zip(t, Q)])
    dataset = xr.Dataset(
        {"cell_voltage": ("time", 2 * np.abs(phi_m(t))),
         "current_density": ("time", current[:, 0]),
         "electrode_charge": ("time", -qs.sum(axis=1)),
         "slit_potential": (("time", "slit"), phi),
         "slit_charge": (("time", "slit"), qs),
         "trans_slit_current": (("time", "slit"), current)},
        coords={"time": t, "slit": np.arange(n_slits + 1)},
        attrs=dict(slit_nm=slit_nm, n_sheets=n_slits + 1, concentration_M=1.0,
                   ion_diameter_nm=0.66, diffusivity_m2_s=2e-9, relative_permittivity=78.5,
                   temperature_K=298.15, scan_rate_V_s=v_max / half_period, v_min=0.0,
                   v_max=v_max, cycles=cycles))
    return dataset, np.abs(Q)


def paper_like(r_c=0.01, gamma=0.6, q_star=0.3):
    return lambda i, Q: r_c * (1 + i) * (1 - gamma * Q / q_star)


# ------------------------------------------------------------------ integral -> differential
def test_integral_to_differential_is_exact():
    q, Q = sympy.Symbol("q"), sympy.Symbol("Q")
    a_s, q_s = sympy.Rational(3, 1000), sympy.Rational(1, 7)
    c1, c2, c3 = sympy.Rational(5, 4), sympy.Rational(-1, 3), sympy.Rational(1, 11)
    F = c1 * q + c2 * q**2 + c3 * q**3 + 2 * sympy.log(1 + q)
    R = discovery.integral_to_differential(F, q, a_s, q_s)
    x = Q / q_s
    expected = a_s / q_s * (c1 + 2 * c2 * x + 3 * c3 * x**2 + 2 / (1 + x))
    assert sympy.simplify(R - expected) == 0
    # and the chain rule it encodes: d/dt [a_s F(Q(t)/q_s)] = R(Q(t)) dQ/dt for any Q(t)
    t = sympy.Symbol("t")
    Qt = sympy.sin(t) + t**2
    lhs = sympy.diff(a_s * F.subs(q, Qt / q_s), t)
    assert sympy.simplify(lhs - R.subs(Q, Qt) * sympy.diff(Qt, t)) == 0


def test_paper_form_check():
    q = sympy.Symbol("q")
    f = discovery.paper_form(1.2 * q - 0.3 * q**2, q)
    assert f["paper"] and f["form"] == "quadratic"
    assert f["R_c"] == pytest.approx(1.2) and f["gamma"] == pytest.approx(0.5)
    assert discovery.paper_form(0.7 * q, q)["gamma"] == 0.0
    assert not discovery.paper_form(1.2 * q - 0.3 * q**2 + 0.1, q)["paper"]  # F(0) != 0
    assert discovery.paper_form(q + 0.2 * q**3, q)["form"] == "other"
    assert discovery.paper_form(2 * q / (1 + q), q)["form"] == "other"
    assert discovery.paper_form(sympy.log(1 + q), q)["form"] == "other"


# ------------------------------------------------------------------ prepare
@pytest.fixture(scope="module")
def paper_ladder():
    return ladder_dataset(paper_like())


def test_prepare_normalises_and_orients(paper_ladder):
    ds, Q = paper_ladder
    p = discovery.prepare(ds)
    assert list(p["link"].values) == [1, 2, 3]  # inner links by default
    assert np.all(p["orientation"].values == -1)  # inward net ionic current is negative here
    np.testing.assert_allclose(p["charge"].max("time"), 1.0)
    np.testing.assert_allclose(np.abs(p["voltage_integral"]).max("time"), 1.0)
    n_charge = p.sizes["time"]
    np.testing.assert_allclose(p["charge_scale"], Q[:n_charge, 1:4].max(axis=0), rtol=1e-4)
    assert p.attrs["charging_end_s"] == pytest.approx(0.05)
    assert bool(p["charging"][n_charge - 1]) and not bool(p["charging"][n_charge])
    # U = R I with R > 0 in the documented convention
    assert np.all((p["voltage"] * p["current"]).isel(time=slice(1, None)) > 0)


def test_prepare_is_sign_agnostic(paper_ladder):
    ds, _ = paper_ladder
    flipped, _ = ladder_dataset(paper_like(), flip=True)
    a, b = discovery.prepare(ds), discovery.prepare(flipped)
    assert np.all(b["orientation"].values == 1)
    for name in ("charge", "voltage_integral", "current", "voltage", "charge_scale"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-12)


# ------------------------------------------------------------------ end to end
def test_end_to_end_recovers_paper_like_ladder(paper_ladder):
    ds, Q = paper_ladder
    result = discovery.trans_slit_law(ds, engine="operon", seed=0, **FAST_OPERON)
    assert sorted(result.links) == [1, 2, 3] and result.open_space_link is None
    p = result.prepared
    for i, law in result.links.items():
        assert law.paper_form and law.form == "quadratic", law.law.expression
        assert law.R_c == pytest.approx(0.01 * (1 + i), rel=1e-3)
        true_gamma = 0.6 * float(p["charge_scale"].sel(link=i)) / 0.3
        assert law.gamma == pytest.approx(true_gamma, rel=1e-3, abs=1e-4)
        assert law.r2 > 0.999999 and law.differential_r2 > 0.999
    # R(t) over the whole cycle equals the ladder's resistance along its trajectory
    n = result.resistance.sizes["cycle_time"]
    for i in result.links:
        truth = 0.01 * (1 + i) * (1 - 0.6 * Q[:n, i] / 0.3)
        np.testing.assert_allclose(result.resistance.sel(link=i), truth, rtol=1e-3)
        assert float(result.R_max.sel(link=i)) == pytest.approx(truth.max(), rel=1e-3)
        assert float(result.R_min.sel(link=i)) == pytest.approx(truth.min(), rel=1e-3)
    assert result.resistance.attrs["units"] == "ohm m^2"
    assert "paper form=True" in result.summary()


def test_one_search_for_all_links_recovers_each_links_constants(paper_ladder):
    """search="once": one Operon search on the pooled links, each link's constants refit on its own
    samples; the links differ in R_c (x1, x2, x3) and in their normalised gamma."""
    ds, _ = paper_ladder
    result = discovery.trans_slit_law(ds, engine="operon", seed=0, search="once", max_points=150, **FAST_OPERON)
    p = result.prepared
    for i, law in result.links.items():
        assert law.law.selection["search"] == "once"
        assert law.paper_form and law.form == "quadratic", law.law.expression
        assert law.R_c == pytest.approx(0.01 * (1 + i), rel=1e-3)
        assert law.gamma == pytest.approx(0.6 * float(p["charge_scale"].sel(link=i)) / 0.3, rel=1e-3, abs=1e-4)
    with pytest.raises(ValueError, match="search"):
        discovery.trans_slit_law(ds, engine="sparse", search="pooled")


def test_refit_forms_takes_the_forms_of_one_fit_to_other_data():
    """An engine's forms refit on data of the same law with other constants recover those constants
    (no new search); data of another number of variables are refused."""
    x = np.linspace(0.05, 1.0, 120)[:, None]
    engine = discovery.SparseEngine(seed=0, thresholds=np.logspace(-6, -1, 6)).fit(x, 2.0 * x[:, 0] / (0.5 + x[:, 0]), names=["x"])
    law = engine.refit_forms(x, 3.0 * x[:, 0] / (0.8 + x[:, 0]), names=["x"]).law_
    assert discovery.same_structure(law.expression, "3*x/(0.8 + x)", ["x"], rtol=1e-4), law.expression
    with pytest.raises(ValueError, match="variable"):
        engine.refit_forms(np.hstack([x, x]), x[:, 0], names=["a", "b"])
    with pytest.raises(RuntimeError, match="fit"):
        discovery.SparseEngine().refit_forms(x, x[:, 0])


def test_end_to_end_reports_a_law_of_another_form():
    # R = R_c (1 + beta (Q/Q*)^2)  =>  int U dt is cubic in Q: not the paper's form
    ds, Q = ladder_dataset(lambda i, Q: 0.02 * (1 + 3.0 * (Q / 0.1) ** 2), n_slits=3)
    result = discovery.trans_slit_law(ds, engine="operon", slits=[1], seed=0, **FAST_OPERON)
    law = result.links[1]
    assert not law.paper_form and law.form == "other"
    assert math.isnan(law.R_c) and math.isnan(law.gamma)
    q = sympy.Symbol("q")
    poly = sympy.Poly(sympy.expand(law.law.expression), q)
    assert poly.degree() == 3 and law.r2 > 0.99999
    n = result.resistance.sizes["cycle_time"]
    truth = 0.02 * (1 + 3.0 * (Q[:n, 1] / 0.1) ** 2)
    np.testing.assert_allclose(result.resistance.sel(link=1), truth, rtol=2e-3)


def test_constant_resistance_gives_gamma_zero_and_open_space_separately():
    ds, _ = ladder_dataset(lambda i, Q: 0.01 * (2 + i), n_slits=3)
    result = discovery.trans_slit_law(ds, engine="sparse", slits="all")
    assert result.open_space_link is not None and result.open_space_link.open_space
    assert 0 not in result.links
    for i, law in result.all_links().items():
        assert law.paper_form and law.form == "linear"
        assert law.gamma == 0.0 and law.R_c == pytest.approx(0.01 * (2 + i), rel=1e-4)
    assert bool(result.resistance["open_space"].sel(link=0))


def test_sweep_table_over_slit_sizes():
    runs = [ladder_dataset(paper_like(r_c=r), n_slits=3, slit_nm=d)[0]
            for d, r in ((1.5, 0.01), (3.0, 0.02))]
    table = discovery.sweep(runs, engine="sparse")
    assert table.sizes == {"run": 2, "link": 2}
    np.testing.assert_allclose(table["slit_nm"], [1.5, 3.0])
    np.testing.assert_allclose(table["R_max"].sel(link=1), [0.02, 0.04], rtol=1e-3)
    assert np.all(table["R_min"] < table["R_max"])
    assert np.all((table["gamma"] > 0) & (table["gamma"] < 1))
    assert "relative_permittivity" in table.coords and "gamma_mean" in table


# ------------------------------------------------------------------ bad input
def test_bad_datasets_raise_value_error(paper_ladder):
    ds, _ = paper_ladder
    with pytest.raises(ValueError, match="lacks"):
        discovery.prepare(ds.drop_vars("trans_slit_current"))
    with pytest.raises(ValueError, match="xarray.Dataset"):
        discovery.prepare({"time": [0, 1]})
    with pytest.raises(ValueError, match="no charging half-cycle"):
        discovery.prepare(ds.assign(cell_voltage=ds["cell_voltage"] * 0 + 1.0))
    with pytest.raises(ValueError, match="too few"):
        discovery.prepare(ds.isel(time=slice(0, 8)))
    with pytest.raises(ValueError, match="non-finite"):
        bad = ds.copy(deep=True)
        bad["slit_potential"][5, 2] = np.nan
        discovery.prepare(bad)
    with pytest.raises(ValueError, match="link 4 does not exist"):
        discovery.prepare(ds, slits=[4])  # slit 4 is the closed end: no link 4
    with pytest.raises(ValueError, match="no charge passes"):
        dead = ds.copy(deep=True)
        dead["trans_slit_current"][:, 2] = 0.0
        discovery.prepare(dead, slits=[2])
    with pytest.raises(ValueError, match="no inner links"):
        discovery.prepare(ds.isel(slit=[0, 1]))


def test_quadratic_integral_fit_and_paper_gamma():
    # A = R_c (Q - gamma Q^2 / (2 Q_max)): the integral of R_c (1 - gamma Q / Q_max)
    Q = np.linspace(0.0, 0.3, 60)
    R_c, gamma, q_max = 2e-10, 0.6, 0.3
    A = R_c * (Q - gamma * Q ** 2 / (2 * q_max))
    c1, c2, r2 = discovery.quadratic_integral_fit(Q / q_max, A)
    assert c1 / q_max == pytest.approx(R_c, rel=1e-9)
    assert discovery.paper_gamma(c1, c2) == pytest.approx(gamma, rel=1e-9)
    assert r2 == pytest.approx(1.0)
    # a cubic term the form cannot hold lowers r2
    assert discovery.quadratic_integral_fit(Q, A + 3e-10 * Q ** 3 - 2e-10 * Q ** 2)[2] < 1.0


def test_paper_parameters_project_a_law_of_another_form(paper_ladder):
    ds, _ = paper_ladder
    result = discovery.trans_slit_law(ds, engine="sparse", seed=0)
    for i, law in result.links.items():
        R_c, gamma, projected = discovery.paper_parameters(result, i)
        R_p, g_p, r2 = discovery.paper_form_projection(result.prepared, i)
        if law.paper_form:  # the law's own values, and the projection agrees with them
            assert not projected and R_c == pytest.approx(law.R_c) and gamma == pytest.approx(law.gamma)
            assert R_p == pytest.approx(law.R_c, rel=1e-2) and g_p == pytest.approx(law.gamma, abs=1e-2)
        else:
            assert projected and (R_c, gamma) == (R_p, g_p)
