"""Tests of the circuits package against independent analytic / linear-algebra references."""

import dataclasses

import jax
import matplotlib
import numpy as np
import pytest
import scipy.linalg

import circuits
import jaxpnp

# Physical scales of a 1.5 nm slit network in 1 M KCl (see the issue): ns times.
N = 5
R_OPEN, C_OPEN = 2e-10, 0.05
C_SLIT = np.array([0.10, 0.12, 0.08, 0.11, 0.09])
R_C = np.array([1.0e-10, 1.5e-10, 0.8e-10, 1.2e-10, 2.0e-10])
CV = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=2e8, cycles=2)


def _node_matrix(R_open, C, R):
    """Linear ladder in node charges q_k (independent of the package's link-charge basis): q' = A q + b phi."""
    n_nodes = len(C)
    A = np.zeros((n_nodes, n_nodes))
    b = np.zeros(n_nodes)
    A[0, 0] -= 1.0 / (R_open * C[0])  # I = (phi - q0/C0) / R_open into node 0
    b[0] = 1.0 / R_open
    for i, r in enumerate(R):  # J_i = (q_i/C_i - q_{i+1}/C_{i+1}) / R_i from node i to i+1
        for k, sign in ((i, 1.0), (i + 1, -1.0)):
            A[i, k] -= sign / (r * C[k])
            A[i + 1, k] += sign / (r * C[k])
    return A, b


def _exact_linear_cv_current(R_open, C, R, protocol, times):
    """Exact CV current of the linear ladder: matrix exponential with piecewise-linear forcing."""
    A, b = _node_matrix(R_open, C, R)
    n = len(C)
    # augmented state [q, phi, slope]: d/dt = [[A, b, 0], [0, 0, 1], [0, 0, 0]]
    M = np.zeros((n + 2, n + 2))
    M[:n, :n] = A
    M[:n, n] = b
    M[n, n + 1] = 1.0
    knots = np.concatenate([[0.0], protocol.jump_times, [protocol.duration]])
    phi = lambda t: 0.5 * (protocol.v_min + (protocol.v_max - protocol.v_min)  # noqa: E731
                           * (1 - abs(2 * ((t / protocol.period) % 1.0) - 1)))
    out = np.empty(len(times))
    z = np.zeros(n + 2)
    z[n] = phi(0.0)
    for a, bnd in zip(knots[:-1], knots[1:]):
        z[n + 1] = (phi(bnd) - phi(a)) / (bnd - a)
        inside = (times >= a) & (times <= bnd)
        for j in np.nonzero(inside)[0]:
            zt = scipy.linalg.expm(M * (times[j] - a)) @ z
            out[j] = (zt[n] - zt[0] / C[0]) / R_open
        z = scipy.linalg.expm(M * (bnd - a)) @ z
    return out


def _continued_fraction_impedance(R_open, C, R, omega):
    """Z = R_open + 1/(jwC0 + 1/(R0 + 1/(jwC1 + ...))) by backward recursion."""
    Y = 1j * omega * C[-1]
    for k in range(len(R) - 1, -1, -1):
        Y = 1j * omega * C[k] + 1.0 / (R[k] + 1.0 / Y)
    return R_open + 1.0 / Y


def test_tlm_cv_matches_exact_linear_ladder(assert_cf):
    model = circuits.TLM(N, R_OPEN, C_OPEN, C_SLIT, R_C)
    ds = circuits.simulate(model, CV, points_per_cycle=100, rtol=1e-10, atol=1e-12)
    t = ds.time.values
    exact = _exact_linear_cv_current(R_OPEN, np.r_[C_OPEN, C_SLIT], R_C, CV, t)
    err = np.max(np.abs(ds.current_density.values - exact)) / np.max(np.abs(exact))
    assert err < 1e-6
    # the same through the NCM at gamma = 0
    ds_ncm = circuits.simulate(model.as_ncm(), CV, points_per_cycle=100, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ds_ncm.current_density.values, ds.current_density.values,
                               atol=1e-7 * np.max(np.abs(exact)))
    # sign convention: the rising sweep charges the electrode
    rising = t < CV.half_period
    assert np.all(ds.current_density.values[rising][1:] > 0)
    assert ds.electrode_charge.values[0] == 0.0
    assert set(["time", "cell_voltage", "current_density", "electrode_charge", "slit_charge"]) <= set(ds.variables)
    assert ds.slit_charge.dims == ("time", "slit") and list(ds.slit.values) == list(range(N + 1))
    assert ds.current_density.attrs["units"] == "A m-2" and ds.attrs["n_slits"] == N
    q = assert_cf(ds)
    assert str(q.link_resistance.pint.units) == "meter ** 2 * ohm"


def test_fixed_step_solver_converges_to_adaptive():
    model = circuits.NCM(N, R_OPEN, C_OPEN, C_SLIT, R_C, gamma=0.6)
    ref = circuits.solve(model, CV, points_per_cycle=100, rtol=1e-10, atol=1e-12).current_density
    errs = []
    # R_open C_open = 1e-11 s: steps must resolve the fast transient after each vertex
    for steps in (2000, 4000, 8000):
        i = circuits.solve(model, CV, points_per_cycle=100, method="fixed", steps=steps).current_density
        errs.append(float(np.max(np.abs(i - ref)) / np.max(np.abs(ref))))
    assert errs[-1] < 5e-4
    # second order: halving the step cuts the error about fourfold
    assert errs[0] / errs[1] > 3.0 and errs[1] / errs[2] > 3.0


