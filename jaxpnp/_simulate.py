"""simulate(): validate, discretise, step with diffrax, package an xarray Dataset (SI)."""

from __future__ import annotations

import functools
import hashlib
import math
import os
import time as _time
import warnings

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import threadpoolctl
from tqdm.auto import tqdm

from . import _equilibrium  # module import: _equilibrium imports this module too
from ._block_tridiagonal import BlockLayout, BlockTridiagonalPreconditioner
from ._electrolyte import AVOGADRO, ELEMENTARY_CHARGE, Electrolyte
from ._geometry import Electrode, Grid, build_grid, check_stern_capacitance
from ._implicit import NewtonKrylov
from ._model import MPNPModel
from ._observables import to_dataset
from ._poisson import FastPoisson
from ._precision import float64
from ._preconditioner import SparseLUPreconditioner
from ._protocol import CV, AbstractProtocol, PotentialStep, Sine
from ._stage_adjoint import with_stage_adjoint

BOUNDARIES = ("symmetric", "reservoir")
SOLVERS = {"kvaerno3": dfx.Kvaerno3, "kvaerno4": dfx.Kvaerno4, "kvaerno5": dfx.Kvaerno5}
PRECONDITIONERS = ("auto", "block_thomas", "cyclic_reduction", "superlu")


def resolve_preconditioner(name: str) -> str:
    """The concrete preconditioner for ``name``; ``"auto"`` picks by the default JAX backend.

    GPU/TPU: block cyclic reduction (log depth, batched). CPU: block Thomas, which
    measured as fast as the host SuperLU path and keeps the run one XLA program
    (benchmarks/results/mpnp_preconditioners.json).
    """
    if name not in PRECONDITIONERS:
        raise ValueError(f"preconditioner must be one of {PRECONDITIONERS}, got {name!r}")
    if name != "auto":
        return name
    return "block_thomas" if jax.default_backend() == "cpu" else "cyclic_reduction"


class SimulationError(RuntimeError):
    """A run that stopped early; ``partial`` holds the Dataset computed up to ``time_reached_s``."""

    def __init__(self, message, partial=None, time_reached_s=None):
        super().__init__(message)
        self.partial = partial
        self.time_reached_s = time_reached_s


# ---------------------------------------------------------------------------
# discretisation cache: the same geometry reuses the same static objects, hence
# the same compiled step function.
@functools.lru_cache(maxsize=8)
def _discretise(electrode_key, h_nm, stern=False):
    electrode = Electrode(**dict(electrode_key))
    grid = build_grid(electrode, h_nm)
    sparse = SparseLUPreconditioner.build_for(grid, stern=stern)
    # concrete arrays even when first called inside a jit/vmap trace: the cache outlives it
    with jax.ensure_compile_time_eval():
        poisson = FastPoisson.build(grid, stern=stern)
    return grid, poisson, sparse, BlockLayout(sparse.pattern)


def _electrode_key(e: Electrode):
    return tuple((k, (float(v) if isinstance(v, (int, float)) and k not in ("n_sheets",) else v))
                 for k, v in ((f, getattr(e, f)) for f in
                              ("layout", "n_sheets", "slit_nm", "sheet_length_nm", "sheet_gap_nm",
                               "sheet_thickness_nm", "separator_nm")))


def _concrete(x):
    try:
        return float(x)
    except (TypeError, jax.errors.ConcretizationTypeError):
        return None


