"""Salt-aware nano-circuitry model (``SaltNCM``): a charge line and a salt line.

After Biesheuvel & Bazant, Phys. Rev. E 81, 031502 (2010): each node stores charge
AND salt, both set by its local double-layer state, and the electrolyte's conductance
follows its local salt content. Topology (one electrode, per unit projected area, SI):

    reservoir (bulk c0, 0 V)  --separator: m neutral nodes-->  node 0 (open space)
        --link 0-->  node 1 (slit 1)  --link 1--> ... node n (slit n, dead end)

Every electrode node ``k`` is in local equilibrium with a *virtual reservoir* at
potential ``V_k`` (its circuit node potential, 0 V at equilibrium) and concentration
``c_k``: its electrode-side charge ``q_k`` and ion content ``N_k`` (cations + anions)
are the equilibrium curves ``q_k(u_k, c_k)``, ``N_k(u_k, c_k)`` of a storage law, with
``u_k = phi_m - V_k`` the double-layer voltage. Between nodes each ion species moves
down its electrochemical potential ``mu_+- = +-e V + kT ln a(c)`` (``a`` the Bikerman
activity ``c / (1 - 2 a^3 c)``):

    F_+-(i+1 -> i) = g_+-_i [ +-(psi_{i+1} - psi_i) + ln a_{i+1} - ln a_i ],   psi = V / V_T

(mol/m^2/s), so a link carries current ``F (F_+ - F_-)`` AND salt ``F_+ + F_-``; a
charged link (more counter- than co-ions) moves salt with its current. Conservation is
exact in the fluxes: ``dq_k/dt = I_{k-1} - I_k``, ``dN_k/dt = S_k - S_{k-1}``.

The separator (length ``L``, bulk electrolyte, no double layer) is a line of ``m``
neutral nodes: its conductance follows its concentration (log-mean per segment, which
is exact for a steady linear profile), salt diffuses through it from the reservoir
(``boundary="reservoir"``) or not at all (``"symmetric"``: the closed half cell, zero
salt flux at the mid-plane). With the concentrations frozen at c0 (``salt="frozen"``)
the separator is the ohmic ``R_open = L / kappa`` and the model is the NCM.

Internal state (dimensionless): per electrode node the storage coordinate ``p_k``
(e.g. the Donnan potential over V_T) and ``x_k = ln(c_k / c0)``; per separator node
``x_j``. The charge/salt balances are solved for their rates through each node's 2 x 2
Jacobian ``d(q/F, N)/d(p, x)`` (a mass-matrix ODE), integrated with diffrax Kvaerno5.
"""

from __future__ import annotations

import abc
from typing import Any, Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jaxtyping import Array, Float

from jaxpnp import float64
from jaxpnp._electrolyte import AVOGADRO, BOLTZMANN, ELEMENTARY_CHARGE

from ._drive import drive_from_protocol, output_times
from ._ncm import DEFAULT_RESISTANCE_FLOOR, AbstractCapacitor, _as_param, _check_param, _check_real, _is_traced

FARADAY = ELEMENTARY_CHARGE * AVOGADRO  # C/mol


class Env(eqx.Module):
    """Electrolyte numbers every storage/link law needs: ``c0`` (mol/m^3), ``a`` (m), ``V_T`` (V)."""

    c0: Any
    a: Any
    V_T: Any

    def log_activity(self, c):
        """ln of the Bikerman bulk activity ``c / (1 - 2 a^3 c N_A)`` relative to c0 (c in mol/m^3)."""
        nu = 2.0 * self.a ** 3 * AVOGADRO
        return jnp.log(c / self.c0) - jnp.log1p(-nu * c) + jnp.log1p(-nu * self.c0)


# ----------------------------------------------------------------------------
# storage laws: q_k(p, c), N_k(p, c), u_k(p, c)
# ----------------------------------------------------------------------------


class AbstractSaltStorage(eqx.Module):
    """Equilibrium charge and salt of every electrode node as functions of its state.

    ``state(p, c, env) -> (q, N, u)``: electrode-side charge (C/m^2), ion content
    (cations + anions, mol/m^2) and double-layer voltage ``u = phi_m - V`` (V) per node
    (arrays of shape (n+1,)), for the storage coordinate ``p`` (dimensionless, 0 at
    the uncharged state) and the virtual-reservoir concentration ``c`` (mol/m^3).
    Elementwise in the nodes.
    """

    @abc.abstractmethod
    def state(self, p, c, env: Env):
        """``(q (C/m^2), N (mol/m^2), u (V))`` per node."""

    def n_nodes(self) -> int | None:
        return None


