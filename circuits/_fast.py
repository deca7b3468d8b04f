"""Fixed-grid, vmap-friendly Rosenbrock integrator specialised to the ladder.

In the link-charge basis (see ``_ncm``) link ``i``'s current depends on ``X_i``,
``X_{i+1}``, ``X_{i+2}`` only, so the Jacobian is tridiagonal for every law of the
form ``dphi = I R(Q)`` (``Q`` the link's or the upstream node's charge). This module

* assembles that Jacobian analytically (one forward-mode derivative of the law,
  ``dR/dQ``, elementwise), no dense or colour-probed Jacobian;
* solves ``(I - gamma h J) k = r`` with ``jax.lax.linalg.tridiagonal_solve`` (LAPACK
  gtsv, O(n)); measured faster on CPU than a scalar-unrolled Thomas algorithm (XLA
  fuses the sequential recurrence into kernels that recompute it, O(n^2)) and than
  parallel cyclic reduction, both single and under ``jax.vmap``;
* steps with ROS2 (Verwer et al. 1999: 2 stages, order 2, L-stable, one
  Jacobian and two tridiagonal solves per step; order 2 holds for any Jacobian
  approximation), on a grid given by the caller;
* records the state only at the output times (nested scans from :func:`step_plan`);
* for a batch of parameter sets (``jax.vmap`` over the model, see ``_simulate``):
  :class:`BatchLadder` / :func:`ros2_integrate_batched`, the same ROS2 with the batch on
  the last axis and cyclic reduction (:func:`cr_factor`, :func:`cr_solve`) instead of
  gtsv, one scan over all steps writing the outputs into a buffer.

:func:`graded_grid` builds the grid used by ``method="fast"``: every protocol knot
(``t = 0``, each CV vertex, each current jump) starts a boundary layer whose time
scale is that of the fastest ladder modes (``R_open C_open`` ~ 1e-11 s); the grid
starts there with a tiny step and grows it geometrically up to the base step, so the
layers cost a few dozen steps instead of a fine uniform grid. Output times are
always grid points.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

_ROS2_GAMMA = 1.0 + 1.0 / np.sqrt(2.0)


def graded_grid(knots, save_tau, base_steps: int, first_step: float, growth: float):
    """Grid on [0, 1] (scaled time) with ``<= 1 / base_steps`` spacing, graded after every knot.

    After each knot the spacing starts at ``first_step`` (scaled time) and grows by
    ``growth`` per step until it reaches ``1 / base_steps``. Output times ``save_tau``
    and the knots are grid points; grid points closer than 0.3 local spacings to an
    output time are dropped so that no step is degenerate. Returns (grid, save_index).
    """
    knots = np.asarray(knots, dtype=float)
    save_tau = np.asarray(save_tau, dtype=float)
    h_max = 1.0 / float(base_steps)
    pts = [knots]
    for a, b in zip(knots[:-1], knots[1:]):
        t, h, seg = a, min(float(first_step), h_max), []
        while True:
            t = t + h
            if t >= b - 1e-12:
                break
            seg.append(t)
            h = min(h * growth, h_max)
        pts.append(np.asarray(seg))
    grid = np.unique(np.concatenate(pts))
    # local spacing of the generated grid, to decide which generated points clash with outputs
    spacing = np.diff(grid)
    local = np.minimum(np.r_[spacing, spacing[-1]], np.r_[spacing[0], spacing])
    fixed = np.unique(np.concatenate([knots, save_tau]))
    if fixed.size:
        idx = np.clip(np.searchsorted(fixed, grid), 1, fixed.size - 1)
        near = np.minimum(np.abs(grid - fixed[idx - 1]), np.abs(grid - fixed[idx]))
        grid = grid[near > 0.3 * local]
    grid = np.unique(np.concatenate([grid, fixed]))
    keep = np.concatenate([[True], np.diff(grid) > 1e-12])
    grid = grid[keep]
    save_index = np.clip(np.searchsorted(grid, save_tau - 1e-12), 0, len(grid) - 1)
    return grid, save_index


class _Ladder(eqx.Module):
    """Per-solve constants of the scaled ladder ODE ``dx/dtau = f(x, v)``."""

    model: eqx.Module
    scale: jax.Array  # C/m^2 per unit state
    q_max: jax.Array
    inv_c: jax.Array  # (n+1,) 1/C_k
    rate: jax.Array  # duration / scale
    voltage: bool = eqx.field(static=True)
    node_mode: bool = eqx.field(static=True)

    def _charges(self, x):
        X = self.scale * x
        node = X - jnp.concatenate([X[1:], jnp.zeros((1,), X.dtype)])
        return X, node

    def rhs(self, x, v):
        X, node = self._charges(x)
        u = self.model.node_voltage(node)
        R = self.model.link_resistance(X[1:], node, self.q_max)
        J = (u[:-1] - u[1:]) / R
        I = (v - u[0]) / self.model.R_open if self.voltage else v
        return self.rate * jnp.concatenate([jnp.reshape(I, (1,)), J])

    def rhs_and_jacobian(self, x, v):
        """f, df/dv and the three diagonals of df/dx (arrays of length n + 1)."""
        X, node = self._charges(x)
        # the capacitor law is elementwise: one JVP gives every node's dv/dq
        u, dudq = jax.jvp(self.model.node_voltage, (node,), (jnp.ones_like(node),))
        tangent = (jnp.zeros_like(X[1:]), jnp.ones_like(node)) if self.node_mode else \
            (jnp.ones_like(X[1:]), jnp.zeros_like(node))
        R, dR = jax.jvp(lambda lc, nc: self.model.link_resistance(lc, nc, self.q_max), (X[1:], node), tangent)
        inv_R = 1.0 / R
        J = (u[:-1] - u[1:]) * inv_R
        s, a = self.scale, self.rate
        sc = s * dudq  # du_k/dx_k
        # link i (row i + 1): dJ_i/dx_i, dJ_i/dx_{i+1}, dJ_i/dx_{i+2}
        JdR = J * inv_R * dR * s  # J / R * dR/dQ * (dQ/dx)
        lo_l = sc[:-1] * inv_R
        di_l = -(sc[:-1] + sc[1:]) * inv_R
        up_l = sc[1:] * inv_R
        if self.node_mode:  # Q = node charge i = s (x_i - x_{i+1})
            lo_l = lo_l - JdR
            di_l = di_l + JdR
        else:  # Q = link charge = s x_{i+1}
            di_l = di_l - JdR
        if self.voltage:
            g = 1.0 / self.model.R_open
            I = (v - u[0]) * g
            d0, u0, dfdv0 = -sc[0] * g, sc[0] * g, g
        else:
            I = v
            d0, u0, dfdv0 = 0.0 * sc[0], 0.0 * sc[0], 1.0
        f = a * jnp.concatenate([jnp.reshape(I, (1,)), J])
        dfdv = jnp.concatenate([jnp.reshape(a * dfdv0 + 0.0 * sc[0], (1,)), jnp.zeros_like(J)])
        lower = a * jnp.concatenate([jnp.zeros((1,), lo_l.dtype), lo_l])
        diag = a * jnp.concatenate([jnp.reshape(d0, (1,)), di_l])
        upper = a * jnp.concatenate([jnp.reshape(u0, (1,)), up_l[:-1], jnp.zeros((1,), up_l.dtype)])
        return f, dfdv, lower, diag, upper


def step_plan(grid, save_index):
    """Split the grid into runs of output intervals holding the same number of steps.

    Returns a tuple of arrays ``(n_intervals, m + 1)`` of step boundaries (scaled time), in
    order; integrating run by run and recording the state at the end of every interval
    yields the states at ``grid[save_index]``. Static shapes, so the solver compiles to a
    few nested scans and records only the outputs (not every step).
    """
    grid = np.asarray(grid, dtype=float)
    ends = np.asarray(save_index, dtype=int)
    starts = np.r_[0, ends[:-1]]
    counts = ends - starts
    if np.any(counts < 0):
        raise ValueError("save times must be increasing")
    runs = []
    j = 0
    while j < len(counts):
        # merge neighbours whose step counts differ by <= 25 %, padding with zero-length
        # (identity) steps: a uniform grid whose outputs fall between steps (16, 17, 16, ...)
        # then compiles to one scan instead of one per change
        lo = hi = int(counts[j])
        k = j
        while k + 1 < len(counts):
            c = int(counts[k + 1])
            new_lo, new_hi = min(lo, c), max(hi, c)
            if new_lo == 0 and new_hi > 0 or new_hi > new_lo + max(0, int(0.25 * new_lo)):
                break
            lo, hi, k = new_lo, new_hi, k + 1
        m = hi
        idx = starts[j:k + 1, None] + np.minimum(np.arange(m + 1)[None, :], counts[j:k + 1, None])
        runs.append(grid[idx])
        j = k + 1
    return tuple(runs)


def ros2_integrate(ladder: _Ladder, drive, plan):
    """ROS2 over the steps of ``plan`` (see :func:`step_plan`); states at every output time."""
    n_state = ladder.inv_c.shape[0]
    g = _ROS2_GAMMA

    def step(x, interval):
        tau0, tau1, v0, v1 = interval
        live = tau1 > tau0  # padding steps of zero length are the identity
        h = jnp.where(live, tau1 - tau0, 1.0)
        f0, dfdv, lower, diag, upper = ladder.rhs_and_jacobian(x, v0)
        ft = dfdv * ((v1 - v0) / h)  # df/dtau through the forcing (piecewise linear)
        gh = g * h
        lo, di, up = -gh * lower, 1.0 - gh * diag, -gh * upper

        def solve(r):  # LAPACK gtsv on CPU: O(n), batched over any vmapped axes
            return jax.lax.linalg.tridiagonal_solve(lo, di, up, r[:, None])[:, 0]

        k1 = solve(f0 + gh * ft)
        f1 = ladder.rhs(x + h * k1, v1)
        k2 = solve(f1 - 2.0 * k1 - gh * ft)
        return jnp.where(live, x + h * (1.5 * k1 + 0.5 * k2), x), None

    def interval(x, row):
        if row[0].shape[0]:
            x, _ = jax.lax.scan(step, x, row)
        return x, x

    x = jnp.zeros((n_state,))
    out = []
    for taus in plan:
        t0, t1 = taus[:, :-1], taus[:, 1:]
        if drive.controls == "voltage":  # piecewise linear: exact at both ends
            v0, v1 = drive(t0), drive(t1)
        else:  # piecewise constant: the step's own value
            v0 = v1 = drive(0.5 * (t0 + t1))
        x, xs = jax.lax.scan(interval, x, (t0, t1, v0, v1))
        out.append(xs)
    return jnp.concatenate(out, axis=0)


# ----------------------------------------------------------------------------
# batched path: many parameter sets at once, batch on the last (vectorised) axis
# ----------------------------------------------------------------------------
#
# ``jax.vmap`` of :func:`ros2_integrate` batches LAPACK gtsv over the parameter sets:
# one tiny 21-row solve per curve and step, which dominates. The batched path keeps
# every ladder array as ``(rows, batch)``, so each operation of the step is a vector
# operation of length ``batch``, and solves the tridiagonal systems by odd-even cyclic
# reduction over the rows (log2(n) levels of strided whole-array operations, no
# per-row loop: a per-row ``lax.scan`` costs a loop iteration per row and an unrolled
# per-row Thomas sweep makes XLA recompute the recurrence). The batch is processed in
# chunks so that a chunk's working set stays in cache. :mod:`._simulate` routes
# ``jax.vmap`` of the fast/fixed solvers here through ``jax.custom_batching.custom_vmap``.


def _pad_odd(a, fill):
    if a.shape[0] % 2:
        return a
    return jnp.concatenate([a, jnp.full((1,) + a.shape[1:], fill, a.dtype)])


def cr_factor(lo, di, up):
    """Odd-even cyclic reduction of tridiagonal systems (rows on axis 0, any batch axes after).

    ``lo[0]`` and ``up[-1]`` are ignored (taken as 0). Returns the per-level data that
    :func:`cr_solve` needs; factor once, solve for several right-hand sides. No pivoting:
    meant for diagonally dominant matrices such as ``I - gamma h J`` of the ladder.
    """
    lo = lo.at[0].set(0.0)
    up = up.at[-1].set(0.0)
    levels = []
    while di.shape[0] > 1:
        m = di.shape[0]
        lo, di, up = _pad_odd(lo, 0.0), _pad_odd(di, 1.0), _pad_odd(up, 0.0)
        inv_e = 1.0 / di[0::2]  # even rows are eliminated in favour of the odd ones
        lo_e, up_e = lo[0::2], up[0::2]
        alpha = -lo[1::2] * inv_e[:-1]
        beta = -up[1::2] * inv_e[1:]
        levels.append((alpha, beta, inv_e, lo_e, up_e, m))
        lo, up, di = alpha * lo_e[:-1], beta * up_e[1:], di[1::2] + alpha * up_e[:-1] + beta * lo_e[1:]
    levels.append(1.0 / di)
    return levels


def cr_solve(levels, r):
    """Solve with the factorisation from :func:`cr_factor`; ``r`` has the rows on axis 0."""
    n = r.shape[0]
    rhs_even = []
    for alpha, beta, _, _, _, _ in levels[:-1]:
        r = _pad_odd(r, 0.0)
        r_e = r[0::2]
        rhs_even.append(r_e)
        r = r[1::2] + alpha * r_e[:-1] + beta * r_e[1:]
    x = r * levels[-1]
    for (_, _, inv_e, lo_e, up_e, m), r_e in zip(levels[-2::-1], rhs_even[::-1]):
        z = jnp.zeros_like(x[:1])
        x_e = (r_e - lo_e * jnp.concatenate([z, x]) - up_e * jnp.concatenate([x, z])) * inv_e
        both = jnp.stack([x_e[:-1], x], axis=1).reshape((-1,) + x.shape[1:])
        x = jnp.concatenate([both, x_e[-1:]])[:m]
    return x[:n]


class BatchLadder(eqx.Module):
    """Constants of ``batch`` scaled ladders, batch on the LAST axis of every array.

    ``law(link_charge (n, B), node_charge (n+1, B)) -> R (n, B)`` (ohm m^2).
    """

    scale: jax.Array  # (B,)
    inv_c: jax.Array  # (n+1, B)
    rate: jax.Array  # (B,)
    g_open: jax.Array  # (B,) 1/R_open
    law: "object" = eqx.field(static=True)
    voltage: bool = eqx.field(static=True)
    node_mode: bool = eqx.field(static=True)

    def _u(self, x):
        X = self.scale * x
        node = jnp.concatenate([X[:-1] - X[1:], X[-1:]])
        return X, node, node * self.inv_c

    def rhs(self, x, v, law_args):
        X, node, u = self._u(x)
        J = (u[:-1] - u[1:]) / self.law(law_args, X[1:], node)
        I = (v - u[0]) * self.g_open if self.voltage else v + 0.0 * u[0]
        return self.rate * jnp.concatenate([I[None], J])

    def step(self, x, h, v0, dv, law_args):
        """One ROS2 step of length ``h`` (scalar); forcing ``v0`` at the start, ``v0 + dv`` at the end."""
        g = float(_ROS2_GAMMA)
        X, node, u = self._u(x)
        tangent = (jnp.zeros_like(X[1:]), jnp.ones_like(node)) if self.node_mode else \
            (jnp.ones_like(X[1:]), jnp.zeros_like(node))
        R, dR = jax.jvp(lambda lc, nc: self.law(law_args, lc, nc), (X[1:], node), tangent)
        inv_R = 1.0 / R
        J = (u[:-1] - u[1:]) * inv_R
        s, a = self.scale, self.rate
        sc = s * self.inv_c
        JdR = J * inv_R * dR * s
        lo_l = sc[:-1] * inv_R
        di_l = -(sc[:-1] + sc[1:]) * inv_R
        up_l = sc[1:] * inv_R
        if self.node_mode:
            lo_l, di_l = lo_l - JdR, di_l + JdR
        else:
            di_l = di_l - JdR
        if self.voltage:
            I = (v0 - u[0]) * self.g_open
            d0, u0, ft = -sc[0] * self.g_open, sc[0] * self.g_open, self.g_open * (dv / h)
        else:
            I, d0, u0, ft = v0 + 0.0 * u[0], 0.0 * sc[0], 0.0 * sc[0], dv / h + 0.0 * sc[0]
        gha = (g * h) * a
        zero = jnp.zeros_like(d0)[None]
        lo = -gha * jnp.concatenate([zero, lo_l])
        di = 1.0 - gha * jnp.concatenate([d0[None], di_l])
        up = -gha * jnp.concatenate([u0[None], up_l[:-1], zero])
        ft0 = gha * ft  # h gamma df/dtau: only the electrode row sees the forcing
        f0 = a * jnp.concatenate([I[None], J])
        levels = cr_factor(lo, di, up)
        k1 = cr_solve(levels, f0.at[0].add(ft0))
        f1 = self.rhs(x + h * k1, v0 + dv, law_args)
        k2 = cr_solve(levels, (f1 - 2.0 * k1).at[0].add(-ft0))
        return x + h * (1.5 * k1 + 0.5 * k2)


def ros2_integrate_batched(ladder: BatchLadder, law_args, h, v0, dv, out_index, n_out: int):
    """ROS2 over the steps ``h`` (scaled time; forcing ``v0``, increment ``dv``) for a batch.

    ``out_index[j]`` is the output slot the state after step ``j`` is written to (``n_out``
    for none; output 0 is the initial state). Returns states ``(n_out, n+1, B)``.
    """
    n_state, batch = ladder.inv_c.shape
    dtype = ladder.inv_c.dtype

    def body(carry, step_in):
        x, buf = carry
        hj, vj, dvj, k = step_in
        x = ladder.step(x, hj, vj, dvj, law_args)
        return (x, jax.lax.dynamic_update_index_in_dim(buf, x, k, 0)), None

    x0 = jnp.zeros((n_state, batch), dtype)
    buf = jnp.zeros((n_out + 1, n_state, batch), dtype)
    (_, buf), _ = jax.lax.scan(body, (x0, buf), (h.astype(dtype), v0.astype(dtype), dv.astype(dtype), out_index))
    return buf[:n_out]


def flat_steps(grid, save_index):
    """Step lengths and output slots of a grid (numpy): inputs of :func:`ros2_integrate_batched`."""
    grid = np.asarray(grid, dtype=float)
    save_index = np.asarray(save_index, dtype=int)
    n_out = save_index.size
    out_index = np.full(grid.size - 1, n_out, dtype=np.int32)
    later = save_index > 0
    out_index[save_index[later] - 1] = np.nonzero(later)[0]
    return grid, out_index, n_out
