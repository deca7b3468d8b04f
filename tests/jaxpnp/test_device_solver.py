"""The device-native mPNP path: exact block-tridiagonal preconditioners, one XLA program,
batched runs, and GMRES failures that are acted on."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpnp

EL = jaxpnp.Electrolyte()
TAU = EL.debye_time_s
TWO_SHEETS = jaxpnp.Electrode(n_sheets=2, slit_nm=1.2, sheet_length_nm=1.8, sheet_gap_nm=0.6,
                              sheet_thickness_nm=0.3, separator_nm=1.2)


@pytest.mark.parametrize("boundary, stern_F_m2", [
    pytest.param("symmetric", None, marks=pytest.mark.slow),  # 32 s; the closed cell runs through block Thomas in test_device_preconditioners_reproduce_the_superlu_run_and_conserve_salt (cyclic reduction: test_cyclic_reduction_run_is_the_superlu_run, slow)
    ("reservoir", 0.2),
])
def test_block_preconditioners_solve_the_stage_matrix_like_superlu(tiny_electrode, boundary, stern_F_m2):
    el = jaxpnp.Electrolyte(anion_diffusivity_m2_s=2.6e-9)
    electrode = dataclasses.replace(tiny_electrode, stern_capacitance_F_m2=stern_F_m2)
    with jaxpnp.float64():
        model, superlu = jaxpnp.build_model(el, electrode, jaxpnp.CV(), 0.3, boundary,
                                            preconditioner="superlu")
        g = model.grid
        rng = np.random.default_rng(2)
        c = model.initial_state() * (1 + 0.5 * rng.random((2, g.nx, g.ny)))
        t, hgamma = 3.0, 7.5
        r = jnp.asarray(rng.normal(size=(2, g.nx, g.ny)) * np.asarray(model.ion_mask))
        reference = np.asarray(superlu.apply(superlu.build(model, c, t, hgamma), r))
        f = lambda y: model.vector_field(t, y.reshape(2, g.nx, g.ny)).ravel()
        # jitted: one compile of the dense Jacobian instead of op-by-op dispatch of its vmapped jvp
        stage = np.eye(2 * g.nx * g.ny) - hgamma * np.asarray(jax.jit(jax.jacfwd(f))(c.ravel()))
        for method in ("block_thomas", "cyclic_reduction"):
            _, pre = jaxpnp.build_model(el, electrode, jaxpnp.CV(), 0.3, boundary, preconditioner=method)
            build = jax.jit(lambda c, hg: pre.build(model, c, t, hg))
            apply = jax.jit(pre.apply)  # hgamma is traced: both solves below share its compile
            x = np.asarray(apply(build(c, hgamma), r))
            scale = np.abs(reference).max()
            assert np.abs(x - reference).max() < 1e-10 * scale, method
            assert np.abs(stage @ x.ravel() - np.asarray(r).ravel()).max() < 1e-9 * np.abs(r).max()
            # h gamma = 0 (the explicit first ESDIRK stage): the stage matrix is the identity
            np.testing.assert_array_equal(np.asarray(apply(build(c, 0.0), r)), np.asarray(r))


CV_SHORT = jaxpnp.CV(v_max=0.5, scan_rate_V_s=0.5 / (100 * TAU))
TIMES = np.linspace(0.0, CV_SHORT.duration, 5)[1:]
TOLERANCES = dict(rtol=1e-6, atol=1e-8)


def _short_run(preconditioner):
    # 4 points per cycle in 4 segments: samples exactly at TIMES
    return jaxpnp.simulate(EL, TWO_SHEETS, CV_SHORT, grid_nm=0.3, points_per_cycle=4, progress=False,
                           preconditioner=preconditioner, segments_per_sweep=2, krylov_rtol=1e-6, **TOLERANCES)


@pytest.fixture(scope="module")
def device_vs_host_runs():
    return {p: _short_run(p) for p in ("superlu", "block_thomas")}


def _check_same_run_as_superlu(runs):
    ref = runs["superlu"]
    i_ref = ref.current_density.values
    for name, ds in runs.items():
        assert ds.attrs["solver_preconditioner"] == name
        salt = ds.total_salt.values
        assert np.max(np.abs(salt - salt[0])) / salt[0] < 1e-12, name
        # the same exact stage solves: the same steps, the same currents to round-off
        assert ds.attrs["solver_accepted"] == ref.attrs["solver_accepted"], name
        np.testing.assert_allclose(ds.current_density.values, i_ref, rtol=0, atol=1e-9 * np.abs(i_ref).max())


def test_device_preconditioners_reproduce_the_superlu_run_and_conserve_salt(device_vs_host_runs):
    _check_same_run_as_superlu(device_vs_host_runs)


# ~55 s contended (its own compile). In CI cyclic reduction's stage solves are checked against
# SuperLU's to 1e-10 (reservoir + Stern) in test_block_preconditioners_solve_the_stage_matrix_like_superlu;
# a whole run, and the closed (symmetric) cell through it, only here
@pytest.mark.slow
def test_cyclic_reduction_run_is_the_superlu_run(device_vs_host_runs):
    _check_same_run_as_superlu(dict(superlu=device_vs_host_runs["superlu"], cyclic_reduction=_short_run("cyclic_reduction")))


def test_unknown_preconditioner_is_refused(tiny_electrode):
    with pytest.raises(ValueError, match="preconditioner"):
        jaxpnp.simulate(EL, tiny_electrode, jaxpnp.CV(), grid_nm=0.3, preconditioner="ilu", progress=False)


def _charge_and_current(eps, preconditioner="block_thomas"):
    el = jaxpnp.Electrolyte(relative_permittivity=eps)
    return jaxpnp.differentiable_run(el, TWO_SHEETS, CV_SHORT, TIMES, grid_nm=0.3,
                                     preconditioner=preconditioner, **TOLERANCES)


_RUN = jax.jit(_charge_and_current)  # compiled once, shared by the tests below


def test_device_run_lowers_to_one_program_without_host_callbacks():
    with jaxpnp.float64():
        device = jax.jit(_charge_and_current).lower(78.5).as_text()
        host = jax.jit(lambda e: _charge_and_current(e, "superlu")).lower(78.5).as_text()
    assert "callback" in host  # the check sees SuperLU's pure_callback ...
    assert "callback" not in device  # ... and there is none on the device path


@pytest.mark.slow  # 38 s; test_vmap_over_scan_rate_with_times_in_units_of_the_period covers vmap in CI
def test_vmapped_runs_equal_separate_runs():
    eps = np.array([78.5, 110.0])
    with jaxpnp.float64():
        run = _RUN
        qb, ib = jax.jit(jax.vmap(_charge_and_current))(jnp.asarray(eps))
        for k, e in enumerate(eps):
            q, i = run(e)
            np.testing.assert_allclose(np.asarray(qb[k]), np.asarray(q), rtol=1e-8)
            np.testing.assert_allclose(np.asarray(ib[k]), np.asarray(i), rtol=1e-8,
                                       atol=1e-8 * float(jnp.abs(i).max()))
    # the members differ: the batch did not collapse onto one parameter
    assert abs(float(qb[0, 1] - qb[-1, 1])) > 1e-3 * abs(float(qb[0, 1]))


PERIOD_FRACTIONS = np.array([0.25, 0.5, 0.75, 1.0])  # TIMES / CV_SHORT.duration
HALF_PERIODS_DEBYE = np.array([100.0, 300.0])  # the first member is CV_SHORT


@pytest.fixture(scope="module")
def scan_rate_batch():
    """``differentiable_run`` vmapped over the CV's half period (a traced protocol number), output
    times in units of each member's period: one compile shared by the tests below."""
    def run(half_period_debye):
        cv = jaxpnp.CV(v_max=0.5, scan_rate_V_s=0.5 / (half_period_debye * TAU))
        return jaxpnp.differentiable_run(EL, TWO_SHEETS, cv, PERIOD_FRACTIONS * cv.duration, grid_nm=0.3,
                                         **TOLERANCES)

    with jaxpnp.float64():
        return jax.jit(jax.vmap(run))(jnp.asarray(HALF_PERIODS_DEBYE))