class DonnanStorage(AbstractSaltStorage):
    """Modified-Donnan (Bikerman) node: a well-mixed pore volume behind an inner capacitance.

    Per node: ``volume_m`` (pore volume per projected area, m), ``capacitance_F_m2``
    (the inner / Stern-like capacitance between the electrode and the pore mid-plane,
    F/m^2), ``neutral_volume_m`` (volume at the reservoir concentration that stores salt
    but no charge, m; >= 0). With ``p`` the Donnan potential over V_T and
    ``nu = 2 a^3 c N_A``:

        c_+- = c e^(-+p) / (1 + nu (cosh p - 1))          (Bikerman; close packing at large p)
        q    = 2 F volume c sinh(p) / (1 + nu (cosh p - 1)) (electrode side, = -ionic charge)
        u    = V_T p + q / capacitance
        N    = 2 volume c cosh(p) / (1 + nu (cosh p - 1)) + 2 c neutral_volume

    Small signal: ``1/C = 1/capacitance + V_T / (2 F volume c)`` (inner + Donnan). The
    counter-ions saturate at ``F volume / (a^3 N_A)``.
    """

    volume_m: Any = eqx.field(converter=_as_param)
    capacitance_F_m2: Any = eqx.field(converter=_as_param)
    neutral_volume_m: Any = eqx.field(converter=_as_param, default=0.0)

    def __check_init__(self):
        v = np.atleast_1d(np.asarray(self.volume_m)) if not _is_traced(self.volume_m) else None
        n = None if v is None else v.size
        if n is not None:
            _check_param("DonnanStorage", "volume_m", self.volume_m, n, positive=True)
            _check_param("DonnanStorage", "capacitance_F_m2", self.capacitance_F_m2, n, positive=True)
            _check_param("DonnanStorage", "neutral_volume_m", self.neutral_volume_m, n, positive=False, lower=0.0)

    def n_nodes(self):
        return None if _is_traced(self.volume_m) else int(np.size(self.volume_m))

    def state(self, p, c, env):
        nu = 2.0 * env.a ** 3 * AVOGADRO * c
        den = 1.0 + nu * (jnp.cosh(p) - 1.0)
        q = 2.0 * FARADAY * self.volume_m * c * jnp.sinh(p) / den
        N = 2.0 * self.volume_m * c * jnp.cosh(p) / den + 2.0 * c * self.neutral_volume_m
        u = env.V_T * p + q / self.capacitance_F_m2
        return q, N, u


_GL_X, _GL_W = np.polynomial.legendre.leggauss(32)


class PlanarStorage(AbstractSaltStorage):
    """Planar Bikerman (steric Gouy-Chapman) double layer, e.g. the open space in front of the electrode.

    Per node: ``area`` (double-layer area per projected area, -), ``neutral_volume_m`` (m,
    salt at the reservoir concentration), ``stern_capacitance_F_m2`` (None: no Stern
    layer). ``p`` is the diffuse-layer potential over V_T; with ``nu = 2 a^3 c N_A`` and
    ``lambda_D(c)`` (``permittivity_F_m``):

        q = area 2 F c lambda_D sign(p) sqrt((2/nu) ln(1 + 2 nu sinh^2(p/2)))   (PHYSICS.md 1)
        N = area c lambda_D int_0^p 4 (1 - nu) sinh^2(t/2) / ((1 + 2 nu sinh^2(t/2)) phi'(t)) dt + 2 c neutral_volume
        u = V_T p + q / stern_capacitance

    (the excess ions of the layer, by 32-point Gauss-Legendre quadrature).
    """

    area: Any = eqx.field(converter=_as_param)
    neutral_volume_m: Any = eqx.field(converter=_as_param, default=0.0)
    stern_capacitance_F_m2: Any = eqx.field(converter=_as_param, default=None)
    permittivity_F_m: Any = eqx.field(converter=_as_param, default=78.5 * 8.8541878128e-12)

    def __check_init__(self):
        n = None if _is_traced(self.area) else int(np.size(self.area))
        if n is not None:
            _check_param("PlanarStorage", "area", self.area, n, positive=True)
            _check_param("PlanarStorage", "neutral_volume_m", self.neutral_volume_m, n, positive=False, lower=0.0)
            _check_param("PlanarStorage", "stern_capacitance_F_m2", self.stern_capacitance_F_m2, n, positive=True)
            _check_param("PlanarStorage", "permittivity_F_m", self.permittivity_F_m, 1, positive=True)

    def n_nodes(self):
        return None if _is_traced(self.area) else int(np.size(self.area))

    def state(self, p, c, env):
        nu = 2.0 * env.a ** 3 * AVOGADRO * c
        lam = jnp.sqrt(self.permittivity_F_m * env.V_T / (2.0 * FARADAY * c))

        def g(t):  # sign(t) sqrt((2/nu) ln(1 + 2 nu sinh^2(t/2))) in a form smooth at t = 0
            s = jnp.sinh(0.5 * t)
            w = 2.0 * nu * s * s
            ratio = jnp.where(w > 1e-12, jnp.log1p(w) / jnp.where(w > 1e-12, w, 1.0), 1.0 - 0.5 * w)
            return 2.0 * s * jnp.sqrt(ratio), s, ratio

        gp, _, _ = g(p)
        q = self.area * 2.0 * FARADAY * c * lam * gp
        t = 0.5 * (jnp.asarray(_GL_X)[:, None] + 1.0) * p[None, :]
        _, st, ratio = g(t)
        integrand = 2.0 * (1.0 - nu) * st / ((1.0 + 2.0 * nu * st * st) * jnp.sqrt(ratio))
        excess = jnp.sum(0.5 * jnp.asarray(_GL_W)[:, None] * p[None, :] * integrand, axis=0)
        N = self.area * c * lam * excess + 2.0 * c * self.neutral_volume_m
        u = env.V_T * p if self.stern_capacitance_F_m2 is None else env.V_T * p + q / self.stern_capacitance_F_m2
        return q, N, u