def validate(electrolyte, electrode, protocol, grid_nm, boundary, allow_subnanometre_slits=False):
    """All input checks, before any compute. Raises ValueError with a clear message."""
    if not isinstance(electrolyte, Electrolyte):
        raise TypeError("electrolyte must be a jaxpnp.Electrolyte")
    if not isinstance(electrode, Electrode):
        raise TypeError("electrode must be a jaxpnp.Electrode")
    if not isinstance(protocol, AbstractProtocol):
        raise TypeError("protocol must be a jaxpnp protocol (CV, PotentialStep)")
    if protocol.controls != "voltage":
        raise ValueError(f"the mPNP solver is voltage-driven; {type(protocol).__name__} is not supported")
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    if not (isinstance(grid_nm, (int, float)) and math.isfinite(grid_nm) and grid_nm > 0):
        raise ValueError(f"grid_nm must be a positive number of nm, got {grid_nm!r}")
    if electrode.layout != "planar" and float(electrode.slit_nm) < 1.0 and not allow_subnanometre_slits:
        raise ValueError(
            f"slit_nm={electrode.slit_nm} < 1 nm is outside the validity of mPNP (ion "
            "desolvation and correlations dominate); pass allow_subnanometre_slits=True to run anyway")
    lam = _concrete(electrolyte.debye_length_m)
    if lam is not None and grid_nm > lam * 1e9:
        raise ValueError(
            f"grid_nm={grid_nm} is coarser than the Debye length ({lam * 1e9:.3g} nm): "
            "the double layer would not be resolved; refine the grid")
    check_stern_capacitance(electrode.stern_capacitance_F_m2)
    build_grid(electrode, grid_nm)  # geometric checks (slit, sheet, gap resolution)


def _segments(protocol, points_per_cycle, segments_per_sweep):
    """Segment boundaries (s) aligned with the protocol's jumps, and save points per segment."""
    if isinstance(protocol, (CV, Sine)):  # periodic: segments line up with the half periods
        vertices = np.concatenate([[0.0], protocol.jump_times, [protocol.duration]])
        edges = np.unique(np.concatenate([np.linspace(a, b, segments_per_sweep + 1)
                                          for a, b in zip(vertices[:-1], vertices[1:])]))
        per_segment = max(2, int(math.ceil(points_per_cycle / (2 * segments_per_sweep))))
    else:
        jumps = [float(j) for j in protocol.jump_times]
        edges = np.unique(np.concatenate([[0.0], jumps, np.linspace(jumps[-1] if jumps else 0.0,
                                                                    protocol.duration, 2 * segments_per_sweep + 1)]))
        per_segment = max(2, int(math.ceil(points_per_cycle / (2 * segments_per_sweep))))
    return edges, per_segment


@eqx.filter_jit
def _solve_segment(model, precond, y0, t0, t1, dt0, n_save, rtol, atol, solver_name, max_steps,
                   krylov_rtol, step_to_outputs=True):
    root_finder = NewtonKrylov(
        rtol=rtol, atol=atol, krylov_rtol=krylov_rtol,
        build_preconditioner=lambda y, t, hg: precond.build(model, y, t, hg),
        apply_preconditioner=precond.apply)
    solver = SOLVERS[solver_name](root_finder=root_finder)
    ts = t0 + (t1 - t0) * jnp.linspace(0.0, 1.0, n_save)
    sol = dfx.diffeqsolve(
        dfx.ODETerm(model.vector_field), solver, t0, t1, dt0, y0,
        saveat=dfx.SaveAt(ts=ts),
        stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol, dtmin=None,
                                              step_ts=ts if step_to_outputs else None),
        max_steps=max_steps, throw=False)
    inside = 1e-9 * (t1 - t0)
    obs = jax.vmap(model.observables)(sol.ts, sol.ys, jnp.clip(sol.ts, t0 + inside, t1 - inside))
    ok = sol.result == dfx.RESULTS.successful
    return sol.ts, sol.ys, obs, ok, sol.stats["num_accepted_steps"], sol.stats["num_rejected_steps"]


def _traced_protocol(model):
    """The model with the protocol's Python-float numbers as arrays.

    ``eqx.filter_jit`` treats Python floats as compile-time constants: a new step
    height or scan rate would recompile the solver (15-25 s); arrays do not.
    """
    as_array = lambda x: jnp.asarray(x, jnp.float64) if isinstance(x, float) else x
    return eqx.tree_at(lambda m: m.protocol, model, jax.tree_util.tree_map(as_array, model.protocol))


