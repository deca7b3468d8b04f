"""circuits.species_potential_links: the saturating paper law read back from a co-ion ladder's own record."""

import dataclasses

import numpy as np
import pytest

import circuits
import jaxpnp

# the uniform Bikerman-Donnan two-slit ladder (tests/circuits/donnan_ladder.py)
from donnan_ladder import ladder as _model


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