class SplitStorage(AbstractSaltStorage):
    """Node 0 (the open space) by one storage law, the slits 1..n by another."""

    open_space: AbstractSaltStorage
    slits: AbstractSaltStorage

    def n_nodes(self):
        m = self.slits.n_nodes()
        return None if m is None else m + 1

    def state(self, p, c, env):
        a = self.open_space.state(p[:1], c[:1], env)
        b = self.slits.state(p[1:], c[1:], env)
        return tuple(jnp.concatenate([jnp.broadcast_to(x, (1,)), jnp.broadcast_to(y, p[1:].shape)])
                     for x, y in zip(a, b))


class CapacitorStorage(AbstractSaltStorage):
    """The NCM's node: a capacitor law ``q = law.charge(u, C)`` whose charge ignores salt.

    ``p = u / V_T``; ``N = 2 c volume_m`` (a neutral volume). With the salt frozen it
    reproduces ``circuits.NCM`` with the same capacitor law exactly (tested); with salt
    moving it only redistributes neutral salt.
    """

    capacitance_F_m2: Any = eqx.field(converter=_as_param)
    volume_m: Any = eqx.field(converter=_as_param)
    law: AbstractCapacitor

    def state(self, p, c, env):
        u = env.V_T * p
        q = self.law.charge(u, self.capacitance_F_m2)
        N = 2.0 * c * self.volume_m + 0.0 * p
        return q, N, u


# ----------------------------------------------------------------------------
# link laws: per-species conductances g_+- (mol/m^2/s per unit dimensionless potential)
# ----------------------------------------------------------------------------


class AbstractSaltLinks(eqx.Module):
    """Per-species conductances of the ``n`` links from the node states."""

    @abc.abstractmethod
    def conductances(self, q, N, share_plus, env: Env):
        """``(g_plus, g_minus)`` (n,) in mol/m^2/s for node charges ``q`` and contents ``N`` (n+1,)."""


def _split(R, share_plus, env):
    """Species conductances of a link of resistance ``R`` (ohm m^2) with cation share ``share_plus``."""
    g = env.V_T / (FARADAY * R)  # g_+ + g_-: I = F (g_+ + g_-) dpsi, dpsi = dV / V_T
    return share_plus * g, (1.0 - share_plus) * g


