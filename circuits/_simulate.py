"""Time integration of a ladder under a jaxpnp protocol, and the xarray packaging.

Internally time is ``tau = t / duration`` and the state is the link-charge vector
``X`` (see ``_ncm``) divided by ``C_total * dphi_max``, so every state component is
O(1) whatever the SI scales (R ~ 1e-9 ohm m^2, t ~ ns).

Two integrators:

* ``method="adaptive"`` (default): diffrax Kvaerno5 (L-stable ESDIRK) with a PID
  step-size controller; protocol vertices are jump times. Reference accuracy.
* ``method="fast"`` / ``"fixed"``: a fixed-grid, L-stable, second-order Rosenbrock
  method (ROS2, Verwer et al. 1999) whose linear systems are tridiagonal (the
  link-charge basis makes the Jacobian tridiagonal even for the nonlinear NCM) and
  are solved in O(n); see ``_fast``. ``"fast"`` grades the grid after each protocol
  knot, ``"fixed"`` is uniform. Steps land on every knot and output time; accuracy
  is set by the grid and should be checked against ``"adaptive"`` (the benchmark
  reports it).
"""

from __future__ import annotations

import functools
import warnings

import diffrax
import equinox as eqx
import jax
import jax.custom_batching
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jaxtyping import Array, Float

from jaxpnp import float64

from ._drive import Drive, drive_from_protocol
from ._fast import BatchLadder, _Ladder, flat_steps, graded_grid, ros2_integrate, ros2_integrate_batched, step_plan
from ._ncm import (NCM, TLM, AbstractLadder, ConstantResistance, DynamicResistance, LinearCapacitor,
                   resolve_q_max)


class Solution(eqx.Module):
    """Traceable simulation result (SI): what :func:`simulate` packs into a Dataset."""

    time: Float[Array, " t"]  # s
    cell_voltage: Float[Array, " t"]  # V
    current_density: Float[Array, " t"]  # A/m^2
    electrode_charge: Float[Array, " t"]  # C/m^2
    slit_charge: Float[Array, "t n+1"]  # C/m^2, electrode side, node 0 = open space
    link_charge: Float[Array, "t n"]  # C/m^2 passed through each link
    link_current: Float[Array, "t n"]  # A/m^2
    link_resistance: Float[Array, "t n"]  # ohm m^2


class _Scales(eqx.Module):
    charge: Array  # C/m^2 per unit state
    q_max: Array  # C/m^2 per link
    capacitance: Array  # F/m^2 per node
    q_max_open: Array  # C/m^2, the open-space law's charge scale


def _scales(model: AbstractLadder, drive: Drive) -> _Scales:
    c = model.capacitances()
    if drive.controls == "voltage":
        swing_V = drive.swing
        charge = jnp.sum(model.node_charge_at(drive.swing))
    else:
        swing_V = model.equilibrium_voltage(drive.swing)
        charge = drive.swing
    q_open = getattr(model, "q_max_open", None)
    q_open = jnp.sum(model.node_charge_at(swing_V)) if q_open is None else jnp.asarray(q_open)
    return _Scales(charge=charge, q_max=resolve_q_max(model, swing_V), capacitance=c, q_max_open=q_open)


def _circuit(model: AbstractLadder, scales: _Scales, x, forcing):
    """Electrode current (A/m^2), link currents (A/m^2), link resistances and node charges for scaled state ``x``."""
    X = scales.charge * x
    node_charge = X - jnp.concatenate([X[1:], jnp.zeros((1,), X.dtype)])
    u = model.node_voltage(node_charge)  # double-layer voltage change, electrode minus electrolyte
    R = model.link_resistance(X[1:], node_charge, scales.q_max)
    link_current = (u[:-1] - u[1:]) / R
    if forcing.controls == "voltage":
        current = (forcing.value - u[0]) / model.open_resistance(X[0], scales.q_max_open)
    else:
        current = forcing.value
    return current, link_current, R, node_charge