@pytest.mark.parametrize("protocol", [CV, pytest.param(jaxpnp.Galvanostatic(current_density_A_m2=1e7, charge_time_s=2e-9),
                                                       marks=pytest.mark.slow)])
def test_fast_graded_solver_meets_its_accuracy(protocol):
    model = circuits.NCM(N, R_OPEN, C_OPEN, C_SLIT, R_C, gamma=0.6)
    ref = circuits.solve(model, protocol, points_per_cycle=100, rtol=1e-10, atol=1e-12)
    fast = circuits.solve(model, protocol, points_per_cycle=100, method="fast")
    for var in ("current_density", "cell_voltage", "electrode_charge"):
        a, b = np.asarray(getattr(fast, var)), np.asarray(getattr(ref, var))
        assert np.max(np.abs(a - b)) / np.max(np.abs(b)) < 3e-3, var  # defaults: ~1e-3 class (see solve)
    # refining the graded grid converges
    fine = circuits.solve(model, protocol, points_per_cycle=100, method="fast", steps=800, growth=1.025)
    e = lambda s: sum(float(np.max(np.abs(np.asarray(getattr(s, v)) - np.asarray(getattr(ref, v))))  # noqa: E731
                            / np.max(np.abs(np.asarray(getattr(ref, v))))) for v in ("current_density", "cell_voltage"))
    assert e(fine) < 0.5 * e(fast)


# ten times slower ladder than above, so 800 samples per cycle resolve R_open C_open for the quadrature
@pytest.mark.parametrize("model", [
    circuits.TLM(N, 10 * R_OPEN, C_OPEN, C_SLIT, 10 * R_C),
    circuits.NCM(N, 10 * R_OPEN, C_OPEN, C_SLIT, 10 * R_C, gamma=0.8),
    circuits.NCM(N, 10 * R_OPEN, C_OPEN, C_SLIT, 10 * R_C, gamma=0.8, charge="node"),
])
def test_charge_conservation(model):
    ds = circuits.simulate(model, CV, points_per_cycle=800, rtol=1e-10, atol=1e-12)
    t, i = ds.time.values, ds.current_density.values
    # Simpson's rule (800 intervals per cycle, vertices on the grid) vs the stored charge
    integral = scipy.integrate.cumulative_simpson(i, x=t, initial=0.0)
    scale = np.max(np.abs(ds.electrode_charge.values))
    np.testing.assert_allclose(integral, ds.electrode_charge.values, atol=1e-6 * scale)
    np.testing.assert_allclose(ds.slit_charge.sum("slit").values, ds.electrode_charge.values, atol=1e-12 * scale)
    # link i has passed everything stored beyond node i
    beyond = np.cumsum(ds.slit_charge.values[:, ::-1], axis=1)[:, ::-1][:, 1:]
    np.testing.assert_allclose(ds.link_charge.values, beyond, atol=1e-12 * scale)


def test_galvanostatic_and_potential_step():
    model = circuits.NCM(N, R_OPEN, C_OPEN, C_SLIT, R_C, gamma=0.5)
    g = jaxpnp.Galvanostatic(current_density_A_m2=1e7, charge_time_s=2e-9)
    ds = circuits.simulate(model, g, points_per_cycle=100, rtol=1e-10, atol=1e-12)
    expected = np.asarray(g.current_density(ds.time.values))
    inner = ~np.isclose(ds.time.values, g.charge_time_s)
    np.testing.assert_allclose(ds.current_density.values[inner], expected[inner])
    q = ds.electrode_charge.values
    assert q[50] == pytest.approx(1e7 * 2e-9, rel=1e-6) and abs(q[-1]) < 1e-6 * q[50]
    # voltage rises while charging, including the initial I R_open jump
    assert ds.cell_voltage.values[1] > 2 * 1e7 * R_OPEN * 0.99
    step = jaxpnp.PotentialStep(v_step=0.6, duration_s=5e-9)
    tlm = circuits.TLM(N, R_OPEN, C_OPEN, C_SLIT, R_C)
    ds = circuits.simulate(tlm, step, points_per_cycle=200, rtol=1e-10, atol=1e-12)
    c_total = C_OPEN + C_SLIT.sum()
    assert ds.current_density.values[0] == pytest.approx(0.3 / R_OPEN)
    # the TLM's final charge approaches C_total * phi
    assert ds.electrode_charge.values[-1] == pytest.approx(0.3 * c_total, rel=1e-3)


