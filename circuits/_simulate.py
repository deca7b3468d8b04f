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

All paths (adaptive, single-curve ROS2, batched ROS2) evaluate the same
:class:`~circuits._kernel.LadderKernel`, so every model option (capacitor law,
trans-slit laws, the open-space law) means the same on each of them.
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

from jaxpnp import float64, protocol_attrs, to_cf

from ._drive import Drive, drive_from_protocol, output_times
from ._fast import fixed_grid, flat_steps, graded_grid, ros2_integrate, ros2_integrate_batched, step_plan
from ._kernel import LadderKernel
from ._ncm import AbstractLadder, LinearCapacitor, TabulatedCapacitor, resolve_q_max
from ._salt import SaltNCM, simulate_salt, solve_salt
from ._salt_ladder import SaltLadder, simulate_salt_ladder, solve_salt_ladder


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


def _kernel(model: AbstractLadder, drive: Drive) -> LadderKernel:
    """The scaled ladder of ``model`` under ``drive``: state unit = the charge of the whole swing."""
    c = model.capacitances()
    if drive.controls == "voltage":
        swing_V = drive.swing
        charge = jnp.sum(model.node_charge_at(drive.swing))
    else:
        swing_V = model.equilibrium_voltage(drive.swing)
        charge = drive.swing
    q_open = getattr(model, "q_max_open", None)
    q_open = jnp.sum(model.node_charge_at(swing_V)) if q_open is None else jnp.asarray(q_open)
    return LadderKernel(model=model, capacitance=c, inv_capacitance=1.0 / c, scale=charge,
                        rate=drive.duration_s / charge, q_max=resolve_q_max(model, swing_V), q_max_open=q_open,
                        voltage=drive.controls == "voltage", charge_mode=getattr(model, "charge", "link"),
                        linear=isinstance(model.capacitor_law(), LinearCapacitor))


def _observe(kernel: LadderKernel, drive: Drive, tau, x) -> Solution:
    value = drive(tau)
    current, link_current, R, node_charge, u = kernel.currents(x, value)
    X = kernel.scale * x
    if drive.controls == "voltage":
        phi = drive.phi_initial + value
    else:
        phi = drive.phi_initial + u[0] + current * kernel.model.open_resistance(X[0], kernel.q_max_open)
    return Solution(time=tau * drive.duration_s, cell_voltage=2.0 * phi, current_density=current,
                    electrode_charge=X[0], slit_charge=node_charge, link_charge=X[1:],
                    link_current=link_current, link_resistance=R)


# ----------------------------------------------------------------------------
# adaptive: diffrax
# ----------------------------------------------------------------------------


@eqx.filter_jit
def _solve_adaptive(model, drive: Drive, save_tau, rtol, atol, max_steps, adjoint):
    kernel = _kernel(model, drive)
    n_state = model.n_slits + 1

    def vector_field(tau, x, args):
        return kernel.rhs(x, drive(tau))

    controller = diffrax.ClipStepSizeController(
        diffrax.PIDController(rtol=rtol, atol=atol),
        jump_ts=drive.knots[1:-1] if drive.knots.shape[0] > 2 else None)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field), diffrax.Kvaerno5(), t0=0.0, t1=1.0, dt0=None,
        y0=jnp.zeros((n_state,)), saveat=diffrax.SaveAt(ts=save_tau),
        stepsize_controller=controller, max_steps=max_steps, adjoint=adjoint)
    return jax.vmap(lambda tau, x: _observe(kernel, drive, tau, x))(save_tau, sol.ys)


# ----------------------------------------------------------------------------
# fixed / fast: ROS2 with tridiagonal linear algebra (see _fast)
# ----------------------------------------------------------------------------


def _states_one(model, drive, plan, grid, out_index):
    """Scaled states at the output times (n_out, n+1) for one parameter set (nested scans, gtsv)."""
    return ros2_integrate(_kernel(model, drive), drive, plan)


def _capacitor_batched(model, flags) -> bool:
    """Whether any leaf of the model's capacitor law is among the batched leaves."""
    cap = getattr(model, "capacitor", None)
    if cap is None:
        return False
    cap_ids = {id(x) for x in jax.tree_util.tree_leaves(cap)}
    return any(f and id(x) in cap_ids for x, f in zip(jax.tree_util.tree_leaves(model), flags))