def _initial_state(model, protocol, electrolyte):
    """The discrete equilibrium at the protocol's initial cell voltage (the uniform bulk at 0 V)."""
    v0 = float(protocol.initial_cell_voltage)
    if v0 == 0.0:
        return model.initial_state()
    phi0 = 0.5 * v0 / float(electrolyte.thermal_voltage_V)
    return jnp.asarray(_equilibrium.EquilibriumSolver(model).solve(phi0).c)


def build_model(electrolyte, electrode, protocol, grid_nm, boundary, reuse_tolerance=0.0,
                preconditioner="superlu"):
    """The discrete model (and its preconditioner) for one configuration.

    ``preconditioner``: ``"superlu"`` (host SciPy factorisation through a callback;
    ``reuse_tolerance`` applies to it only), ``"block_thomas"`` or ``"cyclic_reduction"``
    (exact device solves, no host callback), or ``"auto"``.
    """
    method = resolve_preconditioner(preconditioner)
    stern = electrode.has_stern_layer
    grid, poisson, sparse, layout = _discretise(_electrode_key(electrode), float(grid_nm), stern)
    precond = SparseLUPreconditioner(pattern=sparse.pattern, reuse_tolerance=float(reuse_tolerance))
    if method != "superlu":
        precond = BlockTridiagonalPreconditioner(sparse=precond, layout=layout, method=method)
    if stern:  # lambda_S = eps / C_S, in grid cells (differentiable in eps and C_S)
        lam_stern_m = electrolyte.permittivity_F_m / electrode.stern_capacitance_F_m2
        poisson = poisson.with_stern(lam_stern_m / (float(grid_nm) * 1e-9))
    lam_nm = electrolyte.debye_length_m * 1e9
    model = MPNPModel.build(
        grid, poisson, protocol, h=grid_nm / lam_nm, nu=electrolyte.packing_parameter,
        d_minus=electrolyte.anion_to_cation_diffusivity, time_scale_s=electrolyte.debye_time_s,
        thermal_voltage_V=electrolyte.thermal_voltage_V, reservoir=(boundary == "reservoir"))
    return model, precond


