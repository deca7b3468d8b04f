import numpy as np
import pytest

import jaxpnp


def test_cv_waveform_vertices_and_jump_times():
    cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=2.0, cycles=2)
    assert cv.half_period == pytest.approx(0.5)
    np.testing.assert_allclose(cv.jump_times, [0.5, 1.0, 1.5])
    t = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 1.25])
    np.testing.assert_allclose(np.asarray(cv.cell_voltage(t)), [0, 0.5, 1, 0.5, 0, 0.5], atol=1e-12)
    np.testing.assert_allclose(np.asarray(cv.electrode_potential(t)), [0, 0.25, 0.5, 0.25, 0, 0.25], atol=1e-12)
    assert list(np.asarray(cv.charging(np.array([0.1, 0.6])))) == [True, False]


@pytest.mark.parametrize("kwargs", [dict(scan_rate_V_s=0.0), dict(scan_rate_V_s=-1.0),
                                    dict(v_min=1.0, v_max=0.5), dict(cycles=0),
                                    dict(v_max=float("nan"))])
def test_cv_rejects_bad_input(kwargs):
    with pytest.raises(ValueError):
        jaxpnp.CV(**kwargs)


def test_electrolyte_scales_match_physics_reference():
    e = jaxpnp.Electrolyte()
    assert e.debye_length_m == pytest.approx(0.304e-9, rel=5e-3)
    assert e.debye_time_s == pytest.approx(46e-12, rel=2e-2)
    assert e.packing_parameter == pytest.approx(0.35, rel=2e-2)
    assert e.thermal_voltage_V == pytest.approx(0.0257, rel=1e-2)


def test_electrolyte_rejects_overpacked_bulk_and_nonpositive():
    with pytest.raises(ValueError, match="packing"):
        jaxpnp.Electrolyte(concentration_M=3.0, ion_diameter_nm=0.9)
    with pytest.raises(ValueError):
        jaxpnp.Electrolyte(concentration_M=0.0)
    with pytest.raises(ValueError):
        jaxpnp.Electrolyte(relative_permittivity=-1.0)
