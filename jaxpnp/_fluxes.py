"""Scharfetter-Gummel fluxes on the full electrochemical potential (Debye units).

For species z = +-1 the drift potential is ``u = z psi + mu_s`` with the Bikerman
steric excess ``mu_s = -ln(1 - (nu/2)(c+ + c-))`` (c in units of c0, nu = 2 a^3 c0).
The flux from node L to node R a distance ``dist`` apart is

    J = D/dist * [B(du) c_L - B(-du) c_R],   du = u_R - u_L,   B(x) = x / (e^x - 1),

which vanishes exactly when c ~ exp(-u): the discrete Bikerman equilibrium is an exact
steady state, and the scheme keeps concentrations positive.
"""

from __future__ import annotations

import jax.numpy as jnp


def bernoulli(x):
    """B(x) = x / expm1(x), smooth through x = 0."""
    small = jnp.abs(x) < 1e-5
    xs = jnp.where(small, 1.0, x)
    return jnp.where(small, 1.0 - 0.5 * x + x * x / 12.0, xs / jnp.expm1(xs))


def steric_potential(total, nu):
    """mu_s = -ln(1 - nu/2 * (c+ + c-)) (kT units); guarded just below close packing."""
    packing = jnp.minimum(0.5 * nu * total, 1.0 - 1e-12)
    return -jnp.log1p(-packing)


def sg_flux(c_left, c_right, u_left, u_right, dist):
    du = u_right - u_left
    return (bernoulli(du) * c_left - bernoulli(-du) * c_right) / dist


def species_fluxes(cp_l, cm_l, psi_l, cp_r, cm_r, psi_r, nu, d_minus, dist):
    """(J+, J-) from L to R, cation diffusivity 1 and anion diffusivity ``d_minus``."""
    mu_l = steric_potential(cp_l + cm_l, nu)
    mu_r = steric_potential(cp_r + cm_r, nu)
    jp = sg_flux(cp_l, cp_r, psi_l + mu_l, psi_r + mu_r, dist)
    jm = d_minus * sg_flux(cm_l, cm_r, -psi_l + mu_l, -psi_r + mu_r, dist)
    return jp, jm


def flux_split(cp_l, cm_l, psi_l, cp_r, cm_r, psi_r, nu, d_minus, dist):
    """Net-ion (J+ - J-) flux split into (migration, diffusion, steric) parts.

    Each species' SG flux is written ``J = -c_eff * d(ln c + u)/dist`` with the
    effective face concentration ``c_eff`` it implies, so that the three parts
    (``-c_eff d ln c``, ``-c_eff z d psi``, ``-c_eff d mu_s``) add up to the SG flux
    exactly; where the total driving force vanishes ``c_eff`` falls back to the
    logarithmic mean.
    """
    mu_l = steric_potential(cp_l + cm_l, nu)
    mu_r = steric_potential(cp_r + cm_r, nu)
    parts = []
    for z, c_l, c_r, d in ((1.0, cp_l, cp_r, 1.0), (-1.0, cm_l, cm_r, d_minus)):
        dlnc = jnp.log(jnp.maximum(c_r, 1e-300)) - jnp.log(jnp.maximum(c_l, 1e-300))
        dpsi = z * (psi_r - psi_l)
        dmu = mu_r - mu_l
        drive = dlnc + dpsi + dmu
        j = d * sg_flux(c_l, c_r, z * psi_l + mu_l, z * psi_r + mu_r, dist)
        small = jnp.abs(drive) < 1e-9
        logmean = jnp.where(jnp.abs(dlnc) < 1e-9, 0.5 * (c_l + c_r),
                            (c_r - c_l) / jnp.where(jnp.abs(dlnc) < 1e-9, 1.0, dlnc))
        c_eff = jnp.where(small, d * logmean, -j * dist / jnp.where(small, 1.0, drive))
        parts.append((-c_eff * dpsi / dist, -c_eff * dlnc / dist, -c_eff * dmu / dist))
    (mp, dp, sp), (mm, dm, sm) = parts
    return mp - mm, dp - dm, sp - sm
