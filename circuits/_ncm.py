"""Ladder circuits of a nanoslit electrode: the nano-circuitry model (NCM) and the TLM.

Topology (one electrode, per unit projected area, SI): the electrode potential
``phi_m(t)`` drives, relative to the bulk (0 V), ``R_open`` into the open-space
node 0 (capacitor ``C_open`` to the electrode), then slit nodes ``1..n`` (each
``C_slit`` to the electrode). Link ``i`` (``i = 0..n-1``) joins node ``i`` to node
``i+1`` and carries the trans-slit element ``dphi_i = I_i R_i``.

State convention used by the solver: ``X[0]`` is the charge (C/m^2) that has passed
``R_open`` (= the electrode charge) and ``X[1 + i]`` the charge that has passed link
``i``. Node ``k`` then stores ``q_k = X[k] - X[k+1]`` (``X[n+1] = 0``) and the charge
that passed link ``i`` is ``Q_i = sum_{k>i} q_k``. In this basis every link current
depends on its own charge and its two neighbours only, so the Jacobian is
tridiagonal even for the nonlinear NCM (the fast solver relies on this).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxpnp import ParameterTypeError

# Keep R = R_c (1 - gamma Q / Q_max) strictly positive: at gamma = 1 a link that is
# fully charged would otherwise have zero resistance and an infinitely stiff ODE.
DEFAULT_RESISTANCE_FLOOR = 1e-3  # fraction of R_c

# what a link law's charge Q_i is (NCM.charge): the charge passed through the link (the
# paper's), the upstream node's charge, or the mean charge of the two nodes it joins
CHARGE_MODES = ("link", "node", "nodes")


def dynamic_resistance(R_0, gamma, charge, q_max, floor):
    """The paper's law ``R_0 (1 - gamma Q / Q_max)`` (ohm m^2), floored at ``floor * R_0``; elementwise.

    The one place it is written: the trans-slit links (built-in and :class:`DynamicResistance`)
    and the open-space branch (``gamma_open``) all call it.
    """
    return R_0 * jnp.maximum(1.0 - gamma * charge / q_max, floor)


def _is_traced(value) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(value))


def _as_param(value):
    """Store concrete numbers as float64 numpy arrays (traced under jit, never static)."""
    if value is None or _is_traced(value) or isinstance(value, jax.Array):
        return value
    if np.asarray(value).dtype.kind not in "iuf":
        return value  # left as given, so that _check_param names the argument in its error
    return np.asarray(value, dtype=np.float64)


def _check_real(cls: str, name: str, value) -> None:
    """ParameterTypeError unless ``value`` is real numbers (any shape); tracers pass."""
    if value is None or _is_traced(value):
        return
    try:
        kind = np.asarray(value).dtype.kind
    except (TypeError, ValueError):
        kind = "O"
    if kind not in "iuf":
        raise ParameterTypeError(f"{cls}.{name} must be a real number or array of them, got "
                                 f"{type(value).__name__} {value!r}")


def _check_param(cls: str, name: str, value, n: int, *, positive: bool = True,
                 lower: float | None = None, upper: float | None = None) -> None:
    """ValueError for bad concrete parameters; JAX tracers pass unchecked."""
    if value is None or _is_traced(value):
        return
    if np.asarray(value).dtype.kind not in "iuf":  # np.asarray would turn "1e-9" into a number
        raise ParameterTypeError(f"{cls}.{name} must be a real number or array of them, got "
                                 f"{type(value).__name__} {value!r}")
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != n):
        raise ValueError(f"{cls}.{name} must be a scalar or have shape ({n},), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{cls}.{name} must be finite, got {value!r}")
    if positive and not np.all(arr > 0):
        raise ValueError(f"{cls}.{name} must be positive, got {value!r}")
    if lower is not None and not np.all(arr >= lower):
        raise ValueError(f"{cls}.{name} must be >= {lower}, got {value!r}")
    if upper is not None and not np.all(arr <= upper):
        raise ValueError(f"{cls}.{name} must be <= {upper}, got {value!r}")


def _check_n_slits(cls: str, n_slits) -> int:
    if isinstance(n_slits, bool) or not isinstance(n_slits, (int, np.integer)):
        raise ValueError(f"{cls}.n_slits must be an integer, got {n_slits!r}")
    if n_slits < 1:
        raise ValueError(f"{cls}.n_slits must be >= 1, got {n_slits}")
    return int(n_slits)


# ----------------------------------------------------------------------------
# Trans-slit laws
# ----------------------------------------------------------------------------


class AbstractTransSlitLaw(eqx.Module):
    """A trans-slit element of the form ``dphi = I R(Q)`` (linear in the current).

    Subclasses implement :meth:`resistance`; array fields are trainable constants
    (``circuits.fit`` and ``jax.grad`` see them). Laws nonlinear in ``I`` are not
    accepted: the solver needs ``I = dphi / R(Q)`` in closed form.
    """

    @abc.abstractmethod
    def resistance(self, charge: Float[Array, "*links"], q_max: Float[Array, "*links"],
                   R_c: Float[Array, "*links"]) -> Float[Array, "*links"]:
        """Link resistance (ohm m^2) given the link's charge ``Q`` and ``Q_max`` (C/m^2) and ``R_c`` (ohm m^2)."""