class IonContentLinks(AbstractSaltLinks):
    """Each species conducts in proportion to its content in the two slits a link joins.

    ``g_+-_i = g_+-_i(0) H(n_+-_i, n_+-_{i+1}) / H(n_+-(0))`` with ``H`` the harmonic mean
    (two halves in series), ``n_+- = (N -+ q/F) / 2`` (mol/m^2) and ``g(0)`` set by ``R_c``:
    the link's resistance (ohm m^2, per link or scalar) at the uncharged equilibrium.
    This generalises the paper's ``R_c (1 - gamma Q/Q^max)``: the resistance falls as
    counter-ions fill the slits and rises where salt runs short (measured on the mPNP:
    the trans-slit resistance times the total ion content of the gap stays nearly constant).
    """

    R_c: Any = eqx.field(converter=_as_param)
    content0: Any = eqx.field(converter=_as_param)  # (n+1,) N_k at the uncharged state (mol/m^2)
    # how node 0 (the open space) feeds link 0: "bulk" (its neutral electrolyte at its
    # concentration c_0, weighted like slit 1 at rest: the path starts in bulk electrolyte) or
    # "content" (its own ion content, like the slits)
    open_space: Literal["bulk", "content"] = eqx.field(static=True, default="bulk")
    # optional residual law on the charge passed, R x (1 - gamma Q_i / Q_i^max) (floored): what the
    # content dependence leaves unexplained in a run's trans-slit data (0: none)
    gamma: Any = eqx.field(converter=_as_param, default=0.0, kw_only=True)
    q_max: Any = eqx.field(converter=_as_param, default=1.0, kw_only=True)
    floor: float = eqx.field(static=True, default=DEFAULT_RESISTANCE_FLOOR, kw_only=True)

    def __check_init__(self):
        for name in ("R_c", "content0", "gamma", "q_max"):
            _check_real("IonContentLinks", name, getattr(self, name))

    def conductances(self, q, N, share_plus, env, c=None):
        Q = jnp.cumsum(q[::-1])[::-1][1:]
        factor = jnp.maximum(1.0 - self.gamma * Q / self.q_max, self.floor)
        g0p, g0m = _split(self.R_c * factor, share_plus, env)
        n0 = 0.5 * jnp.asarray(self.content0)
        if self.open_space == "bulk":
            n0 = n0.at[0].set(n0[1])
        h0 = 2.0 * n0[:-1] * n0[1:] / (n0[:-1] + n0[1:])
        out = []
        for sign, g0 in ((-1.0, g0p), (1.0, g0m)):
            n = jnp.maximum(0.5 * (N + sign * q / FARADAY), 1e-30)
            if self.open_space == "bulk":
                n = n.at[0].set(n0[1] * c[0] / env.c0)
            h = 2.0 * n[:-1] * n[1:] / (n[:-1] + n[1:])
            out.append(g0 * h / h0)
        return out[0], out[1]


class ChargeLawLinks(AbstractSaltLinks):
    """The NCM's links: ``R_i = R_c (1 - gamma Q_i / Q_i^max)`` on the charge passed, floored.

    ``Q_i = sum_{k > i} q_k``. Split between the species by their share of the bulk
    conductivity. With the salt frozen, exactly the NCM's link.
    """

    R_c: Any = eqx.field(converter=_as_param)
    gamma: Any = eqx.field(converter=_as_param, default=0.0)
    q_max: Any = eqx.field(converter=_as_param, default=1.0)
    floor: float = eqx.field(static=True, default=DEFAULT_RESISTANCE_FLOOR)

    def conductances(self, q, N, share_plus, env, c=None):
        Q = jnp.cumsum(q[::-1])[::-1][1:]
        R = self.R_c * jnp.maximum(1.0 - self.gamma * Q / self.q_max, self.floor)
        return _split(R, share_plus, env)


# ----------------------------------------------------------------------------
# the model
# ----------------------------------------------------------------------------


def check_bulk_packing(owner: str, concentration_M, ion_diameter_nm) -> None:
    """ValueError when the bulk packing ``2 a^3 c0`` reaches 1 (Bikerman's limit); tracers pass."""
    if _is_traced(concentration_M) or _is_traced(ion_diameter_nm):
        return
    nu = 2.0 * (float(ion_diameter_nm) * 1e-9) ** 3 * float(concentration_M) * 1e3 * AVOGADRO
    if nu >= 1.0:
        raise ValueError(f"{owner}: bulk packing 2 a^3 c0 = {nu:.3f} >= 1")


def ion_diffusivities(diffusivity_m2_s, anion_diffusivity_m2_s=None):
    """(D+, D-) in m^2/s; the anion's defaults to the cation's."""
    dp = jnp.asarray(diffusivity_m2_s)
    return dp, (dp if anion_diffusivity_m2_s is None else jnp.asarray(anion_diffusivity_m2_s))


