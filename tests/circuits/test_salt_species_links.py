"""circuits.species_potential_links: the saturating paper law read back from a co-ion ladder's own record;
from_mpnp's default links on a run that carries the ion contents; the co-ion model in fully packed slits."""

import dataclasses
import warnings

import numpy as np
import pytest
import xarray as xr

import circuits
import jaxpnp

# the uniform Bikerman-Donnan two-slit ladder (tests/circuits/donnan_ladder.py)
from donnan_ladder import A3NA, C0, F, VOLUME
from donnan_ladder import equilibrium as _equilibrium
from donnan_ladder import ladder as _model

R_C, GAMMA, Q_MAX = np.array([1e-9, 1.5e-9]), np.array([0.2, 0.5]), np.array([0.1, 0.04])
RUN_ATTRS = dict(concentration_M=1.0, ion_diameter_nm=0.66, thermal_voltage_V=0.025693, relative_permittivity=78.5,
                 snapped_separator_nm=10.0, diffusivity_m2_s=2e-9, anion_diffusivity_m2_s=2e-9, temperature_K=298.15,
                 boundary="reservoir")


@pytest.fixture(scope="module")
def record():
    """A SaltLadder(coions="dynamic") CV whose links pass their q_max and whose co-ions leave equilibrium."""
    with jaxpnp.float64():
        m = dataclasses.replace(_model(), R_c=R_C, gamma=GAMMA, q_max=Q_MAX)
        cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=2e7)
        s = circuits.solve(m, cv, points_per_cycle=400, steps=800)
    return m, tuple(np.asarray(a) for a in (s.time, s.slit_charge, s.cation_content, s.link_current, s.cell_voltage))


def test_links_are_recovered_from_the_ladders_own_species_potentials(record):
    """A SaltLadder(coions="dynamic") run's node charges, slit cations and link currents give back the
    R_c, gamma, q_max it was built with (the link law is read on the model's species potentials, not U(q))."""
    m, (t, q, p, J, _) = record
    # the record must pass each link's q_max (else the saturation is not observable)
    Q = np.array([np.trapezoid(np.clip(J[:, i], 0, None), t) for i in range(2)])
    assert np.all(Q > 2 * Q_MAX)
    fit = circuits.species_potential_links(m, t, q, p[:, 1:], J)
    np.testing.assert_allclose(fit[0], R_C, rtol=0.03)
    np.testing.assert_allclose(fit[1], GAMMA, atol=0.03)
    np.testing.assert_allclose(fit[2], Q_MAX, rtol=0.1)
    # on U(q) alone (the equilibrium co-ions) the same record reads differently
    with pytest.raises(ValueError, match="coions='dynamic'"):
        circuits.species_potential_links(dataclasses.replace(m, coions="equilibrium"), t, q, p[:, 1:], J)


def test_from_mpnp_reads_the_species_links_when_the_run_carries_the_ion_contents(record):
    """The ladder's record as an mPNP-like run: with slit_cation/anion_content from_mpnp's default reads link 1
    on the species potentials (the generator's law back); without them it falls back to the node potentials,
    and says so."""
    m, (t, q, p, J, v) = record
    n_t = t.size
    eq = _equilibrium().assign_attrs(RUN_ATTRS)
    plain = xr.Dataset({"slit_charge": (("time", "slit"), -q),
                        "trans_slit_current": (("time", "slit"), -np.concatenate([J, np.zeros((n_t, 1))], 1)),
                        "electrode_potential": ("time", 0.5 * v), "cell_voltage": ("time", v)},
                       coords={"time": t, "slit": np.arange(3)}, attrs=RUN_ATTRS)
    run = plain.assign(slit_cation_content=(("time", "slit"), p), slit_anion_content=(("time", "slit"), p + q / F))
    with jaxpnp.float64():
        species = circuits.from_mpnp(run, kind="salt", equilibrium=eq)
        with pytest.warns(UserWarning, match="slit_cation_content"):
            nodes = circuits.from_mpnp(plain, kind="salt", equilibrium=eq)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # asked for explicitly: no warning
            explicit = circuits.from_mpnp(run, kind="salt", equilibrium=eq, links_from="nodes")
        with pytest.raises(ValueError, match="slit_cation_content"):
            circuits.from_mpnp(plain, kind="salt", equilibrium=eq, links_from="species")
    assert species.coions == "dynamic" and species.separator == "charged"
    np.testing.assert_allclose(float(species.R_c[1]), R_C[1], rtol=0.03)
    np.testing.assert_allclose(float(species.gamma[1]), GAMMA[1], atol=0.03)
    np.testing.assert_allclose(float(species.q_max[1]), Q_MAX[1], rtol=0.1)
    # the node-potential reading of the same link is a different law; link 0 is read the same way by both
    np.testing.assert_allclose(np.asarray(explicit.R_c), np.asarray(nodes.R_c), rtol=1e-12)
    assert abs(float(nodes.gamma[1]) - GAMMA[1]) > 0.05 or abs(float(nodes.R_c[1]) / R_C[1] - 1) > 0.05
    assert float(species.R_c[0]) == pytest.approx(float(nodes.R_c[0]), rel=1e-12)


def test_coions_of_fully_packed_slits_stay_physical_under_long_steps():
    """Slits with no Stern layer pack at a 1 V window (equilibrium co-ions ~1e-8 of the uncharged content,
    vacancy ~1e-8): long ROS2 steps (100 over a slow cycle) overshoot the co-ion and packing barriers.
    Before the logarithms had their tangent continuation, the clamps gave no restoring force there: the
    co-ion states ran negative, the slits over-packed and the current turned NaN (the mean-share variant,
    as at the 1 V paper case's rate/20 prediction with species links). Now the state stays physical to the
    continuation's scale and the slits reach their equilibrium charge."""
    eq = _equilibrium(stern=100.0)
    with jaxpnp.float64():
        m = _model(stern=100.0, link_share="mean")
        s = circuits.solve(m, jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=2e5), points_per_cycle=100, steps=100)
    I, q, p = (np.asarray(a) for a in (s.current_density, s.slit_charge[:, 1:], s.cation_content[:, 1:]))
    assert np.all(np.isfinite(I))
    N0 = 2 * C0 * VOLUME[1:]
    f = A3NA * (2 * p + q / F) / VOLUME[1:]
    assert np.min(p / N0) > -1e-5 and np.max(f) < 1 + 1e-5
    # the packed limit is reached (else the test would not probe it): co-ions expelled, slits full, at the
    # equilibrium charge of 0.5 V
    top = int(np.argmax(np.asarray(s.cell_voltage)))
    assert np.all(p[top] / N0 < 1e-4) and np.all(f[top] > 0.999)
    q_eq = -np.asarray(eq["slit_charge"].sel(potential=0.5, method="nearest"))[1:]
    np.testing.assert_allclose(q[top], q_eq, rtol=0.01)


def test_species_links_check_their_input():
    m = _model()
    t = np.linspace(0, 1e-8, 10)
    with pytest.raises(ValueError, match="expected"):
        circuits.species_potential_links(m, t, np.zeros((10, 2)), np.zeros((10, 2)), np.zeros((10, 2)))