class ConstantResistance(AbstractTransSlitLaw):
    """``R = R_c``: the de Levie transmission line."""

    def resistance(self, charge, q_max, R_c):
        return jnp.broadcast_to(R_c, jnp.shape(charge)) + 0.0 * charge


class DynamicResistance(AbstractTransSlitLaw):
    """The paper's law ``R = R_c (1 - gamma Q / Q_max)``, floored at ``floor * R_c``."""

    gamma: Any = eqx.field(converter=_as_param, default=0.5)
    floor: float = eqx.field(static=True, default=DEFAULT_RESISTANCE_FLOOR)

    def resistance(self, charge, q_max, R_c):
        return dynamic_resistance(R_c, self.gamma, charge, q_max, self.floor)


class ResistanceLaw(AbstractTransSlitLaw):
    """Wrap a plain callable ``fn(Q, q_max, R_c, params) -> R`` (all SI, elementwise).

    ``params`` is any pytree of arrays: its leaves are trainable. Use
    :meth:`from_ohmic` for a law written as ``law(I, Q, params) -> dphi``.
    """

    fn: Callable = eqx.field(static=True)
    params: Any = None

    def resistance(self, charge, q_max, R_c):
        return self.fn(charge, q_max, R_c, self.params)

    @classmethod
    def from_ohmic(cls, law: Callable, params=None) -> "ResistanceLaw":
        """From ``law(I, Q, params) -> dphi`` (V), assumed linear in ``I``: ``R(Q) = law(1, Q, params)``."""
        return cls(fn=lambda Q, q_max, R_c, p: law(jnp.ones_like(Q), Q, p), params=params)


# ----------------------------------------------------------------------------
# Capacitor laws (the double layer of each node)
# ----------------------------------------------------------------------------


class AbstractCapacitor(eqx.Module):
    """Charge-voltage law of a node's double layer, scaled by the node's capacitance ``C``.

    ``C`` (F/m^2) is the differential capacitance at zero charge; the law must be
    elementwise, odd and increasing, with ``voltage(q, C) ~ q / C`` for small ``q``.
    """

    @abc.abstractmethod
    def voltage(self, charge, C):
        """Voltage (V) across a double layer holding ``charge`` (C/m^2)."""

    @abc.abstractmethod
    def charge(self, voltage, C):
        """Charge (C/m^2) held at ``voltage`` (V): the inverse of :meth:`voltage`."""


class LinearCapacitor(AbstractCapacitor):
    """``q = C v`` (the paper's NCM and the de Levie TLM)."""

    def voltage(self, charge, C):
        return charge / C

    def charge(self, voltage, C):
        return C * voltage