def simulate(electrolyte: Electrolyte, electrode: Electrode, protocol: AbstractProtocol,
             grid_nm: float = 0.1, boundary: str = "symmetric", *, points_per_cycle: int = 200,
             snapshot_times_s=None, rtol: float = 1e-5, atol: float = 1e-7,
             solver: str = "kvaerno3", max_steps_per_segment: int = 20000,
             krylov_rtol: float = 1e-5, segments_per_sweep: int = 4, progress: bool = True,
             preconditioner_reuse: float = 0.05, step_to_outputs: bool = True,
             checkpoint_path=None, resume: bool = False, allow_subnanometre_slits: bool = False,
             preconditioner: str = "auto"):
    """Run the mPNP half cell under ``protocol``; returns an ``xarray.Dataset`` in SI units.

    ``grid_nm``: node spacing (nm). ``boundary``: ``"symmetric"`` (closed half cell with
    the exact mid-plane antisymmetry; salt conserved) or ``"reservoir"`` (bulk c0 and
    0 V held at the outer edge of the open space). ``points_per_cycle``: output
    samples per CV cycle (or per step protocol). ``snapshot_times_s``: times (s) at which
    to keep the full c+, c-, potential fields (snapped to the nearest output time).
    ``rtol``/``atol``: step-size control on concentrations (units of c0).
    ``preconditioner``: exact solver of the stage matrix inside Newton-Krylov:
    ``"block_thomas"`` / ``"cyclic_reduction"`` (block-tridiagonal factorisation on the
    device; the whole step is one XLA program), ``"superlu"`` (SciPy on the host through
    a callback), ``"auto"`` (cyclic reduction on GPU, block Thomas on CPU).
    ``preconditioner_reuse``: relative Jacobian change under which the sparse LU
    factorisation of an earlier step is reused (0 refactors every step; SuperLU only).
    ``step_to_outputs``: land steps on the output times, so that the current (an
    instantaneous rate) is evaluated on computed states, not on dense-output
    interpolants, which in slow, stiff sweeps carry fast components (measured: a
    spurious 9%-of-peak current spike at a 20000 Debye-time half-period without it;
    it costs 10-45% more steps).
    ``checkpoint_path``: netCDF file rewritten after every segment, so a long run that
    dies keeps what it computed (written atomically: a temporary file, then a rename;
    the solver state goes beside it in ``checkpoint_path + ".state.npz"``, removed when
    the run completes). ``resume``: continue an unfinished run of the same configuration
    from that state instead of starting over (a state of another configuration is
    ignored, with a warning); the result then has ``solver_resumed_from_s`` > 0.
    On failure raises ``SimulationError`` carrying the partial Dataset (also written to
    ``checkpoint_path`` when given).
    """
    validate(electrolyte, electrode, protocol, grid_nm, boundary, allow_subnanometre_slits)
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {tuple(SOLVERS)}, got {solver!r}")
    preconditioner = resolve_preconditioner(preconditioner)

    # the dense blocks are small (3 ny): OpenBLAS threads only spin against each other,
    # and on a shared machine a 135 x 135 inverse measured 30 ms with 2 threads vs 0.6 ms with 1
    with float64(), threadpoolctl.threadpool_limits(1, user_api="blas"):
        model, precond = build_model(electrolyte, electrode, protocol, grid_nm, boundary,
                                     preconditioner_reuse, preconditioner)
        model = _traced_protocol(model)
        tau = float(electrolyte.debye_time_s)
        edges, per_segment = _segments(protocol, points_per_cycle, segments_per_sweep)
        y = _initial_state(model, protocol, electrolyte)
        collected = dict(ts=[], obs=[], ys=[])
        steps = dict(accepted=0, rejected=0)
        snap_t = None if snapshot_times_s is None else np.atleast_1d(np.asarray(snapshot_times_s, float))
        dt0 = jnp.asarray((edges[1] - edges[0]) / tau / 1e3)
        fingerprint = _fingerprint(electrolyte, electrode, protocol, grid_nm, boundary, points_per_cycle,
                                   snap_t, rtol, atol, solver, max_steps_per_segment, krylov_rtol,
                                   segments_per_sweep, preconditioner_reuse, step_to_outputs)
        first, elapsed, resumed_from = 0, 0.0, 0.0
        if resume and checkpoint_path is not None:
            observed = sorted(jax.eval_shape(model.observables, jnp.asarray(0.0), y, jnp.asarray(0.0)))
            state = _read_state(checkpoint_path, fingerprint, observed)
            if state is not None:
                first, elapsed = state["segments_done"], state["elapsed_s"]
                y, dt0 = jnp.asarray(state["y"]), jnp.asarray(state["dt0"])
                collected = state["collected"]
                steps = dict(accepted=state["accepted"], rejected=state["rejected"])
                resumed_from = float(edges[first])
        bar = None
        if progress:
            bar = tqdm(total=float(protocol.duration) * 1e9, unit="ns", desc="mPNP", initial=resumed_from * 1e9,
                       bar_format="{l_bar}{bar}| {n:.3g}/{total:.3g} ns [{elapsed}<{remaining}]")
        t_start = _time.perf_counter() - elapsed
        failure = None
        try:
            for k, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
                if k < first:
                    continue
                ts, ys, obs, ok, acc, rej = _solve_segment(
                    model, precond, y, jnp.asarray(a / tau), jnp.asarray(b / tau), dt0, per_segment,
                    jnp.asarray(rtol, float), jnp.asarray(atol, float), solver, max_steps_per_segment,
                    jnp.asarray(krylov_rtol, float), bool(step_to_outputs))
                ok = bool(ok)
                obs = jax.tree_util.tree_map(lambda v: np.array(v, copy=True), obs)
                ts = np.asarray(ts)
                finite = np.all(np.isfinite(obs["electrode_charge"])) & np.all(np.isfinite(obs["current"]))
                if not (ok and finite):
                    good = np.isfinite(ts) & np.isfinite(obs["electrode_charge"])
                    good &= np.cumprod(good).astype(bool)
                    if good.any():
                        keep = slice(0 if k == 0 else 1, int(good.sum()))
                        collected["ts"].append(ts[keep])
                        collected["obs"].append(jax.tree_util.tree_map(lambda v: v[keep], obs))
                        collected["ys"].append(np.asarray(ys)[keep] if snap_t is not None else None)
                    reached = collected["ts"][-1][-1] * tau if collected["ts"] else 0.0
                    failure = (f"mPNP run stopped at t = {reached:.4g} s of {protocol.duration:.4g} s "
                               f"(segment {k + 1}/{len(edges) - 1}: "
                               f"{'step-size collapse or nonlinear solver failure' if not ok else 'non-finite values'}); "
                               "the part computed so far is in the error's .partial")
                    break
                if k > 0:
                    # a segment's first sample repeats the previous end; on a CV vertex the
                    # current jumps, and the mean of both one-sided limits keeps the
                    # trapezoidal integral of the current second-order accurate
                    last = collected["obs"][-1]["current"]
                    last[-1] = 0.5 * (last[-1] + obs["current"][0])
                keep = slice(0 if k == 0 else 1, None)
                collected["ts"].append(ts[keep])
                collected["obs"].append(jax.tree_util.tree_map(lambda v: v[keep], obs))
                collected["ys"].append(np.asarray(ys)[keep] if snap_t is not None else None)
                steps["accepted"] += int(acc)
                steps["rejected"] += int(rej)
                y = ys[-1]
                dt0 = jnp.asarray((b - a) / tau / max(int(acc), 1))
                if bar is not None:
                    bar.n = min(b * 1e9, bar.total)
                    bar.refresh()
                if checkpoint_path is not None:
                    _checkpoint(to_dataset, model, electrolyte, electrode, protocol, grid_nm, boundary,
                                collected, snap_t, steps, t_start, checkpoint_path, complete=False)
                    _write_state(checkpoint_path, fingerprint, k + 1, y, dt0, collected, steps,
                                 _time.perf_counter() - t_start)
        finally:
            if bar is not None:
                bar.close()
        ds = to_dataset(model, electrolyte, electrode, protocol, grid_nm, boundary, collected, snap_t,
                        dict(steps, run_time_s=_time.perf_counter() - t_start, resumed_from_s=resumed_from,
                             rtol=rtol, atol=atol, solver=solver, preconditioner=preconditioner,
                             complete=int(failure is None)))
        if checkpoint_path is not None:
            _write_atomically(ds, checkpoint_path)
            if failure is None and os.path.exists(_state_path(checkpoint_path)):
                os.remove(_state_path(checkpoint_path))
        if failure is not None:
            raise SimulationError(failure, partial=ds,
                                  time_reached_s=float(ds.time[-1]) if ds.sizes.get("time") else 0.0)
        return ds


