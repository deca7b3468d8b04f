"""The ladder kernel: right-hand side, tridiagonal Jacobian and the ROS2 step, written once.

State: the scaled link-charge vector ``x`` (rows on axis 0: ``x[0]`` the charge passed
through the open-space branch, ``x[1 + i]`` through link ``i``; see ``_ncm``), scaled by
``scale`` (C/m^2 per unit), time ``tau = t / duration``. Every operation is elementwise
along any trailing axes, so the same code serves

* one curve (rows only; adaptive diffrax and the single-curve ROS2 with LAPACK gtsv),
* a batch of parameter sets with the batch on the LAST axis (rows, batch), whose
  tridiagonal systems the caller solves by cyclic reduction (see ``_fast``).

The model's own laws are called elementwise: ``capacitor.voltage(q, C)``,
``model.link_resistance(Q, q, Q_max)`` and ``model.open_resistance(Q_e, Q_e^max)``; for
the batched path the model's leaves are batch-last arrays, which those laws broadcast.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

ROS2_GAMMA = float(1.0 + 1.0 / np.sqrt(2.0))  # Verwer et al. 1999: L-stable, order 2 (a Python float: keeps float32 batches float32)


class LadderKernel(eqx.Module):
    """The scaled ladder ODE ``dx/dtau = f(x, v)`` with ``v`` the forcing (V or A/m^2)."""

    model: eqx.Module  # the ladder (leaves batch-last on the batched path)
    capacitance: jax.Array  # (n+1, ...) F/m^2 per node
    inv_capacitance: jax.Array  # (n+1, ...) 1/C: linear capacitors multiply (a division costs several)
    scale: jax.Array  # (...) C/m^2 per unit state
    rate: jax.Array  # (...) duration / scale
    q_max: jax.Array  # (n, ...) C/m^2 per link
    q_max_open: jax.Array  # (...) C/m^2, the open-space law's charge scale
    voltage: bool = eqx.field(static=True)  # voltage (True) or current (False) control
    charge_mode: str = eqx.field(static=True)  # what the link laws read: "link", "node", "nodes" (NCM.charge)
    linear: bool = eqx.field(static=True)  # linear capacitors: q / C (the paper's NCM, the TLM)

    def charges(self, x):
        """Passed charges ``X`` (n+1, ...) and node charges ``q`` (n+1, ...), C/m^2."""
        X = self.scale * x
        return X, jnp.concatenate([X[:-1] - X[1:], X[-1:]])

    def _node_voltage(self, node):
        if self.linear:
            return node * self.inv_capacitance
        return self.model.capacitor_law().voltage(node, self.capacitance)

    def _node_voltage_and_slope(self, node):
        """Node voltages and dv/dq, elementwise (one forward-mode pass for a nonlinear law)."""
        if self.linear:
            return node * self.inv_capacitance, jnp.broadcast_to(self.inv_capacitance, node.shape)
        return jax.jvp(self._node_voltage, (node,), (jnp.ones_like(node),))

    def _link_resistance(self, link_charge, node):
        return self.model.link_resistance(link_charge, node, self.q_max)

    def _open_resistance(self, electrode_charge):
        return self.model.open_resistance(electrode_charge, self.q_max_open)

    def currents(self, x, v):
        """Electrode current, link currents (A/m^2), link resistances (ohm m^2), node charges, node voltages."""
        X, node = self.charges(x)
        u = self._node_voltage(node)  # double-layer voltage, electrode minus electrolyte
        R = self._link_resistance(X[1:], node)
        link_current = (u[:-1] - u[1:]) / R
        current = (v - u[0]) / self._open_resistance(X[0]) if self.voltage else v + 0.0 * u[0]
        return current, link_current, R, node, u

    def rhs(self, x, v):
        current, link_current, _, _, _ = self.currents(x, v)
        return self.rate * jnp.concatenate([current[None], link_current])

    def rhs_and_jacobian(self, x, v):
        """``f``, ``df_0/dv`` (only the electrode row sees the forcing; shaped like ``x[0]``) and
        the three diagonals of ``df/dx`` (each shaped like ``x``).

        In the link-charge basis link ``i`` depends on ``x_i, x_{i+1}, x_{i+2}`` only,
        so the Jacobian is tridiagonal for every law ``dphi = I R(Q)``; the laws'
        derivatives come from one forward-mode pass each (all laws are elementwise).
        """
        X, node = self.charges(x)
        u, dudq = self._node_voltage_and_slope(node)
        node_law = self.charge_mode != "link"
        tangent = (jnp.zeros_like(X[1:]), jnp.ones_like(node)) if node_law else \
            (jnp.ones_like(X[1:]), jnp.zeros_like(node))
        R, dR = jax.jvp(self._link_resistance, (X[1:], node), tangent)
        inv_R = 1.0 / R
        J = (u[:-1] - u[1:]) * inv_R
        s, a = self.scale, self.rate
        sc = s * dudq  # du_k/dx_k
        # link i (row i + 1): dJ_i/dx_i, dJ_i/dx_{i+1}, dJ_i/dx_{i+2}
        JdR = J * inv_R * dR * s  # J / R * dR/dQ * dQ/dx
        lo_l = sc[:-1] * inv_R
        di_l = -(sc[:-1] + sc[1:]) * inv_R
        up_l = sc[1:] * inv_R
        if self.charge_mode == "node":  # Q = node charge i = s (x_i - x_{i+1})
            lo_l, di_l = lo_l - JdR, di_l + JdR
        elif self.charge_mode == "nodes":  # Q = (q_i + q_{i+1}) / 2 = s (x_i - x_{i+2}) / 2; the jvp above
            # (ones on every node) gave dR/dQ, each node entering with weight 1/2
            lo_l, up_l = lo_l - 0.5 * JdR, up_l + 0.5 * JdR
        else:  # Q = link charge = s x_{i+1}
            di_l = di_l - JdR
        if self.voltage:  # I = (v - u_0) / R_open(Q_e), Q_e = s x_0
            R0, dR0 = jax.jvp(self._open_resistance, (X[0],), (jnp.ones_like(X[0]),))
            g = 1.0 / R0
            I = (v - u[0]) * g
            d0, u0, dfdv0 = -sc[0] * g - I * g * dR0 * s, sc[0] * g, g
        else:
            zero = 0.0 * sc[0]
            I, d0, u0, dfdv0 = v + zero, zero, zero, 1.0 + zero
        zero = jnp.zeros_like(J[:1])
        f = a * jnp.concatenate([I[None], J])
        lower = a * jnp.concatenate([zero, lo_l])
        diag = a * jnp.concatenate([d0[None], di_l])
        upper = a * jnp.concatenate([u0[None], up_l[:-1], zero])
        return f, a * dfdv0, lower, diag, upper


def ros2_step(kernel: LadderKernel, x, h, v0, v1, factor):
    """One ROS2 step of length ``h`` (scaled time) with forcing ``v0`` -> ``v1`` (linear in between).

    ``factor(lower, diag, upper)`` returns a solver ``r -> (tridiagonal)^-1 r`` (gtsv for one
    curve, cyclic reduction for a batch). Two stages, one Jacobian, one factorisation.
    """
    g = ROS2_GAMMA
    f0, dfdv0, lower, diag, upper = kernel.rhs_and_jacobian(x, v0)
    gh = g * h
    ft0 = gh * dfdv0 * ((v1 - v0) / h)  # h gamma df/dtau through the forcing: the electrode row only
    solve = factor(-gh * lower, 1.0 - gh * diag, -gh * upper)
    k1 = solve(f0.at[0].add(ft0))
    f1 = kernel.rhs(x + h * k1, v1)
    k2 = solve((f1 - 2.0 * k1).at[0].add(-ft0))
    return x + h * (1.5 * k1 + 0.5 * k2)