class SaltNCM(eqx.Module):
    """Salt-aware nano-circuitry model (see the module docstring for the equations).

    ``SaltNCM(n_slits, storage, links, *, separator_m, concentration_M=1.0,
    ion_diameter_nm=0.66, diffusivity_m2_s=2e-9, anion_diffusivity_m2_s=None,
    temperature_K=298.15, separator_nodes=4, boundary="reservoir", salt="dynamic")``

    * ``storage``: an :class:`AbstractSaltStorage` for the ``n_slits + 1`` electrode nodes
      (node 0 the open space in front of the electrode, 1..n the slits).
    * ``links``: an :class:`AbstractSaltLinks` for the ``n_slits`` links.
    * the separator: ``separator_m`` (m) of bulk electrolyte at ``concentration_M``
      (mol/L, also the reservoir's), ``separator_nodes`` neutral nodes.
    * ``boundary``: ``"reservoir"`` (bulk c0 held at the separator's far end) or
      ``"symmetric"`` (closed half cell: no salt crosses the mid-plane; salt conserved).
    * ``salt="frozen"`` holds every concentration at c0 (the NCM limit).
    """

    n_slits: int = eqx.field(static=True)
    storage: AbstractSaltStorage
    links: AbstractSaltLinks
    separator_m: Any = eqx.field(converter=_as_param, kw_only=True)
    concentration_M: Any = eqx.field(converter=_as_param, default=1.0, kw_only=True)
    ion_diameter_nm: Any = eqx.field(converter=_as_param, default=0.66, kw_only=True)
    diffusivity_m2_s: Any = eqx.field(converter=_as_param, default=2e-9, kw_only=True)
    anion_diffusivity_m2_s: Any = eqx.field(converter=_as_param, default=None, kw_only=True)
    temperature_K: Any = eqx.field(converter=_as_param, default=298.15, kw_only=True)
    separator_nodes: int = eqx.field(static=True, default=4, kw_only=True)
    boundary: Literal["reservoir", "symmetric"] = eqx.field(static=True, default="reservoir", kw_only=True)
    salt: Literal["dynamic", "frozen"] = eqx.field(static=True, default="dynamic", kw_only=True)

    def __check_init__(self):
        if isinstance(self.n_slits, bool) or not isinstance(self.n_slits, (int, np.integer)) or self.n_slits < 1:
            raise ValueError(f"SaltNCM.n_slits must be an integer >= 1, got {self.n_slits!r}")
        if not isinstance(self.storage, AbstractSaltStorage):
            raise ValueError(f"SaltNCM.storage must be a salt storage law (e.g. DonnanStorage), "
                             f"got {type(self.storage).__name__}")
        if not isinstance(self.links, AbstractSaltLinks):
            raise ValueError(f"SaltNCM.links must be a salt link law (e.g. IonContentLinks), "
                             f"got {type(self.links).__name__}")
        nodes = self.storage.n_nodes()
        if nodes is not None and nodes not in (1, self.n_slits + 1):
            raise ValueError(f"SaltNCM.storage has {nodes} nodes, need n_slits + 1 = {self.n_slits + 1}")
        for name in ("separator_m", "concentration_M", "ion_diameter_nm", "diffusivity_m2_s", "temperature_K"):
            _check_param("SaltNCM", name, getattr(self, name), 1, positive=True)
        _check_param("SaltNCM", "anion_diffusivity_m2_s", self.anion_diffusivity_m2_s, 1, positive=True)
        if isinstance(self.separator_nodes, bool) or not isinstance(self.separator_nodes, (int, np.integer)) \
                or self.separator_nodes < 1:
            raise ValueError(f"SaltNCM.separator_nodes must be an integer >= 1, got {self.separator_nodes!r}")
        if self.boundary not in ("reservoir", "symmetric"):
            raise ValueError(f"SaltNCM.boundary must be 'reservoir' or 'symmetric', got {self.boundary!r}")
        if self.salt not in ("dynamic", "frozen"):
            raise ValueError(f"SaltNCM.salt must be 'dynamic' or 'frozen', got {self.salt!r}")
        check_bulk_packing("SaltNCM", self.concentration_M, self.ion_diameter_nm)

    # ---- derived numbers -------------------------------------------------
    def env(self) -> Env:
        return Env(c0=jnp.asarray(self.concentration_M) * 1e3, a=jnp.asarray(self.ion_diameter_nm) * 1e-9,
                   V_T=BOLTZMANN * jnp.asarray(self.temperature_K) / ELEMENTARY_CHARGE)

    def _diffusivities(self):
        return ion_diffusivities(self.diffusivity_m2_s, self.anion_diffusivity_m2_s)

    def cation_share(self):
        """Cations' share of a neutral electrolyte's conductivity, D_+ / (D_+ + D_-)."""
        dp, dm = self._diffusivities()
        return dp / (dp + dm)

    def separator_resistance(self):
        """Ohmic resistance of the separator at c0 (ohm m^2): ``L / kappa``, the NCM's ``R_open``."""
        env = self.env()
        dp, dm = self._diffusivities()
        return jnp.asarray(self.separator_m) * env.V_T / (FARADAY * env.c0 * (dp + dm))

    def _segments(self):
        """Segment lengths (m+1,) and node volumes (m,) of the separator line (m).

        Node j (1..m) sits at ``(j - 1/2) L / m`` from the mid-plane; the last node's cell is
        cut in half: the other half belongs to node 0 (see :func:`separator_volume_in_line`),
        whose salt capacity keeps the open-space node thermodynamically stable.
        """
        m = self.separator_nodes
        L = jnp.asarray(self.separator_m)
        lengths = jnp.concatenate([jnp.full((1,), 0.5), jnp.ones((m - 1,)), jnp.full((1,), 0.5)]) * L / m
        vol = jnp.concatenate([jnp.ones((m - 1,)), jnp.full((1,), 0.5)]) * L / m
        return lengths, vol

    # ---- the circuit at one state -----------------------------------------
    def _unpack(self, y):
        n1, m = self.n_slits + 1, self.separator_nodes
        return y[:n1], y[n1:2 * n1], y[2 * n1:2 * n1 + m]

    def initial_state(self):
        return jnp.zeros((2 * (self.n_slits + 1) + self.separator_nodes,))

    def _storage(self, p, x, env):
        n1 = self.n_slits + 1
        c = env.c0 * jnp.exp(x)
        q, N, u = self.storage.state(p, c, env)
        return jnp.broadcast_to(q, (n1,)), jnp.broadcast_to(N, (n1,)), jnp.broadcast_to(u, (n1,)), c

    def fluxes(self, y, phi_m):
        """Currents (A/m^2) and salt fluxes (mol/m^2/s) at state ``y`` and electrode potential change ``phi_m`` (V).

        Returns a dict: ``current`` (into the electrode), ``link_current`` (n,), ``link_salt``
        (n,, outward), ``separator_salt`` (m+1,, outward, segment 0 at the mid-plane),
        node ``q``, ``N``, ``u``, ``V`` (node potential), ``c`` (mol/m^3), separator ``c_sep``.
        """
        env = self.env()
        p, x, xs = self._unpack(y)
        q, N, u, c = self._storage(p, x, env)
        V = phi_m - u
        psi = V / env.V_T
        lam = env.log_activity(c)
        share = self.cation_share()
        # links between electrode nodes: outward fluxes i+1 -> i
        gp, gm = self.links.conductances(q, N, share, env, c)
        dpsi, dlam = psi[1:] - psi[:-1], lam[1:] - lam[:-1]
        fp, fm = gp * (dpsi + dlam), gm * (-dpsi + dlam)
        link_current = FARADAY * (fp - fm)
        link_salt = fp + fm
        # separator: reservoir (psi 0, c0) -> m neutral nodes -> node 0, no charge stored
        dp_, dm_ = self._diffusivities()
        lengths, _ = self._segments()
        c_sep = env.c0 * jnp.exp(xs)
        outer = env.c0 if self.boundary == "reservoir" else c_sep[0]
        chain = jnp.concatenate([jnp.reshape(outer, (1,)), c_sep, c[:1]])
        lam_chain = env.log_activity(chain)
        a, b = chain[:-1], chain[1:]
        # log-mean concentration per segment: exact for a steady linear profile
        ratio = b / a
        logmean = jnp.where(jnp.abs(ratio - 1.0) > 1e-6, (b - a) / jnp.log(jnp.where(
            jnp.abs(ratio - 1.0) > 1e-6, ratio, 2.0)), 0.5 * (a + b))
        sgp, sgm = dp_ * logmean / lengths, dm_ * logmean / lengths
        G, H = sgp + sgm, sgp - sgm
        dlam_s = lam_chain[1:] - lam_chain[:-1]
        if self.boundary == "symmetric":  # no salt through the mid-plane: segment 0 carries current only
            G = G.at[0].set(4.0 * sgp[0] * sgm[0] / G[0])
            H = H.at[0].set(0.0)
            dlam_s = dlam_s.at[0].set(0.0)
        # current continuity through the chain: sum of dpsi_j = psi_0 (node 0) - 0
        i_over_f = (psi[0] + jnp.sum(H * dlam_s / G)) / jnp.sum(1.0 / G)
        dpsi_s = (i_over_f - H * dlam_s) / G
        sep_salt = H * dpsi_s + G * dlam_s
        if self.boundary == "symmetric":
            sep_salt = sep_salt.at[0].set(0.0)
        return dict(current=FARADAY * i_over_f, link_current=link_current, link_salt=link_salt,
                    separator_salt=sep_salt, q=q, N=N, u=u, V=V, c=c, c_sep=c_sep)

    def rates(self, y, phi_m):
        """dy/dt (1/s) at state ``y``."""
        env = self.env()
        f = self.fluxes(y, phi_m)
        zero = jnp.zeros((1,))
        I_in = jnp.concatenate([jnp.reshape(f["current"], (1,)), f["link_current"]])
        I_out = jnp.concatenate([f["link_current"], zero])
        dq = I_in - I_out
        S_out = jnp.concatenate([f["separator_salt"][-1:], f["link_salt"]])
        S_in = jnp.concatenate([f["link_salt"], zero])
        dN = S_in - S_out
        p, x, xs = self._unpack(y)

        def qn(p_, x_):
            q, N, _, _ = self._storage(p_, x_, env)
            return q / FARADAY, N

        ones = jnp.ones_like(p)
        (_, _), (qp, Np) = jax.jvp(qn, (p, x), (ones, jnp.zeros_like(x)))
        (_, _), (qx, Nx) = jax.jvp(qn, (p, x), (jnp.zeros_like(p), ones))
        rq = dq / FARADAY
        if self.salt == "frozen":
            dp = rq / qp
            dx = jnp.zeros_like(x)
            dxs = jnp.zeros_like(xs)
        else:
            det = qp * Nx - qx * Np
            dp = (rq * Nx - qx * dN) / det
            dx = (qp * dN - Np * rq) / det
            _, vol = self._segments()
            c_sep = env.c0 * jnp.exp(xs)
            dS = f["separator_salt"][1:] - f["separator_salt"][:-1]
            dxs = dS / (2.0 * vol * c_sep)  # N_j = 2 c_j vol
        return jnp.concatenate([dp, dx, dxs])

    def totals(self, y):
        """``(stored charge (C/m^2), total salt (mol/m^2))`` of the electrode nodes plus the separator."""
        env = self.env()
        p, x, xs = self._unpack(y)
        q, N, _, _ = self._storage(p, x, env)
        _, vol = self._segments()
        return jnp.sum(q), jnp.sum(N) + jnp.sum(2.0 * vol * env.c0 * jnp.exp(xs))

    def parameters(self) -> dict:
        out = {"model": "SaltNCM", "n_slits": self.n_slits, "boundary": self.boundary, "salt": self.salt,
               "separator_nodes": self.separator_nodes, "storage": type(self.storage).__name__,
               "links": type(self.links).__name__}
        for name in ("separator_m", "concentration_M", "ion_diameter_nm", "diffusivity_m2_s", "temperature_K"):
            value = getattr(self, name)
            if not _is_traced(value):
                out[name] = float(np.asarray(value))
        for obj, prefix in ((self.storage, "storage_"), (self.links, "links_")):
            for name, value in vars(obj).items():
                if isinstance(value, (np.ndarray, float, int)) and not _is_traced(value):
                    arr = np.asarray(value, dtype=float)
                    out[prefix + name] = float(arr) if arr.ndim == 0 else arr.tolist()
        return out