def _checkpoint(to_dataset, model, electrolyte, electrode, protocol, grid_nm, boundary, collected,
                snap_t, steps, t_start, path, complete):
    ds = to_dataset(model, electrolyte, electrode, protocol, grid_nm, boundary, collected, snap_t,
                    dict(steps, run_time_s=_time.perf_counter() - t_start, complete=int(complete)))
    _write_atomically(ds, path)


def _write_atomically(ds, path):
    """Write to a temporary file beside ``path``, then rename: a reader (or a run killed
    mid-write) never sees a half-written file."""
    tmp = f"{path}.tmp{os.getpid()}"
    ds.to_netcdf(tmp, engine="h5netcdf")
    os.replace(tmp, path)


# ---- resumable state ------------------------------------------------------
def _state_path(checkpoint_path):
    return f"{checkpoint_path}.state.npz"


def _fingerprint(*config):
    """A digest of everything that determines the run (repr of the eqx modules and numbers)."""
    text = repr(tuple(c.tolist() if isinstance(c, np.ndarray) else c for c in config))
    return hashlib.sha256(text.encode()).hexdigest()


def _write_state(checkpoint_path, fingerprint, segments_done, y, dt0, collected, steps, elapsed_s):
    """The solver state after ``segments_done`` segments, enough to continue the run."""
    keys = sorted(collected["obs"][0]) if collected["obs"] else []
    arrays = {f"obs_{k}": np.concatenate([o[k] for o in collected["obs"]]) for k in keys}
    if collected["ys"] and collected["ys"][0] is not None:
        arrays["ys"] = np.concatenate(collected["ys"])
    tmp = f"{_state_path(checkpoint_path)}.tmp{os.getpid()}.npz"
    np.savez(tmp, fingerprint=np.asarray(fingerprint), segments_done=segments_done, y=np.asarray(y),
             dt0=np.asarray(dt0), ts=np.concatenate(collected["ts"]), accepted=steps["accepted"],
             rejected=steps["rejected"], elapsed_s=elapsed_s, **arrays)
    os.replace(tmp, _state_path(checkpoint_path))


