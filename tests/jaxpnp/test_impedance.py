"""jaxpnp.impedance against the exact blocking cell, equilibrium capacitance and sine runs."""

import numpy as np
import pytest

import jaxpnp

EL = jaxpnp.Electrolyte()
DILUTE = jaxpnp.Electrolyte(ion_diameter_nm=0.1)  # packing 1e-3: the linearised PNP limit
PLANAR = jaxpnp.Electrode(layout="planar", separator_nm=3.0)
TINY = jaxpnp.Electrode(n_sheets=2, slit_nm=1.2, sheet_length_nm=1.8, sheet_gap_nm=0.6,
                        sheet_thickness_nm=0.3, separator_nm=1.2)
FREQ = np.logspace(3, 12, 19)


def _z(ds):
    return ds.impedance_real.values + 1j * ds.impedance_imag.values


@pytest.mark.parametrize("boundary", ["reservoir", "symmetric"])
def test_blocking_cell_matches_exact_linearised_pnp(boundary):
    errors = []
    for h in (0.1, 0.05):
        ds = jaxpnp.impedance(DILUTE, PLANAR, FREQ, grid_nm=h, boundary=boundary)
        exact = jaxpnp.blocking_cell_impedance(DILUTE, ds.attrs["snapped_separator_nm"] * 1e-9, FREQ)
        z = _z(ds)
        errors.append(np.abs(z / exact - 1))
        np.testing.assert_allclose(ds.impedance_magnitude, np.abs(z))
    z_err = errors[-1]
    assert np.all(z_err < 0.01), z_err  # magnitude and phase within 1% (|dZ/Z| bounds both)
    phase_err = np.abs(np.angle(z) - np.angle(exact)) / np.abs(np.angle(exact))
    assert np.all(phase_err < 0.01)
    # second-order grid convergence where the discretisation error is not at round-off
    big = errors[0] > 1e-3
    assert np.all(np.log2(errors[0][big] / errors[1][big]) > 1.8)


@pytest.mark.parametrize("boundary", ["reservoir", "symmetric"])
def test_low_frequency_capacitance_is_the_equilibrium_slope(boundary, assert_cf):
    bias, d = 0.05, 1e-4  # V per electrode
    ds = jaxpnp.impedance(EL, TINY, [1e4], bias, grid_nm=0.3, boundary=boundary)
    q_ds = assert_cf(ds)  # CF units that pint reads (issue 14)
    assert str(q_ds.impedance_real.pint.units) in ("ohm * meter ** 2", "meter ** 2 * ohm")
    c_ac = -1.0 / (2 * np.pi * 1e4 * float(ds.impedance_imag[0]))  # Z -> R + 1/(i w C)
    eq = jaxpnp.equilibrium(EL, TINY, [bias - d, bias, bias + d], grid_nm=0.3, boundary=boundary)
    q = eq.electrode_charge.values
    assert c_ac == pytest.approx((q[2] - q[0]) / (2 * d), rel=1e-5)
    assert float(ds.electrode_charge) == pytest.approx(q[1], rel=1e-12)
    assert float(ds.bias) == bias


@pytest.mark.slow  # ~60 s, most of it compiling the Sine run (measured: within 4e-4 in |Z|, 5e-4 rad)
def test_sine_runs_agree_with_the_linearised_impedance():
    # around the cell's RC corner (phase -45 degrees near 1.5 GHz), about a 0.1 V cell bias
    freqs = np.array([3e8, 1e9, 3e9])
    lin = _z(jaxpnp.impedance(EL, TINY, freqs, 0.05, grid_nm=0.3, boundary="symmetric"))
    for f, z_lin in zip(freqs, lin):
        sine = jaxpnp.Sine(v_bias=0.1, amplitude_V=1e-3, frequency_Hz=f, cycles=4)
        ds = jaxpnp.simulate(EL, TINY, sine, grid_nm=0.3, boundary="symmetric", points_per_cycle=64,
                             progress=False, rtol=1e-7, atol=1e-9)
        t, i = ds.time.values, ds.current_density.values
        last = t >= 3 / f * (1 - 1e-9)  # the last cycle; the run starts in equilibrium at the bias
        w = 2 * np.pi * f
        basis = np.stack([np.ones(last.sum()), np.sin(w * t[last]), np.cos(w * t[last])], axis=1)
        coef = np.linalg.lstsq(basis, i[last], rcond=None)[0]
        z_run = (sine.amplitude_V / 2) / (coef[1] + 1j * coef[2])  # phi_m amplitude / current phasor
        assert abs(z_run) == pytest.approx(abs(z_lin), rel=5e-3), f
        assert np.angle(z_run) == pytest.approx(np.angle(z_lin), abs=5e-3), f


@pytest.mark.parametrize("kwargs, match", [
    (dict(frequencies_Hz=[]), "non-empty"),
    (dict(frequencies_Hz=[1e6, -1.0]), "positive"),
    (dict(frequencies_Hz=[[1e6]]), "1D"),
    (dict(bias_V="x"), "bias_V"),
    (dict(bias_V=float("inf")), "finite"),
    (dict(boundary="open"), "boundary"),
    (dict(grid_nm=0.5), "Debye"),
    (dict(method="fast"), "method"),
    (dict(rtol=0.0), "rtol"),
])
def test_bad_input_is_refused(kwargs, match):
    args = dict(frequencies_Hz=[1e6], grid_nm=0.3, boundary="reservoir") | kwargs
    freqs = args.pop("frequencies_Hz")
    with pytest.raises(ValueError, match=match):
        jaxpnp.impedance(EL, TINY, freqs, **args)


@pytest.mark.parametrize("kwargs", [dict(amplitude_V=0.0), dict(frequency_Hz=-1.0), dict(cycles=0),
                                    dict(v_bias=float("nan"))])
def test_sine_protocol_refuses_bad_numbers(kwargs):
    with pytest.raises(ValueError):
        jaxpnp.Sine(**kwargs)


def test_sine_protocol_waveform_and_attrs():
    s = jaxpnp.Sine(v_bias=0.1, amplitude_V=0.02, frequency_Hz=1e9, cycles=2)
    assert s.initial_cell_voltage == 0.1 and s.duration == pytest.approx(2e-9)
    assert float(s.cell_voltage(0.25e-9)) == pytest.approx(0.12)
    assert float(s.electrode_potential(0.75e-9)) == pytest.approx(0.04)
    assert jaxpnp.protocol_from_attrs(jaxpnp.protocol_attrs(s)) == s


@pytest.mark.parametrize("boundary, bias", [("reservoir", 0.2), ("symmetric", 0.1)])
def test_reduced_spectrum_equals_direct_solves(boundary, bias):
    freqs = np.logspace(3, 12, 30)
    red = jaxpnp.impedance(EL, TINY, freqs, bias, grid_nm=0.3, boundary=boundary, method="reduced")
    ref = jaxpnp.impedance(EL, TINY, freqs, bias, grid_nm=0.3, boundary=boundary, method="direct")
    assert red.attrs["impedance_exact_solves"] < freqs.size
    np.testing.assert_allclose(_z(red), _z(ref), rtol=1e-6)
