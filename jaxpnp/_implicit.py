"""Matrix-free Newton-Krylov root finding for diffrax's implicit Runge-Kutta stages.

diffrax solves each implicit stage in "f-space": find f with
``g(f) = f - vf(t_i, y_partial + a_ii dt f) = 0``. Its default root finder builds a
dense Jacobian; ``NewtonKrylov`` instead applies the exact Jacobian through JVPs and
solves each Newton correction with right-preconditioned GMRES (convergence checked
every iteration). The preconditioner is built once per step (``init``) from the
stage's linearisation point and ``h gamma = a_ii dt``, which it reads from diffrax's
stage arguments.
"""

from __future__ import annotations

from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array


def gmres(matvec: Callable, b: Array, precondition: Callable, *, rtol: float, restart: int,
          max_restarts: int):
    """Right-preconditioned restarted GMRES(m) for flat vectors.

    Returns (x, relative residual). Stops as soon as ||b - A x|| <= rtol ||b||.
    """
    n = b.size
    bnorm = jnp.linalg.norm(b)
    tol = rtol * bnorm

    def cycle(x, first):
        # the first cycle starts from x = 0, whose residual is b: no product needed
        r = jax.lax.cond(first, lambda: b, lambda: b - matvec(x))
        beta = jnp.linalg.norm(r)
        basis = jnp.zeros((restart + 1, n), b.dtype).at[0].set(r / jnp.where(beta > 0, beta, 1.0))
        zs = jnp.zeros((restart, n), b.dtype)
        hess = jnp.zeros((restart + 1, restart), b.dtype)
        cs = jnp.zeros(restart, b.dtype)
        sn = jnp.zeros(restart, b.dtype)
        g = jnp.zeros(restart + 1, b.dtype).at[0].set(beta)

        def cond(carry):
            k, _, _, _, _, _, g, done = carry
            return (k < restart) & ~done

        def body(carry):
            k, basis, zs, hess, cs, sn, g, _ = carry
            z = precondition(basis[k])
            w = matvec(z)
            mask = (jnp.arange(restart + 1) <= k).astype(b.dtype)
            h1 = (basis @ w) * mask
            w = w - h1 @ basis
            h2 = (basis @ w) * mask  # re-orthogonalise (CGS2)
            w = w - h2 @ basis
            col = h1 + h2
            wn = jnp.linalg.norm(w)
            col = col.at[k + 1].set(wn)
            basis = basis.at[k + 1].set(w / jnp.where(wn > 0, wn, 1.0))

            def rotate(j, col):
                a, bb = col[j], col[j + 1]
                return col.at[j].set(cs[j] * a + sn[j] * bb).at[j + 1].set(-sn[j] * a + cs[j] * bb)

            col = jax.lax.fori_loop(0, k, rotate, col)
            a, bb = col[k], col[k + 1]
            denom = jnp.hypot(a, bb)
            c_k = jnp.where(denom > 0, a / jnp.where(denom > 0, denom, 1.0), 1.0)
            s_k = jnp.where(denom > 0, bb / jnp.where(denom > 0, denom, 1.0), 0.0)
            col = col.at[k].set(denom).at[k + 1].set(0.0)
            cs = cs.at[k].set(c_k)
            sn = sn.at[k].set(s_k)
            gk = g[k]
            g = g.at[k].set(c_k * gk).at[k + 1].set(-s_k * gk)
            hess = hess.at[:, k].set(col)
            zs = zs.at[k].set(z)
            done = (jnp.abs(g[k + 1]) <= tol) | (wn == 0)
            return k + 1, basis, zs, hess, cs, sn, g, done

        init = (jnp.array(0), basis, zs, hess, cs, sn, g, beta <= tol)
        k, basis, zs, hess, cs, sn, g, _ = jax.lax.while_loop(cond, body, init)
        used = jnp.arange(restart) < k
        upper = hess[:restart]
        upper = jnp.where(used[:, None] & used[None, :], upper, jnp.eye(restart, dtype=b.dtype))
        rhs = jnp.where(used, g[:restart], 0.0)
        y = jax.scipy.linalg.solve_triangular(upper, rhs, lower=False)
        return x + y @ zs, jnp.abs(g[k])

    def outer_cond(carry):
        i, _, res = carry
        return (i < max_restarts) & (res > tol)

    def outer_body(carry):
        i, x, _ = carry
        x, res = cycle(x, i == 0)
        return i + 1, x, res

    x0 = jnp.zeros_like(b)
    _, x, res = jax.lax.while_loop(outer_cond, outer_body, (jnp.array(0), x0, bnorm + 1.0))
    return x, res / jnp.where(bnorm > 0, bnorm, 1.0)


