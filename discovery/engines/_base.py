"""The estimator interface every engine shares: search -> tidy/refit -> front -> select."""

from __future__ import annotations

import abc
import logging
import math

import numpy as np
import sympy

from .._expression import (Form, cancel_near_common_roots, drop_constants, internal_symbols, numpy_function,
                           refit_constants, rename, rmse, tidy, tree_size)
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
        self._compiled = None
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
        self.forms_, self._compiled, self._n_variables = candidates, None, X.shape[1]
        errors = [rmse(e, variables, X[test], y[test]) for e in candidates]
        self.law_ = self._law([tree_size(e) for e in candidates], errors, candidates.__getitem__,
                              lambda k: _eval(candidates[k], variables, X[test]), names, y, train, test)
        logger.info("%s engine: %s", self.name, self.law_)
        return self

    def refit_forms(self, X, y, names=None):
        """The law of new data among the forms the last :meth:`fit` found, with no new search:
        each form's constants refit by least squares on the new data's training split (started
        from the fitted ones), then the same held-out Pareto front and parsimony rule. Sets
        ``law_`` and returns self. For data that share a law's form but not its constants (the
        links of one electrode); ``forms_`` (the fit's polished candidates) are kept."""
        if not getattr(self, "forms_", None):
            raise RuntimeError(f"{type(self).__name__} has no forms to refit; call fit(X, y) first")
        X, y, names = check_data(X, y, names)
        if X.shape[1] != self._n_variables:
            raise ValueError(f"refit_forms needs data with the {self._n_variables} variable(s) of the fitted forms, "
                             f"got {X.shape[1]}")
        variables = internal_symbols(X.shape[1])
        if self._compiled is None:  # lambdified once, reused for every data set
            self._compiled = [Form.of(e, variables) for e in self.forms_]
        train, test = split(len(y), self.test_fraction, self.seed)
        # started from the fitted constants, a few Levenberg-Marquardt iterations suffice (20 evaluations per
        # constant gave the same laws as 200 on the mPNP links, at half the cost)
        fitted = [(f, c) for f in self._compiled for c in [f.fit(X[train], y[train], max_nfev=20)] if c is not None]
        if not fitted:
            raise RuntimeError(f"no form of the {self.name} fit takes the new data")
        self.law_ = self._law([f.size for f, _ in fitted], [f.rmse(c, X[test], y[test]) for f, c in fitted],
                              lambda k: fitted[k][0].expression(fitted[k][1]),
                              lambda k: fitted[k][0].predict(fitted[k][1], X[test]), names, y, train, test,
                              canonical=lambda e: tidy(e, variables))
        return self

    def _law(self, sizes, errors, expression, test_prediction, names, y, train, test, canonical=None):
        """The :class:`Law` the parsimony rule picks from the held-out Pareto front of candidates
        given by their ``sizes`` and held-out ``errors``; ``expression(k)``, ``test_prediction(k)``;
        ``canonical``: applied to the chosen expression (a refit moves a form's scale freely)."""
        front = _pareto(sizes, errors)
        y_std = float(np.std(y))
        chosen, record = self.parsimony.select([sizes[k] for k in front],
                                               [errors[k] for k in front], y_std)
        best = front[chosen]
        ss_res = float(np.sum((test_prediction(best) - y[test]) ** 2))
        ss_tot = float(np.sum((y[test] - y[test].mean()) ** 2))
        r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan
        chosen_expression = expression(best) if canonical is None else canonical(expression(best))
        return Law(
            expression=rename(chosen_expression, names),
            variables=names,
            pareto_front=[(sizes[k], errors[k], rename(chosen_expression if k == best else expression(k), names))
                          for k in front],
            r2=r2,
            rmse=errors[best],
            engine=self.name,
            selection=record,
            n_train=len(train),
            n_test=len(test),
        )

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
