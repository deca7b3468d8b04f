"""Fit ladder parameters to a measured or simulated CV by gradient descent through the solver.

Parameters are optimised in unconstrained coordinates: ``log`` for resistances,
capacitances and ``q_max`` (positive), ``logit`` for ``gamma`` on ``[0, 1]`` (or on
``gamma_bounds``), the identity for anything else (e.g. a law's constants). The
loss is the mean squared current residual divided by the data's mean square
current, so it is O(1) whatever the SI scale. Adam (optax) first, then an optional
Levenberg-Marquardt polish (optimistix) on the same residuals. Standard errors
come from the Gauss-Newton covariance ``s^2 (J^T J)^-1`` in physical units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
import xarray as xr
from tqdm.auto import tqdm

import jaxpnp
from jaxpnp import float64

from ._ncm import AbstractLadder
from ._salt import SaltNCM
from ._simulate import solve  # dispatches a SaltNCM to its own solver

_POSITIVE = {"R_open", "C_open", "C_slit", "R_c", "q_max"}


class FitResult(eqx.Module):
    """``model`` (fitted), ``loss_history`` (normalised MSE per Adam step, then polish),
    ``params`` and ``stderr`` (name -> float or list, SI), ``protocol`` used."""

    model: AbstractLadder | SaltNCM
    loss_history: np.ndarray
    params: dict
    stderr: dict
    protocol: object
    final_loss: float


def _getter(name: str) -> Callable:
    def get(model):
        obj = model
        for part in name.split("."):
            obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
        return obj
    return get


class _Transform(eqx.Module):
    kind: str = eqx.field(static=True)
    lo: float = eqx.field(static=True, default=0.0)
    hi: float = eqx.field(static=True, default=1.0)

    def to_free(self, value):
        value = jnp.asarray(value, dtype=jnp.float64)
        if self.kind == "log":
            return jnp.log(value)
        if self.kind == "logit":
            p = jnp.clip((value - self.lo) / (self.hi - self.lo), 1e-6, 1 - 1e-6)
            return jnp.log(p) - jnp.log1p(-p)
        return value

    def to_physical(self, free):
        if self.kind == "log":
            return jnp.exp(free)
        if self.kind == "logit":
            return self.lo + (self.hi - self.lo) * jax.nn.sigmoid(free)
        return free


def infer_protocol(data: xr.Dataset):
    """The CV behind ``data``: from the attrs ``circuits``/``jaxpnp`` write, else from the cell-voltage waveform."""
    attrs = data.attrs
    if attrs.get("protocol") == "CV" and "scan_rate_V_s" in attrs:
        return jaxpnp.protocol_from_attrs(attrs)
    t = np.asarray(data["time"], dtype=float)
    v = np.asarray(data["cell_voltage"], dtype=float)
    v_min, v_max = float(v.min()), float(v.max())
    if not v_max > v_min:
        raise ValueError("cannot infer a CV from a constant cell_voltage; pass protocol=")
    rising = np.diff(v) > 0
    scan_rate = float(np.median(np.abs(np.diff(v) / np.diff(t))[rising]))
    half = (v_max - v_min) / scan_rate
    cycles = max(1, int(round((t[-1] - t[0]) / (2 * half))))
    cv = jaxpnp.CV(v_min=v_min, v_max=v_max, scan_rate_V_s=scan_rate, cycles=cycles)
    if not np.allclose(np.asarray(cv.cell_voltage(t)), v, atol=1e-3 * (v_max - v_min)):
        raise ValueError("cell_voltage is not a triangular CV starting at t = 0; pass protocol=")
    return cv


@jax.jit
def _gauss_newton_stderr(jac, residual):
    # Columns differ by many orders of magnitude in SI (dI/dR_c ~ 1e17, dI/dgamma ~ 1e8):
    # normalise them before inverting so that the small singular values survive.
    n_par = jac.shape[1]
    dof = jnp.maximum(residual.shape[0] - n_par, 1)
    s2 = jnp.sum(residual ** 2) / dof
    norms = jnp.linalg.norm(jac, axis=0)
    norms = jnp.where(norms > 0, norms, 1.0)
    jn = jac / norms
    cov = s2 * jnp.linalg.inv(jn.T @ jn) / jnp.outer(norms, norms)
    return jnp.sqrt(jnp.clip(jnp.diag(cov), 0.0))


def fit(model: AbstractLadder, data: xr.Dataset, params: Sequence[str] = ("R_c", "gamma"), *,
        protocol=None, steps: int = 150, learning_rate: float = 0.05, polish: bool = True,
        polish_steps: int = 50, method: str = "adaptive", gamma_bounds=(0.0, 1.0),
        progress: bool = True, **solver_options) -> FitResult:
    """Fit the named parameters of ``model`` (the starting guess) to ``data``'s current.

    ``data``: Dataset with ``time`` (s), ``cell_voltage`` (V), ``current_density`` (A/m^2).
    ``params``: field names of the model (dotted paths reach into a law, e.g.
    ``"law.params.a"``). Returns a :class:`FitResult`.
    """
    for var in ("time", "cell_voltage", "current_density"):
        if var not in data.variables:
            raise ValueError(f"data needs a {var!r} variable")
    if protocol is None:
        protocol = infer_protocol(data)
    params = tuple(params)
    if not params:
        raise ValueError("params must name at least one parameter")
    getters = [_getter(p) for p in params]
    transforms = []
    for p in params:
        leaf = p.split(".")[-1]
        if leaf in _POSITIVE:
            transforms.append(_Transform("log"))
        elif leaf == "gamma":
            transforms.append(_Transform("logit", float(gamma_bounds[0]), float(gamma_bounds[1])))
        else:
            transforms.append(_Transform("identity"))
    for p, get in zip(params, getters):
        if get(model) is None:
            raise ValueError(f"model has no value for {p!r} to start from")

    times = np.asarray(data["time"], dtype=float)
    with float64():
        target = jnp.asarray(np.asarray(data["current_density"], dtype=float))
        scale = jnp.sqrt(jnp.mean(target ** 2))

        def build(free):
            values = [tr.to_physical(f) for tr, f in zip(transforms, free)]
            return eqx.tree_at(lambda m: [g(m) for g in getters], model, values)

        # Few parameters, many residuals: forward-mode derivatives are the cheap ones here.
        if method == "adaptive":
            solver_options.setdefault("adjoint", diffrax.ForwardMode())

        def residual(free, _=None):
            sol = solve(build(free), protocol, times=times, method=method, **solver_options)
            return (sol.current_density - target) / scale

        def loss(free):
            r = residual(free)
            return jnp.mean(r ** 2)

        free = [tr.to_free(g(model)) for tr, g in zip(transforms, getters)]
        optimizer = optax.adam(learning_rate)
        opt_state = optimizer.init(free)

        @jax.jit
        def adam_step(free, opt_state):
            value, grad = loss(free), jax.jacfwd(loss)(free)
            updates, opt_state = optimizer.update(grad, opt_state)
            return optax.apply_updates(free, updates), opt_state, value

        history = []
        bar = tqdm(range(int(steps)), desc="fit (Adam)", disable=not progress, leave=False)
        for _ in bar:
            free, opt_state, value = adam_step(free, opt_state)
            history.append(float(value))
            bar.set_postfix(loss=f"{history[-1]:.3e}")
        bar.close()

        if polish:
            solver = optx.LevenbergMarquardt(rtol=1e-8, atol=1e-10)
            sol = optx.least_squares(residual, solver, free, max_steps=int(polish_steps), throw=False)
            candidate = sol.value
            cand_loss = float(jax.jit(loss)(candidate))
            current_loss = float(jax.jit(loss)(free))
            if np.isfinite(cand_loss) and cand_loss <= current_loss:
                free = candidate
            history.append(min(cand_loss, current_loss))

        fitted = build(free)
        final = float(jax.jit(loss)(free))

        # Gauss-Newton standard errors in physical units: Jacobian of the SI current.
        phys = [tr.to_physical(f) for tr, f in zip(transforms, free)]
        flat, unravel = jax.flatten_util.ravel_pytree(phys)

        def current_of(flat_phys):
            values = unravel(flat_phys)
            m = eqx.tree_at(lambda m: [g(m) for g in getters], model, values)
            return solve(m, protocol, times=times, method=method, **solver_options).current_density

        jac = jax.jacfwd(current_of)(flat)
        r_si = current_of(flat) - target
        se_flat = _gauss_newton_stderr(jac, r_si)
        se = unravel(se_flat)

    def plain(x):
        arr = np.asarray(x, dtype=float)
        return float(arr) if arr.ndim == 0 else arr.tolist()

    return FitResult(model=fitted, loss_history=np.asarray(history), params={p: plain(v) for p, v in zip(params, phys)},
                     stderr={p: plain(s) for p, s in zip(params, se)}, protocol=protocol, final_loss=final)