def test_impedance_matches_continued_fraction_and_de_levie_limit():
    f = np.logspace(5, 11, 13)
    model = circuits.TLM(N, R_OPEN, C_OPEN, C_SLIT, R_C)
    Z = np.asarray(circuits.impedance(model, f))
    Z_ref = _continued_fraction_impedance(R_OPEN, np.r_[C_OPEN, C_SLIT], R_C, 2 * np.pi * f)
    np.testing.assert_allclose(Z, Z_ref, rtol=1e-10)
    # NCM small signal about a charged state = linear ladder with R_c (1 - gamma f)
    ncm = circuits.NCM(N, R_OPEN, C_OPEN, C_SLIT, R_C, gamma=0.5)
    Z_ncm = np.asarray(circuits.impedance(ncm, f, charge_fraction=0.6))
    Z_ref = _continued_fraction_impedance(R_OPEN, np.r_[C_OPEN, C_SLIT], R_C * (1 - 0.5 * 0.6), 2 * np.pi * f)
    np.testing.assert_allclose(Z_ncm, Z_ref, rtol=1e-10)
    # many sections: -> sqrt(R/(jwC)) coth(sqrt(jwRC)), second order in 1/n with half end capacitors
    R_tot, C_tot = 2e-7, 200.0
    f = np.logspace(3, 6, 4)
    w = 2 * np.pi * f
    de_levie = np.sqrt(R_tot / (1j * w * C_tot)) / np.tanh(np.sqrt(1j * w * R_tot * C_tot))
    errors = []
    for n in (200, 800):
        c = C_tot / n
        line = circuits.TLM(n, 1e-18, c / 2, np.r_[np.full(n - 1, c), c / 2], R_tot / n)
        errors.append(np.max(np.abs(np.asarray(circuits.impedance(line, f)) / de_levie - 1)))
    assert errors[-1] < 1e-4
    assert errors[0] / errors[1] > 10


def test_impedance_of_tabulated_ncm_at_zero_charge_is_the_first_segment_ladder():
    # from_mpnp builds per-node tables starting at (0 V, 0 C/m^2); the uncharged small-signal
    # capacitance of node k is C_k times the first segment's slope (was 0 -> NaN impedance)
    v = np.array([0.0, 0.05, 0.1, 0.2])
    shape = np.stack([v * (0.6 + 0.1 * k) + 0.4 * v**2 / v[-1] * (1 + 0.1 * k) for k in range(N + 1)])
    shape = shape * v[-1] / shape[:, -1:]
    table = circuits.TabulatedCapacitor(v, shape)
    model = circuits.NCM(N, R_OPEN, C_OPEN, C_SLIT, R_C, gamma=0.5, capacitor=table)
    f = np.logspace(5, 11, 13)
    slope0 = shape[:, 1] / v[1]
    with jaxpnp.float64():
        np.testing.assert_allclose(np.asarray(model.small_signal_capacitances(0.0)),
                                   np.r_[C_OPEN, C_SLIT] * slope0, rtol=1e-12)
    Z = np.asarray(circuits.impedance(model, f, charge_fraction=0.0))
    Z_ref = _continued_fraction_impedance(R_OPEN, np.r_[C_OPEN, C_SLIT] * slope0, R_C, 2 * np.pi * f)
    np.testing.assert_allclose(Z, Z_ref, rtol=1e-10)
    # continuous with a state just inside the first segment, on both sides of 0 V (there the
    # links' gamma-law charge shifts R by ~ gamma * 1e-4)
    for fraction in (1e-4, -1e-4):
        np.testing.assert_allclose(np.asarray(circuits.impedance(model, f, charge_fraction=fraction)), Z, rtol=1e-4)


@pytest.mark.parametrize("method, rtol", [("fixed", 1e-6), pytest.param("adaptive", 3e-3, marks=pytest.mark.slow)])
def test_gradients_through_simulate_match_finite_differences(method, rtol):
    # fixed steps: the discrete map is differentiated exactly. Adaptive: step sizes are
    # not differentiated and the implicit stages are differentiated through their
    # Newton iterations, so the gradient is only as good as a few 1e-4.
    cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=2e8)
    t = np.asarray(cv.sample_times(60))

    def loss(params):
        log_rc, gamma = params
        m = circuits.NCM(N, R_OPEN, C_OPEN, 0.1, jax.numpy.exp(log_rc), gamma)
        i = circuits.solve(m, cv, times=t, method=method, steps=1000, rtol=1e-10, atol=1e-12).current_density
        return jax.numpy.sum((i / 1e8) ** 2) / t.size

    with jaxpnp.float64():
        p0 = jax.numpy.array([np.log(1e-10), 0.5])
        # one compiled program serves the gradient and the finite-difference points
        value_and_grad = jax.jit(jax.value_and_grad(loss))
        grad = np.asarray(value_and_grad(p0)[1])
        fd = []
        for k in range(2):
            e = np.zeros(2)
            e[k] = 1e-4
            fd.append((float(value_and_grad(p0 + e)[0]) - float(value_and_grad(p0 - e)[0])) / 2e-4)
    np.testing.assert_allclose(grad, fd, rtol=rtol)


