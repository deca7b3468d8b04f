"""The reproduce fit route's joint path (``steps.fit_laws``): the reproduce-rate run and a 5x slower
one fitted together, link 0 held, on synthetic CVs from an NCM with known per-link laws."""

import numpy as np
import pytest

import circuits
import jaxpnp
from jaxpnp.reproduce import Regime, ReproduceConfig, steps

R_C = np.array([0.6e-9, 1.0e-9, 1.2e-9])
GAMMA = np.array([0.2, 0.5, 0.3])
RATE = 1e8  # V/s: half-period ~30x the ladder's RC time; the slower run 150x
TRUE_SCALE, TRUE_GAMMA_SCALE = 1.2, 0.6  # the inner links' laws behind the data
KW = dict(method="fixed")


@pytest.fixture(scope="module")
def synthetic():
    extracted = circuits.NCM(3, R_open=2e-10, C_open=0.05, C_slit=0.1, R_c=R_C, gamma=GAMMA, charge="nodes")
    # the "mPNP": the extracted ladder with its inner links (1, 2) scaled, link 0 as extracted
    truth = circuits.scaled_laws(extracted, scale=TRUE_SCALE, gamma_scale=TRUE_GAMMA_SCALE, links=[1, 2])
    prots = {1.0: jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=RATE),
             5.0: jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=RATE / 5)}
    with jaxpnp.float64():
        runs = {k: circuits.simulate(truth, p, points_per_cycle=120, **KW) for k, p in prots.items()}
    return extracted, runs, prots


def test_joint_fit_holding_link_0_recovers_the_inner_law_factors(synthetic):
    extracted, runs, prots = synthetic
    fit = steps.fit_laws(extracted, runs, prots, start_R_c=2.0 * float(np.mean(R_C[1:])), links="inner",
                         polish_steps=30, **KW)
    assert fit.data == [1.0, 5.0] and fit.links == "inner" and fit.route == "law_scale_inner"
    assert fit.scale == pytest.approx(TRUE_SCALE, abs=2e-3)
    assert fit.gamma_scale == pytest.approx(TRUE_GAMMA_SCALE, abs=1e-2)
    # reported against the inner-link means of the extracted laws
    assert fit.R_c == pytest.approx(fit.scale * np.mean(R_C[1:]), rel=1e-12)
    assert fit.gamma == pytest.approx(fit.gamma_scale * np.mean(GAMMA[1:]), rel=1e-12)
    assert set(fit.nrmse_per_run) == {"1", "5"} and max(fit.nrmse_per_run.values()) < 1e-3
    assert fit.nrmse == fit.nrmse_per_run["1"]
    # the discovered values (1, 1) miss both runs; each run alone is judged too
    assert fit.nrmse_discovered > 10 * max(fit.nrmse_per_run.values())
    assert set(fit.identifiability["discovered_per_run"]) == {"1", "5"}


def test_joint_fit_inputs_are_checked_before_compute(synthetic):
    extracted, runs, prots = synthetic
    with pytest.raises(ValueError, match="same slow-down factors"):
        steps.fit_laws(extracted, runs, {1.0: prots[1.0]}, start_R_c=1e-9)
    with pytest.raises(ValueError, match="links"):
        steps.fit_laws(extracted, runs, prots, start_R_c=1e-9, links="outer")
    with pytest.raises(ValueError, match="start_R_c"):
        steps.fit_laws(extracted, runs, prots, start_R_c=0.0)
    with pytest.raises(ValueError, match="slower_scans"):
        Regime("slow", 0.2, slower_scans=(0.2,))  # a factor below 1 would be a faster run
    with pytest.raises(ValueError, match="fit_links"):
        ReproduceConfig(fit_links="outer")
