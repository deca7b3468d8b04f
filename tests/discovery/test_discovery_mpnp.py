"""Issue #4: on a small mPNP run from jaxpnp.simulate the discovery pipeline runs end to end
and returns a law with its accuracy."""

import math

import numpy as np
import pytest

import discovery
import jaxpnp


@pytest.fixture(scope="module")
def mpnp_run(small_electrode):
    el = jaxpnp.Electrolyte()
    cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=1.0 / (2000 * el.debye_time_s))
    return jaxpnp.simulate(el, small_electrode, cv, grid_nm=0.3, points_per_cycle=100, progress=False)


@pytest.mark.parametrize("engine, options", [("sparse", {}),
                                             ("operon", dict(population_size=100, generations=20))])
def test_law_with_accuracy_from_mpnp(mpnp_run, engine, options):
    result = discovery.trans_slit_law(mpnp_run, engine=engine, slits="all", seed=0, **options)
    laws = result.all_links()
    assert set(laws) == {0, 1}
    inner = result.links[1]
    assert inner.law.expression is not None
    assert math.isfinite(inner.r2) and inner.r2 > 0.99  # accuracy of a = F(q) on the integrals
    assert math.isfinite(inner.differential_r2)
    assert inner.form in ("quadratic", "linear", "other")
    r = np.asarray(result.resistance.sel(link=1))
    charging = np.asarray(result.resistance["charging"])
    assert np.all(np.isfinite(r[charging])) and np.all(r[charging] > 0)
    assert "link 1" in result.summary()


def test_sweep_table_from_mpnp(mpnp_run):
    table = discovery.sweep([mpnp_run], engine="sparse")
    assert float(table["slit_nm"][0]) == pytest.approx(1.5)
    assert np.isfinite(float(table["R_max_mean"][0]))