@pytest.mark.parametrize("method", ["fixed", pytest.param("adaptive", marks=pytest.mark.slow)])
def test_fit_recovers_parameters_from_noisy_cv(method):
    true = circuits.NCM(6, R_open=2e-10, C_open=0.05, C_slit=0.1, R_c=1e-9, gamma=0.4)
    cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=1e8)
    ds = circuits.simulate(true, cv, points_per_cycle=200)
    rng = np.random.default_rng(1)
    noisy = ds.copy()
    sigma = 0.01 * float(np.abs(ds.current_density).max())
    noisy["current_density"] = ds.current_density + sigma * rng.standard_normal(ds.sizes["time"])
    noisy.attrs = {}  # force the protocol to be inferred from the waveform
    start = dataclasses.replace(true, R_c=2e-9, gamma=0.8)
    res = circuits.fit(start, noisy, params=("R_c", "gamma"), steps=30, progress=False, method=method)
    assert abs(res.params["R_c"] / 1e-9 - 1) < 0.02
    assert abs(res.params["gamma"] / 0.4 - 1) < 0.02
    assert res.loss_history[-1] < res.loss_history[0]
    # Gauss-Newton errors are finite, positive and of the size of the actual error scale
    for name in ("R_c", "gamma"):
        assert 0 < res.stderr[name] < 0.05 * res.params[name]
    assert float(res.model.gamma) == pytest.approx(res.params["gamma"])
    assert isinstance(res.protocol, jaxpnp.CV) and res.protocol.scan_rate_V_s == pytest.approx(1e8, rel=1e-6)


def test_vmap_over_parameters_and_peak_map():
    m = circuits.NCM(N, R_OPEN, C_OPEN, 0.1, 1e-10, gamma=0.5)
    cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=2e8)
    pm = circuits.peak_map(m, cv, [0.0, 0.5, 1.0], [5e-11, 2e-10], points_per_cycle=100, method="fixed", steps=2000)
    assert pm.peak_current.shape == (3, 2)
    # each entry agrees with a direct simulation
    direct = circuits.simulate(dataclasses.replace(m, gamma=1.0, R_c=2e-10), cv, points_per_cycle=100,
                               method="fixed", steps=2000)
    rising = direct.time.values <= cv.half_period * (1 + 1e-12)
    assert float(pm.peak_current[2, 1]) == pytest.approx(direct.current_density.values[rising].max(), rel=1e-6)
    # at gamma = 0 a larger R_c lowers the charging current; a larger gamma raises it
    assert pm.peak_current.values[0, 1] < pm.peak_current.values[0, 0]
    assert np.all(np.diff(pm.peak_current.values, axis=0) > 0)


def test_circuits_cr_solve_matches_dense_solve():
    from circuits import _fast

    rng = np.random.default_rng(3)
    for n in (1, 6, 21):
        lo, up = rng.uniform(-1, 1, (2, n, 4))
        di = 3.0 + rng.uniform(0, 1, (n, 4))
        r = rng.normal(size=(n, 4))
        with jaxpnp.float64():
            x = np.asarray(_fast.cr_solve(_fast.cr_factor(*map(jax.numpy.asarray, (lo, di, up))), jax.numpy.asarray(r)))
        for b in range(4):
            A = np.diag(di[:, b]) + np.diag(lo[1:, b], -1) + np.diag(up[:-1, b], 1)
            np.testing.assert_allclose(x[:, b], np.linalg.solve(A, r[:, b]), rtol=1e-12, atol=1e-12)


_LAW = circuits.ResistanceLaw(lambda Q, qmax, Rc, p: Rc * (1 - p * Q / qmax), np.asarray(0.5))


@pytest.mark.parametrize("case", ["ncm", "node", "law", "galvanostatic", "bikerman"])
def test_vmapped_fast_path_matches_single_curves(case):
    # jax.vmap over the model takes the batch-last cyclic-reduction path (custom_vmap);
    # it must reproduce the single-curve (gtsv) fast solver, and stay near the adaptive one
    protocol = dataclasses.replace(CV, cycles=1) if case != "galvanostatic" else jaxpnp.Galvanostatic(current_density_A_m2=1e7, charge_time_s=2e-9)
    gammas = np.array([0.0, 0.45, 0.9])
    rcs = R_C[None, :] * np.array([[0.7], [1.0], [1.6]])  # per-link R_c, batched: shape (3, N)

    def model(r_c, gamma):
        if case == "law":
            return circuits.NCM(N, R_OPEN, C_OPEN, C_SLIT, r_c, law=circuits.ResistanceLaw(_LAW.fn, gamma))
        if case == "bikerman":  # a nonlinear capacitor on the batch-last kernel
            return circuits.NCM(N, R_OPEN, C_OPEN, C_SLIT, r_c, gamma, capacitor=circuits.BikermanCapacitor())
        return circuits.NCM(N, R_OPEN, C_OPEN, C_SLIT, r_c, gamma, charge="node" if case == "node" else "link")

    def curve(r_c, gamma, **kw):
        return circuits.solve(model(r_c, gamma), protocol, points_per_cycle=40, method="fast", **kw).current_density

    with jaxpnp.float64():
        args = (jax.numpy.asarray(rcs), jax.numpy.asarray(gammas))
        batched = np.asarray(jax.jit(jax.vmap(curve))(*args))
        single = np.stack([np.asarray(curve(r, g)) for r, g in zip(*args)])
    scale = np.max(np.abs(single))
    assert np.max(np.abs(batched - single)) < 1e-10 * scale
    if case == "ncm":
        with jaxpnp.float64():
            f32 = np.asarray(jax.jit(jax.vmap(lambda r, g: curve(r, g, batch_dtype="float32", batch_chunk=2)))(*args))
        assert np.max(np.abs(f32 - single)) < 1e-3 * scale  # float32 state: ~1e-4 class
        ref = circuits.solve(model(rcs[2], gammas[2]), protocol, points_per_cycle=40, rtol=1e-10, atol=1e-12)
        assert np.max(np.abs(batched[2] - np.asarray(ref.current_density))) < 3e-3 * scale


