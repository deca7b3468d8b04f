"""Operon (pyoperon): multi-objective genetic programming with local constant fitting."""

from __future__ import annotations

from .._expression import parse
from ._base import AbstractEngine, EngineUnavailableError

ARITHMETIC = ("add", "sub", "mul", "div")


class OperonEngine(AbstractEngine):
    """Symbolic regression with pyoperon's NSGA-II (objectives: R^2 and tree length).

    The search space is generic: ``operators`` (default ``+ - * /``) plus any of
    ``"exp", "log", "sqrt"`` in ``functions``. The whole final Pareto front goes through
    the shared tidy/refit/parsimony step. ``n_threads`` and ``seed`` fix the result.
    """

    name = "operon"

    def __init__(self, seed=0, population_size=500, generations=100, max_length=30,
                 functions=(), n_threads=1, max_time=None, optimizer_iterations=10,
                 **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.population_size = population_size
        self.generations = generations
        self.max_length = max_length
        self.functions = tuple(functions)
        self.n_threads = n_threads
        self.max_time = max_time
        self.optimizer_iterations = optimizer_iterations

    def _search(self, X, y):
        try:  # imported here, not at module top: pyoperon.sklearn loads scikit-learn (~3 s), paid only by a search
            from pyoperon.sklearn import SymbolicRegressor
        except ImportError as err:  # pragma: no cover - pyoperon is a core dependency
            raise EngineUnavailableError("pyoperon is not installed: pip install pyoperon") from err
        unknown = set(self.functions) - {"exp", "log", "sqrt"}
        if unknown:
            raise ValueError(f"OperonEngine functions must be among exp, log, sqrt; got {sorted(unknown)}")
        symbols = ",".join(ARITHMETIC + self.functions + ("constant", "variable"))
        regressor = SymbolicRegressor(
            allowed_symbols=symbols,
            objectives=["r2", "length"],
            population_size=self.population_size,
            pool_size=self.population_size,
            generations=self.generations,
            max_evaluations=10**9,
            max_length=self.max_length,
            optimizer_iterations=self.optimizer_iterations,
            n_threads=self.n_threads,
            max_time=self.max_time,
            random_state=self.seed,
        )
        regressor.fit(X, y)
        names = [f"x{j}" for j in range(X.shape[1])]
        return [parse(regressor.get_model_string(m["tree"], 12, names=names), X.shape[1])
                for m in regressor.pareto_front_]