def _read_state(checkpoint_path, fingerprint, observed):
    """The saved state of this configuration, or None (none saved, unreadable, another run's,
    or written by a version whose observables (``observed``: sorted names) differ)."""
    path = _state_path(checkpoint_path)
    if not os.path.exists(path):
        return None
    try:
        with np.load(path) as z:
            saved = {k: z[k] for k in z.files}
    except (OSError, ValueError) as err:
        warnings.warn(f"ignoring unreadable solver state {path}: {err}")
        return None
    if str(saved["fingerprint"]) != fingerprint:
        warnings.warn(f"ignoring solver state {path}: it belongs to another configuration")
        return None
    obs = {k[4:]: np.array(v) for k, v in saved.items() if k.startswith("obs_")}
    if sorted(obs) != list(observed):
        # its records could not be joined to this version's; the run starts over instead
        warnings.warn(f"ignoring solver state {path}: written by a jaxpnp version with other observables "
                      f"(missing {sorted(set(observed) - set(obs))}, extra {sorted(set(obs) - set(observed))}); "
                      "starting the run from the beginning")
        return None
    return dict(segments_done=int(saved["segments_done"]), y=saved["y"], dt0=saved["dt0"],
                elapsed_s=float(saved["elapsed_s"]), accepted=int(saved["accepted"]),
                rejected=int(saved["rejected"]),
                collected=dict(ts=[np.array(saved["ts"])], obs=[obs],
                               ys=[np.array(saved["ys"])] if "ys" in saved else [None]))