def test_passed_q_max_is_a_fixed_point():
    # Q_i^max = the charge link i passes on the charging sweep, checked with an independent simulate
    cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=2e8)
    m = circuits.NCM(N, R_OPEN, C_OPEN, C_SLIT, R_C, gamma=0.4)
    opts = dict(points_per_cycle=60, method="fixed", steps=1000)
    qm, residual = circuits.passed_q_max(m, cv, iterations=8, **opts)
    assert residual < 1e-3
    window = np.asarray(m.default_q_max(0.5))
    assert np.all(qm < window)  # a rate-limited sweep passes less than the whole window charge
    ds = circuits.simulate(dataclasses.replace(m, q_max=qm), cv, **opts)
    rising = ds.time.values <= cv.half_period * (1 + 1e-12)
    passed = ds.link_charge.values[rising].max(axis=0)
    np.testing.assert_allclose(passed, qm, rtol=2e-3)


def test_tlm_has_no_cv_asymmetry_but_ncm_does():
    tlm = circuits.TLM(4, R_OPEN, C_OPEN, 0.1, 2e-10)
    ncm = circuits.NCM(4, R_OPEN, C_OPEN, 0.1, 2e-10, gamma=0.8)
    opts = dict(points_per_cycle=200, method="fixed", steps=6000)
    a_tlm = circuits.cv_asymmetry(tlm, [2, 4], [1e8, 4e8], **opts)
    a_ncm = circuits.cv_asymmetry(ncm, [2, 4], [1e8, 4e8], **opts)
    assert float(a_tlm.asymmetry.max()) < 1e-3
    assert float(a_ncm.asymmetry.min()) > 10 * float(a_tlm.asymmetry.max())
    # thicker electrodes are more asymmetric (Fig. S12)
    assert np.all(a_ncm.asymmetry.values[1] > a_ncm.asymmetry.values[0])


def test_pluggable_law_equals_builtin():
    gamma = 0.7
    law = circuits.ResistanceLaw(lambda Q, qmax, Rc, p: Rc * (1 - p["g"] * Q / qmax), {"g": np.asarray(gamma)})
    a = circuits.NCM(N, R_OPEN, C_OPEN, C_SLIT, R_C, gamma=gamma)
    b = circuits.NCM(N, R_OPEN, C_OPEN, C_SLIT, R_C, law=law)
    ohmic = circuits.ResistanceLaw.from_ohmic(lambda I, Q, p: I * 1e-10 * (1 - p * Q / 0.5), gamma)
    c = circuits.NCM(N, R_OPEN, C_OPEN, C_SLIT, 1e-10, q_max=0.5, law=tuple([ohmic] * N))
    d = circuits.NCM(N, R_OPEN, C_OPEN, C_SLIT, 1e-10, gamma=gamma, q_max=0.5)
    # the same fixed-step discretisation for both: equal to rounding
    opts = dict(points_per_cycle=50, method="fixed", steps=1000)
    ia = circuits.solve(a, CV, **opts).current_density
    ib = circuits.solve(b, CV, **opts).current_density
    np.testing.assert_allclose(ib, ia, rtol=1e-9, atol=1e-9 * float(np.max(np.abs(ia))))
    ic = circuits.solve(c, CV, **opts).current_density
    idd = circuits.solve(d, CV, **opts).current_density
    np.testing.assert_allclose(ic, idd, rtol=1e-9, atol=1e-9 * float(np.max(np.abs(idd))))
    # trainable constants of a law: gradient flows into params
    with jaxpnp.float64():
        g = jax.grad(lambda p: circuits.solve(
            dataclasses.replace(b, law=circuits.ResistanceLaw(law.fn, p)), CV, **opts
        ).current_density.sum() / 1e8)({"g": jax.numpy.asarray(gamma)})
    assert np.isfinite(float(g["g"])) and float(g["g"]) != 0.0


@pytest.mark.parametrize("method", ["fixed", pytest.param("adaptive", marks=pytest.mark.slow)])
def test_stiff_ladder_many_slits_small_resistance(method):
    # stiffness ratio ~ 4 n^2 = 1.6e5, fastest time 1e-14 s over a 2e-8 s CV
    model = circuits.NCM(200, R_open=1e-12, C_open=0.05, C_slit=0.1, R_c=1e-13, gamma=0.5)
    ds = circuits.simulate(model, jaxpnp.CV(v_max=1.0, scan_rate_V_s=1e8), points_per_cycle=50, method=method)
    assert np.all(np.isfinite(ds.current_density.values))
    # fast ladder (n^2 R C = 4e-9 s << 1e-8 s): nearly the ideal capacitor current C_total * dphi/dt
    c_total = 0.05 + 200 * 0.1
    assert ds.current_density.values[20] == pytest.approx(c_total * 0.5e8, rel=0.05)


