"""Physics and behaviour of the mPNP solver on small grids."""

import math

import jax
import matplotlib.pyplot
import numpy as np
import pytest

import circuits
import jaxpnp

EL = jaxpnp.Electrolyte()
TAU = EL.debye_time_s


@pytest.fixture(scope="module")
def small_cv_run(small_electrode):
    cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=1.0 / (4000 * TAU))
    ds = jaxpnp.simulate(EL, small_electrode, cv, grid_nm=0.3, points_per_cycle=800, progress=False)
    return cv, ds


@pytest.mark.parametrize("ion_diameter_nm", [0.66, 0.45])
def test_planar_steady_state_matches_bikerman(ion_diameter_nm):
    el = jaxpnp.Electrolyte(ion_diameter_nm=ion_diameter_nm)
    planar = jaxpnp.Electrode(layout="planar", separator_nm=3.0)
    for v in (0.2, 1.0):  # cell voltage; the electrode sits at v / 2
        step = jaxpnp.PotentialStep(v_step=v, duration_s=600 * el.debye_time_s)
        ds = jaxpnp.simulate(el, planar, step, grid_nm=0.015, boundary="reservoir",
                             points_per_cycle=4, progress=False)
        # steady: the current has died away
        assert abs(float(ds.current_density[-1])) * step.duration_s < 1e-5 * abs(float(ds.electrode_charge[-1]))
        q = float(ds.electrode_charge[-1])
        expected = float(el.bikerman_charge_C_m2(v / 2))
        assert q == pytest.approx(expected, rel=1e-3), (ion_diameter_nm, v, q, expected)
        assert float(ds.ionic_charge[-1]) == pytest.approx(-expected, rel=1e-3)


