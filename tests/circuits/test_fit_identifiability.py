"""circuits.fit on the discovered laws' own terms (scaled_laws), joint fits to two rates, and the
identifiability numbers it reports, on synthetic CVs from an NCM with known per-link laws."""

import dataclasses

import numpy as np
import pytest

import circuits
import jaxpnp

R_C = np.array([0.6e-9, 1.0e-9, 1.2e-9])
GAMMA = np.array([0.2, 0.5, 0.3])
RATES = (1e8, 3e8)  # V/s: half-periods ~ 30x and 10x the ladder's RC time
KW = dict(method="fixed")


@pytest.fixture(scope="module")
def synthetic():
    true = circuits.NCM(3, R_open=2e-10, C_open=0.05, C_slit=0.1, R_c=R_C, gamma=GAMMA, charge="nodes")
    with jaxpnp.float64():
        data = [circuits.simulate(true, jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=r), points_per_cycle=120, **KW)
                for r in RATES]
    return true, data


def test_joint_fit_of_the_law_scales_from_a_neutral_start_recovers_them(synthetic):
    true, data = synthetic
    start = circuits.scaled_laws(true, scale=2.0, gamma_scale=0.0)  # twice the resistance, no gamma
    with jaxpnp.float64():
        res = circuits.fit(start, data, circuits.SCALED_LAW_PARAMS, steps=0, polish_steps=30, progress=False, **KW)
    assert res.params["law.scale"] == pytest.approx(1.0, abs=1e-3)
    assert res.params["law.gamma_scale"] == pytest.approx(1.0, abs=1e-2)
    assert res.nrmse.shape == (2,) and np.all(res.nrmse < 1e-4)
    assert isinstance(res.protocol, tuple) and len(res.protocol) == 2
    # the fitted model is the true one: same current on a third rate
    cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=2e8)
    with jaxpnp.float64():
        a = circuits.simulate(res.model, cv, points_per_cycle=60, **KW)["current_density"]
        b = circuits.simulate(true, cv, points_per_cycle=60, **KW)["current_density"]
    assert jaxpnp.nrmse(a, b) < 1e-3


def test_identifiability_matches_finite_differences_and_points_to_the_truth(synthetic):
    true, data = synthetic
    rng = np.random.default_rng(0)
    noisy = []
    for d in data:  # 1% noise, so that the Gauss-Newton errors are not zero
        d = d.copy()
        sigma = 0.01 * float(np.sqrt(np.mean(d["current_density"].values ** 2)))
        d["current_density"] = d["current_density"] + sigma * rng.standard_normal(d.sizes["time"])
        noisy.append(d)
    at = circuits.scaled_laws(true, scale=1.05, gamma_scale=0.9)
    with jaxpnp.float64():
        idf = circuits.identifiability(at, noisy, circuits.SCALED_LAW_PARAMS, **KW)
    assert idf.names == circuits.SCALED_LAW_PARAMS

    # an independent Jacobian of the same residual by central differences through circuits.solve
    def residual(s, g):
        model = dataclasses.replace(at, law=dataclasses.replace(at.law, scale=s, gamma_scale=g))
        out = []
        for d in noisy:
            y = d["current_density"].values
            with jaxpnp.float64():
                i = np.asarray(circuits.solve(model, circuits.infer_protocol(d), times=d["time"].values,
                                              **KW).current_density)
            out.append((i - y) / np.sqrt(np.mean(y ** 2)) / np.sqrt(y.size * len(noisy)))
        return np.concatenate(out)

    r0 = residual(1.05, 0.9)
    h = 1e-5
    J = np.stack([(residual(1.05 + h, 0.9) - residual(1.05 - h, 0.9)) / (2 * h),
                  (residual(1.05, 0.9 + h) - residual(1.05, 0.9 - h)) / (2 * h)], axis=1)
    assert idf.nrmse_total == pytest.approx(np.linalg.norm(r0), rel=1e-9)
    cov = np.sum(r0 ** 2) / (r0.size - 2) * np.linalg.inv(J.T @ J)
    np.testing.assert_allclose(idf.stderr, np.sqrt(np.diag(cov)), rtol=1e-3)
    np.testing.assert_allclose(idf.correlation[0, 1], cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1]), rtol=1e-3)
    np.testing.assert_allclose(idf.current_change, 0.1 * np.array([1.05, 0.9]) * np.linalg.norm(J, axis=0), rtol=1e-4)
    # the linearised least-squares step from (1.05, 0.9) lands near the truth (1, 1)
    np.testing.assert_allclose(idf.values + idf.gauss_newton_step, [1.0, 1.0], atol=0.02)
    # the exact NRMSE at +-10% brackets the point's own misfit from above on the far side of the truth
    assert idf.nrmse_step[0, 1] > idf.nrmse_total and idf.nrmse_step[1, 0] > idf.nrmse_total


def test_fit_options_are_checked_before_compute(synthetic):
    true, data = synthetic
    with pytest.raises(ValueError, match="one protocol per dataset"):
        circuits.fit(true, data, protocol=[jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=1e8)], progress=False)
    with pytest.raises(ValueError, match="weights"):
        circuits.fit(true, data, weights=[1.0, -1.0], progress=False)
    with pytest.raises(ValueError, match="transforms"):
        circuits.fit(true, data[0], transforms={"gamma": "sqrt"}, progress=False)
    with pytest.raises(ValueError, match="not fitted"):
        circuits.fit(true, data[0], transforms={"C_open": "log"}, progress=False)
    with pytest.raises(ValueError, match="logit"):  # a logit gamma started at 0 could never move
        circuits.fit(dataclasses.replace(true, gamma=0.0), data[0], progress=False)
    with pytest.raises(ValueError, match="built-in law"):
        circuits.scaled_laws(circuits.scaled_laws(true))
    with pytest.raises(ValueError, match="link indices"):
        circuits.scaled_laws(true, links=[3])