# ----------------------------------------------------------------------------
# integration
# ----------------------------------------------------------------------------


def separator_volume_in_line(separator_m, separator_nodes):
    """Separator volume (m per projected area) the line's neutral nodes hold: ``L (1 - 1/(2m))``.

    The remaining ``L / (2m)`` is bulk electrolyte that storage laws put in node 0's neutral volume.
    """
    return float(separator_m) * (1.0 - 0.5 / int(separator_nodes))


class SaltSolution(eqx.Module):
    """Traceable result (SI)."""

    time: Float[Array, " t"]  # s
    cell_voltage: Float[Array, " t"]  # V
    current_density: Float[Array, " t"]  # A/m^2
    electrode_charge: Float[Array, " t"]  # C/m^2 = int I dt
    slit_charge: Float[Array, "t n+1"]  # C/m^2 electrode side
    slit_ion_content: Float[Array, "t n+1"]  # mol/m^2
    node_potential: Float[Array, "t n+1"]  # V
    node_concentration: Float[Array, "t n+1"]  # mol/L
    separator_concentration: Float[Array, "t m"]  # mol/L
    link_current: Float[Array, "t n"]  # A/m^2
    total_salt: Float[Array, " t"]  # mol/m^2, electrode nodes + separator


@eqx.filter_jit
def _solve(model: SaltNCM, drive, save_tau, rtol, atol, max_steps, adjoint):
    n_state = model.initial_state().shape[0]

    def vf(tau, z, args):
        y, _ = z[:-1], z[-1]
        r = model.rates(y, drive(tau))
        current = model.fluxes(y, drive(tau))["current"]
        return drive.duration_s * jnp.concatenate([r, jnp.reshape(current / _charge_unit(model), (1,))])

    controller = diffrax.ClipStepSizeController(
        diffrax.PIDController(rtol=rtol, atol=atol),
        jump_ts=drive.knots[1:-1] if drive.knots.shape[0] > 2 else None)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vf), diffrax.Kvaerno5(), t0=0.0, t1=1.0, dt0=None, y0=jnp.zeros((n_state + 1,)),
        saveat=diffrax.SaveAt(ts=save_tau), stepsize_controller=controller, max_steps=max_steps, adjoint=adjoint)

    def observe(tau, z):
        y = z[:-1]
        phi = drive(tau)
        f = model.fluxes(y, phi)
        _, salt = model.totals(y)
        return SaltSolution(time=tau * drive.duration_s, cell_voltage=2.0 * (drive.phi_initial + phi),
                            current_density=f["current"], electrode_charge=z[-1] * _charge_unit(model),
                            slit_charge=f["q"], slit_ion_content=f["N"], node_potential=f["V"],
                            node_concentration=f["c"] * 1e-3, separator_concentration=f["c_sep"] * 1e-3,
                            link_current=f["link_current"], total_salt=salt)

    return jax.vmap(observe)(save_tau, sol.ys)