def _states_batched(axis_size, in_batched, model, drive, plan, grid, out_index, *, chunk, dtype):
    """custom_vmap rule: the batch-last kernel (cyclic reduction) when only the model is batched."""
    leaves, treedef = jax.tree_util.tree_flatten(model)
    flags = jax.tree_util.tree_leaves(in_batched[0])
    tables = isinstance(model.capacitor_law(), TabulatedCapacitor) and _capacitor_batched(model, flags)
    if any(jax.tree_util.tree_leaves(in_batched[1:])) or len(flags) != len(leaves) or tables:
        # the protocol or the grid is batched too, or the capacitor tables are (their
        # interpolation is not elementwise in the batch): plain vmap of the single-curve solver
        axes = jax.tree_util.tree_map(lambda b: 0 if b else None, list(in_batched))
        return jax.vmap(_states_one, in_axes=tuple(axes))(model, drive, plan, grid, out_index), True
    B = int(axis_size)
    in_axes_model = jax.tree_util.tree_unflatten(treedef, [0 if f else None for f in flags])
    kern = jax.vmap(lambda m: _kernel(m, drive), in_axes=(in_axes_model,))(model)
    last = lambda a: jnp.moveaxis(a, 0, -1)  # noqa: E731
    consts = dict(capacitance=last(kern.capacitance), inv_capacitance=last(kern.inv_capacitance), scale=kern.scale,
                  rate=kern.rate, q_max=last(kern.q_max), q_max_open=jnp.broadcast_to(kern.q_max_open, (B,)))
    consts = {k: jnp.broadcast_to(v, v.shape[:-1] + (B,)).astype(dtype) for k, v in consts.items()}
    # model leaves batch-last: batched ones moved, fixed per-row ones get a trailing axis of
    # 1; the capacitor's fixed leaves (e.g. tables) keep their shape (its law is elementwise)
    cap = getattr(model, "capacitor", None)
    cap_ids = {id(x) for x in jax.tree_util.tree_leaves(cap)} if cap is not None else set()

    def batch_last(x, f):
        keep = id(x) in cap_ids
        x = jnp.asarray(x)
        if f:
            return last(x).astype(dtype)
        return (x if keep or x.ndim == 0 else x[..., None]).astype(dtype)

    bl = [batch_last(x, f) for x, f in zip(leaves, flags)]
    h = jnp.diff(grid)
    v0, v1 = drive.segment_value(grid[:-1], grid[1:])
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
        m = jax.tree_util.tree_unflatten(treedef, [next(it_b) if f else next(it_f) for f in flags])
        kernel = LadderKernel(model=m, voltage=drive.controls == "voltage",
                              charge_mode=getattr(model, "charge", "link"),
                              linear=isinstance(model.capacitor_law(), LinearCapacitor), **cs)
        return ros2_integrate_batched(kernel, h, v0, v1, out_index, n_out)

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
    kernel = _kernel(model, drive)
    xs = _states_fn(batch_chunk, jnp.dtype(batch_dtype))(model, drive, plan, grid, out_index)
    return jax.vmap(lambda tau, x: _observe(kernel, drive, tau, x))(save_tau, xs)


# ----------------------------------------------------------------------------
# public
# ----------------------------------------------------------------------------


def _save_tau(protocol, drive, points_per_cycle, times) -> np.ndarray:
    times = output_times(protocol, drive, points_per_cycle, times)
    return np.clip(times / float(drive.duration_s), 0.0, 1.0)


FAST_DEFAULTS = dict(steps=400, first_step=1e-5, growth=1.05)
FIXED_STEPS = 2000


def _step_grid(drive: Drive, save_tau, method, steps, first_step, growth):
    """(grid, save_index) in scaled time of the ROS2 paths; ValueError for bad options."""
    if method == "fixed":
        steps = FIXED_STEPS if steps is None else steps
        if int(steps) < 2:
            raise ValueError(f"steps must be >= 2, got {steps}")
        return fixed_grid(np.asarray(drive.knots), save_tau, int(steps))
    steps = FAST_DEFAULTS["steps"] if steps is None else steps
    if int(steps) < 2 or not (0 < first_step <= 1) or not growth >= 1:
        raise ValueError("fast: need steps >= 2, 0 < first_step <= 1, growth >= 1")
    return graded_grid(np.asarray(drive.knots), save_tau, int(steps), first_step, growth)


