"""Fixed-grid ROS2 integration of the ladder: grids, step plans and tridiagonal solves.

The ladder's right-hand side, tridiagonal Jacobian and the ROS2 step itself live once
in ``_kernel``; this module drives them:

* :func:`graded_grid` / :func:`fixed_grid`: the step grids of ``method="fast"`` / ``"fixed"``;
* :func:`ros2_integrate`: one curve, nested scans from :func:`step_plan` that record the
  state only at the output times, systems solved by ``jax.lax.linalg.tridiagonal_solve``
  (LAPACK gtsv, O(n); measured faster on CPU than a scalar-unrolled Thomas algorithm,
  which XLA fuses into kernels that recompute the recurrence, and than parallel cyclic
  reduction, both single and under ``jax.vmap``);
* :func:`ros2_integrate_batched`: a batch of parameter sets on the LAST axis, one scan over
  all steps writing the outputs into a buffer, systems solved by odd-even cyclic
  reduction over the rows (:func:`cr_factor`, :func:`cr_solve`).

:func:`graded_grid` builds the grid used by ``method="fast"``: every protocol knot
(``t = 0``, each CV vertex, each current jump) starts a boundary layer whose time
scale is that of the fastest ladder modes (``R_open C_open`` ~ 1e-11 s); the grid
starts there with a tiny step and grows it geometrically up to the base step, so the
layers cost a few dozen steps instead of a fine uniform grid. Output times are
always grid points.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ._kernel import LadderKernel, ros2_step


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
    return _with_outputs(np.concatenate([grid, fixed]), save_tau)


def _with_outputs(points, save_tau):
    """Sorted grid of ``points`` (which include the output times) and the outputs' indices in it."""
    grid = np.unique(points)
    # merge points closer than 1e-12 so that no step is degenerate
    grid = grid[np.concatenate([[True], np.diff(grid) > 1e-12])]
    save_index = np.clip(np.searchsorted(grid, save_tau - 1e-12), 0, len(grid) - 1)
    return grid, save_index


def fixed_grid(knots, save_tau, steps: int):
    """Uniform steps on [0, 1], refined to land on every knot and output time -> (grid, save_index)."""
    return _with_outputs(np.concatenate([np.linspace(0.0, 1.0, int(steps) + 1), np.asarray(knots), save_tau]),
                         save_tau)


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


def _gtsv(lo, di, up):
    """Solver ``r -> A^-1 r`` for one tridiagonal system (LAPACK gtsv on CPU)."""
    return lambda r: jax.lax.linalg.tridiagonal_solve(lo, di, up, r[:, None])[:, 0]


def ros2_integrate(kernel: LadderKernel, drive, plan):
    """ROS2 over the steps of ``plan`` (see :func:`step_plan`); states at every output time."""

    def step(x, interval):
        tau0, tau1, v0, v1 = interval
        live = tau1 > tau0  # padding steps of zero length are the identity
        h = jnp.where(live, tau1 - tau0, 1.0)
        return jnp.where(live, ros2_step(kernel, x, h, v0, v1, _gtsv), x), None

    def interval(x, row):
        if row[0].shape[0]:
            x, _ = jax.lax.scan(step, x, row)
        return x, x

    x = jnp.zeros(kernel.capacitance.shape)
    out = []
    for taus in plan:
        t0, t1 = taus[:, :-1], taus[:, 1:]
        v0, v1 = drive.segment_value(t0, t1)
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


def _cyclic_reduction(lo, di, up):
    levels = cr_factor(lo, di, up)
    return lambda r: cr_solve(levels, r)


def ros2_integrate_batched(kernel: LadderKernel, h, v0, v1, out_index, n_out: int):
    """ROS2 over the steps ``h`` (scaled time; forcing ``v0`` -> ``v1``) for a batch-last kernel.

    ``out_index[j]`` is the output slot the state after step ``j`` is written to (``n_out``
    for none; output 0 is the initial state). Returns states ``(n_out, n+1, B)``.
    """
    shape = kernel.capacitance.shape
    dtype = kernel.capacitance.dtype

    def body(carry, step_in):
        x, buf = carry
        hj, v0j, v1j, k = step_in
        x = ros2_step(kernel, x, hj, v0j, v1j, _cyclic_reduction)
        return (x, jax.lax.dynamic_update_index_in_dim(buf, x, k, 0)), None

    x0 = jnp.zeros(shape, dtype)
    buf = jnp.zeros((n_out + 1,) + shape, dtype)
    (_, buf), _ = jax.lax.scan(body, (x0, buf), (h.astype(dtype), v0.astype(dtype), v1.astype(dtype), out_index))
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