def test_plot_helpers_headless():
    m = circuits.NCM(N, R_OPEN, C_OPEN, C_SLIT, R_C, gamma=0.5)
    ds = circuits.simulate(m, CV, points_per_cycle=40, method="fixed", steps=500)
    ax = circuits.plot.cv([ds, ds], labels=["a", "b"], styles=["-", "--"])
    assert len(ax.lines) == 2
    ax = circuits.plot.slit_charge(ds)
    assert ax.get_ylabel().startswith("node")
    pm = circuits.peak_map(m, jaxpnp.CV(scan_rate_V_s=2e8), [0.0, 0.5], [1e-10, 2e-10], points_per_cycle=20,
                           method="fixed", steps=500)
    circuits.plot.peak_map(pm)
    matplotlib.pyplot.close("all")


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_slits=0), "n_slits"),
    (dict(R_open=0.0), "R_open"),
    (dict(C_open=-1.0), "C_open"),
    (dict(C_slit=np.array([0.1, -0.1, 0.1])), "C_slit"),
    (dict(R_c=float("nan")), "R_c"),
    (dict(R_c=np.ones(4)), "shape"),
    (dict(gamma=1.5), "gamma"),
    (dict(gamma=-0.1), "gamma"),
    (dict(q_max=0.0), "q_max"),
    (dict(C_slit=float("inf")), "C_slit"),
])
def test_bad_inputs_raise(kwargs, match):
    args = dict(n_slits=3, R_open=1e-10, C_open=0.05, C_slit=0.1, R_c=1e-10, gamma=0.5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        circuits.NCM(**args)


@pytest.mark.parametrize("kwargs, match", [
    (dict(R_c="1e-10"), "NCM.R_c must be a real number"),
    (dict(gamma=True), "NCM.gamma must be a real number"),
    (dict(C_slit=["0.1", "0.1", "0.1"]), "NCM.C_slit must be a real number"),
])
def test_wrong_types_name_the_argument(kwargs, match):
    args = dict(n_slits=3, R_open=1e-10, C_open=0.05, C_slit=0.1, R_c=1e-10, gamma=0.5)
    args.update(kwargs)
    with pytest.raises(jaxpnp.ParameterTypeError, match=match):
        circuits.NCM(**args)
    with pytest.raises(TypeError):  # a TypeError as well as a ValueError
        circuits.NCM(**args)


def test_bad_inputs_other():
    with pytest.raises(ValueError):
        circuits.TLM(2, 1e-10, 0.05, 0.1, -1e-10)
    with pytest.raises(ValueError):
        circuits.TLM(2.5, 1e-10, 0.05, 0.1, 1e-10)
    circuits.NCM(3, 1e-10, 0.05, 0.1, 1e-10, gamma=1.5, allow_gamma_outside_unit=True)
    with pytest.raises(ValueError):
        circuits.NCM(3, 1e-10, 0.05, 0.1, 1e-10, gamma=float("nan"), allow_gamma_outside_unit=True)
    m = circuits.TLM(2, 1e-10, 0.05, 0.1, 1e-10)
    with pytest.raises(ValueError):
        circuits.impedance(m, [0.0, 1e6])
    with pytest.raises(ValueError):
        circuits.simulate(m, CV, method="euler")
    # tracers inside grad pass the checks unchanged
    with jaxpnp.float64():
        g = jax.grad(lambda r: circuits.solve(circuits.TLM(2, r, 0.05, 0.1, 1e-10), CV, points_per_cycle=10,
                                              method="fixed", steps=200).current_density[3] / 1e8)(1e-10)
    assert np.isfinite(float(g))


# ---------------------------------------------------------------------------
# nonlinear (Bikerman) double-layer capacitors


def test_bikerman_capacitor_is_the_analytic_bikerman_double_layer():
    el = jaxpnp.Electrolyte(ion_diameter_nm=0.66)
    with jaxpnp.float64():
        c_debye = el.relative_permittivity * 8.8541878128e-12 / el.debye_length_m  # eps / lambda_D
        cap = circuits.BikermanCapacitor(packing=el.packing_parameter, thermal_voltage_V=el.thermal_voltage_V)
        v = np.linspace(-0.8, 0.8, 41)
        q = np.asarray(cap.charge(jax.numpy.asarray(v), c_debye))
        np.testing.assert_allclose(q, el.bikerman_charge_C_m2(v), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(np.asarray(cap.voltage(jax.numpy.asarray(q), c_debye)), v, atol=1e-12)
        # differential capacitance: C at zero charge, falling as the layer crowds
        dq = jax.vmap(jax.grad(lambda x: cap.charge(x, c_debye)))(jax.numpy.asarray([0.0, 0.1, 0.5]))
        assert abs(float(dq[0]) / c_debye - 1.0) < 1e-12
        assert float(dq[2]) < float(dq[1]) < float(dq[0])


def test_bikerman_ladder_follows_the_quasi_static_capacitance_when_swept_slowly():
    cap = circuits.BikermanCapacitor(packing=0.35, thermal_voltage_V=0.0257)
    model = circuits.NCM(N, R_OPEN, C_OPEN, C_SLIT, R_C, 0.5, capacitor=cap)
    rate = 1e5  # V/s of cell voltage: every RC time (~1e-10 s) is far shorter than the sweep
    cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=rate)
    ds = circuits.simulate(model, cv, method="adaptive")
    t, current = ds.time.values, ds.current_density.values
    phi = ds.cell_voltage.values / 2
    with jaxpnp.float64():
        c_total = float(model.total_capacitance())
        dqdv = np.asarray(jax.vmap(jax.grad(lambda x: cap.charge(x, c_total)))(jax.numpy.asarray(phi)))
    expected = dqdv * np.where(t <= cv.half_period, 0.5 * rate, -0.5 * rate)
    # away from the protocol's knots (start, vertex, end), where the current is one-sided
    inner = ((np.abs(t - cv.half_period) > 0.05 * cv.half_period) & (t > 0.05 * cv.half_period)
             & (t < cv.duration - 0.05 * cv.half_period))
    assert np.max(np.abs(current[inner] - expected[inner])) < 1e-3 * np.max(np.abs(expected))
    # and the electrode charge is the Bikerman charge of the whole electrode at phi_m
    with jaxpnp.float64():
        q_eq = np.asarray(cap.charge(jax.numpy.asarray(phi), c_total))
    assert np.max(np.abs(ds.electrode_charge.values - q_eq)) < 1e-3 * np.max(q_eq)


def test_linear_capacitor_is_the_default_and_fast_path_follows_a_bikerman_ladder():
    base = circuits.NCM(N, R_OPEN, C_OPEN, C_SLIT, R_C, 0.5)
    same = circuits.NCM(N, R_OPEN, C_OPEN, C_SLIT, R_C, 0.5, capacitor=circuits.LinearCapacitor())
    cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=1e8)
    a = circuits.simulate(base, cv, method="fast").current_density.values
    b = circuits.simulate(same, cv, method="fast").current_density.values
    np.testing.assert_array_equal(a, b)
    bik = circuits.NCM(N, R_OPEN, C_OPEN, C_SLIT, R_C, 0.5, capacitor=circuits.BikermanCapacitor())
    ref = circuits.simulate(bik, cv, method="adaptive").current_density.values
    with pytest.warns(UserWarning, match="nonlinear capacitor"):
        fast = circuits.simulate(bik, cv, method="fast").current_density.values
    assert np.max(np.abs(fast - ref)) < 3e-3 * np.max(np.abs(ref))
    # the crowded layer stores less charge than the linear one at 0.5 V: smaller current
    assert np.max(ref) < np.max(a)