def step_grid(protocol, *, method: str = "fast", points_per_cycle: int = 200, times=None,
              steps: int | None = None, first_step: float = FAST_DEFAULTS["first_step"],
              growth: float = FAST_DEFAULTS["growth"]) -> np.ndarray:
    """Times (s, shape (steps + 1,)) of the grid :func:`solve` steps on for ``method="fast"``/``"fixed"``.

    Same options as :func:`solve`; ``len(step_grid(...)) - 1`` is the number of ROS2 steps.
    """
    if method not in ("fixed", "fast"):
        raise ValueError(f"step_grid: method must be 'fast' or 'fixed' (adaptive chooses its own), got {method!r}")
    with float64():
        drive = drive_from_protocol(protocol)
        save_tau = _save_tau(protocol, drive, points_per_cycle, times)
        grid, _ = _step_grid(drive, save_tau, method, steps, first_step, growth)
    return grid * float(drive.duration_s)


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
    if isinstance(model, SaltNCM):  # the salt-aware model has its own (adaptive) solver
        return solve_salt(model, protocol, points_per_cycle=points_per_cycle, times=times, method=method,
                          rtol=rtol, atol=atol, max_steps=max_steps, adjoint=adjoint)
    if isinstance(model, SaltLadder):  # the NCM ladder with a separator salt balance: its own ROS2
        return solve_salt_ladder(model, protocol, points_per_cycle=points_per_cycle, times=times, method=method,
                                 **({} if steps is None else dict(steps=steps)))
    if not isinstance(model, AbstractLadder):
        raise TypeError(f"model must be a circuits NCM or TLM, got {type(model).__name__}")
    if method not in ("adaptive", "fixed", "fast"):
        raise ValueError(f"method must be 'adaptive', 'fast' or 'fixed', got {method!r}")
    if str(batch_dtype) not in ("float64", "float32") or int(batch_chunk) < 0:
        raise ValueError("batch_dtype must be 'float64' or 'float32' and batch_chunk >= 0")
    if method != "adaptive" and not isinstance(model.capacitor_law(), LinearCapacitor):
        warnings.warn(f"method={method!r} with a nonlinear capacitor is accurate only for rate-limited "
                      "scans; use method='adaptive' for slow (quasi-static) ones", stacklevel=2)
    with float64():
        drive = drive_from_protocol(protocol)
        save_tau = _save_tau(protocol, drive, points_per_cycle, times)
        if method != "adaptive":
            grid, save_index = _step_grid(drive, save_tau, method, steps, first_step, growth)
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
            "time": ("time", s.time, {"units": "s", "long_name": "time"}),
            "slit": ("slit", np.arange(n + 1), {"long_name": "node: 0 open space, 1..n slits"}),
            "link": ("link", np.arange(n), {"long_name": "link i joins node i to node i+1"}),
        },
    )
    ds.attrs.update({k: (str(v) if isinstance(v, list) else v) for k, v in model.parameters().items()})
    if protocol is not None:
        ds.attrs.update(protocol_attrs(protocol))
    ds.attrs.update(extra_attrs)
    return to_cf(ds)


def simulate(model: AbstractLadder, protocol, *, points_per_cycle: int = 200, times=None,
             method: str = "adaptive", **solver_options) -> xr.Dataset:
    """Simulate ``model`` under a jaxpnp protocol (``CV``, ``PotentialStep``, ``Galvanostatic``).

    Returns an ``xarray.Dataset`` with ``time`` (s), ``cell_voltage`` (V),
    ``current_density`` (A/m^2), ``electrode_charge`` (C/m^2), ``slit_charge`` (time,
    slit; C/m^2, slit 0 = open space) and the link variables; model parameters and the
    protocol in ``attrs``. Compiled once per (model structure, n_slits, number of
    outputs, method); later calls with new values reuse it. Options: see :func:`solve`.
    """
    if isinstance(model, SaltNCM):
        return simulate_salt(model, protocol, points_per_cycle=points_per_cycle, times=times, method=method,
                             **solver_options)
    if isinstance(model, SaltLadder):
        return simulate_salt_ladder(model, protocol, points_per_cycle=points_per_cycle, times=times, **solver_options)
    sol = solve(model, protocol, points_per_cycle=points_per_cycle, times=times, method=method, **solver_options)
    return to_dataset(sol, model, protocol, method=method)
