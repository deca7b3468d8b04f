"""The estimator interface every engine shares: search -> tidy/refit -> front -> select."""

from __future__ import annotations

import abc
import logging
import math

import numpy as np
import sympy

from .._expression import (cancel_near_common_roots, drop_constants, internal_symbols, refit_constants, rename, rmse,
                           tidy, tree_size)
from .._law import Law
from .._selection import Parsimony

logger = logging.getLogger("discovery")

MIN_POINTS = 10
MAX_PRUNED_CONSTANTS = 8


class EngineUnavailableError(ImportError):
    """An engine's backend cannot be imported or started here (message says how to fix)."""


def check_data(X, y, names=None):
    """Validate and convert (X, y); returns float64 arrays and the variable names."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise ValueError(f"expected X of shape (n, k) and y of shape (n,), got {X.shape} and {y.shape}")
    if X.shape[0] < MIN_POINTS:
        raise ValueError(f"too few points for equation discovery: {X.shape[0]} < {MIN_POINTS}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise ValueError("X and y must be finite (found NaN or inf)")
    if names is None:
        names = [f"x{j}" for j in range(X.shape[1])]
    names = tuple(str(n) for n in names)
    if len(names) != X.shape[1]:
        raise ValueError(f"{len(names)} names for {X.shape[1]} columns of X")
    if len(set(names)) != len(names):
        raise ValueError(f"variable names must be distinct, got {names}")
    if np.ptp(y) == 0:
        raise ValueError("y is constant: nothing to discover")
    return X, y, names


def split(n, test_fraction, seed):
    """Deterministic random train/held-out split of ``range(n)``."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_test = max(3, int(round(test_fraction * n)))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


class AbstractEngine(abc.ABC):
    """scikit-learn-style estimator: ``fit(X, y, names=None)`` sets ``law_`` and returns self.

    Subclasses implement ``_search(X, y) -> list of sympy expressions`` in the internal
    variables ``x0, x1, ...``. The shared part tidies each candidate, refits its constants
    in float64, adds versions with constants pruned, builds the Pareto front on held-out
    data and applies the parsimony rule.
    """

    name = "abstract"

    def __init__(self, seed=0, test_fraction=0.25, parsimony=None, refit=True, prune=True):
        self.seed = seed
        self.test_fraction = test_fraction
        self.parsimony = parsimony if parsimony is not None else Parsimony()
        self.refit = refit
        self.prune = prune

    @abc.abstractmethod
    def _search(self, X, y):
        """Candidate expressions (sympy, variables x0..) found on the training data."""

    def fit(self, X, y, names=None):
        X, y, names = check_data(X, y, names)
        train, test = split(len(y), self.test_fraction, self.seed)
        variables = internal_symbols(X.shape[1])
        raw = self._search(X[train], y[train])
        candidates = self._polish(raw, variables, X[train], y[train])
        if not candidates:
            raise RuntimeError(f"{self.name} engine returned no usable expression")
        errors = [rmse(e, variables, X[test], y[test]) for e in candidates]
        sizes = [tree_size(e) for e in candidates]
        front = _pareto(sizes, errors)
        y_std = float(np.std(y))
        chosen, record = self.parsimony.select([sizes[k] for k in front],
                                               [errors[k] for k in front], y_std)
        best = candidates[front[chosen]]
        ss_res = float(np.sum((_eval(best, variables, X[test]) - y[test]) ** 2))
        ss_tot = float(np.sum((y[test] - y[test].mean()) ** 2))
        r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan
        self.law_ = Law(
            expression=rename(best, names),
            variables=names,
            pareto_front=[(sizes[k], errors[k], rename(candidates[k], names)) for k in front],
            r2=r2,
            rmse=errors[front[chosen]],
            engine=self.name,
            selection=record,
            n_train=len(train),
            n_test=len(test),
        )
        logger.info("%s engine: %s", self.name, self.law_)
        return self

    def predict(self, X):
        if not hasattr(self, "law_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(X, y) first")
        return self.law_.predict(X)

    # ------------------------------------------------------------------
    def _polish(self, raw, variables, X, y):
        floor = self.parsimony.relative_floor * float(np.std(y))
        kept = {}
        for expr in raw:
            try:
                e = tidy(sympy.N(expr), variables)
                if self.refit:
                    e = tidy(refit_constants(e, variables, X, y), variables)
            except Exception:  # noqa: BLE001 - a malformed candidate is skipped, not fatal
                continue
            if e.has(sympy.zoo, sympy.nan, sympy.oo, sympy.I):
                continue
            if math.isfinite(rmse(e, variables, X, y)):
                kept.setdefault(_key(e), e)
        for e in list(kept.values()):
            reduced = cancel_near_common_roots(e, variables)
            if reduced is not None:
                reduced = tidy(refit_constants(reduced, variables, X, y), variables)
                if math.isfinite(rmse(reduced, variables, X, y)):
                    kept.setdefault(_key(reduced), reduced)
        if self.prune:
            for e in list(kept.values()):
                if len(e.atoms(sympy.Float)) > MAX_PRUNED_CONSTANTS:
                    continue
                tolerance = max((1.0 + self.parsimony.slack) * rmse(e, variables, X, y), floor)
                for p in drop_constants(e, variables, X, y, tolerance):
                    kept.setdefault(_key(p), p)
        return list(kept.values())


def _key(expr):
    """Identity of a candidate up to float noise in its constants (6 significant digits)."""
    return sympy.srepr(expr.xreplace({f: sympy.Float(float(f), 6) for f in expr.atoms(sympy.Float)}))


def _eval(expr, variables, X):
    from .._expression import numpy_function

    return numpy_function(expr, variables)(X)


def _pareto(sizes, errors):
    """Indices of the non-dominated candidates (smaller size and error), simplest first."""
    order = sorted(range(len(sizes)), key=lambda k: (sizes[k], errors[k]))
    front, best = [], math.inf
    for k in order:
        if errors[k] < best:
            front.append(k)
            best = errors[k]
    return front