class BikermanCapacitor(AbstractCapacitor):
    """Bikerman (steric Poisson-Boltzmann) double layer with zero-charge capacitance ``C``.

    ``q = C V_T g(v / V_T)``, ``g(x) = sign(x) sqrt((2 / nu) ln(1 + 2 nu sinh^2(x / 2)))``:
    the flat-electrode Bikerman charge (PHYSICS.md 1) with ``C = eps / lambda_D`` times
    an area factor. Linear (Debye-Hueckel) for ``|v| << V_T``; at high voltage the ions
    crowd and the capacitance falls as ``v^(-1/2)``. ``packing`` is the bulk packing
    parameter ``nu = 2 a^3 c0`` (``jaxpnp.Electrolyte.packing_parameter``),
    ``thermal_voltage_V`` is ``kT/e``. Both are trainable fields.
    """

    packing: Any = eqx.field(converter=_as_param, default=0.35)
    thermal_voltage_V: Any = eqx.field(converter=_as_param, default=0.025693)

    def __check_init__(self):
        _check_param("BikermanCapacitor", "packing", self.packing, 1, positive=True, upper=1.0)
        _check_param("BikermanCapacitor", "thermal_voltage_V", self.thermal_voltage_V, 1, positive=True)

    def charge(self, voltage, C):
        s = jnp.sinh(0.5 * voltage / self.thermal_voltage_V)
        w = 2.0 * self.packing * s * s
        # g = 2 s sqrt(log1p(w) / w): odd in s and smooth at 0 (the sign(x) sqrt(.) form is not)
        ratio = jnp.where(w > 1e-12, jnp.log1p(w) / jnp.where(w > 1e-12, w, 1.0), 1.0 - 0.5 * w)
        return C * self.thermal_voltage_V * 2.0 * s * jnp.sqrt(ratio)

    def voltage(self, charge, C):
        g = charge / (C * self.thermal_voltage_V)
        nu = self.packing
        z = 0.5 * nu * g * g
        # expm1(z) / z -> 1 keeps the root smooth (and its derivative finite) at q = 0
        ratio = jnp.where(z > 1e-12, jnp.expm1(z) / jnp.where(z > 1e-12, z, 1.0), 1.0 + 0.5 * z)
        return 2.0 * self.thermal_voltage_V * jnp.arcsinh(0.5 * g * jnp.sqrt(ratio))


