"""Small-signal impedance of a ladder, Z = phi_m / I (ohm m^2 of projected area).

For a law ``dphi = I R(Q)`` linearised about an equilibrium (``I = 0``) the
perturbation obeys ``d(dphi) = R(Q_0) dI``: the small-signal circuit is the linear
ladder with each link's resistance frozen at its value for the equilibrium charge.
For the TLM this is exact at every amplitude.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from jaxpnp import float64

from ._ncm import AbstractLadder, resolve_q_max


def equilibrium_resistances(model: AbstractLadder, *, charge_fraction=0.0, swing_V=1.0) -> Float[Array, " n"]:
    """Link resistances (ohm m^2) at equilibrium with the electrode potential raised by ``charge_fraction * swing_V`` (V).

    Charges count from zero, so link ``i`` then holds ``Q_i = charge_fraction * swing_V *
    sum_{k>i} C_k``; with the default ``Q_max`` that is ``charge_fraction * Q_i^max``
    and ``swing_V`` drops out (for the built-in law ``R_i = R_c (1 - gamma f)``).
    """
    potential = charge_fraction * swing_V
    node_charge = model.node_charge_at(potential)
    link_charge = jnp.cumsum(node_charge[::-1])[::-1][1:]
    return model.link_resistance(link_charge, node_charge, resolve_q_max(model, swing_V))


def _impedance(model: AbstractLadder, omega, resistances, potential=0.0):
    # Nodal analysis with the electrode at 1 V: Y psi = b, psi the electrolyte node potentials.
    c = model.small_signal_capacitances(potential).astype(jnp.complex128)
    g = (1.0 / resistances).astype(jnp.complex128)
    n_nodes = c.shape[0]
    zero = jnp.zeros((1,), jnp.complex128)
    g_left = jnp.concatenate([zero, g])  # link into node k from k-1
    g_right = jnp.concatenate([g, zero])  # link from node k to k+1
    open_conductance = jnp.zeros((n_nodes,), jnp.complex128).at[0].set(1.0 / model.R_open)

    def one(w):
        diag = 1j * w * c + g_left + g_right + open_conductance
        lower = -g_left  # Y[k, k-1]; entry 0 unused (zero)
        upper = -g_right  # Y[k, k+1]; last entry unused (zero)
        rhs = (1j * w * c)[:, None]
        psi = jax.lax.linalg.tridiagonal_solve(lower, diag, upper, rhs)[:, 0]
        return model.R_open / psi[0]  # I = psi_0 / R_open, Z = 1 V / I

    return jax.vmap(one)(omega)


def impedance(model: AbstractLadder, frequencies_Hz, *, charge_fraction=0.0, swing_V=1.0) -> Complex[Array, " f"]:
    """Electrode impedance ``phi_m / I`` (complex, ohm m^2) at ``frequencies_Hz`` (Hz).

    Exact for the TLM; for the NCM the small-signal impedance about the equilibrium
    described in :func:`equilibrium_resistances` (``charge_fraction`` = 0: uncharged).
    Traceable in the model parameters.
    """
    f = np.asarray(frequencies_Hz, dtype=float) if not isinstance(frequencies_Hz, jax.Array) else frequencies_Hz
    if isinstance(f, np.ndarray) and (np.any(~np.isfinite(f)) or np.any(f <= 0)):
        raise ValueError("frequencies_Hz must be positive and finite")
    with float64():
        omega = 2.0 * jnp.pi * jnp.atleast_1d(jnp.asarray(f, dtype=jnp.float64))
        R = equilibrium_resistances(model, charge_fraction=charge_fraction, swing_V=swing_V)
        return _impedance(model, omega, R, charge_fraction * swing_V)
