"""Issue #4: on a small mPNP run from jaxpnp.simulate the discovery pipeline runs end to end
and returns a law with its accuracy."""

import math

import numpy as np
import pytest

import discovery
import jaxpnp

# what each engine's law reaches on this run (0.9992 both at commit time), less a margin
DIFFERENTIAL_R2 = {"sparse": 0.99, "operon": 0.99}


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
    # the law, differentiated, predicts the link's voltage from its current on the charging half
    assert inner.differential_r2 > DIFFERENTIAL_R2[engine]
    # its paper-form projection is a positive resistance that describes the integrals well
    R_c, gamma, r2 = discovery.paper_form_projection(result.prepared, 1)
    assert R_c > 0 and r2 > 0.99  # 0.9967 at commit time
    r = np.asarray(result.resistance.sel(link=1))
    charging = np.asarray(result.resistance["charging"])
    assert np.all(np.isfinite(r[charging])) and np.all(r[charging] > 0)
    assert "link 1" in result.summary()


def test_sweep_table_from_mpnp(mpnp_run):
    table = discovery.sweep([mpnp_run], engine="sparse")
    # the table's inner-link mean is the law's own R(t) extreme on the inner link (one here)
    law = discovery.trans_slit_law(mpnp_run, engine="sparse", seed=0)
    assert float(table["R_max_mean"][0]) == pytest.approx(float(law.R_max.sel(link=1)), rel=1e-9)
    assert float(table["R_max_mean"][0]) > float(table["R_min_mean"][0]) > 0