def _charge_unit(model):
    """Charge scale (C/m^2) for the integrated-current state: F c0 x 1 nm."""
    return FARADAY * jnp.asarray(model.concentration_M) * 1e3 * 1e-9


def solve_salt(model: SaltNCM, protocol, *, points_per_cycle: int = 200, times=None, rtol: float = 1e-7,
               atol: float = 1e-9, max_steps: int = 20000, adjoint=None, **_ignored) -> SaltSolution:
    """Simulate ``model`` under a voltage-controlled jaxpnp protocol; a traceable :class:`SaltSolution`.

    Works under ``jax.grad`` (``adjoint`` defaults to ``diffrax.RecursiveCheckpointAdjoint``).
    ``times`` (s) default to ``protocol.sample_times(points_per_cycle)``. ``rtol``/``atol``
    act on the dimensionless state (storage coordinates, ln c/c0).
    """
    if not isinstance(model, SaltNCM):
        raise TypeError(f"model must be a circuits.SaltNCM, got {type(model).__name__}")
    if getattr(protocol, "controls", None) != "voltage":
        raise ValueError("SaltNCM runs voltage-controlled protocols (CV, PotentialStep) only")
    bad = set(_ignored) - {"method"}
    if bad:
        raise ValueError(f"unknown solver options for SaltNCM: {sorted(bad)}")
    if _ignored.get("method", "adaptive") != "adaptive":
        raise ValueError("SaltNCM has only method='adaptive'")
    with float64():
        drive = drive_from_protocol(protocol)
        if abs(float(drive.phi_initial)) > 0:
            raise ValueError("SaltNCM starts from the uncharged equilibrium: the protocol must start at 0 V")
        times = output_times(protocol, drive, points_per_cycle, times)
        duration = float(drive.duration_s)
        drive = jax.tree_util.tree_map(jnp.asarray, drive)
        adjoint = diffrax.RecursiveCheckpointAdjoint() if adjoint is None else adjoint
        return _solve(model, drive, jnp.asarray(np.clip(times / duration, 0.0, 1.0)),
                      jnp.asarray(rtol, dtype=jnp.float64), jnp.asarray(atol, dtype=jnp.float64),
                      int(max_steps), adjoint)