def test_closed_half_cell_conserves_salt_and_charge(small_cv_run):
    cv, ds = small_cv_run
    salt = ds.total_salt.values
    # exact stage solves keep the ion count to round-off
    assert np.max(np.abs(salt - salt[0])) / salt[0] < 1e-12
    q = ds.electrode_charge.values
    t = ds.time.values
    i = ds.current_density.values
    integral = np.concatenate([[0.0], np.cumsum(0.5 * (i[1:] + i[:-1]) * np.diff(t))])
    assert np.max(np.abs(integral - (q - q[0]))) < 1e-3 * np.max(np.abs(q))
    # rate-limited charging: at the same voltage the discharge sweep holds more charge than
    # the charge sweep (samples k and n-1-k sit at the same voltage)
    v = ds.cell_voltage.values
    n = q.size
    inner = np.arange(1, n // 2)
    np.testing.assert_allclose(v[inner], v[n - 1 - inner], atol=1e-9)
    assert np.all(q[n - 1 - inner] > q[inner])
    # at the vertex every slit holds counter-ions of the positive electrode
    vertex = int(np.argmax(v))
    assert np.all(ds.slit_charge.values[vertex, 1:] < 0)


def test_region_ion_contents_make_the_region_charges(small_cv_run):
    # slit_cation/anion_content are what the salt-aware circuits read (links_from="species"):
    # their difference is each region's net charge, and the crowded slits expel co-ions
    _, ds = small_cv_run
    F = 96485.33212
    cat, an = ds.slit_cation_content.values, ds.slit_anion_content.values
    assert np.all(cat > 0) and np.all(an > 0)
    np.testing.assert_allclose(F * (cat - an), ds.slit_charge.values,
                               atol=1e-9 * float(np.max(np.abs(ds.slit_charge.values))))
    assert np.all(np.sum(cat + an, axis=1) <= ds.total_salt.values * (1 + 1e-12))
    vertex = int(np.argmax(ds.cell_voltage.values))
    assert np.all(cat[vertex, 1:] < cat[0, 1:])  # the positive electrode's slits lose cations


def test_ionic_charge_balances_electrode_charge_when_slow(small_electrode):
    # the imbalance is the field reaching the mid-plane: the ohmic field of the current,
    # and, in a small closed cell charged hard, double layers widened by salt depletion.
    # Swept slowly to a moderate voltage, the ions screen the electrode completely.
    # the same output count as small_cv_run: the same compiled segment solve (the protocol's
    # numbers are traced), no compile of its own
    cv = jaxpnp.CV(v_min=0.0, v_max=0.2, scan_rate_V_s=0.2 / (1e6 * TAU))
    ds = jaxpnp.simulate(EL, small_electrode, cv, grid_nm=0.3, points_per_cycle=800, progress=False)
    q = ds.electrode_charge.values
    assert np.max(np.abs(q + ds.ionic_charge.values)) < 1e-3 * np.max(np.abs(q))


def test_concentrations_stay_positive_through_1V_cv(small_cv_run):
    _, ds = small_cv_run
    assert float(ds.cell_voltage.max()) == pytest.approx(1.0)
    assert float(ds.min_concentration.min()) > 0.0
    assert float(ds.max_packing_fraction.max()) < 1.0
    # counter-ions crowd the sheets near 1 V: the steric regime is exercised
    assert float(ds.max_packing_fraction.max()) > 0.9


def test_trans_slit_current_charges_the_slits_beyond(small_cv_run):
    _, ds = small_cv_run
    t = ds.time.values
    link = ds.trans_slit_current.values
    charge = ds.slit_charge.values
    beyond = charge[:, ::-1].cumsum(axis=1)[:, ::-1]  # charge of slits >= i
    for k in range(ds.sizes["slit"] - 1):
        passed = np.concatenate([[0.0], np.cumsum(0.5 * (link[1:, k] + link[:-1, k]) * np.diff(t))])
        stored = beyond[:, k + 1] - beyond[0, k + 1]
        assert np.max(np.abs(passed - stored)) < 2e-3 * np.max(np.abs(charge))


TINY = jaxpnp.Electrode(n_sheets=2, slit_nm=1.2, sheet_length_nm=1.8, sheet_gap_nm=0.6,
                        sheet_thickness_nm=0.3, separator_nm=1.2)


def test_grid_convergence_of_cv_current():
    # one slit behind one sheet; every size a multiple of the coarsest spacing
    cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=1.0 / (400 * TAU))
    currents = []
    for h in (0.3, 0.15, 0.075):
        ds = jaxpnp.simulate(EL, TINY, cv, grid_nm=h, points_per_cycle=100, progress=False)
        currents.append(ds.current_density.values)
    e1 = np.linalg.norm(currents[0] - currents[1])
    e2 = np.linalg.norm(currents[1] - currents[2])
    order = math.log2(e1 / e2)
    print(f"observed order {order:.2f} (differences {e1:.3g}, {e2:.3g})")
    assert order >= 1.0


def test_grad_through_cv_matches_finite_differences():
    e = TINY
    with jaxpnp.float64():
        cv = jaxpnp.CV(v_max=0.5, scan_rate_V_s=0.5 / (200 * TAU))
        ts = np.linspace(0.0, cv.duration, 9)[1:]

        def charge_at_vertex(eps):
            el = jaxpnp.Electrolyte(relative_permittivity=eps)
            q, _ = jaxpnp.differentiable_run(el, e, cv, ts, grid_nm=0.3)
            return q[3]

        # one compiled program for the reverse-mode gradient AND the finite-difference points:
        # eps is traced, so the FD values reuse it (a forward-only jit was one more compile of
        # the whole solver; the two extra backward passes cost less than that compile)
        value_and_grad = jax.jit(jax.value_and_grad(charge_at_vertex))
        q0, grad = value_and_grad(78.5)
        step = 1e-3
        fd = float((value_and_grad(78.5 + step)[0] - value_and_grad(78.5 - step)[0]) / (2 * step))
        grad = float(grad)
    assert grad == pytest.approx(fd, rel=1e-5)
    assert abs(grad) > 0 and float(q0) != 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(electrode=dict(slit_nm=-1.0)), "slit_nm"),
    (dict(electrode=dict(slit_nm=0.8)), "validity"),
    (dict(electrolyte=dict(concentration_M=0.0)), "concentration"),
    (dict(electrolyte=dict(concentration_M=4.0, ion_diameter_nm=0.8)), "packing"),
    (dict(protocol=dict(scan_rate_V_s=-1.0)), "scan_rate"),
    (dict(grid_nm=0.5), "Debye"),
    (dict(grid_nm=0.3, electrode=dict(slit_nm=1.0)), "coarse"),
    (dict(boundary="open"), "boundary"),
])
def test_bad_input_is_refused_before_compute(kwargs, match):
    def run():
        el = jaxpnp.Electrolyte(**kwargs.get("electrolyte", {}))
        e = jaxpnp.Electrode(**kwargs.get("electrode", {}))
        cv = jaxpnp.CV(**kwargs.get("protocol", {}))
        jaxpnp.simulate(el, e, cv, grid_nm=kwargs.get("grid_nm", 0.1),
                        boundary=kwargs.get("boundary", "symmetric"), progress=False)
    with pytest.raises(ValueError, match=match):
        run()


