"""circuits.species_potential_links: the saturating paper law read back from a co-ion ladder's own record."""

import dataclasses

import numpy as np
import pytest
import xarray as xr

import circuits
import jaxpnp

# the uniform Bikerman-Donnan two-slit ladder of test_salt_coions.py
F = 96485.33212
VT = 0.025693
C0 = 1e3  # mol/m^3
A3NA = (0.66e-9) ** 3 * 6.02214076e23  # m^3/mol: close packing 1 / A3NA
NU = 2 * A3NA * C0  # 0.35
N_SLITS = 2
VOLUME = np.array([10e-9, 1.5e-9, 1.5e-9])  # m per projected area: open space, two slits
STERN = np.array([0.3, 1.0, 1.0])  # F/m^2: electrode -> slit centre
POTENTIALS = np.linspace(0.0, 0.6, 241)  # V


def _donnan(phi_d, k):
    """Uniform Bikerman slit k at Donnan potential phi_d (kT/e): (q C/m^2, cations, anions mol/m^2)."""
    d = 1 + NU * (np.cosh(phi_d) - 1)
    return VOLUME[k] * C0 * (np.exp(phi_d) - np.exp(-phi_d)) / d * F, VOLUME[k] * C0 * np.exp(-phi_d) / d, \
        VOLUME[k] * C0 * np.exp(phi_d) / d


def _equilibrium():
    """The nodes' equilibrium (the jaxpnp.equilibrium layout) on one electrode-potential grid."""
    phi_d = np.linspace(0.0, 30.0, 20001)
    q, N = [], []
    for k in range(N_SLITS + 1):
        qk, p, n = _donnan(phi_d, k)
        phi_m = VT * phi_d + qk / STERN[k]
        q.append(np.interp(POTENTIALS, phi_m, qk))
        N.append(np.interp(POTENTIALS, phi_m, p + n))
    attrs = dict(concentration_M=1.0)
    return xr.Dataset({"slit_charge": (("potential", "slit"), -np.stack(q, 1)),
                       "slit_ion_content": (("potential", "slit"), np.stack(N, 1))},
                      coords={"potential": POTENTIALS, "slit": np.arange(N_SLITS + 1)}, attrs=attrs)


def _model(**kw):
    eq = _equilibrium()
    cap, C = circuits.equilibrium_capacitor(eq, n_table=400)
    qc, ws = circuits.uptake_tables(eq)
    with jaxpnp.float64():
        return circuits.SaltLadder(N_SLITS, 6.7e-10, C, np.array([1e-9, 1.5e-9]), np.array([0.2, 0.5]),
                                   np.array([0.8, 0.4]), qc, ws, separator_m=1e-8, capacitor=cap, separator_nodes=4,
                                   coions="dynamic", region_volume_m=circuits.region_volumes(eq), **kw)


def test_links_are_recovered_from_the_ladders_own_species_potentials():
    """A SaltLadder(coions="dynamic") run's node charges, slit cations and link currents give back the
    R_c, gamma, q_max it was built with (the link law is read on the model's species potentials, not U(q))."""
    R_c, gamma, q_max = np.array([1e-9, 1.5e-9]), np.array([0.2, 0.5]), np.array([0.1, 0.04])
    with jaxpnp.float64():
        m = dataclasses.replace(_model(), R_c=R_c, gamma=gamma, q_max=q_max)
        cv = jaxpnp.CV(v_min=0.0, v_max=1.0, scan_rate_V_s=2e7)
        s = circuits.solve(m, cv, points_per_cycle=400, steps=800)
    t, q, p, J = (np.asarray(a) for a in (s.time, s.slit_charge, s.cation_content, s.link_current))
    # the record must pass each link's q_max (else the saturation is not observable) and the co-ions must
    # leave the equilibrium (else U(q) would do as well)
    Q = np.array([np.trapezoid(np.clip(J[:, i], 0, None), t) for i in range(2)])
    assert np.all(Q > 2 * q_max)
    fit = circuits.species_potential_links(m, t, q, p[:, 1:], J)
    np.testing.assert_allclose(fit[0], R_c, rtol=0.03)
    np.testing.assert_allclose(fit[1], gamma, atol=0.03)
    np.testing.assert_allclose(fit[2], q_max, rtol=0.1)
    # on U(q) alone (the equilibrium co-ions) the same record reads differently
    with pytest.raises(ValueError, match="coions='dynamic'"):
        circuits.species_potential_links(dataclasses.replace(m, coions="equilibrium"), t, q, p[:, 1:], J)


def test_species_links_check_their_input():
    m = _model()
    t = np.linspace(0, 1e-8, 10)
    with pytest.raises(ValueError, match="expected"):
        circuits.species_potential_links(m, t, np.zeros((10, 2)), np.zeros((10, 2)), np.zeros((10, 2)))
