"""Implicit adjoint of diffrax's stage root finds that reuses the stage's own factors.

Each implicit Runge-Kutta stage is an ``optx.root_find`` with optimistix's implicit
adjoint: the tangent (forward mode) or cotangent (reverse mode) of the stage solves a
linear system with the stage Jacobian ``I - h gamma J``. By default that system is
materialised as a dense matrix (2n x 2n: 1.6 GB and ~2e12 flops per stage on the paper
grid at 0.125 nm). ``StageSolver`` instead solves it with right-preconditioned GMRES
whose preconditioner is the exact block-tridiagonal factorisation the forward Newton-
Krylov already built for that step (read from the root find's ``init_state`` option);
the reverse-mode solve uses its transpose (``jax.linear_transpose`` of the exact solve:
``M^T = U^T L^T``, whose Schur complement is ``S^T``, so it stays exact). A stage's adjoint
then costs a few Jacobian-vector products instead of a dense LU.

diffrax has no hook for the stage adjoint: ``with_stage_adjoint(Kvaerno3)`` returns a
subclass whose ``step`` runs diffrax's own step with ``optx.root_find`` defaulting to
``optx.ImplicitAdjoint(linear_solver=StageSolver(...))`` (the module attribute ``optx`` of
``diffrax._solver.runge_kutta`` is swapped while ``step`` is traced; ``step`` is traced
again by the checkpointed adjoint's backward pass, and the swap covers that too). It relies
on optimistix's layout of the implicit-function operator's arguments
``(fn_rewrite, residual, (fn, solver, y0, args, options, ...))`` (optimistix 0.1).
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from typing import Any, Callable

import equinox as eqx
import jax
import jax.flatten_util
import lineax as lx
import optimistix as optx
from ._implicit import gmres

_RK = importlib.import_module("diffrax._solver.runge_kutta")
_SWAP_LOCK = threading.RLock()


class _StageSolverState(eqx.Module):
    operator: lx.AbstractLinearOperator
    precond: Any
    apply: Callable = eqx.field(static=True)
    transposed: bool = eqx.field(static=True)


class StageSolver(lx.AbstractLinearSolver):
    """GMRES on the stage Jacobian, preconditioned by the stage's exact factorisation."""

    rtol: float = 1e-10
    restart: int = eqx.field(static=True, default=20)
    max_restarts: int = eqx.field(static=True, default=5)

    def init(self, operator, options):
        _, _, inputs = operator.args  # optimistix's implicit_jvp operator
        root_finder, root_options = inputs[1], inputs[4]
        state = root_options["init_state"]  # the forward root find's state: the factors
        return _StageSolverState(operator=operator, precond=state.precond,
                                 apply=root_finder.apply_preconditioner, transposed=False)

    def compute(self, state, vector, options):
        flat_b, unravel = jax.flatten_util.ravel_pytree(vector)
        ravel = lambda t: jax.flatten_util.ravel_pytree(t)[0]
        matvec = lambda v: ravel(state.operator.mv(unravel(v)))
        forward = lambda r: state.apply(state.precond, r)
        if state.transposed:
            transpose = jax.linear_transpose(forward, vector)
            precondition = lambda v: ravel(transpose(unravel(v))[0])
        else:
            precondition = lambda v: ravel(forward(unravel(v)))
        x, res = gmres(matvec, flat_b, precondition, rtol=self.rtol, restart=self.restart,
                       max_restarts=self.max_restarts)
        result = lx.RESULTS.where(res <= self.rtol, lx.RESULTS.successful, lx.RESULTS.max_steps_reached)
        return unravel(x), result, {"relative_residual": res}

    def transpose(self, state, options):
        return _StageSolverState(operator=state.operator.transpose(), precond=state.precond,
                                 apply=state.apply, transposed=not state.transposed), options

    def conj(self, state, options):
        return state, options  # real

    def assume_full_rank(self):
        return True

    def allow_dependent_columns(self, operator):
        return False

    def allow_dependent_rows(self, operator):
        return False


class _OptxWithAdjoint:
    """Stands in for the optimistix module inside diffrax's Runge-Kutta step."""

    def __init__(self, adjoint):
        self._adjoint = adjoint

    def __getattr__(self, name):
        return getattr(optx, name)

    def root_find(self, *args, **kwargs):
        kwargs.setdefault("adjoint", self._adjoint)
        return optx.root_find(*args, **kwargs)


@contextlib.contextmanager
def _stage_adjoint(adjoint):
    with _SWAP_LOCK:
        previous = _RK.optx
        _RK.optx = _OptxWithAdjoint(adjoint)
        try:
            yield
        finally:
            _RK.optx = previous


_SUBCLASSES: dict = {}


def with_stage_adjoint(solver_cls):
    """``solver_cls`` (a diffrax implicit RK solver) whose stage root finds use ``StageSolver``."""
    if solver_cls not in _SUBCLASSES:

        class Solver(solver_cls):
            stage_rtol: float = 1e-10

            def step(self, *args, **kwargs):
                adjoint = optx.ImplicitAdjoint(linear_solver=StageSolver(rtol=self.stage_rtol))
                with _stage_adjoint(adjoint):
                    return super().step(*args, **kwargs)

        Solver.__name__ = Solver.__qualname__ = f"{solver_cls.__name__}StageAdjoint"
        _SUBCLASSES[solver_cls] = Solver
    return _SUBCLASSES[solver_cls]