def _odd_interp(x, xp, fp):
    """Piecewise-linear ``f`` through ``(xp, fp)`` (``xp[0] = fp[0] = 0``), odd in ``x``,
    extrapolated with the end segments' slopes."""
    a = jnp.abs(x)
    inside = jnp.interp(a, xp, fp)
    slope = (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    value = jnp.where(a > xp[-1], fp[-1] + slope * (a - xp[-1]), inside)
    # On the first segment f is linear, f = x fp[1] / xp[1]: written so, the derivative
    # at exactly x = 0 is that slope (sign(x) * f(|x|) differentiates to 0 there).
    first = x * ((fp[1] - fp[0]) / (xp[1] - xp[0]))
    return jnp.where(a < xp[1], first, jnp.sign(x) * value)


class TabulatedCapacitor(AbstractCapacitor):
    """Measured charge-voltage law: node ``k`` holds ``q = C_k s_k(v)``.

    ``voltage_V`` (m,) increasing from 0; ``shape_V`` (m,) shared by every node or
    (n+1, m) per node: ``s = q / C`` (V) at those voltages, increasing from 0. Piecewise
    linear, odd in ``v`` (a symmetric electrolyte), extended beyond the table with the
    last segment's slope. ``C_k`` scales the curves (with ``s_k(v_max) = v_max`` it is
    the chord capacitance over the table), so fitting ``C`` keeps the shape. Built e.g.
    from the charging half of a slow mPNP sweep (``jaxpnp reproduce`` does this).
    """

    voltage_V: Any = eqx.field(converter=_as_param)
    shape_V: Any = eqx.field(converter=_as_param)

    def __check_init__(self):
        _check_real("TabulatedCapacitor", "voltage_V", self.voltage_V)
        _check_real("TabulatedCapacitor", "shape_V", self.shape_V)
        v, s = np.asarray(self.voltage_V, float), np.asarray(self.shape_V, float)
        if v.ndim != 1 or v.size < 2 or s.shape[-1] != v.size or s.ndim not in (1, 2):
            raise ValueError("TabulatedCapacitor: voltage_V must be (m,) with m >= 2 and shape_V (m,) or (nodes, m)")
        if not (np.all(np.isfinite(v)) and np.all(np.isfinite(s))):
            raise ValueError("TabulatedCapacitor: the table must be finite")
        if v[0] != 0.0 or np.any(s[..., 0] != 0.0):
            raise ValueError("TabulatedCapacitor: the table must start at zero voltage and zero charge")
        if np.any(np.diff(v) <= 0) or np.any(np.diff(s, axis=-1) <= 0):
            raise ValueError("TabulatedCapacitor: voltage_V and shape_V must be strictly increasing")

    def _per_node(self, fn, x):
        shape = jnp.asarray(self.shape_V)
        volt = jnp.asarray(self.voltage_V)
        if shape.ndim == 1:
            return fn(x, volt, shape)
        return jax.vmap(fn)(x, jnp.broadcast_to(volt, shape.shape), shape)

    def charge(self, voltage, C):
        v = jnp.broadcast_to(voltage, jnp.broadcast_shapes(jnp.shape(voltage), jnp.shape(C)))
        return C * self._per_node(lambda x, vp, sp: _odd_interp(x, vp, sp), v)

    def voltage(self, charge, C):
        s = charge / C
        return self._per_node(lambda x, vp, sp: _odd_interp(x, sp, vp), s)


# ----------------------------------------------------------------------------
# Ladders
# ----------------------------------------------------------------------------


class AbstractLadder(eqx.Module):
    """Shared ladder structure: ``R_open`` (ohm m^2), ``C_open`` and ``C_slit`` (F/m^2), ``R_c`` (ohm m^2)."""

    n_slits: eqx.AbstractVar[int]
    R_open: eqx.AbstractVar[Any]
    C_open: eqx.AbstractVar[Any]
    C_slit: eqx.AbstractVar[Any]
    R_c: eqx.AbstractVar[Any]

    @abc.abstractmethod
    def link_resistance(self, link_charge, node_charge, q_max) -> Float[Array, " n"]:
        """Resistance (ohm m^2) of each link given the link charges ``Q_i`` and node charges ``q_k`` (C/m^2)."""

    def capacitances(self) -> Float[Array, " n+1"]:
        """``[C_open, C_slit_1..n]`` (F/m^2)."""
        c_slit = jnp.broadcast_to(jnp.asarray(self.C_slit), (self.n_slits,))
        return jnp.concatenate([jnp.reshape(jnp.asarray(self.C_open), (1,)), c_slit])

    def total_capacitance(self):
        """Zero-charge capacitance of the whole electrode (F/m^2)."""
        return jnp.sum(self.capacitances())

    def capacitor_law(self) -> AbstractCapacitor:
        law = getattr(self, "capacitor", None)
        return LinearCapacitor() if law is None else law

    def node_voltage(self, node_charge) -> Float[Array, " n+1"]:
        """Voltage (V) across each node's double layer for node charges (C/m^2)."""
        return self.capacitor_law().voltage(node_charge, self.capacitances())

    def node_charge_at(self, voltage) -> Float[Array, " n+1"]:
        """Node charges (C/m^2) when every node's double layer holds ``voltage`` (V)."""
        return self.capacitor_law().charge(voltage, self.capacitances())

    def equilibrium_voltage(self, total_charge):
        """Voltage (V) at which the whole ladder in equilibrium holds ``total_charge`` (C/m^2).

        Exact when every node follows the same law shape (scaled by its C), as here.
        """
        return self.capacitor_law().voltage(total_charge, self.total_capacitance())

    def small_signal_capacitances(self, voltage=0.0) -> Float[Array, " n+1"]:
        """Differential capacitance dq/dv (F/m^2) of each node at ``voltage`` (V)."""
        v = jnp.broadcast_to(jnp.asarray(voltage, jnp.result_type(float)), (self.n_slits + 1,))
        return jax.jvp(self.node_charge_at, (v,), (jnp.ones_like(v),))[1]

    def default_q_max(self, swing_V) -> Float[Array, " n"]:
        """Q_i^max (C/m^2) when every node is charged by ``swing_V`` volts (see :class:`NCM`)."""
        q = self.node_charge_at(swing_V)
        return jnp.cumsum(q[::-1])[::-1][1:]  # sum_{k > i} q_k(swing), i = 0..n-1

    def open_resistance(self, electrode_charge, q_max_open):
        """Resistance (ohm m^2) of the open-space branch at electrode charge ``Q_e`` (C/m^2): ``R_open`` here."""
        return jnp.asarray(self.R_open) + 0.0 * electrode_charge

    def has_open_law(self) -> bool:
        """Whether the open-space resistance depends on the charge (``gamma_open != 0``)."""
        return False

    def linear_resistances(self) -> Float[Array, " n"]:
        """Link resistances at zero charge (ohm m^2): what the small-signal analysis starts from."""
        z = jnp.zeros((self.n_slits,))
        return self.link_resistance(z, jnp.zeros((self.n_slits + 1,)), jnp.ones((self.n_slits,)))

    def parameters(self) -> dict:
        """The model's parameters as plain Python values (for Dataset attrs)."""
        out = {"model": type(self).__name__, "n_slits": self.n_slits}
        for name in ("R_open", "C_open", "C_slit", "R_c", "gamma", "q_max", "gamma_open", "q_max_open"):
            if hasattr(self, name):
                value = getattr(self, name)
                if value is None or _is_traced(value):
                    continue
                arr = np.asarray(value, dtype=np.float64)
                out[name] = float(arr) if arr.ndim == 0 else arr.tolist()
        law = self.capacitor_law()
        out["capacitor"] = type(law).__name__
        for name in ("packing", "thermal_voltage_V"):
            if hasattr(law, name) and not _is_traced(getattr(law, name)):
                out[f"capacitor_{name}"] = float(np.asarray(getattr(law, name)))
        return out


def _check_capacitor(cls, capacitor) -> None:
    if capacitor is not None and not isinstance(capacitor, AbstractCapacitor):
        raise ValueError(f"{cls}.capacitor must be a circuits capacitor law (e.g. BikermanCapacitor), "
                         f"got {type(capacitor).__name__}")


def _check_ladder(cls, self_) -> None:
    n = self_.n_slits
    for name in ("R_open", "C_open"):
        _check_param(cls, name, getattr(self_, name), n, positive=True)
        value = getattr(self_, name)
        if not _is_traced(value) and np.ndim(value) != 0:
            raise ValueError(f"{cls}.{name} must be a scalar, got shape {np.shape(value)}")
    for name in ("C_slit", "R_c"):
        _check_param(cls, name, getattr(self_, name), n, positive=True)


class TLM(AbstractLadder):
    """de Levie transmission-line model: the NCM with ``gamma = 0``.

    ``TLM(n_slits, R_open, C_open, C_slit, R_c)``; ``R_open`` (ohm m^2) and ``C_open``
    (F/m^2) are scalars, ``C_slit`` (F/m^2, per slit node 1..n) and ``R_c`` (ohm m^2,
    per link) scalars or arrays of shape ``(n_slits,)``. ``capacitor`` (keyword): the
    nodes' charge-voltage law, :class:`LinearCapacitor` by default, or e.g.
    :class:`BikermanCapacitor` (then ``C_open``/``C_slit`` are zero-charge capacitances).
    """

    n_slits: int = eqx.field(static=True)
    R_open: Any = eqx.field(converter=_as_param)
    C_open: Any = eqx.field(converter=_as_param)
    C_slit: Any = eqx.field(converter=_as_param)
    R_c: Any = eqx.field(converter=_as_param)
    capacitor: AbstractCapacitor | None = eqx.field(default=None, kw_only=True)

    def __check_init__(self):
        _check_n_slits("TLM", self.n_slits)
        _check_ladder("TLM", self)
        _check_capacitor("TLM", self.capacitor)

    def link_resistance(self, link_charge, node_charge, q_max):
        return jnp.broadcast_to(jnp.asarray(self.R_c), jnp.shape(link_charge)) + 0.0 * link_charge

    def as_ncm(self) -> "NCM":
        """The identical NCM with ``gamma = 0``."""
        return NCM(self.n_slits, self.R_open, self.C_open, self.C_slit, self.R_c, 0.0, capacitor=self.capacitor)


class NCM(AbstractLadder):
    """Nano-circuitry model: a ladder whose links obey ``dphi_i = I_i R_i(Q_i)``.

    ``NCM(n_slits, R_open, C_open, C_slit, R_c, gamma, q_max=None, *, law=None,
    charge="link", allow_gamma_outside_unit=False)``.

    Built-in law (paper eqs. 1-3): ``R_i = R_c (1 - gamma Q_i / Q_i^max)`` (floored at
    ``1e-3 R_c`` so the ladder stays well posed at gamma -> 1).

    ``charge="link"`` (default, the paper's and ``discovery``'s definition):
    ``Q_i = int I_i dt``, the charge that has passed link ``i`` (node ``i`` -> ``i+1``).
    ``charge="node"``: ``Q_i`` is the charge stored on the upstream node ``i``.
    ``charge="nodes"``: ``Q_i = (q_i + q_{i+1}) / 2``, the mean charge of the two nodes the
    link joins (a state of the slits, not a passed charge: the resistance follows the ion
    content of the slits it connects; ``discovery.trans_slit_law(charge="nodes")`` finds
    laws in this variable). The open-space law reads the electrode charge in every mode.
    Charges count from the initial equilibrium (the protocol's starting potential).

    ``q_max`` (C/m^2, scalar or per link). Default: the charge link ``i`` passes when
    the whole ladder is charged by the protocol's largest electrode-potential swing
    ``dphi_max`` (``max_t |phi_m(t) - phi_m(0)|``; for a CV from 0 V this is
    ``phi_max = v_max / 2``): ``Q_i^max = dphi_max * sum_{k>i} C_slit_k``; with
    ``charge="node"`` it is ``dphi_max * C_i`` of the upstream node (node 0: C_open), with
    ``charge="nodes"`` the mean of the two nodes' charges at ``dphi_max``.
    For galvanostatic runs ``dphi_max = I t_charge / C_total``.

    ``law``: replaces the built-in law (``gamma`` is then unused): an
    :class:`AbstractTransSlitLaw` shared by every link, or a sequence of ``n_slits``
    laws, one per link.

    ``capacitor`` (keyword): the nodes' charge-voltage law (see :class:`TLM`); with a
    nonlinear law the default ``Q_i^max`` is the charge downstream of link ``i`` at
    ``dphi_max`` on that law.

    ``gamma_open`` (keyword, default 0: the paper's ohmic ``R_open``): the open-space branch
    obeys the same law, ``R_open (1 - gamma_open Q_e / Q_e^max)`` with ``Q_e`` the
    electrode charge (= the charge passed through ``R_open``) and ``q_max_open``
    (C/m^2; default: the whole ladder's charge at ``dphi_max``). ``gamma_open < 0`` is
    a resistance that rises as the electrode charges (salt depletion of the open space,
    which the mPNP shows). Every solver method supports it.
    """

    n_slits: int = eqx.field(static=True)
    R_open: Any = eqx.field(converter=_as_param)
    C_open: Any = eqx.field(converter=_as_param)
    C_slit: Any = eqx.field(converter=_as_param)
    R_c: Any = eqx.field(converter=_as_param)
    gamma: Any = eqx.field(converter=_as_param, default=0.5)
    q_max: Any = eqx.field(converter=_as_param, default=None)
    law: AbstractTransSlitLaw | tuple | None = None
    charge: Literal["link", "node", "nodes"] = eqx.field(static=True, default="link")
    allow_gamma_outside_unit: bool = eqx.field(static=True, default=False)
    resistance_floor: float = eqx.field(static=True, default=DEFAULT_RESISTANCE_FLOOR)
    capacitor: AbstractCapacitor | None = eqx.field(default=None, kw_only=True)
    gamma_open: Any = eqx.field(converter=_as_param, default=0.0, kw_only=True)
    q_max_open: Any = eqx.field(converter=_as_param, default=None, kw_only=True)

    def __check_init__(self):
        n = _check_n_slits("NCM", self.n_slits)
        _check_param("NCM", "gamma_open", self.gamma_open, 1, positive=False, upper=1.0)
        _check_param("NCM", "q_max_open", self.q_max_open, 1, positive=True)
        for name in ("gamma_open", "q_max_open"):
            value = getattr(self, name)
            if value is not None and not _is_traced(value) and np.ndim(value) != 0:
                raise ValueError(f"NCM.{name} must be a scalar, got shape {np.shape(value)}")
        _check_ladder("NCM", self)
        _check_capacitor("NCM", self.capacitor)
        if self.allow_gamma_outside_unit:
            _check_param("NCM", "gamma", self.gamma, n, positive=False)
        else:
            _check_param("NCM", "gamma", self.gamma, n, positive=False, lower=0.0, upper=1.0)
        _check_param("NCM", "q_max", self.q_max, n, positive=True)
        if self.charge not in CHARGE_MODES:
            raise ValueError(f"NCM.charge must be one of {CHARGE_MODES}, got {self.charge!r}")
        if isinstance(self.law, Sequence) and len(self.law) != n:
            raise ValueError(f"NCM.law: need one law per link ({n}), got {len(self.law)}")
        if not (math.isfinite(self.resistance_floor) and self.resistance_floor > 0):
            raise ValueError("NCM.resistance_floor must be a positive fraction of R_c")

    def default_q_max(self, swing_V):
        if self.charge == "link":
            return super().default_q_max(swing_V)
        q = self.node_charge_at(swing_V)
        return q[:-1] if self.charge == "node" else 0.5 * (q[:-1] + q[1:])

    def has_open_law(self) -> bool:
        return _is_traced(self.gamma_open) or bool(np.any(np.asarray(self.gamma_open) != 0.0))

    def open_resistance(self, electrode_charge, q_max_open):
        return dynamic_resistance(jnp.asarray(self.R_open), self.gamma_open, electrode_charge, q_max_open,
                                  self.resistance_floor)

    def link_resistance(self, link_charge, node_charge, q_max):
        charge = link_charge if self.charge == "link" else node_charge[:-1] if self.charge == "node" else \
            0.5 * (node_charge[:-1] + node_charge[1:])
        R_c = jnp.broadcast_to(jnp.asarray(self.R_c), jnp.shape(charge))
        if self.law is None:
            return dynamic_resistance(R_c, self.gamma, charge, q_max, self.resistance_floor)
        if isinstance(self.law, AbstractTransSlitLaw):
            return self.law.resistance(charge, q_max, R_c)
        return jnp.stack([law.resistance(charge[i], q_max[i], R_c[i]) for i, law in enumerate(self.law)])


def resolve_q_max(model: AbstractLadder, swing_V) -> Float[Array, " n"]:
    """Q_i^max (C/m^2) per link: the model's ``q_max`` if given, else its default for ``swing_V``."""
    q_max = getattr(model, "q_max", None)
    if q_max is None:
        return model.default_q_max(swing_V)
    return jnp.broadcast_to(jnp.asarray(q_max), (model.n_slits,))
