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


def test_electrolyte_conductivity_is_nernst_einstein():
    # 1 M, D = 2e-9 m^2/s for both ions at 298.15 K: kappa = e^2 c0 (D+ + D-) / kT ~ 15.0 S/m
    e = jaxpnp.Electrolyte()
    assert e.conductivity_S_m == pytest.approx(15.02, rel=1e-3)
    # anions twice as mobile: 1.5x the conductivity; half the salt: half of it
    assert jaxpnp.Electrolyte(anion_diffusivity_m2_s=4e-9).conductivity_S_m == pytest.approx(1.5 * e.conductivity_S_m)
    assert jaxpnp.Electrolyte(concentration_M=0.5).conductivity_S_m == pytest.approx(0.5 * e.conductivity_S_m)


@pytest.mark.parametrize("protocol", [
    jaxpnp.CV(v_min=0.1, v_max=0.6, scan_rate_V_s=3e7, cycles=3),
    jaxpnp.PotentialStep(v_step=0.4, duration_s=2e-9, v_initial=0.1, rise_time_s=1e-11),
    jaxpnp.Galvanostatic(current_density_A_m2=2e6, charge_time_s=1e-9, cycles=2),
])
def test_protocol_attrs_round_trip(protocol):
    attrs = jaxpnp.protocol_attrs(protocol)
    assert attrs["protocol"] == type(protocol).__name__
    assert attrs["duration_s"] == pytest.approx(protocol.duration)
    back = jaxpnp.protocol_from_attrs(attrs)
    assert back == protocol
    t = protocol.sample_times(20)
    np.testing.assert_allclose(back.sample_times(20), t)


def test_protocol_from_attrs_refuses_unknown():
    with pytest.raises(ValueError, match="protocol"):
        jaxpnp.protocol_from_attrs({"v_max": 1.0})


def test_nrmse_and_sign_agreement():
    ref = np.sin(np.linspace(0, 2 * np.pi, 201))
    assert jaxpnp.nrmse(ref, ref) == 0.0
    assert jaxpnp.nrmse(1.1 * ref, ref) == pytest.approx(0.1)
    assert jaxpnp.nrmse(np.zeros_like(ref), ref) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        jaxpnp.nrmse(ref[:-1], ref)
    frac, corr = jaxpnp.sign_agreement(ref, -2 * ref)
    assert frac == 0.0 and corr == pytest.approx(-1.0)
    frac, corr = jaxpnp.sign_agreement(ref, np.abs(ref))  # same sign on the first half only
    assert frac == pytest.approx(0.5, abs=0.02) and abs(corr) < 1e-9
    # samples below 2% of either maximum do not count
    b = np.where(np.arange(201) < 100, ref, 1e-3 * ref)
    assert jaxpnp.sign_agreement(-ref, b)[0] == 0.0
