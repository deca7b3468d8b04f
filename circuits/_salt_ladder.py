"""The NCM ladder with a separator salt balance (``SaltLadder``): the default salt-aware model.

Topology (one electrode, per unit projected area, SI): the NCM of ``_ncm`` (the
open-space branch into node 0, links ``i`` from node ``i`` to ``i+1``, node
capacitors ``q_k(u_k)``), plus a line of ``m`` neutral separator nodes carrying the
bulk salt between the reservoir (concentration ``c0``) and the electrode:

* salt: the electrode nodes take up, as they charge, their equilibrium excess ion
  content ``w_k(q_k)`` (cations + anions above the uncharged state, mol/m^2, from
  ``jaxpnp.equilibrium``'s ``slit_ion_content`` against ``slit_charge``); with
  ``salt_release="none"`` (default) they keep it while they discharge within the run
  (the mPNP's total salt keeps rising through its discharge half at 1 V and the
  separator next to the electrode returns to about c0, not above it), with
  ``"equilibrium"`` they hold ``w_k(q_k)`` at all times. What they take up leaves the
  separator's last node; the separator's salt
  diffuses ambipolarly with the Bikerman activity (total-ion flux ``-2 D_s dPhi/dx``,
  ``Phi(c) = -ln(1 - nu c)/nu``, ``nu = 2 a^3 N_A``, ``D_s = 2 D+ D- / (D+ + D-)``), from
  the reservoir (``boundary="reservoir"``) or with none through the mid-plane
  (``"symmetric"``, the closed cell);
* charge: the open-space branch is the separator's bulk resistance ``R_open`` (at
  ``c0``) times ``c0 / c_end`` (``open_law="end"``: the concentration of the node next to
  the electrode, where the salt runs short) or ``mean(c0 / c_j)`` (``"series"``: the
  separator's series resistance). The links are the NCM's ``R_c (1 - gamma Q/Q_max)``,
  with ``Q`` held at ``Q_max`` beyond it (``saturate=True``: the law is not extrapolated
  past the largest charge of the data it was found on).

``separator="charged"`` (issue 10, the crowded 1 V case; default ``"neutral"``, the above): the
separator line carries both species, a coarse 1D Bikerman-PNP: per node ``c+`` and ``c-`` (states:
the salt as above plus ``c+ - c-``), Nernst-Planck fluxes between the nodes, the potential from
Poisson on the nodes between the reservoir (0 V, ``c0``) and the solution outside node 0's double
layer (``phi - U(q_0')``). The line's space charge (the depleted, current-carrying end next to the
electrode) carries salt by migration, which the neutral line cannot. The current is the ionic
current from the reservoir; ``R_open`` and ``open_law`` are then not used (the line's own
conductivity is the resistance), node 0's charge ``q_0'`` is the electrode charge there plus the
line's ionic charge (what node 0's own ions screen).

With ``salt="frozen"`` the concentrations stay at ``c0`` and the model is the NCM
(``gamma_open = 0``; exactly, tested). State: the NCM's link charges scaled by the
charge of the whole swing, then the separator nodes' salt (``SaltLadder.state_parts``). Integration: ROS2 (the NCM's
Rosenbrock scheme) on the graded grid of ``circuits.step_grid(method="fast")`` with a
dense Jacobian (LU): one compiled ``lax.scan``, differentiable. The Jacobian (``jax.jacfwd``, with
``f`` and ``df/dv`` in the same pass) is formed every ``jacobian_every`` steps (default 3) and kept in
between: ROS2 is a W-method, second order with any matrix, and the Jacobian is ~85% of a step of the
co-ion + charged-line model (28 unknowns; measured, see benchmarks/salt_model_speed.py). 4 stepped a slit's
co-ions past zero at 1 V rate/20 (NaN) before the co-ion logarithms were continued (``log_continued``);
with them it moves the NRMSE by <= 0.0004, but its speed is not measured, so 3 stays.
"""

from __future__ import annotations

from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jaxtyping import Array, Float

from jaxpnp import float64, protocol_attrs, to_cf
from jaxpnp._electrolyte import AVOGADRO, BOLTZMANN, ELEMENTARY_CHARGE, VACUUM_PERMITTIVITY

from ._drive import drive_from_protocol, output_times
from ._fast import flat_steps, graded_grid
from ._kernel import ROS2_GAMMA
from ._ncm import (DEFAULT_RESISTANCE_FLOOR, AbstractCapacitor, LinearCapacitor, TabulatedCapacitor, _as_param,
                   _check_n_slits, _check_param, _check_real, _is_traced)
from ._salt import check_bulk_packing, ion_diffusivities

COION_MODES = ("equilibrium", "dynamic")
SEPARATOR_LINES = ("neutral", "charged")
FARADAY = ELEMENTARY_CHARGE * AVOGADRO  # C/mol
SALT_LADDER_STEPS = dict(steps=1000, first_step=1e-5, growth=1.05, jacobian_every=3)  # the ROS2 grid (see step_grid)


# where the co-ion model's logarithms turn into their tangents (SaltLadder.ion_potentials): a content below
# CONTENT_FLOOR of the node's uncharged ions 2 c0 V, a vacancy fraction 1 - f below VACANCY_FLOOR
CONTENT_FLOOR = 1e-6
VACANCY_FLOOR = 1e-6


def log_continued(x, x_min):
    """``ln x`` for ``x >= x_min``, its tangent at ``x_min`` below (C1, increasing, finite for every ``x``)."""
    return jnp.where(x >= x_min, jnp.log(jnp.maximum(x, x_min)), jnp.log(x_min) + (x - x_min) / x_min)