class _Forcing(eqx.Module):
    value: Array
    controls: str = eqx.field(static=True)


def _rhs(model, scales, drive, x, value):
    current, link_current, _, _ = _circuit(model, scales, x, _Forcing(value, drive.controls))
    return drive.duration_s / scales.charge * jnp.concatenate([jnp.reshape(current, (1,)), link_current])


def _observe(model, scales, drive, tau, x) -> Solution:
    value = drive(tau)
    current, link_current, R, node_charge = _circuit(model, scales, x, _Forcing(value, drive.controls))
    X = scales.charge * x
    if drive.controls == "voltage":
        phi = drive.phi_initial + value
    else:
        phi = drive.phi_initial + model.node_voltage(node_charge)[0] + current * model.open_resistance(
            X[0], scales.q_max_open)
    return Solution(time=tau * drive.duration_s, cell_voltage=2.0 * phi, current_density=current,
                    electrode_charge=X[0], slit_charge=node_charge, link_charge=X[1:],
                    link_current=link_current, link_resistance=R)


# ----------------------------------------------------------------------------
# adaptive: diffrax
# ----------------------------------------------------------------------------


@eqx.filter_jit
def _solve_adaptive(model, drive: Drive, save_tau, rtol, atol, max_steps, adjoint):
    scales = _scales(model, drive)
    n_state = model.n_slits + 1

    def vector_field(tau, x, args):
        return _rhs(model, scales, drive, x, drive(tau))

    controller = diffrax.ClipStepSizeController(
        diffrax.PIDController(rtol=rtol, atol=atol),
        jump_ts=drive.knots[1:-1] if drive.knots.shape[0] > 2 else None)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field), diffrax.Kvaerno5(), t0=0.0, t1=1.0, dt0=None,
        y0=jnp.zeros((n_state,)), saveat=diffrax.SaveAt(ts=save_tau),
        stepsize_controller=controller, max_steps=max_steps, adjoint=adjoint)
    return jax.vmap(lambda tau, x: _observe(model, scales, drive, tau, x))(save_tau, sol.ys)


# ----------------------------------------------------------------------------
# fixed / fast: ROS2 with tridiagonal linear algebra (see _fast)
# ----------------------------------------------------------------------------


def _ladder(model, drive: Drive) -> _Ladder:
    scales = _scales(model, drive)
    return _Ladder(model=model, scale=scales.charge, q_max=scales.q_max, inv_c=1.0 / scales.capacitance,
                   rate=drive.duration_s / scales.charge, voltage=drive.controls == "voltage",
                   node_mode=getattr(model, "charge", "link") == "node")


def _states_one(model, drive, plan, grid, out_index):
    """Scaled states at the output times (n_out, n+1) for one parameter set (nested scans, gtsv)."""
    return ros2_integrate(_ladder(model, drive), drive, plan)


def _broadcast_law(model) -> bool:
    """Whether ``model.link_resistance`` works on batch-last arrays by plain broadcasting."""
    if isinstance(model, TLM):
        return True
    if not isinstance(model, NCM):
        return False
    laws = model.law if isinstance(model.law, tuple) else (model.law,)
    return all(law is None or type(law) in (DynamicResistance, ConstantResistance) for law in laws)