def test_differentiable_run_samples_land_on_steps_and_match_simulate(device_vs_host_runs, scan_rate_batch):
    # the outputs are computed states (no interpolant): simulate, with steps on its output
    # times at TIMES, agrees there (the batch's first member is CV_SHORT sampled at TIMES; that a
    # batch member equals the same run alone, to 1e-8, is test_vmapped_runs_equal_separate_runs)
    ds = device_vs_host_runs["block_thomas"]
    np.testing.assert_allclose(ds.time.values[1:], TIMES, rtol=1e-12)
    np.testing.assert_allclose(PERIOD_FRACTIONS * CV_SHORT.duration, TIMES, rtol=1e-12)
    q, i = (np.asarray(a[0]) for a in scan_rate_batch)
    np.testing.assert_allclose(q, ds.electrode_charge.values[1:], rtol=2e-4)
    # away from the vertex (where simulate averages both one-sided limits) the currents agree
    np.testing.assert_allclose(i[[0, 2]], ds.current_density.values[[1, 3]], rtol=2e-3)


@pytest.mark.slow
def test_reverse_mode_stage_adjoint_materialises_no_dense_jacobian():
    # with SuperLU the stage adjoint is a dense 2n x 2n solve; the device path's is GMRES
    # preconditioned by the stage's transposed factors
    with jaxpnp.float64():
        model, _ = jaxpnp.build_model(EL, TWO_SHEETS, CV_SHORT, 0.3, "symmetric")
        n2 = 2 * model.grid.nx * model.grid.ny
        dense = f"tensor<{n2}x{n2}xf64>"
        charge = lambda p: (lambda e: _charge_and_current(e, p)[0][-1])
        device = jax.jit(jax.grad(charge("block_thomas"))).lower(78.5).as_text()
        host = jax.jit(jax.grad(charge("superlu"))).lower(78.5).as_text()
    assert dense in host
    assert dense not in device


def test_vmap_over_scan_rate_with_times_in_units_of_the_period(scan_rate_batch):
    # protocol numbers as traced values: the output times follow the period of each member
    # (the fast member at its own times is checked against simulate above)
    qb = np.asarray(scan_rate_batch[0])
    # slower sweeps charge further by the vertex, and the charge returns towards zero by the end
    assert qb[1, 1] > qb[0, 1] > 0
    assert np.all(np.abs(qb[:, -1]) < np.abs(qb[:, 1]))