def test_subnanometre_slit_allowed_on_request_passes_validation():
    e = jaxpnp.Electrode(slit_nm=0.8)
    jaxpnp.validate(EL, e, jaxpnp.CV(), 0.1, "symmetric", allow_subnanometre_slits=True)


def test_failure_midway_keeps_partial_results(small_electrode, tmp_path):
    cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=1.0 / (4000 * TAU))
    path = tmp_path / "partial.nc"
    with pytest.raises(jaxpnp.SimulationError, match="stopped at t =") as info:
        jaxpnp.simulate(EL, small_electrode, cv, grid_nm=0.3, points_per_cycle=800, progress=False,
                        max_steps_per_segment=30, checkpoint_path=path)
    partial = info.value.partial
    assert partial is not None and partial.sizes["time"] >= 1
    assert info.value.time_reached_s < cv.duration
    saved = jaxpnp.load(path)
    assert saved.sizes["time"] == partial.sizes["time"]
    assert saved.attrs["solver_complete"] == 0


def test_dataset_roundtrip_and_units(small_cv_run, tmp_path):
    _, ds = small_cv_run
    path = tmp_path / "run.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    back = jaxpnp.load(path)
    np.testing.assert_allclose(back.current_density.values, ds.current_density.values)
    for name, unit in [("cell_voltage", "V"), ("current_density", "A m-2"), ("electrode_charge", "C m-2"),
                       ("slit_potential", "V"), ("trans_slit_current", "A m-2"), ("total_salt", "mol m-2")]:
        assert back[name].attrs["units"] == unit
    assert back.attrs["slit_nm"] == 1.5 and back.attrs["layout"] == "staggered"


def test_dataset_follows_cf_and_pint_reads_it(small_cv_run, assert_cf):
    _, ds = small_cv_run
    q = assert_cf(ds)
    # pint's quantities convert: A/m^2 -> mA/cm^2 is a factor 0.1, mol/m^2 -> umol/cm^2 100
    np.testing.assert_allclose(q.current_density.pint.to("mA/cm^2").pint.magnitude,
                               0.1 * ds.current_density.values)
    np.testing.assert_allclose(q.total_salt.pint.to("umol/cm^2").pint.magnitude, 100 * ds.total_salt.values)


def test_protocol_schema_is_shared_by_mpnp_and_circuit_datasets(small_cv_run):
    cv, ds = small_cv_run
    assert jaxpnp.protocol_from_attrs(ds.attrs) == cv
    ladder = circuits.simulate(circuits.NCM(2, 2e-10, 0.05, 0.1, 1e-10, 0.5), cv, points_per_cycle=40)
    assert jaxpnp.protocol_from_attrs(ladder.attrs) == cv
    for data in (ds, ladder):  # the plot reads the period from either
        ax = circuits.plot.slit_charge(data)
        assert ax.get_xlabel() == "time (cycles)"
        assert max(ax.get_xlim()) == pytest.approx(1.0, abs=0.02)
    matplotlib.pyplot.close("all")


def test_flux_relations_of_a_cv(small_cv_run):
    # the paper's Figure 1: in the open space migration opposes diffusion, in the slits they align
    _, ds = small_cv_run
    rel = jaxpnp.flux_relations(ds)
    assert rel["open_space"]["migration_diffusion_correlation"] < -0.5
    assert rel["slits"]["migration_diffusion_correlation"] > 0.5
    assert rel["slits"]["links"] == [1]