def differentiable_run(electrolyte: Electrolyte, electrode: Electrode, protocol: AbstractProtocol,
                       times_s, grid_nm: float = 0.1, boundary: str = "symmetric", *,
                       rtol: float = 1e-6, atol: float = 1e-8, solver: str = "kvaerno3",
                       max_steps: int = 20000, mode: str = "reverse", preconditioner: str = "auto",
                       krylov_rtol: float = 1e-6):
    """Traceable run for ``jax.grad``/``jax.jvp``/``jax.vmap``: electrode charge (C/m^2)
    and current density (A/m^2) at ``times_s``.

    Electrolyte fields (and the protocol's numbers) may be JAX tracers; the geometry is
    fixed by the grid. Call it inside ``jaxpnp.float64()`` (or with x64 enabled). Steps
    land on ``times_s`` (the current is never read off a dense-output interpolant).
    With a device preconditioner (``"block_thomas"``, ``"cyclic_reduction"``; ``"auto"``
    picks one) the whole run is one XLA program without host callbacks, so it can be
    jitted and vmapped; vmapped adaptive solves run in lock step: every member takes the
    union of all members' steps (the batch costs as many steps as its hardest member, times
    the number of Newton/Krylov iterations of the slowest member at each step).
    Derivatives go through each implicit stage by the implicit function theorem; with a
    device preconditioner its linear solve is GMRES preconditioned by the stage's own
    factors (transposed in reverse mode), with ``"superlu"`` a dense solve (small grids
    only). ``mode="forward"`` (for ``jax.jvp``/``jax.jacfwd``) suits a few parameters.
    """
    if mode not in ("reverse", "forward"):
        raise ValueError(f"mode must be 'reverse' or 'forward', got {mode!r}")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {tuple(SOLVERS)}, got {solver!r}")
    validate(electrolyte, electrode, protocol, grid_nm, boundary)
    if _concrete(protocol.initial_cell_voltage) != 0.0:
        # the equilibrium start is a host-side Newton solve, not traceable (simulate has it)
        raise NotImplementedError("differentiable_run starts from the uniform bulk at 0 V; got a protocol "
                                  f"starting at {protocol.initial_cell_voltage} V (use simulate)")
    model, precond = build_model(electrolyte, electrode, protocol, grid_nm, boundary,
                                 preconditioner=preconditioner)
    times = np.asarray(times_s, float) if _concrete_array(times_s) else None
    if times is not None and (times.ndim != 1 or times.size == 0 or times[0] <= 0
                              or np.any(np.diff(times) <= 0)):
        raise ValueError("times_s must be a non-empty, strictly increasing 1D sequence of positive times (s)")
    tau = electrolyte.debye_time_s
    ts = jnp.asarray(times_s) / tau
    root_finder = NewtonKrylov(
        rtol=rtol, atol=atol, krylov_rtol=krylov_rtol,
        build_preconditioner=lambda y, t, hg: precond.build(model, y, t, hg),
        apply_preconditioner=precond.apply)
    jumps = jnp.asarray(protocol.jump_times) / tau
    term = dfx.ODETerm(model.vector_field)
    # device factors can be transposed: the stage adjoints reuse them (no dense Jacobian)
    solver_cls = SOLVERS[solver]
    if isinstance(precond, BlockTridiagonalPreconditioner):
        solver_cls = with_stage_adjoint(solver_cls)
    # reverse mode: diffrax's default stage loop is a checkpointed while loop, whose
    # backward pass re-solves every stage's Newton problem once more inside the step that
    # the outer (time-step) checkpointing is already recomputing; a bounded loop keeps the
    # stages' residuals for the step's own backward pass instead (measured 3 -> 2 Newton
    # solves per stage per gradient)
    stepper = solver_cls(root_finder=root_finder, scan_kind="bounded" if mode == "reverse" else None)
    controller = dfx.PIDController(rtol=rtol, atol=atol, jump_ts=jumps if jumps.size else None)
    adjoint = dfx.ForwardMode() if mode == "forward" else dfx.RecursiveCheckpointAdjoint()

    def interval(c, bounds):
        # one solve per output interval, saving only its end: every output is a computed
        # step (no dense-output interpolant), and no diffrax input check on traced save
        # times or dt0 (each would lower to a host callback) enters the program
        t0, t1 = bounds
        sol = dfx.diffeqsolve(term, stepper, t0, t1, None, c, saveat=dfx.SaveAt(t1=True),
                              stepsize_controller=controller, max_steps=max_steps, throw=False,
                              adjoint=adjoint)
        return sol.ys[0], (sol.ys[0], sol.result == dfx.RESULTS.successful)

    starts = jnp.concatenate([jnp.zeros_like(ts[:1]), ts[:-1]])
    _, (ys, ok) = jax.lax.scan(interval, model.initial_state(), (starts, ts))
    # on a CV vertex the current jumps: take the slope of the sweep the sample ends
    # (the left limit), like the last sample of a segment in `simulate`
    obs = jax.vmap(model.observables)(ts, ys, ts - 1e-9 * (ts - starts))
    # a failed interval (and all after it) reads NaN, never a silently wrong number
    ok = jnp.cumprod(ok.astype(ts.dtype)) > 0
    q_scale = electrolyte.charge_scale_C_m2
    q = jnp.where(ok, obs["electrode_charge"] * q_scale, jnp.nan)
    i = jnp.where(ok, obs["current"] * q_scale / tau, jnp.nan)
    return q, i


def _concrete_array(x):
    try:
        np.asarray(x, float)
        return True
    except (TypeError, jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return False