def test_bad_capacitor_is_refused():
    with pytest.raises(ValueError, match="capacitor"):
        circuits.NCM(N, R_OPEN, C_OPEN, C_SLIT, R_C, 0.5, capacitor="bikerman")
    with pytest.raises(ValueError, match="packing"):
        circuits.BikermanCapacitor(packing=1.5)
    with pytest.raises(ValueError, match="thermal_voltage_V"):
        circuits.BikermanCapacitor(thermal_voltage_V=-0.02)


def test_tabulated_capacitor_reproduces_the_law_it_tabulates():
    bik = circuits.BikermanCapacitor(packing=0.35, thermal_voltage_V=0.0257)
    with jaxpnp.float64():
        v = np.linspace(0.0, 0.5, 401)
        shape = np.asarray(bik.charge(jax.numpy.asarray(v), 1.0))
        tab = circuits.TabulatedCapacitor(v, np.stack([shape] * (N + 1)))
        x = jax.numpy.linspace(-0.5, 0.5, 21)
        C = jax.numpy.asarray(np.r_[C_OPEN, C_SLIT])
        q_tab = np.asarray(jax.vmap(lambda xx: tab.charge(jax.numpy.full(N + 1, xx), C))(x))
        q_bik = np.asarray(jax.vmap(lambda xx: bik.charge(jax.numpy.full(N + 1, xx), C))(x))
        assert np.max(np.abs(q_tab - q_bik)) < 1e-3 * np.max(np.abs(q_bik))  # piecewise-linear table error
        back = np.asarray(jax.vmap(lambda q: tab.voltage(q, C))(jax.numpy.asarray(q_tab)))
        np.testing.assert_allclose(back, np.repeat(np.asarray(x)[:, None], N + 1, axis=1), atol=1e-12)
    # the same ladder with the table and with the law it tabulates
    cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=1e8)
    a = circuits.simulate(circuits.NCM(N, R_OPEN, C_OPEN, C_SLIT, R_C, 0.5, capacitor=bik), cv).current_density.values
    b = circuits.simulate(circuits.NCM(N, R_OPEN, C_OPEN, C_SLIT, R_C, 0.5, capacitor=tab), cv).current_density.values
    assert np.max(np.abs(a - b)) < 2e-3 * np.max(np.abs(a))
    with pytest.raises(ValueError, match="increasing"):
        circuits.TabulatedCapacitor([0.0, 0.2, 0.1], [0.0, 0.1, 0.2])
    with pytest.raises(ValueError, match="zero"):
        circuits.TabulatedCapacitor([0.1, 0.2], [0.0, 0.1])


