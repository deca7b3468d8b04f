"""`Law`: a discovered expression, its Pareto front, accuracy, and a trainable JAX form."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pandas as pd
import sympy

from ._expression import numpy_function, parametrise


@dataclasses.dataclass(frozen=True)
class Law:
    """A law ``y = expression(variables)`` found by an engine.

    ``expression``: sympy expression in ``sympy.Symbol(name)`` for each of ``variables``.
    ``pareto_front``: list of ``(complexity, held-out RMSE, sympy expression)``, simplest
    first; complexity is the node count of the sympy tree (the same for every engine).
    ``r2``: coefficient of determination on held-out data. ``rmse``: held-out RMSE in the
    units of y. ``engine``: which engine produced it. ``selection``: the parsimony rule
    and its numbers (see :class:`discovery.Parsimony`).
    """

    expression: Any
    variables: tuple
    pareto_front: list
    r2: float
    rmse: float
    engine: str
    selection: dict = dataclasses.field(default_factory=dict)
    n_train: int = 0
    n_test: int = 0

    @property
    def symbols(self):
        return [sympy.Symbol(n) for n in self.variables]

    @property
    def complexity(self):
        return self.selection.get("chosen_complexity")

    def predict(self, X):
        """Evaluate on ``X`` of shape (n, n_variables) with numpy."""
        X = np.asarray(X, dtype=float)
        if X.ndim == 1:
            X = X[:, None]
        return numpy_function(self.expression, self.symbols)(X)

    def latex(self, digits: int = 4) -> str:
        """The expression in LaTeX, its constants rounded to ``digits`` significant digits."""
        return _latex(self.expression, digits)

    def pareto_dataframe(self, digits: int = 4) -> pd.DataFrame:
        """The Pareto front as a ``pandas.DataFrame``, simplest first: ``complexity`` (sympy
        node count), ``loss`` (held-out RMSE, units of y), ``expression`` (sympy string, full
        precision), ``latex`` (constants to ``digits`` digits) and ``chosen`` (the law kept)."""
        rows = [{"complexity": int(c), "loss": float(e), "expression": str(_digits(x, 17)),
                 "latex": _latex(x, digits),
                 "chosen": bool(x == self.expression)}
                for c, e, x in self.pareto_front]
        return pd.DataFrame(rows, columns=["complexity", "loss", "expression", "latex", "chosen"])

    def to_jax(self):
        """A :class:`JaxLaw` (equinox Module) whose numeric constants are trainable."""
        return JaxLaw.from_sympy(self.expression, self.variables)

    def __str__(self):
        return (f"{self.expression}   [engine={self.engine}, R^2={self.r2:.6f}, "
                f"complexity={self.complexity}]")


def _digits(expression, digits):
    """The expression with its constants written to ``digits`` significant digits (17: exact doubles)."""
    return expression.xreplace({f: sympy.Float(f, digits) for f in expression.atoms(sympy.Float)})


def _latex(expression, digits):
    return sympy.latex(_digits(expression, digits))


class JaxLaw(eqx.Module):
    """``law(*variables)`` in JAX; ``constants`` (1D array) is the trainable leaf.

    Built from a sympy expression by turning each Float into ``constants[k]``
    (order: ``constant_symbols``). Use with optax/``eqx.filter_grad`` directly.
    """

    constants: Any
    variables: tuple = eqx.field(static=True)
    template: Any = eqx.field(static=True)
    _fn: Callable = eqx.field(static=True)

    @classmethod
    def from_sympy(cls, expression, variables):
        variables = tuple(variables)
        template, params, values = parametrise(sympy.sympify(expression))
        syms = [sympy.Symbol(n) for n in variables]
        c = sympy.IndexedBase("c")
        indexed = template.xreplace({p: c[k] for k, p in enumerate(params)})
        fn = sympy.lambdify((c, *syms), indexed, modules="jax")
        return cls(jnp.asarray(values, dtype=float), variables, template, fn)

    def __call__(self, *variables):
        if len(variables) != len(self.variables):
            raise TypeError(f"expected {len(self.variables)} arguments "
                            f"({', '.join(self.variables)}), got {len(variables)}")
        out = self._fn(self.constants, *variables)
        shape = jnp.broadcast_shapes(*(jnp.shape(v) for v in variables)) if variables else ()
        return jnp.broadcast_to(out, shape)

    def to_sympy(self):
        """The expression with the current constants substituted back."""
        syms = sorted(self.template.free_symbols - {sympy.Symbol(n) for n in self.variables},
                      key=lambda s: int(s.name.split("_")[1]))
        return self.template.xreplace(
            {s: sympy.Float(float(v), 15) for s, v in zip(syms, self.constants)})