class _NKState(eqx.Module):
    precond: Any
    diffsize: Array
    diffsize_prev: Array
    result: optx.RESULTS
    step: Array
    krylov_residual: Array
    krylov_failed: Array  # bool: some Newton correction's GMRES missed krylov_rtol


class NewtonKrylov(optx.AbstractRootFinder):
    """Inexact Newton with preconditioned GMRES, for diffrax implicit RK stages.

    ``build_preconditioner(y_stage, t_stage, h_gamma) -> state`` and
    ``apply_preconditioner(state, r) -> x`` approximate ``(I - h gamma J)^{-1}``.
    Convergence is judged on the stage *state* increment ``a_ii dt df`` against
    ``atol + rtol |y|`` (diffrax's tolerances), not on f itself.
    """

    rtol: float
    atol: float
    build_preconditioner: Callable = eqx.field(static=True)
    apply_preconditioner: Callable = eqx.field(static=True)
    norm: Callable = eqx.field(static=True, default=optx.rms_norm)
    kappa: float = 1e-2
    krylov_rtol: float = 1e-4
    restart: int = eqx.field(static=True, default=20)
    max_restarts: int = eqx.field(static=True, default=3)

    @staticmethod
    def _stage(y, args):
        _, diagonal, _, prod, ti, yi_partial, _, control = args
        hgamma = diagonal * control
        y_stage = jax.tree_util.tree_map(lambda a, b: a + diagonal * b, yi_partial, prod(y, control))
        return y_stage, ti, hgamma

    def init(self, fn, y, args, options, f_struct, aux_struct, tags):
        if "init_state" in options:
            return options["init_state"]
        y_stage, ti, hgamma = self._stage(y, args)
        state = self.build_preconditioner(y_stage, ti, hgamma)
        dtype = jnp.result_type(*jax.tree_util.tree_leaves(y))
        return _NKState(precond=state, diffsize=jnp.array(jnp.inf, dtype),
                        diffsize_prev=jnp.array(1.0, dtype), result=optx.RESULTS.successful,
                        step=jnp.array(0), krylov_residual=jnp.array(0.0, dtype),
                        krylov_failed=jnp.array(False))

    def step(self, fn, y, args, options, state, tags):
        flat, unravel = jax.flatten_util.ravel_pytree(y)
        residual = lambda v: jax.flatten_util.ravel_pytree(fn(unravel(v), args)[0])[0]
        fx, lin = jax.linearize(residual, flat)
        precond = lambda r: jax.flatten_util.ravel_pytree(
            self.apply_preconditioner(state.precond, unravel(r)))[0]
        diff, kres = gmres(lin, fx, precond, rtol=self.krylov_rtol, restart=self.restart,
                           max_restarts=self.max_restarts)
        new_flat = flat - diff
        _, diagonal, _, _, _, yi_partial, _, control = args
        y_stage, _, _ = self._stage(unravel(new_flat), args)
        y_flat = jax.flatten_util.ravel_pytree(y_stage)[0]
        scale = self.atol + self.rtol * jnp.abs(y_flat)
        diffsize = self.norm(jnp.abs(diagonal * control) * diff / scale)
        new_state = _NKState(precond=state.precond, diffsize=diffsize, diffsize_prev=state.diffsize,
                             result=optx.RESULTS.successful, step=state.step + 1,
                             krylov_residual=kres,
                             krylov_failed=state.krylov_failed | ~(kres <= self.krylov_rtol))
        return unravel(new_flat), new_state, None

    def terminate(self, fn, y, args, options, state, tags):
        at_least_one = state.step >= 1
        rate = state.diffsize / state.diffsize_prev
        small = state.diffsize < 1e-3 * self.kappa
        converged = (state.step >= 2) & (state.diffsize * rate / (1 - rate) < self.kappa) & (rate < 1)
        diverged = (state.step >= 2) & (~jnp.isfinite(rate) | (rate > 2))
        done = at_least_one & (small | converged | diverged | ~jnp.isfinite(state.diffsize))
        failed = at_least_one & (diverged | ~jnp.isfinite(state.diffsize))
        # a Newton correction whose Krylov solve did not converge is not trusted: the
        # stage fails, so diffrax rejects the step (infinite error estimate) and retries
        # it with a smaller one, never accepting it silently
        failed = (failed & ~small) | (done & state.krylov_failed)
        result = optx.RESULTS.where(failed, optx.RESULTS.nonlinear_divergence,
                                    optx.RESULTS.successful)
        return done, result

    def postprocess(self, fn, y, aux, args, options, state, tags, result):
        return y, aux, {}