def _states_batched(axis_size, in_batched, model, drive, plan, grid, out_index, *, chunk, dtype):
    """custom_vmap rule: the batch-last path of ``_fast`` when only the model is batched."""
    leaves, treedef = jax.tree_util.tree_flatten(model)
    flags = jax.tree_util.tree_leaves(in_batched[0])
    nonlinear = not isinstance(model.capacitor_law(), LinearCapacitor)
    if any(jax.tree_util.tree_leaves(in_batched[1:])) or len(flags) != len(leaves) or nonlinear:
        # the protocol or the grid is batched too, or the capacitors are nonlinear (the
        # batch-last path assumes q / C): plain vmap of the single-curve solver
        axes = jax.tree_util.tree_map(lambda b: 0 if b else None, list(in_batched))
        return jax.vmap(_states_one, in_axes=tuple(axes))(model, drive, plan, grid, out_index), True
    B = int(axis_size)
    in_axes_model = jax.tree_util.tree_unflatten(treedef, [0 if f else None for f in flags])
    lad = jax.vmap(lambda m: _ladder(m, drive), in_axes=(in_axes_model,))(model)
    last = lambda a: jnp.moveaxis(a, 0, -1)  # noqa: E731
    consts = dict(scale=lad.scale, inv_c=last(lad.inv_c), rate=lad.rate,
                  g_open=jnp.broadcast_to(1.0 / jnp.asarray(model.R_open), (B,)), q_max=last(lad.q_max))
    consts = {k: jnp.broadcast_to(v, v.shape[:-1] + (B,)).astype(dtype) for k, v in consts.items()}
    # model leaves batch-last: batched ones moved, fixed ones get a trailing axis of 1
    bl = [(last(x) if f else jnp.asarray(x)[..., None]).astype(dtype) for x, f in zip(leaves, flags)]
    direct = _broadcast_law(model)

    def law(args, lc, nc):
        m_leaves, q_max = args
        m = jax.tree_util.tree_unflatten(treedef, m_leaves)
        if direct:
            return m.link_resistance(lc, nc, q_max)
        axes = jax.tree_util.tree_unflatten(treedef, [-1 if f else None for f in flags])
        m = jax.tree_util.tree_unflatten(treedef, [x if f else x[..., 0] for x, f in zip(m_leaves, flags)])
        return jax.vmap(lambda mm, q, a, b: mm.link_resistance(a, b, q), in_axes=(axes, -1, -1, -1),
                        out_axes=-1)(m, q_max, lc, nc)

    h = jnp.diff(grid)
    v0, v1 = drive(grid[:-1]), drive(grid[1:])
    if drive.controls != "voltage":  # piecewise constant: the step's own value
        v0 = v1 = drive(0.5 * (grid[:-1] + grid[1:]))
    n_out = plan_outputs(plan)
    c = min(int(chunk), B)
    n_chunks = -(-B // c)
    pad = n_chunks * c - B

    def split(a):  # (..., B) -> (n_chunks, ..., c), padding with copies of the last parameter set
        a = jnp.concatenate([a, jnp.repeat(a[..., -1:], pad, axis=-1)], axis=-1) if pad else a
        return jnp.moveaxis(a.reshape(a.shape[:-1] + (n_chunks, c)), -2, 0)

    batched_leaves = [split(x) for x, f in zip(bl, flags) if f]
    fixed_leaves = [x for x, f in zip(bl, flags) if not f]

    def run(chunk_in):
        cs, bleaves = chunk_in
        it_b, it_f = iter(bleaves), iter(fixed_leaves)
        m_leaves = [next(it_b) if f else next(it_f) for f in flags]
        ladder = BatchLadder(scale=cs["scale"], inv_c=cs["inv_c"], rate=cs["rate"], g_open=cs["g_open"], law=law,
                             voltage=drive.controls == "voltage",
                             node_mode=getattr(model, "charge", "link") == "node")
        return ros2_integrate_batched(ladder, (m_leaves, cs["q_max"]), h, v0, v1 - v0, out_index, n_out)

    xs = jax.lax.map(run, ({k: split(v) for k, v in consts.items()}, batched_leaves))  # (chunks, t, n+1, c)
    xs = jnp.moveaxis(xs, 0, -2).reshape(xs.shape[1:3] + (n_chunks * c,))[..., :B]
    return jnp.moveaxis(xs, -1, 0).astype(jnp.result_type(float)), True


def plan_outputs(plan) -> int:
    return sum(int(p.shape[0]) for p in plan)


def _states_fn(chunk: int, dtype):
    """Single-curve states; ``jax.vmap`` over the model takes the batched path, ``jax.grad`` the plain one."""
    if chunk == 0:  # batched path off: jax.vmap batches the single-curve solver (gtsv per curve)
        return _states_one
    batched = jax.custom_batching.custom_vmap(_states_one)
    batched.def_vmap(functools.partial(_states_batched, chunk=chunk, dtype=dtype))

    @jax.custom_jvp
    def states(model, drive, plan, grid, out_index):
        return batched(model, drive, plan, grid, out_index)

    @states.defjvp
    def _jvp(primals, tangents):  # custom_vmap has no reverse mode: differentiate the plain solver
        return jax.jvp(_states_one, primals, tangents)

    return states


@eqx.filter_jit
def _solve_rosenbrock(model, drive: Drive, plan, save_tau, grid, out_index, batch_chunk: int = 256,
                      batch_dtype: str = "float64"):
    scales = _scales(model, drive)
    xs = _states_fn(batch_chunk, jnp.dtype(batch_dtype))(model, drive, plan, grid, out_index)
    return jax.vmap(lambda tau, x: _observe(model, scales, drive, tau, x))(save_tau, xs)


def _fixed_grid(drive: Drive, save_tau: np.ndarray, steps: int):
    """Uniform steps, refined to land on every knot and output time (numpy, concrete)."""
    grid = np.unique(np.concatenate([np.linspace(0.0, 1.0, int(steps) + 1), np.asarray(drive.knots), save_tau]))
    # merge points closer than 1e-12 so that no step is degenerate
    keep = np.concatenate([[True], np.diff(grid) > 1e-12])
    grid = grid[keep]
    save_index = np.clip(np.searchsorted(grid, save_tau - 1e-12), 0, len(grid) - 1)
    return grid, save_index


# ----------------------------------------------------------------------------
# public
# ----------------------------------------------------------------------------


def _save_tau(protocol, drive, points_per_cycle, times) -> np.ndarray:
    if times is None:
        times = np.asarray(protocol.sample_times(points_per_cycle), dtype=float)
    times = np.asarray(times, dtype=float)
    duration = float(drive.duration_s)
    if times.ndim != 1 or times.size < 2 or np.any(np.diff(times) <= 0):
        raise ValueError("times must be a strictly increasing 1-D array with at least two entries")
    if times[0] < 0 or times[-1] > duration * (1 + 1e-12):
        raise ValueError(f"times must lie in [0, {duration}] s")
    return np.clip(times / duration, 0.0, 1.0)


FAST_DEFAULTS = dict(steps=400, first_step=1e-5, growth=1.05)


def solve(model: AbstractLadder, protocol, *, points_per_cycle: int = 200, times=None,
          method: str = "adaptive", rtol: float = 1e-7, atol: float = 1e-9, max_steps: int = 20000,
          steps: int | None = None, first_step: float = FAST_DEFAULTS["first_step"],
          growth: float = FAST_DEFAULTS["growth"], adjoint: diffrax.AbstractAdjoint | None = None,
          batch_chunk: int = 256, batch_dtype: str = "float64") -> Solution:
    """Simulate and return a traceable :class:`Solution` (SI). Works under ``jax.grad``/``jax.vmap`` over the model.

    ``times`` (s) defaults to ``protocol.sample_times(points_per_cycle)``.

    ``method``:

    * ``"adaptive"`` (default, the reference): diffrax Kvaerno5; ``rtol``/``atol`` on the
      scaled state (charges / (C_total dphi_max)), ``max_steps``, ``adjoint``.
    * ``"fast"``: ROS2 on a grid graded after every protocol knot (see ``_fast``): the
      base spacing is ``1/steps`` of the protocol (default 400); after each knot the step
      starts at ``first_step`` (fraction of the protocol, default 1e-5) and grows by
      ``growth`` (default 1.05). For the benchmark (20 slits, 1e8 V/s CV, 201 outputs,
      594 steps) the current is within 8e-4 of the reference (max over the curve,
      relative to the peak), about 2e-3 at gamma = 0.9 or for faster scans; lowering
      ``growth`` (e.g. 1.025) is what reduces it (``steps`` matters less).
    * ``"fixed"``: the same ROS2 on ``steps`` uniform steps (default 2000) plus the knots
      and output times.

    Many parameter sets: ``jax.vmap`` over the model (e.g. ``jax.vmap(lambda r_c, g:
    solve(NCM(..., r_c, g), cv, method="fast").current_density)``) runs ``"fast"``/``"fixed"``
    as ONE batched integration (``jax.custom_batching.custom_vmap``): state ``(n+1, batch)``,
    tridiagonal systems by cyclic reduction over the rows, the batch in chunks of
    ``batch_chunk`` (default 256; 0 turns the batched path off) parameter sets; same grid
    and result as the single-curve solver (to rounding). ``batch_dtype="float32"`` runs it in single precision (about
    1.8x the throughput; 7e-5 of the peak current from float64 on the benchmark). Only the
    model may be batched for this path (else plain ``vmap``); ``jax.grad``/``jax.jacfwd``
    differentiate the single-curve solver. The benchmark (20 slits, 1e8 V/s, 201 outputs)
    uses ``steps=200, first_step=3e-4, growth=1.03`` (356 steps, max error 1.1e-3 of the
    peak up to gamma = 0.9, vs 594 steps and 1.9e-3 for the defaults); see
    ``benchmarks/ncm.py``.

    Output times are always grid points. Call inside ``jaxpnp.float64()`` when tracing
    it yourself (jit/vmap/grad).

    Nonlinear capacitors (e.g. ``BikermanCapacitor``): ``"adaptive"`` is the reference.
    ``"fast"``/``"fixed"`` are within ~1e-3 of it for rate-limited CVs (a 5-slit ladder
    at 1e8 V/s) but not for slow, quasi-static scans (130% off at 1e5 V/s: the
    linearly implicit steps do not follow the steep crowded-layer law over long steps);
    they warn.
    """
    if not isinstance(model, AbstractLadder):
        raise TypeError(f"model must be a circuits NCM or TLM, got {type(model).__name__}")
    if method not in ("adaptive", "fixed", "fast"):
        raise ValueError(f"method must be 'adaptive', 'fast' or 'fixed', got {method!r}")
    if str(batch_dtype) not in ("float64", "float32") or int(batch_chunk) < 0:
        raise ValueError("batch_dtype must be 'float64' or 'float32' and batch_chunk >= 0")
    if method != "adaptive" and model.has_open_law():
        raise ValueError("an NCM with an open-space law (gamma_open != 0) needs method='adaptive'")
    if method != "adaptive" and not isinstance(model.capacitor_law(), LinearCapacitor):
        warnings.warn(f"method={method!r} with a nonlinear capacitor is accurate only for rate-limited "
                      "scans; use method='adaptive' for slow (quasi-static) ones", stacklevel=2)
    with float64():
        drive = drive_from_protocol(protocol)
        save_tau = _save_tau(protocol, drive, points_per_cycle, times)
        if method == "fixed":
            steps = 2000 if steps is None else steps
            if int(steps) < 2:
                raise ValueError(f"steps must be >= 2, got {steps}")
            grid, save_index = _fixed_grid(drive, save_tau, steps)
        elif method == "fast":
            steps = FAST_DEFAULTS["steps"] if steps is None else steps
            if int(steps) < 2 or not (0 < first_step <= 1) or not growth >= 1:
                raise ValueError("fast: need steps >= 2, 0 < first_step <= 1, growth >= 1")
            grid, save_index = graded_grid(np.asarray(drive.knots), save_tau, int(steps), first_step, growth)
        drive = jax.tree_util.tree_map(jnp.asarray, drive)
        if method == "adaptive":
            adjoint = diffrax.RecursiveCheckpointAdjoint() if adjoint is None else adjoint
            # tolerances as arrays: changing them does not recompile
            return _solve_adaptive(model, drive, jnp.asarray(save_tau), jnp.asarray(rtol, dtype=jnp.float64),
                                   jnp.asarray(atol, dtype=jnp.float64), int(max_steps), adjoint)
        plan = tuple(jnp.asarray(p) for p in step_plan(grid, save_index))
        flat_grid, out_index, _ = flat_steps(grid, save_index)
        return _solve_rosenbrock(model, drive, plan, jnp.asarray(grid[save_index]), jnp.asarray(flat_grid),
                                 jnp.asarray(out_index), int(batch_chunk), str(batch_dtype))


def _protocol_attrs(protocol) -> dict:
    attrs = {"protocol": type(protocol).__name__}
    for name, value in vars(protocol).items():
        if isinstance(value, (int, float, str, np.floating, np.integer)):
            attrs[f"protocol_{name}"] = value if not isinstance(value, np.generic) else value.item()
    return attrs


def to_dataset(solution: Solution, model: AbstractLadder, protocol=None, **extra_attrs) -> xr.Dataset:
    """Pack a concrete :class:`Solution` into the mPNP solver's Dataset layout (SI, units in attrs)."""
    s = jax.tree_util.tree_map(np.asarray, solution)
    n = model.n_slits
    ds = xr.Dataset(
        data_vars={
            "cell_voltage": ("time", s.cell_voltage, {"units": "V", "long_name": "cell voltage V_m = 2 phi_m"}),
            "current_density": ("time", s.current_density, {
                "units": "A/m^2", "long_name": "current through R_open per projected area; > 0 charges the electrode"}),
            "electrode_charge": ("time", s.electrode_charge, {
                "units": "C/m^2", "long_name": "electrode-side charge (= minus the ionic charge stored), from 0"}),
            "slit_charge": (("time", "slit"), s.slit_charge, {
                "units": "C/m^2", "long_name": "electrode-side charge of each node (0 = open space); "
                                               "the net ionic charge stored there is its negative"}),
            "link_charge": (("time", "link"), s.link_charge, {
                "units": "C/m^2", "long_name": "charge passed through link i (node i -> i+1), Q_i = int I_i dt"}),
            "link_current": (("time", "link"), s.link_current, {"units": "A/m^2", "long_name": "trans-slit current I_i"}),
            "link_resistance": (("time", "link"), s.link_resistance, {
                "units": "ohm m^2", "long_name": "trans-slit resistance R_c + R_d"}),
        },
        coords={
            "time": ("time", s.time, {"units": "s"}),
            "slit": ("slit", np.arange(n + 1), {"long_name": "node: 0 open space, 1..n slits"}),
            "link": ("link", np.arange(n), {"long_name": "link i joins node i to node i+1"}),
        },
    )
    ds.attrs.update({k: (str(v) if isinstance(v, list) else v) for k, v in model.parameters().items()})
    if protocol is not None:
        ds.attrs.update(_protocol_attrs(protocol))
    ds.attrs.update(extra_attrs)
    return ds


def simulate(model: AbstractLadder, protocol, *, points_per_cycle: int = 200, times=None,
             method: str = "adaptive", **solver_options) -> xr.Dataset:
    """Simulate ``model`` under a jaxpnp protocol (``CV``, ``PotentialStep``, ``Galvanostatic``).

    Returns an ``xarray.Dataset`` with ``time`` (s), ``cell_voltage`` (V),
    ``current_density`` (A/m^2), ``electrode_charge`` (C/m^2), ``slit_charge`` (time,
    slit; C/m^2, slit 0 = open space) and the link variables; model parameters and the
    protocol in ``attrs``. Compiled once per (model structure, n_slits, number of
    outputs, method); later calls with new values reuse it. Options: see :func:`solve`.
    """
    sol = solve(model, protocol, points_per_cycle=points_per_cycle, times=times, method=method, **solver_options)
    return to_dataset(sol, model, protocol, method=method)
