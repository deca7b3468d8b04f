"""Fit ladder parameters to a measured or simulated CV by gradient descent through the solver.

Parameters are optimised in unconstrained coordinates: ``log`` for resistances,
capacitances and ``q_max`` (positive), ``logit`` for ``gamma`` on ``[0, 1]`` (or on
``gamma_bounds``), the identity for anything else (e.g. a law's constants). The
loss is the mean squared current residual divided by the data's mean square
current (the NRMSE squared), so it is O(1) whatever the SI scale; with several
datasets (e.g. two scan rates) their weighted mean. Adam (optax) first, then an
optional Levenberg-Marquardt polish (optimistix) on the same residuals. Standard
errors come from the Gauss-Newton covariance ``s^2 (J^T J)^-1`` in physical units;
:func:`identifiability` says how strongly the CV pins each parameter (without
fitting), and every fit reports it at its result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
import xarray as xr
from jax.flatten_util import ravel_pytree
from tqdm.auto import tqdm

import jaxpnp
from jaxpnp import float64

from ._ncm import DEFAULT_RESISTANCE_FLOOR, NCM, AbstractLadder, AbstractTransSlitLaw, _as_param, dynamic_resistance
from ._salt import SaltNCM
from ._simulate import solve  # dispatches a SaltNCM to its own solver

_POSITIVE = {"R_open", "C_open", "C_slit", "R_c", "q_max", "scale"}


class FitResult(eqx.Module):
    """``model`` (fitted), ``loss_history`` (normalised MSE per Adam step, then polish),
    ``params`` and ``stderr`` (name -> float or list, SI), ``protocol`` used (a tuple for
    several datasets), ``nrmse`` per dataset, ``identifiability`` at the fitted values."""

    model: AbstractLadder | SaltNCM
    loss_history: np.ndarray
    params: dict
    stderr: dict
    protocol: object
    final_loss: float
    nrmse: np.ndarray | None = None
    identifiability: "Identifiability | None" = None


class ScaledLaw(AbstractTransSlitLaw):
    """Per-link paper laws with two common factors: ``R_k = s R_c,k (1 - g gamma_k Q_k / Q_k^max)``
    on the links in ``mask`` (the others ``R_c,k (1 - gamma_k Q_k / Q_k^max)``), floored as the NCM's.

    ``R_c,k`` is the model's own; ``gamma`` (per link) the law's; ``scale`` (s) and
    ``gamma_scale`` (g) are what a fit moves: ``s = g = 1`` is the law as given (e.g. as
    discovered), so a fit of ``SCALED_LAW_PARAMS`` compares with the discovery on its own terms.
    """

    gamma: Any = eqx.field(converter=_as_param)
    scale: Any = eqx.field(converter=_as_param, default=1.0)
    gamma_scale: Any = eqx.field(converter=_as_param, default=1.0)
    mask: tuple = eqx.field(static=True, default=())
    floor: float = eqx.field(static=True, default=DEFAULT_RESISTANCE_FLOOR)

    def resistance(self, charge, q_max, R_c):
        mask = jnp.asarray(self.mask, dtype=bool) if self.mask else jnp.ones(jnp.shape(charge), dtype=bool)
        s = jnp.where(mask, self.scale, 1.0)
        g = jnp.where(mask, self.gamma_scale, 1.0)
        return dynamic_resistance(s * R_c, g * jnp.asarray(self.gamma), charge, q_max, self.floor)


SCALED_LAW_PARAMS = ("law.scale", "law.gamma_scale")


def scaled_laws(model: NCM, *, scale: float = 1.0, gamma_scale: float = 1.0, links=None) -> NCM:
    """``model`` (an NCM with the built-in law, per-link ``R_c`` and ``gamma``) with its links'
    laws as a :class:`ScaledLaw`: fit ``SCALED_LAW_PARAMS`` to move every law in ``links``
    (default all; e.g. ``range(1, n)`` holds link 0) by one R_c factor and one gamma factor."""
    if not isinstance(model, NCM) or model.law is not None:
        raise ValueError("scaled_laws needs an NCM with the built-in law (law=None)")
    n = model.n_slits
    chosen = range(n) if links is None else [int(k) for k in links]
    if not chosen or any(k < 0 or k >= n for k in chosen):
        raise ValueError(f"links must be link indices in [0, {n}), got {links!r}")
    mask = tuple(k in set(chosen) for k in range(n))
    gamma = np.broadcast_to(np.asarray(model.gamma, dtype=float), (n,)).copy()
    law = ScaledLaw(gamma=gamma, scale=scale, gamma_scale=gamma_scale, mask=mask, floor=model.resistance_floor)
    return eqx.tree_at(lambda m: m.law, model, law, is_leaf=lambda x: x is None)


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


_TRANSFORMS = ("log", "logit", "identity")


def _gauss_newton(jac, residual):
    """Gauss-Newton covariance ``s^2 (J^T J)^-1`` (J: d residual / d parameter) and the step
    ``-(J^T J)^-1 J^T r`` that the linearised least-squares problem takes from here."""
    # Columns differ by many orders of magnitude in SI (dI/dR_c ~ 1e17, dI/dgamma ~ 1e8):
    # normalise them before inverting so that the small singular values survive.
    n_par = jac.shape[1]
    dof = max(residual.shape[0] - n_par, 1)
    s2 = float(np.sum(residual ** 2)) / dof
    norms = np.linalg.norm(jac, axis=0)
    norms = np.where(norms > 0, norms, 1.0)
    jn = jac / norms
    inv = np.linalg.pinv(jn.T @ jn, rcond=1e-14, hermitian=True)
    cov = s2 * inv / np.outer(norms, norms)
    step = -(inv @ (jn.T @ residual)) / norms
    return cov, step


class Identifiability(eqx.Module):
    """How well the CV pins the named parameters at the model's values (all flattened, SI).

    ``names`` one per scalar (``"R_c"``, ``"R_c[2]"``); ``values``; ``nrmse`` per dataset and
    ``nrmse_total`` (the weighted RMS over the datasets, what the fit minimises); ``stderr`` and
    ``correlation`` from the Gauss-Newton covariance (white-noise residuals assumed: with a
    model's structural error the true spread is larger); ``current_change``: the NRMSE that a
    change of ``rel_step`` (relative; absolute where the value is 0) of one parameter alone
    causes (linearised, ``|J_k dp_k|``); ``nrmse_step`` (p, 2): the exact ``nrmse_total`` with one
    parameter at ``value * (1 -/+ rel_step)``; ``resolution``: the relative change of one
    parameter alone whose current change equals the present misfit (``rel_step * nrmse_total /
    current_change``); a structural error of the present size can move a fit that far.
    ``gauss_newton_step``: ``-(J^T J)^-1 J^T r``, where a least-squares fit started here goes to
    first order (SI; ``~0`` at a converged fit).
    """

    names: tuple
    values: np.ndarray
    nrmse: np.ndarray
    nrmse_total: float
    stderr: np.ndarray
    correlation: np.ndarray
    rel_step: float
    current_change: np.ndarray
    nrmse_step: np.ndarray
    resolution: np.ndarray
    gauss_newton_step: np.ndarray

    def summary(self) -> dict:
        """Plain-Python numbers, keyed by parameter name (for JSON)."""
        per = {n: dict(value=float(v), stderr=float(s), current_change=float(c), resolution=float(r),
                       nrmse_minus=float(m[0]), nrmse_plus=float(m[1]), gauss_newton_step=float(g))
               for n, v, s, c, r, m, g in zip(self.names, self.values, self.stderr, self.current_change,
                                              self.resolution, self.nrmse_step, self.gauss_newton_step)}
        return dict(nrmse=self.nrmse.tolist(), nrmse_total=self.nrmse_total, rel_step=self.rel_step,
                    correlation=self.correlation.tolist(), parameters=per)


def _as_list(x, kind):
    if x is None:
        return [None]
    if isinstance(x, (xr.Dataset,)) or kind == "protocol" and not isinstance(x, (list, tuple)):
        return [x]
    return list(x)


class _Problem:
    """The least-squares problem shared by :func:`fit` and :func:`identifiability`.

    Residual ``r = concat_j sqrt(w_j / (N_j sum w)) (I_j - I_j^data) / RMS(I_j^data)``: its sum of
    squares is the weighted mean of the datasets' squared NRMSE (one dataset: the plain NRMSE^2).
    """

    def __init__(self, model, data, params, protocol, weights, transforms, gamma_bounds, method, solver_options):
        datasets = _as_list(data, "data")
        if not datasets or not all(isinstance(d, xr.Dataset) for d in datasets):
            raise ValueError("data must be an xarray Dataset or a sequence of them")
        for d in datasets:
            for var in ("time", "cell_voltage", "current_density"):
                if var not in d.variables:
                    raise ValueError(f"data needs a {var!r} variable")
        protocols = _as_list(protocol, "protocol")
        if protocols == [None]:
            protocols = [None] * len(datasets)
        if len(protocols) != len(datasets):
            raise ValueError(f"need one protocol per dataset ({len(datasets)}), got {len(protocols)}")
        self.protocols = [infer_protocol(d) if p is None else p for d, p in zip(datasets, protocols)]
        w = np.ones(len(datasets)) if weights is None else np.asarray(weights, dtype=float)
        if w.shape != (len(datasets),) or not np.all(np.isfinite(w)) or not np.all(w > 0):
            raise ValueError(f"weights must be {len(datasets)} positive numbers, got {weights!r}")
        self.params = tuple(params)
        if not self.params:
            raise ValueError("params must name at least one parameter")
        self.getters = [_getter(p) for p in self.params]
        for p, get in zip(self.params, self.getters):
            if get(model) is None:
                raise ValueError(f"model has no value for {p!r} to start from")
        transforms = dict(transforms or {})
        unknown = set(transforms) - set(self.params)
        if unknown:
            raise ValueError(f"transforms names parameters that are not fitted: {sorted(unknown)}")
        self.transforms = []
        for p in self.params:
            leaf = p.split(".")[-1]
            kind = transforms.get(p, "log" if leaf in _POSITIVE else "logit" if leaf == "gamma" else "identity")
            if kind not in _TRANSFORMS:
                raise ValueError(f"transforms[{p!r}] must be one of {_TRANSFORMS}, got {kind!r}")
            self.transforms.append(_Transform(kind, float(gamma_bounds[0]), float(gamma_bounds[1]))
                                   if kind == "logit" else _Transform(kind))
        for p, get, tr in zip(self.params, self.getters, self.transforms):
            value = get(model)
            margin = 1e-3 * (tr.hi - tr.lo)
            if tr.kind == "logit" and not isinstance(value, jax.core.Tracer) and not (
                    np.all(np.asarray(value) > tr.lo + margin) and np.all(np.asarray(value) < tr.hi - margin)):
                # at the bound the logit's slope is ~0: the fit would never leave the start
                raise ValueError(f"{p!r} starts at {np.asarray(value).tolist()}, on the bounds [{tr.lo:g}, {tr.hi:g}] of "
                                 f"its logit coordinate; start inside or pass transforms={{{p!r}: 'identity'}}")
        self.model = model
        self.method = method
        self.options = dict(solver_options)
        # Few parameters, many residuals: forward-mode derivatives are the cheap ones here.
        if method == "adaptive":
            self.options.setdefault("adjoint", diffrax.ForwardMode())
        self.times = [np.asarray(d["time"], dtype=float) for d in datasets]
        targets = [np.asarray(d["current_density"], dtype=float) for d in datasets]
        self.targets = [jnp.asarray(t) for t in targets]
        self.factors = [float(np.sqrt(wj / (t.size * w.sum())) / np.sqrt(np.mean(t ** 2)))
                        for wj, t in zip(w, targets)]
        self.sizes = [t.size for t in targets]

    def with_values(self, values):
        return eqx.tree_at(lambda m: [g(m) for g in self.getters], self.model, list(values))

    def build(self, free):
        return self.with_values([tr.to_physical(f) for tr, f in zip(self.transforms, free)])

    def residual_of_model(self, model):
        parts = [(solve(model, p, times=t, method=self.method, **self.options).current_density - y) * f
                 for p, t, y, f in zip(self.protocols, self.times, self.targets, self.factors)]
        return jnp.concatenate(parts)

    def residual(self, free, _=None):
        return self.residual_of_model(self.build(free))

    def free_of(self, model):
        return [tr.to_free(g(model)) for tr, g in zip(self.transforms, self.getters)]

    def physical_of(self, model):
        return [jnp.asarray(g(model), dtype=jnp.float64) for g in self.getters]

    def nrmse_each(self, r):
        """Per-dataset NRMSE from the weighted residual vector."""
        out, i = [], 0
        w_scale = [f * np.sqrt(np.mean(np.asarray(y) ** 2)) * np.sqrt(n) for f, y, n in
                   zip(self.factors, self.targets, self.sizes)]
        for n, s in zip(self.sizes, w_scale):
            out.append(float(np.sqrt(np.sum(np.asarray(r[i:i + n]) ** 2)) / s))
            i += n
        return np.asarray(out)

    def names(self, phys):
        names = []
        for p, v in zip(self.params, phys):
            size = int(np.size(v))
            names += [p] if np.ndim(v) == 0 else [f"{p}[{k}]" for k in range(size)]
        return tuple(names)

    def diagnose(self, phys, rel_step=0.1, jac=None, r=None) -> Identifiability:
        """:class:`Identifiability` at physical values ``phys`` (a list, one entry per param)."""
        flat, unravel = ravel_pytree([jnp.asarray(v, dtype=jnp.float64) for v in phys])

        def res(flat_phys):
            return self.residual_of_model(self.with_values(unravel(flat_phys)))

        if r is None:
            r = res(flat)
        if jac is None:
            jac = jax.jacfwd(res)(flat)
        r, jac, values = np.asarray(r), np.asarray(jac), np.asarray(flat)
        cov, step = _gauss_newton(jac, r)
        se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        corr = cov / np.outer(np.where(se > 0, se, 1.0), np.where(se > 0, se, 1.0))
        total = float(np.sqrt(np.sum(r ** 2)))
        dp = rel_step * np.where(values != 0, np.abs(values), 1.0)
        change = np.linalg.norm(jac, axis=0) * dp
        stepped = np.empty((values.size, 2))
        for k in range(values.size):
            for j, sign in enumerate((-1.0, 1.0)):
                v = values.copy()
                v[k] += sign * dp[k]
                stepped[k, j] = float(np.sqrt(np.sum(np.asarray(res(jnp.asarray(v))) ** 2)))
        return Identifiability(names=self.names(unravel(flat)), values=values, nrmse=self.nrmse_each(r),
                               nrmse_total=total, stderr=se, correlation=corr, rel_step=float(rel_step),
                               current_change=change, nrmse_step=stepped,
                               resolution=rel_step * total / np.where(change > 0, change, np.nan),
                               gauss_newton_step=step)


def fit(model: AbstractLadder, data, params: Sequence[str] = ("R_c", "gamma"), *,
        protocol=None, steps: int = 150, learning_rate: float = 0.05, polish: bool = True,
        polish_steps: int = 50, method: str = "adaptive", gamma_bounds=(0.0, 1.0), transforms=None,
        weights=None, rel_step: float = 0.1, progress: bool = True, **solver_options) -> FitResult:
    """Fit the named parameters of ``model`` (the starting guess) to ``data``'s current.

    ``data``: a Dataset with ``time`` (s), ``cell_voltage`` (V), ``current_density`` (A/m^2), or a
    sequence of them (a joint fit, e.g. two scan rates; ``protocol`` then one per dataset or None).
    ``params``: field names of the model (dotted paths reach into a law, e.g.
    ``"law.params.a"``). ``transforms``: {param: "log" | "logit" | "identity"} overriding the
    default coordinates (``"identity"`` for a gamma that may start at or leave ``[0, 1]``).
    ``weights``: one per dataset (default equal: each dataset's NRMSE^2 counts alike).
    ``steps`` Adam steps (0: none), then ``polish_steps`` of Levenberg-Marquardt.
    Returns a :class:`FitResult`, with :class:`Identifiability` at the fitted values.
    """
    prob = _Problem(model, data, params, protocol, weights, transforms, gamma_bounds, method, solver_options)
    with float64():
        def loss(free):
            return jnp.sum(prob.residual(free) ** 2)

        free = prob.free_of(model)
        optimizer = optax.adam(learning_rate)
        opt_state = optimizer.init(free)

        @jax.jit
        def adam_step(free, opt_state):
            value, grad = loss(free), jax.jacfwd(loss)(free)
            updates, opt_state = optimizer.update(grad, opt_state)
            return optax.apply_updates(free, updates), opt_state, value

        # with LM alone the history still starts at the starting point
        history = [] if steps else [float(jax.jit(loss)(free))]
        bar = tqdm(range(int(steps)), desc="fit (Adam)", disable=not progress, leave=False)
        for _ in bar:
            free, opt_state, value = adam_step(free, opt_state)
            history.append(float(value))
            bar.set_postfix(loss=f"{history[-1]:.3e}")
        bar.close()

        loss_jit = jax.jit(loss)
        if polish:
            solver = optx.LevenbergMarquardt(rtol=1e-8, atol=1e-10)
            sol = optx.least_squares(prob.residual, solver, free, max_steps=int(polish_steps), throw=False)
            candidate = sol.value
            cand_loss = float(loss_jit(candidate))
            current_loss = float(loss_jit(free))
            if np.isfinite(cand_loss) and cand_loss <= current_loss:
                free = candidate
            history.append(min(cand_loss, current_loss))

        fitted = prob.build(free)
        final = float(loss_jit(free))
        phys = [tr.to_physical(f) for tr, f in zip(prob.transforms, free)]
        diag = prob.diagnose(phys, rel_step)
        _, unravel = ravel_pytree(phys)
        se = unravel(jnp.asarray(diag.stderr))

    def plain(x):
        arr = np.asarray(x, dtype=float)
        return float(arr) if arr.ndim == 0 else arr.tolist()

    return FitResult(model=fitted, loss_history=np.asarray(history),
                     params={p: plain(v) for p, v in zip(prob.params, phys)},
                     stderr={p: plain(s) for p, s in zip(prob.params, se)}, protocol=
                     prob.protocols[0] if len(prob.protocols) == 1 else tuple(prob.protocols),
                     final_loss=final, nrmse=diag.nrmse, identifiability=diag)


def identifiability(model: AbstractLadder, data, params: Sequence[str] = ("R_c", "gamma"), *, protocol=None,
                    weights=None, rel_step: float = 0.1, method: str = "adaptive",
                    **solver_options) -> Identifiability:
    """:class:`Identifiability` of ``params`` at ``model``'s values against ``data`` (a Dataset or
    a sequence of them, weighted as in :func:`fit`): nothing is fitted."""
    prob = _Problem(model, data, params, protocol, weights, None, (0.0, 1.0), method, solver_options)
    with float64():
        return prob.diagnose(prob.physical_of(model), rel_step)