# ---------------------------------------------------------------------------
# open-space law: R_open (1 - gamma_open Q_e / Q_e^max)


def test_open_space_law_matches_an_independent_node_charge_integration():
    """The NCM with a charge-dependent R_open against scipy on the node-charge ODE."""
    from scipy.integrate import solve_ivp

    gamma, gamma_open, q_open = 0.4, -3.0, 0.2
    model = circuits.NCM(N, R_OPEN, C_OPEN, C_SLIT, R_C, gamma=gamma, q_max=0.1, gamma_open=gamma_open,
                         q_max_open=q_open)
    cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=2e8, cycles=1)
    ds = circuits.simulate(model, cv, points_per_cycle=100, rtol=1e-10, atol=1e-12)
    C = np.concatenate([[C_OPEN], C_SLIT])
    phi = lambda t: 0.5 * (1 - abs(2 * (t / cv.period % 1.0) - 1))  # noqa: E731

    def rhs(t, y):  # y = [Q_e, node charges q_0..q_N]
        q = y[1:]
        u = q / C
        passed = np.cumsum(q[::-1])[::-1][1:]  # charge beyond link i
        R = R_C * np.maximum(1 - gamma * passed / 0.1, 1e-3)
        J = (u[:-1] - u[1:]) / R
        I = (phi(t) - u[0]) / (R_OPEN * (1 - gamma_open * y[0] / q_open))
        dq = np.concatenate([[I], np.zeros(N)]) - np.concatenate([J, [0.0]]) + np.concatenate([[0.0], J])
        return np.concatenate([[I], dq])

    t = ds.time.values
    sol = solve_ivp(rhs, (0, t[-1]), np.zeros(N + 2), t_eval=t, method="Radau", rtol=1e-10, atol=1e-14,
                    max_step=cv.half_period / 4)
    ref = np.array([rhs(s, y)[0] for s, y in zip(sol.t, sol.y.T)])
    assert np.max(np.abs(ds.current_density.values - ref)) < 1e-5 * np.max(np.abs(ref))
    # the rising open-space resistance lowers the current against the ohmic ladder
    ohmic = circuits.simulate(dataclasses.replace(model, gamma_open=0.0), cv, points_per_cycle=100)
    assert np.max(ds.current_density.values) < 0.95 * np.max(ohmic.current_density.values)


def test_open_space_law_input_checks():
    args = (3, 1e-10, 0.05, 0.1, 1e-10)
    with pytest.raises(ValueError, match="gamma_open"):
        circuits.NCM(*args, gamma=0.5, gamma_open=1.5)
    with pytest.raises(ValueError, match="q_max_open"):
        circuits.NCM(*args, gamma=0.5, gamma_open=-1.0, q_max_open=-0.1)


def test_open_space_law_on_every_solver_path():
    # the one ladder kernel serves every path: fast, fixed and batched follow the adaptive reference
    model = circuits.NCM(N, R_OPEN, C_OPEN, C_SLIT, R_C, gamma=0.4, gamma_open=-3.0, q_max_open=0.2)
    cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=2e8, cycles=1)
    ref = circuits.solve(model, cv, points_per_cycle=60, rtol=1e-10, atol=1e-12).current_density
    scale = float(np.max(np.abs(ref)))
    ohmic = circuits.solve(dataclasses.replace(model, gamma_open=0.0), cv, points_per_cycle=60).current_density
    assert np.max(np.abs(np.asarray(ohmic) - np.asarray(ref))) > 0.05 * scale  # the law matters here
    for method, kw in (("fast", {}), ("fixed", dict(steps=4000))):
        got = circuits.solve(model, cv, points_per_cycle=60, method=method, **kw).current_density
        assert np.max(np.abs(np.asarray(got) - np.asarray(ref))) < 3e-3 * scale, method
    with jaxpnp.float64():
        go = jax.numpy.asarray([-3.0, -1.0])
        batched = jax.jit(jax.vmap(lambda g: circuits.solve(dataclasses.replace(model, gamma_open=g), cv,
                                                             points_per_cycle=60, method="fast").current_density))(go)
    single = circuits.solve(model, cv, points_per_cycle=60, method="fast").current_density
    assert np.max(np.abs(np.asarray(batched[0]) - np.asarray(single))) < 1e-10 * scale


@pytest.mark.parametrize("build, match", [
    (lambda: circuits.TabulatedCapacitor("ab", [0.0, 1.0]), "TabulatedCapacitor.voltage_V must be a real number"),
    (lambda: circuits.TabulatedCapacitor([0.0, 1.0], [0.0, "1"]), "TabulatedCapacitor.shape_V must be a real number"),
    (lambda: circuits.IonContentLinks("a", [1.0]), "IonContentLinks.R_c must be a real number"),
    (lambda: circuits.IonContentLinks(1e-9, [1.0, 1.0], gamma="0.5"), "IonContentLinks.gamma must be a real number"),
])
def test_wrong_types_in_circuit_building_blocks_name_the_argument(build, match):
    with pytest.raises(jaxpnp.ParameterTypeError, match=match):
        build()