def salt_to_dataset(solution: SaltSolution, model: SaltNCM, protocol=None, **extra_attrs) -> xr.Dataset:
    """Pack a concrete :class:`SaltSolution` into the mPNP Dataset layout (SI, units in attrs)."""
    s = jax.tree_util.tree_map(np.asarray, solution)
    n = model.n_slits
    ds = xr.Dataset(
        data_vars={
            "cell_voltage": ("time", s.cell_voltage, {"units": "V"}),
            "electrode_potential": ("time", 0.5 * s.cell_voltage, {"units": "V"}),
            "current_density": ("time", s.current_density, {"units": "A/m^2"}),
            "electrode_charge": ("time", s.electrode_charge, {"units": "C/m^2"}),
            "slit_charge": (("time", "slit"), -s.slit_charge, {
                "units": "C/m^2", "long_name": "net ionic charge of each node (as the mPNP's slit_charge)"}),
            "slit_ion_content": (("time", "slit"), s.slit_ion_content, {"units": "mol/m^2"}),
            "node_potential": (("time", "slit"), s.node_potential, {"units": "V"}),
            "node_concentration": (("time", "slit"), s.node_concentration, {"units": "mol/L"}),
            "separator_concentration": (("time", "separator_node"), s.separator_concentration, {"units": "mol/L"}),
            "link_current": (("time", "link"), s.link_current, {"units": "A/m^2"}),
            "total_salt": ("time", s.total_salt, {"units": "mol/m^2"}),
        },
        coords={"time": ("time", s.time, {"units": "s"}), "slit": ("slit", np.arange(n + 1)),
                "link": ("link", np.arange(n)), "separator_node": ("separator_node", np.arange(model.separator_nodes))},
    )
    ds.attrs.update({k: (str(v) if isinstance(v, list) else v) for k, v in model.parameters().items()})
    if protocol is not None:
        ds.attrs["protocol"] = type(protocol).__name__
        for name, value in vars(protocol).items():
            if isinstance(value, (int, float, str, np.floating, np.integer)):
                ds.attrs[f"protocol_{name}"] = value if not isinstance(value, np.generic) else value.item()
    ds.attrs.update(extra_attrs)
    return ds


def simulate_salt(model: SaltNCM, protocol, *, points_per_cycle: int = 200, times=None, **options) -> xr.Dataset:
    """:func:`solve_salt` packed as an ``xarray.Dataset``."""
    sol = solve_salt(model, protocol, points_per_cycle=points_per_cycle, times=times, **options)
    return salt_to_dataset(sol, model, protocol)