def _table(a, xp, fp):
    """Row-wise piecewise-linear ``f(a)`` through ``(xp, fp)`` (rows: nodes), extended with the end
    segments' slopes; returns ``(value, slope)``. The segment index counts the inner knots at or
    below ``a`` (short tables: no search loop in the compiled step)."""
    i = jnp.sum(xp[:, 1:-1] <= a[:, None], axis=1)[:, None]
    x0, x1 = jnp.take_along_axis(xp, i, 1)[:, 0], jnp.take_along_axis(xp, i + 1, 1)[:, 0]
    f0, f1 = jnp.take_along_axis(fp, i, 1)[:, 0], jnp.take_along_axis(fp, i + 1, 1)[:, 0]
    slope = (f1 - f0) / (x1 - x0)
    return f0 + slope * (a - x0), slope


class SaltLadder(eqx.Module):
    """NCM ladder + separator salt line (see the module docstring).

    ``SaltLadder(n_slits, R_open, capacitances, R_c, gamma, q_max, uptake_charge, uptake_salt, *,
    separator_m, concentration_M=1.0, ion_diameter_nm=0.66, diffusivity_m2_s=2e-9,
    anion_diffusivity_m2_s=None, capacitor=None, separator_nodes=8, boundary="reservoir",
    salt="dynamic", open_law="end", saturate=True, salt_release="none", coions="equilibrium",
    separator="neutral", relative_permittivity=78.5)``

    ``R_open`` (ohm m^2): the open-space branch at ``c0``; ``capacitances`` (n+1,) F/m^2 and
    ``capacitor`` (a capacitor law, e.g. ``TabulatedCapacitor``; linear by default) as the
    NCM's; ``R_c`` (ohm m^2), ``gamma``, ``q_max`` (C/m^2): per link (n,) or scalars;
    ``uptake_charge`` / ``uptake_salt`` (n+1, P): each node's equilibrium charge (C/m^2,
    increasing from 0) and excess ion content there (mol/m^2, 0 at 0), even in the charge.
    """

    n_slits: int = eqx.field(static=True)
    R_open: Any = eqx.field(converter=_as_param)
    capacitances: Any = eqx.field(converter=_as_param)
    R_c: Any = eqx.field(converter=_as_param)
    gamma: Any = eqx.field(converter=_as_param)
    q_max: Any = eqx.field(converter=_as_param)
    uptake_charge: Any = eqx.field(converter=_as_param)
    uptake_salt: Any = eqx.field(converter=_as_param)
    separator_m: Any = eqx.field(converter=_as_param, kw_only=True)
    concentration_M: Any = eqx.field(converter=_as_param, default=1.0, kw_only=True)
    ion_diameter_nm: Any = eqx.field(converter=_as_param, default=0.66, kw_only=True)
    diffusivity_m2_s: Any = eqx.field(converter=_as_param, default=2e-9, kw_only=True)
    anion_diffusivity_m2_s: Any = eqx.field(converter=_as_param, default=None, kw_only=True)
    temperature_K: Any = eqx.field(converter=_as_param, default=298.15, kw_only=True)
    capacitor: AbstractCapacitor | None = eqx.field(default=None, kw_only=True)
    separator_nodes: int = eqx.field(static=True, default=8, kw_only=True)
    boundary: Literal["reservoir", "symmetric"] = eqx.field(static=True, default="reservoir", kw_only=True)
    salt: Literal["dynamic", "frozen"] = eqx.field(static=True, default="dynamic", kw_only=True)
    open_law: Literal["end", "series"] = eqx.field(static=True, default="end", kw_only=True)
    saturate: bool = eqx.field(static=True, default=True, kw_only=True)
    salt_release: Literal["equilibrium", "none"] = eqx.field(static=True, default="none", kw_only=True)
    resistance_floor: float = eqx.field(static=True, default=DEFAULT_RESISTANCE_FLOOR, kw_only=True)
    coions: Literal["equilibrium", "dynamic"] = eqx.field(static=True, default="equilibrium", kw_only=True)
    region_volume_m: Any = eqx.field(converter=_as_param, default=None, kw_only=True)
    link_law: Literal["paper", "content"] = eqx.field(static=True, default="paper", kw_only=True)
    link_share: Literal["min", "mean"] = eqx.field(static=True, default="min", kw_only=True)
    separator: Literal["neutral", "charged"] = eqx.field(static=True, default="neutral", kw_only=True)
    relative_permittivity: Any = eqx.field(converter=_as_param, default=78.5, kw_only=True)

    def __check_init__(self):
        n = _check_n_slits("SaltLadder", self.n_slits)
        _check_param("SaltLadder", "R_open", self.R_open, 1, positive=True)
        _check_param("SaltLadder", "capacitances", self.capacitances, n + 1, positive=True)
        _check_param("SaltLadder", "R_c", self.R_c, n, positive=True)
        _check_param("SaltLadder", "gamma", self.gamma, n, positive=False, upper=1.0)
        _check_param("SaltLadder", "q_max", self.q_max, n, positive=True)
        for name in ("separator_m", "concentration_M", "ion_diameter_nm", "diffusivity_m2_s", "temperature_K"):
            _check_param("SaltLadder", name, getattr(self, name), 1, positive=True)
        _check_param("SaltLadder", "anion_diffusivity_m2_s", self.anion_diffusivity_m2_s, 1, positive=True)
        if isinstance(self.separator_nodes, bool) or not isinstance(self.separator_nodes, int) \
                or self.separator_nodes < 1:
            raise ValueError(f"SaltLadder.separator_nodes must be an integer >= 1, got {self.separator_nodes!r}")
        for name, allowed in (("boundary", ("reservoir", "symmetric")), ("salt", ("dynamic", "frozen")),
                              ("open_law", ("end", "series")), ("salt_release", ("equilibrium", "none")),
                              ("coions", COION_MODES), ("link_law", ("paper", "content")),
                              ("link_share", ("min", "mean")), ("separator", SEPARATOR_LINES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"SaltLadder.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.capacitor is not None and not isinstance(self.capacitor, AbstractCapacitor):
            raise ValueError(f"SaltLadder.capacitor must be a circuits capacitor law, got {type(self.capacitor).__name__}")
        _check_real("SaltLadder", "uptake_charge", self.uptake_charge)
        _check_real("SaltLadder", "uptake_salt", self.uptake_salt)
        if not _is_traced(self.uptake_charge) and not _is_traced(self.uptake_salt):
            qc, ws = np.asarray(self.uptake_charge, float), np.asarray(self.uptake_salt, float)
            if qc.ndim != 2 or qc.shape[0] != n + 1 or qc.shape != ws.shape or qc.shape[1] < 2:
                raise ValueError(f"SaltLadder: uptake_charge and uptake_salt must both be ({n + 1}, P >= 2), "
                                 f"got {qc.shape} and {ws.shape}")
            if not (np.all(np.isfinite(qc)) and np.all(np.isfinite(ws))):
                raise ValueError("SaltLadder: the uptake tables must be finite")
            if np.any(qc[:, 0] != 0) or np.any(ws[:, 0] != 0) or np.any(np.diff(qc, axis=1) <= 0):
                raise ValueError("SaltLadder: uptake tables start at (0, 0) and the charges increase strictly")
        check_bulk_packing("SaltLadder", self.concentration_M, self.ion_diameter_nm)
        if self.coions == "dynamic":
            if self.region_volume_m is None:
                raise ValueError("SaltLadder(coions='dynamic') needs region_volume_m (n+1,) m: each node's electrolyte volume "
                                 "per projected area (N(0) / (2 c0) of the equilibrium data)")
            _check_param("SaltLadder", "region_volume_m", self.region_volume_m, n + 1, positive=True)
        if self.separator == "charged" and (self.boundary != "reservoir" or self.salt != "dynamic"):
            raise ValueError("SaltLadder(separator='charged') needs boundary='reservoir' and salt='dynamic'")
        _check_param("SaltLadder", "relative_permittivity", self.relative_permittivity, 1, positive=True)
        if self.coions != "dynamic" and self.link_law == "content":
            raise ValueError("SaltLadder(link_law='content') needs coions='dynamic' (the species' contents)")

    # ---- the pieces ------------------------------------------------------
    def capacitor_law(self) -> AbstractCapacitor:
        return LinearCapacitor() if self.capacitor is None else self.capacitor

    def _c0(self):
        return jnp.asarray(self.concentration_M) * 1e3  # mol/m^3

    def _diffusivities(self):
        return ion_diffusivities(self.diffusivity_m2_s, self.anion_diffusivity_m2_s)

    def salt_diffusivity(self):
        """Ambipolar salt diffusivity ``2 D+ D- / (D+ + D-)`` (m^2/s)."""
        dp, dm = self._diffusivities()
        return 2.0 * dp * dm / (dp + dm)

    def _activity_potential(self, c):
        """``Phi(c) = -ln(1 - nu c) / nu`` (mol/m^3): the total-ion flux is ``-2 D_s dPhi/dx`` (Bikerman bulk)."""
        nu = 2.0 * (jnp.asarray(self.ion_diameter_nm) * 1e-9) ** 3 * AVOGADRO
        return -jnp.log1p(-nu * c) / nu

    def node_voltage(self, q):
        """Double-layer voltage (V, (n+1,)) of every node at charges ``q`` (C/m^2): the capacitor law's.

        A :class:`TabulatedCapacitor` is evaluated here by its own rule (odd, piecewise linear, end
        slopes beyond the table) with a knot count instead of ``jnp.interp``'s search: the same
        values, a much smaller compiled step (it sits inside the Jacobian of every ROS2 step)."""
        cap = jnp.broadcast_to(jnp.asarray(self.capacitances), q.shape)
        law = self.capacitor_law()
        if not isinstance(law, TabulatedCapacitor):
            return law.voltage(q, cap)
        xp = jnp.broadcast_to(jnp.asarray(law.shape_V), (q.shape[0], jnp.asarray(law.voltage_V).shape[0]))
        fp = jnp.broadcast_to(jnp.asarray(law.voltage_V), xp.shape)
        value, _ = _table(jnp.abs(q / cap), xp, fp)
        return jnp.sign(q) * value

    def uptake_and_slope(self, q):
        """Excess ion content (mol/m^2, (n+1,)) of the nodes at node charges ``q`` (C/m^2), even in ``q``,
        and its derivative ``dw/dq`` (mol/C): piecewise linear in the table, extended with the end slopes."""
        value, slope = _table(jnp.abs(q), jnp.asarray(self.uptake_charge), jnp.asarray(self.uptake_salt))
        return value, slope * jnp.sign(q)

    def uptake(self, q):
        """Excess ion content (mol/m^2, (n+1,)) of the nodes at node charges ``q`` (C/m^2): even in ``q``."""
        return self.uptake_and_slope(q)[0]

    def link_resistance(self, link_charge):
        """``R_c (1 - gamma Q/Q_max)`` (ohm m^2), ``Q`` held at ``Q_max`` beyond it when ``saturate``, floored."""
        q_max = jnp.asarray(self.q_max)
        Q = jnp.minimum(link_charge, q_max) if self.saturate else link_charge
        return jnp.asarray(self.R_c) * jnp.maximum(1.0 - jnp.asarray(self.gamma) * Q / q_max, self.resistance_floor)

    def open_factor(self, c):
        """Open-space resistance relative to ``R_open`` for separator concentrations ``c`` (mol/m^3, (m,))."""
        r = self._c0() / c
        return r[-1] if self.open_law == "end" else jnp.mean(r)

    def charge_unit(self, swing_V):
        """State scale (C/m^2): the whole ladder's equilibrium charge at ``swing_V``."""
        cap = jnp.broadcast_to(jnp.asarray(self.capacitances), (self.n_slits + 1,))
        return jnp.sum(self.capacitor_law().charge(jnp.full((self.n_slits + 1,), swing_V), cap))

    # ---- the circuit at one state -----------------------------------------
    def _content_unit(self):
        """Salt state scale (mol/m^2): the ions of one separator node at c0, ``2 c0 L / m``."""
        return 2.0 * self._c0() * jnp.asarray(self.separator_m) / self.separator_nodes

    def _layout(self):
        """Start indices of the state's parts: separator salt, the tracked uptake (``salt_release="none"``), co-ions."""
        n1, m = self.n_slits + 1, self.separator_nodes
        extra = 1 if (self.salt_release == "none" and self.salt == "dynamic") else 0
        return n1, n1 + m, n1 + m + extra

    def _cation_unit(self):
        """Co-ion state scale (mol/m^2, (n+1,)): each node's cations at 0 V, ``c0 V_k``."""
        return self._c0() * jnp.asarray(self.region_volume_m)

    def state_parts(self, y, scale):
        """``(X (n+1,) C/m^2 passed charges, q (n+1,) node charges, c (m,) mol/m^3)`` of a scaled state.

        Salt state: each separator node's ions over ``2 c0 L/m``, the last one's plus the nodes' excess
        ions (``electrode_salt``; so every salt flux is a difference of state components: the ROS2
        steps conserve the salt exactly, a linear invariant)."""
        n1 = self.n_slits + 1
        X = scale * y[:n1]
        q = jnp.concatenate([X[:-1] - X[1:], X[-1:]])
        if self.separator == "charged":
            # node 0 holds what its own ions screen: the separator's space charge screens the rest
            q = q.at[0].add(self.separator_space_charge(y))
        if self.salt == "frozen":
            return X, q, jnp.full((self.separator_nodes,), 1.0) * self._c0()
        z = y[n1:n1 + self.separator_nodes]
        z = z.at[-1].add(-self.electrode_salt(y, q))
        # a floor keeps c0/c finite if a long step overshoots; the current it throttles then refills it
        return X, q, self._c0() * jnp.maximum(z + 1.0, 1e-6)

    def _charge_start(self):
        """Start index of the separator's net-charge states (``separator="charged"``): after everything else."""
        _, _, k = self._layout()
        return k + (self.n_slits if self.coions == "dynamic" else 0)

    def separator_net_charge(self, y):
        """Separator nodes' ``c+ - c-`` (mol/m^3, (m,)); zeros for the neutral line."""
        if self.separator != "charged":
            return jnp.zeros((self.separator_nodes,))
        k = self._charge_start()
        return self._c0() * 2.0 * y[k:k + self.separator_nodes]

    def separator_space_charge(self, y):
        """The separator's ionic charge (C/m^2): ``F sum (c+ - c-) dx``."""
        dx = jnp.asarray(self.separator_m) / self.separator_nodes
        return FARADAY * dx * jnp.sum(self.separator_net_charge(y))

    def _line_potential(self, charge, psi_end):
        """Potential (V, (m,)) of the charged line's nodes holding ``charge`` (C/m^2, (m,)), 0 V half a cell
        before node 0, ``psi_end`` half a cell after the last: the discrete Poisson equation (faces of
        permittivity over length ``eps/dx``, the two end faces ``2 eps/dx``) solved in closed form. The
        nodes are a chain of series capacitances between two fixed potentials: with ``s_i`` the
        cumulative inverse face capacitance from the reservoir to node ``i`` and ``S`` the whole chain's,
        ``psi_i = sum_j s_min(i,j) (S - s_max(i,j)) / S charge_j + psi_end s_i / S``. No linear solve in
        the step (it was one LU per right-hand side and per Jacobian column)."""
        m = self.separator_nodes
        dx = jnp.asarray(self.separator_m) / m
        eps = jnp.asarray(self.relative_permittivity) * VACUUM_PERMITTIVITY
        faces = jnp.concatenate([jnp.full((1,), 0.5), jnp.ones((m - 1,)), jnp.full((1,), 0.5)]) * dx / eps
        s = jnp.cumsum(faces)[:-1]
        S = jnp.sum(faces)
        green = jnp.minimum(s[:, None], s[None, :]) * (S - jnp.maximum(s[:, None], s[None, :])) / S
        return green @ charge + psi_end * s / S

    def _charged_line(self, c, rho, phi, u0):
        """Nernst-Planck fluxes of the charged separator line (``separator="charged"``).

        ``c`` (m,) mean ion concentration ``(c+ + c-)/2``, ``rho`` (m,) ``c+ - c-`` (mol/m^3); the potential
        (V) from Poisson on the nodes with the reservoir (0 V, c0) a half cell before node 0 and the solution
        outside node 0's double layer (``phi - u0``) a half cell after the last node. Bikerman
        electrochemical potentials, face concentrations the log-mean of the two sides (pure diffusion
        exact). Returns ``(Jp (m,), Jn (m,) mol/m^2/s through faces 0..m-1 towards the electrode,
        I_end A/m^2 into node 0: migration over the last half cell, the model's current sign)``."""
        m = self.separator_nodes
        dx = jnp.asarray(self.separator_m) / m
        c0 = self._c0()
        floor = 1e-6 * c0
        cp, cn = jnp.maximum(c + 0.5 * rho, floor), jnp.maximum(c - 0.5 * rho, floor)
        eps = jnp.asarray(self.relative_permittivity) * VACUUM_PERMITTIVITY
        vt = BOLTZMANN * jnp.asarray(self.temperature_K) / ELEMENTARY_CHARGE
        psi_end = phi - u0
        psi = self._line_potential(FARADAY * rho * dx, psi_end)
        a3 = (jnp.asarray(self.ion_diameter_nm) * 1e-9) ** 3 * AVOGADRO
        vac = -jnp.log1p(-a3 * (cp + cn))
        mup = jnp.concatenate([jnp.reshape(jnp.log(c0) - jnp.log1p(-2 * a3 * c0), (1,)), jnp.log(cp) + psi / vt + vac])
        mun = jnp.concatenate([jnp.reshape(jnp.log(c0) - jnp.log1p(-2 * a3 * c0), (1,)), jnp.log(cn) - psi / vt + vac])
        lp = jnp.log(jnp.concatenate([jnp.reshape(c0, (1,)), cp]))
        ln_ = jnp.log(jnp.concatenate([jnp.reshape(c0, (1,)), cn]))

        def logmean(la, lb):  # (e^lb - e^la) / (lb - la), smooth through lb = la
            x = lb - la
            small = jnp.abs(x) < 1e-6
            xs = jnp.where(small, 1.0, x)
            return jnp.exp(la) * jnp.where(small, 1.0 + 0.5 * x, jnp.expm1(xs) / xs)

        gaps = jnp.concatenate([jnp.full((1,), 0.5), jnp.ones((m - 1,))]) * dx
        dp, dm = self._diffusivities()
        Jp = -dp * logmean(lp[:-1], lp[1:]) * (mup[1:] - mup[:-1]) / gaps
        Jn = -dm * logmean(ln_[:-1], ln_[1:]) * (mun[1:] - mun[:-1]) / gaps
        I_end = FARADAY * (dp * cp[-1] + dm * cn[-1]) / vt * (psi_end - psi[-1]) / (0.5 * dx)
        return Jp, Jn, I_end, psi

    def cations(self, y):
        """Cation content (mol/m^2, (n,)) of the slit nodes 1..n (``coions="dynamic"``)."""
        _, _, k = self._layout()
        return self._cation_unit()[1:] * (1.0 + y[k:k + self.n_slits])

    def electrode_salt(self, y, q):
        """The nodes' excess ions over ``2 c0 L/m``. Node 0 (and, with ``coions="equilibrium"``, every node):
        ``w_k(q_k)`` (``salt_release="equilibrium"``) or the state that only grows (``"none"``: what a node
        took up stays in it within the run). With ``coions="dynamic"`` the slits' ions are their own:
        ``q_k/F + 2 (p_k - p_k(0))``."""
        _, k_taken, _ = self._layout()
        if self.coions == "equilibrium":
            return y[k_taken] if self.salt_release == "none" else jnp.sum(self.uptake(q)) / self._content_unit()
        node0 = y[k_taken] if self.salt_release == "none" else self.uptake(q)[0] / self._content_unit()
        slits = jnp.sum(q[1:] / FARADAY + 2.0 * (self.cations(y) - self._cation_unit()[1:]))
        return node0 + slits / self._content_unit()

    def ion_potentials(self, q, p):
        """``(u_minus, u_plus, cations, anions)`` (n+1,) of the nodes at charges ``q`` (C/m^2) and slit cations ``p``
        (mol/m^2, (n,); node 0 holds its equilibrium co-ions).

        ``u_-/u_+`` (V): the double-layer voltage the anions / cations of the node see, ``U(q)`` of the
        capacitor plus the uniform-slit Bikerman excess of the node's ion contents over the equilibrium ones
        at the same charge (``p_eq(q) = (N_eq(q) - q/F) / 2``, ``N_eq = 2 c0 V + w(q)``):
        ``u_- = U + (kT/e) [ln(n/n_eq) - ln((1-f)/(1-f_eq))]``, ``u_+ = U - (kT/e) [ln(p/p_eq) - ln((1-f)/(1-f_eq))]``,
        ``f = a^3 N_A (p + n) / V`` (the packing: it diverges as the co-ions and counter-ions fill the slit).

        Each logarithm is continued below a small argument by its tangent (``log_continued``: contents below
        ``CONTENT_FLOOR`` of ``2 c0 V``, vacancies below ``VACANCY_FLOOR``), the state and its equilibrium
        reference alike: a long implicit step that overshoots a barrier (co-ions of a packed slit at a slow
        scan: equilibrium ``p/2c0V ~ 2e-9``, vacancy ``5e-5`` at 0.5 V) keeps a restoring force (a Fickian
        co-ion flux, a linear steric push) instead of the zero slope of a clamp, which let the state leave
        the physical domain and the separator's Bikerman log turn NaN. The returned contents (the links'
        conductance weights) are the contents floored there, never negative."""
        V = jnp.asarray(self.region_volume_m)
        N0 = 2.0 * self._c0() * V
        lo = CONTENT_FLOOR * N0
        w = self.uptake(q)
        p_eq = 0.5 * (w + N0 - q / FARADAY)
        n_eq = p_eq + q / FARADAY
        cat = jnp.concatenate([p_eq[:1], p])
        an = cat + q / FARADAY
        cap = V / ((jnp.asarray(self.ion_diameter_nm) * 1e-9) ** 3 * AVOGADRO)  # close packing, mol/m^2
        dvac = (log_continued(1.0 - (cat + an) / cap, VACANCY_FLOOR)
                - log_continued(1.0 - (p_eq + n_eq) / cap, VACANCY_FLOOR))
        vt = BOLTZMANN * jnp.asarray(self.temperature_K) / ELEMENTARY_CHARGE
        u = self.node_voltage(q)
        return (u + vt * (log_continued(an, lo) - log_continued(n_eq, lo) - dvac),
                u - vt * (log_continued(cat, lo) - log_continued(p_eq, lo) - dvac),
                jnp.maximum(cat, lo), jnp.maximum(an, lo))

    def fluxes(self, y, phi, scale):
        """dict: ``current`` (A/m^2), ``link_current`` (n,), ``node_charge``, ``node_voltage`` (n+1,) (V, the
        double layers), ``link_resistance`` (n,), ``open_resistance``, ``c_sep`` (m,), ``reservoir_flux``
        (mol/m^2/s, total ions into the separator); with ``coions="dynamic"`` also ``cation_current`` (n,)
        (A/m^2, the cations' part of the link current) and ``cations`` (n+1,) (mol/m^2)."""
        X, q, c = self.state_parts(y, scale)
        u = self.node_voltage(q)
        R = self.link_resistance(X[1:])
        extra = {}
        if self.coions == "dynamic":
            # each species crosses a link by its own electrochemical potential difference; the link's
            # conductance is shared by the species' concentrations in the two nodes it joins
            um, up, cat, an = self.ion_potentials(q, self.cations(y))
            V = jnp.asarray(self.region_volume_m)
            cp, cn = cat / V, an / V
            if self.link_law == "content":  # each species conducts with its mean concentration: R_c at c0 each
                gp = 0.5 * (cp[:-1] + cp[1:]) / (2.0 * self._c0() * jnp.asarray(self.R_c))
                gn = 0.5 * (cn[:-1] + cn[1:]) / (2.0 * self._c0() * jnp.asarray(self.R_c))
                R = 1.0 / (gp + gn)
            else:
                share = cp / (cp + cn)
                if self.link_share == "min":  # the co-ion share of the more depleted node
                    t = jnp.minimum(share[:-1], share[1:])
                else:  # "mean": of the two nodes' concentrations
                    t = (cp[:-1] + cp[1:]) / (cp[:-1] + cp[1:] + cn[:-1] + cn[1:])
                gp, gn = t / R, (1.0 - t) / R
            Ip = gp * (up[:-1] - up[1:])
            J = gn * (um[:-1] - um[1:]) + Ip
            extra = dict(cation_current=Ip, cations=jnp.concatenate([cat[:1], self.cations(y)]))
        else:
            J = (u[:-1] - u[1:]) / R
        R0 = jnp.asarray(self.R_open) * (1.0 if self.salt == "frozen" else self.open_factor(c))
        m = self.separator_nodes
        if self.separator == "charged":
            Jp, Jn, I_end, psi = self._charged_line(c, self.separator_net_charge(y), phi, u[0])
            current = FARADAY * (Jn[0] - Jp[0])  # the ionic current from the reservoir: the electrode's
            inflow = Jp + Jn
            extra.update(_Jp=Jp, _Jn=Jn, _I_end=I_end, separator_potential=psi)
            return dict(current=current, link_current=J, node_charge=q, node_voltage=u, link_resistance=R,
                        open_resistance=R0, c_sep=c, reservoir_flux=inflow[0], _inflow=inflow,
                        _dX=jnp.concatenate([current[None], J]), **extra)
        current = (phi - u[0]) / R0
        dx = jnp.asarray(self.separator_m) / m
        Phi = self._activity_potential(jnp.concatenate([jnp.reshape(self._c0(), (1,)), c]))
        gaps = jnp.concatenate([jnp.full((1,), 0.5), jnp.ones((m - 1,))]) * dx
        inflow = 2.0 * self.salt_diffusivity() * (Phi[:-1] - Phi[1:]) / gaps  # total ions into node j
        if self.boundary == "symmetric":
            inflow = inflow.at[0].set(0.0)
        return dict(current=current, link_current=J, node_charge=q, node_voltage=u, link_resistance=R,
                    open_resistance=R0, c_sep=c, reservoir_flux=inflow[0], _inflow=inflow,
                    _dX=jnp.concatenate([current[None], J]), **extra)

    def rates(self, y, phi, scale, duration):
        """d y / d tau (scaled state, tau = t / duration)."""
        f = self.fluxes(y, phi, scale)
        dX = f["_dX"] / scale
        parts = [dX]
        if self.salt == "frozen":
            parts.append(jnp.zeros((self.separator_nodes,)))
        else:
            inflow = f["_inflow"]
            # the last node's state includes the electrode's excess ions: no flux leaves it
            outflow = jnp.concatenate([inflow[1:], jnp.zeros((1,))])
            parts.append((inflow - outflow) / self._content_unit())
            if self.salt_release == "none":
                dq = jnp.concatenate([dX[:-1] - dX[1:], dX[-1:]]) * scale
                if self.separator == "charged":  # node 0's screened charge: what reaches it from the line
                    dq = dq.at[0].add(f["_I_end"] - f["current"])
                _, q, _ = self.state_parts(y, scale)
                up = jnp.maximum(self.uptake_and_slope(q)[1] * dq, 0.0)
                # with co-ion states the slits' ions are their own: only node 0 is tracked here
                taken = up[0] if self.coions == "dynamic" else jnp.sum(up)
                parts.append(jnp.reshape(taken / self._content_unit(), (1,)))
        if self.coions == "dynamic":
            # cations leave node k through link k-1 and arrive from node k+1 through link k
            Ip = f["cation_current"]
            dp = (jnp.concatenate([Ip[1:], jnp.zeros((1,))]) - Ip) / FARADAY
            parts.append(dp / self._cation_unit()[1:])
        if self.separator == "charged":
            # c+ - c- of each node: in through its reservoir-side face, out through the next; the last node's
            # ions leave to node 0 as the current I_end (the salt the nodes take is in the salt states)
            net = f["_Jp"] - f["_Jn"]
            out = jnp.concatenate([net[1:], -jnp.reshape(f["_I_end"], (1,)) / FARADAY])
            parts.append((net - out) / self._content_unit())
        return duration * jnp.concatenate(parts)

    def total_salt(self, y, scale):
        """Excess ions of the nodes plus the separator's ions (mol/m^2)."""
        return self._content_unit() * jnp.sum(y[self.n_slits + 1:self.n_slits + 1 + self.separator_nodes] + 1.0)

    def initial_state(self):
        _, _, k = self._layout()
        return jnp.zeros((self._charge_start() + (self.separator_nodes if self.separator == "charged" else 0),))

    def parameters(self) -> dict:
        out = {"model": "SaltLadder", "n_slits": self.n_slits, "separator_nodes": self.separator_nodes,
               "boundary": self.boundary, "salt": self.salt, "open_law": self.open_law, "saturate": int(self.saturate),
               "salt_release": self.salt_release, "coions": self.coions,
               "link_law": self.link_law, "separator": self.separator}
        for name in ("R_open", "capacitances", "R_c", "gamma", "q_max", "separator_m", "concentration_M",
                     "ion_diameter_nm", "diffusivity_m2_s", "temperature_K", "region_volume_m", "relative_permittivity"):
            value = getattr(self, name)
            if value is not None and not _is_traced(value):
                arr = np.asarray(value, dtype=float)
                out[name] = float(arr) if arr.ndim == 0 else arr.tolist()
        out["capacitor"] = type(self.capacitor_law()).__name__
        return out


class SaltLadderSolution(eqx.Module):
    """Traceable result (SI)."""

    time: Float[Array, " t"]  # s
    cell_voltage: Float[Array, " t"]  # V
    current_density: Float[Array, " t"]  # A/m^2
    electrode_charge: Float[Array, " t"]  # C/m^2
    slit_charge: Float[Array, "t n+1"]  # C/m^2 electrode side, node 0 = open space
    link_current: Float[Array, "t n"]  # A/m^2
    open_resistance: Float[Array, " t"]  # ohm m^2
    separator_concentration: Float[Array, "t m"]  # mol/L, reservoir side first
    total_salt: Float[Array, " t"]  # mol/m^2: node excess + separator
    reservoir_flux: Float[Array, " t"]  # mol/m^2/s into the separator
    cation_content: Float[Array, "t n+1"]  # mol/m^2 per node (coions="dynamic"; NaN otherwise)
    separator_net_charge: Float[Array, "t m"]  # mol/L, c+ - c- of the separator nodes (0 for the neutral line)


def _value_and_jacobian(fun, y, v):
    """``(f, df/dy, df/dv)`` at ``(y, v)`` from one forward-mode pass (the forcing's derivative is one more
    tangent, not a pass of its own)."""
    def value_twice(y, v):
        f = fun(y, v)
        return f, f

    (J, dfdv), f = jax.jacfwd(value_twice, argnums=(0, 1), has_aux=True)(y, v)
    return f, J, dfdv


def _ros2_dense(fun, y, h, v0, v1, f0, J, dfdv):
    """One ROS2 step (as ``_kernel.ros2_step``) with a dense matrix ``J`` and LU; ``f0 = fun(y, v0)``.

    ROS2 is a W-method: second order for any ``J`` (Verwer et al. 1999), so ``J`` and ``dfdv`` may be
    those of an earlier step; its L-stability is the exact Jacobian's."""
    gh = ROS2_GAMMA * h
    ft0 = ROS2_GAMMA * dfdv * (v1 - v0)  # gh df/dv (v1 - v0)/h: also for a zero-length (padding) step
    lu = jax.scipy.linalg.lu_factor(jnp.eye(y.shape[0], dtype=y.dtype) - gh * J)
    k1 = jax.scipy.linalg.lu_solve(lu, f0 + ft0)
    f1 = fun(y + h * k1, v1)
    k2 = jax.scipy.linalg.lu_solve(lu, f1 - 2.0 * k1 - ft0)
    return y + h * (1.5 * k1 + 0.5 * k2)


@eqx.filter_jit
def _solve(model: SaltLadder, drive, grid, out_index, save_tau, jacobian_every: int = 1):
    scale = model.charge_unit(drive.swing)
    duration = drive.duration_s
    n_out = save_tau.shape[0]

    def fun(y, v):
        return model.rates(y, v, scale, duration)

    # one flat scan over blocks of ``jacobian_every`` steps (one compiled body), the outputs written into a
    # buffer: the Jacobian is formed at each block's first step and kept for the others (the grid is padded
    # with zero-length steps, which leave the state as it is, to whole blocks)
    K = jacobian_every

    def body(carry, block):
        y, buf = carry
        tau0, tau1, v0, v1, k = block
        f0, J, dfdv = _value_and_jacobian(fun, y, v0[0])
        for i in range(K):
            if i:
                f0 = fun(y, v0[i])
            y = _ros2_dense(fun, y, tau1[i] - tau0[i], v0[i], v1[i], f0, J, dfdv)
            buf = jax.lax.dynamic_update_index_in_dim(buf, y, k[i], 0)
        return (y, buf), None

    y0 = model.initial_state()
    buf = jnp.zeros((n_out + 1,) + y0.shape).at[0].set(y0)
    v0, v1 = drive.segment_value(grid[:-1], grid[1:])  # the forcing at every step, outside the step body
    pad = -(grid.shape[0] - 1) % K
    steps = [jnp.concatenate([a, jnp.full((pad,), end, a.dtype)])
             for a, end in ((grid[:-1], grid[-1]), (grid[1:], grid[-1]), (v0, v1[-1]), (v1, v1[-1]))]
    steps.append(jnp.concatenate([out_index, jnp.full((pad,), n_out, out_index.dtype)]))  # padding: the spare slot
    (_, buf), _ = jax.lax.scan(body, (y0, buf), tuple(a.reshape(-1, K) for a in steps))
    ys = buf[:n_out]

    def observe(tau, y):
        phi = drive(tau)
        f = model.fluxes(y, phi, scale)
        X, q, c = model.state_parts(y, scale)
        return SaltLadderSolution(time=tau * duration, cell_voltage=2.0 * (drive.phi_initial + phi),
                                  current_density=f["current"], electrode_charge=X[0], slit_charge=q,
                                  link_current=f["link_current"], open_resistance=f["open_resistance"],
                                  separator_concentration=c * 1e-3, total_salt=model.total_salt(y, scale),
                                  reservoir_flux=f["reservoir_flux"],
                                  cation_content=f.get("cations", jnp.full(q.shape, jnp.nan)),
                                  separator_net_charge=model.separator_net_charge(y) * 1e-3)

    return jax.vmap(observe)(save_tau, ys)


def solve_salt_ladder(model: SaltLadder, protocol, *, points_per_cycle: int = 200, times=None,
                      steps: int = SALT_LADDER_STEPS["steps"], first_step: float = SALT_LADDER_STEPS["first_step"],
                      growth: float = SALT_LADDER_STEPS["growth"],
                      jacobian_every: int = SALT_LADDER_STEPS["jacobian_every"], **_ignored) -> SaltLadderSolution:
    """Simulate a :class:`SaltLadder` under a voltage-controlled protocol starting at 0 V.

    ROS2 on the graded grid of ``circuits.step_grid(method="fast", steps=..., first_step=..., growth=...)``
    (defaults ``SALT_LADDER_STEPS``), the Jacobian formed every ``jacobian_every`` steps and reused in
    between (ROS2 stays second order); works under ``jax.grad`` / ``jax.jit`` over the model. ``method`` is accepted and ignored (one integrator); other options raise.
    """
    if not isinstance(model, SaltLadder):
        raise TypeError(f"model must be a circuits.SaltLadder, got {type(model).__name__}")
    if getattr(protocol, "controls", None) != "voltage":
        raise ValueError("SaltLadder runs voltage-controlled protocols (CV, PotentialStep) only")
    bad = set(_ignored) - {"method"}
    if bad:
        raise ValueError(f"unknown solver options for SaltLadder: {sorted(bad)}")
    if int(steps) < 2 or not (0 < first_step <= 1) or not growth >= 1:
        raise ValueError("SaltLadder: need steps >= 2, 0 < first_step <= 1, growth >= 1")
    if isinstance(jacobian_every, bool) or not isinstance(jacobian_every, (int, np.integer)) or jacobian_every < 1:
        raise ValueError(f"SaltLadder: jacobian_every must be an integer >= 1, got {jacobian_every!r}")
    with float64():
        drive = drive_from_protocol(protocol)
        if abs(float(drive.phi_initial)) > 0:
            raise ValueError("SaltLadder starts from the uncharged equilibrium: the protocol must start at 0 V")
        times = output_times(protocol, drive, points_per_cycle, times)
        save_tau = np.clip(times / float(drive.duration_s), 0.0, 1.0)
        grid, save_index = graded_grid(np.asarray(drive.knots), save_tau, int(steps), float(first_step), float(growth))
        grid, out_index, _ = flat_steps(grid, save_index)
        drive = jax.tree_util.tree_map(jnp.asarray, drive)
        return _solve(model, drive, jnp.asarray(grid), jnp.asarray(out_index), jnp.asarray(grid[save_index]),
                      int(jacobian_every))


def salt_ladder_to_dataset(solution: SaltLadderSolution, model: SaltLadder, protocol=None, **extra_attrs) -> xr.Dataset:
    """Pack a concrete :class:`SaltLadderSolution` like ``circuits.to_dataset`` (SI, CF units)."""
    s = jax.tree_util.tree_map(np.asarray, solution)
    n = model.n_slits
    ds = xr.Dataset(
        data_vars={
            "cell_voltage": ("time", s.cell_voltage, {"units": "V"}),
            "current_density": ("time", s.current_density, {"units": "A/m^2"}),
            "electrode_charge": ("time", s.electrode_charge, {"units": "C/m^2"}),
            "slit_charge": (("time", "slit"), s.slit_charge, {
                "units": "C/m^2", "long_name": "electrode-side charge of each node (0 = open space)"}),
            "link_current": (("time", "link"), s.link_current, {"units": "A/m^2"}),
            "open_resistance": ("time", s.open_resistance, {"units": "ohm m^2"}),
            "separator_concentration": (("time", "separator_node"), s.separator_concentration, {"units": "mol/L"}),
            "total_salt": ("time", s.total_salt, {"units": "mol/m^2",
                                                  "long_name": "excess ions of the nodes plus the separator's ions"}),
            "reservoir_flux": ("time", s.reservoir_flux, {"units": "mol/m^2/s"}),
            "separator_net_charge": (("time", "separator_node"), s.separator_net_charge, {
                "units": "mol/L", "long_name": "c+ - c- of the separator nodes (separator='charged'; 0 otherwise)"}),
            "cation_content": (("time", "slit"), s.cation_content, {
                "units": "mol/m^2", "long_name": "cations of each node (coions='dynamic'; node 0 at equilibrium)"}),
        },
        coords={"time": ("time", s.time, {"units": "s"}), "slit": ("slit", np.arange(n + 1)),
                "link": ("link", np.arange(n)), "separator_node": ("separator_node", np.arange(model.separator_nodes))},
    )
    ds.attrs.update({k: (str(v) if isinstance(v, list) else v) for k, v in model.parameters().items()})
    if protocol is not None:
        ds.attrs.update(protocol_attrs(protocol))
    ds.attrs.update(extra_attrs)
    return to_cf(ds)


def simulate_salt_ladder(model: SaltLadder, protocol, *, points_per_cycle: int = 200, times=None,
                         **options) -> xr.Dataset:
    """:func:`solve_salt_ladder` packed as an ``xarray.Dataset``."""
    sol = solve_salt_ladder(model, protocol, points_per_cycle=points_per_cycle, times=times, **options)
    return salt_ladder_to_dataset(sol, model, protocol)
