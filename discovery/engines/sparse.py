"""Sparse regression over a library of candidate terms (SINDy-style STLSQ): a fast cross-check.

Explicit fits ``y = sum_k a_k theta_k(x)`` and, with ``rational=True``, implicit rational
fits ``y (1 + sum_k b_k theta_k(x)) = sum_k a_k theta_k(x)`` (linear in a, b; the shared
refit then fits ``p/q`` directly). Sequential thresholding over a grid of thresholds gives
one candidate per distinct support.
"""

from __future__ import annotations

import itertools

import numpy as np
import sympy

from .._expression import internal_symbols
from ._base import AbstractEngine

FUNCTIONS = ("log", "inv", "sqrt", "exp")


def _library(X, degree, functions):
    """Columns (n, m) and their sympy terms: monomials up to ``degree`` plus functions."""
    n, k = X.shape
    xs = internal_symbols(k)
    cols, terms = [], []
    for d in range(degree + 1):
        for combo in itertools.combinations_with_replacement(range(k), d):
            cols.append(np.prod(X[:, list(combo)], axis=1) if combo else np.ones(n))
            terms.append(sympy.Mul(*[xs[j] for j in combo]))
    for name in functions:
        for j in range(k):
            x = X[:, j]
            if name == "log" and np.all(x > 0):
                cols.append(np.log(x)); terms.append(sympy.log(xs[j]))
            elif name == "inv" and np.all(x != 0):
                cols.append(1.0 / x); terms.append(1 / xs[j])
            elif name == "sqrt" and np.all(x >= 0):
                cols.append(np.sqrt(x)); terms.append(sympy.sqrt(xs[j]))
            elif name == "exp" and np.all(np.abs(x) < 50):
                cols.append(np.exp(x)); terms.append(sympy.exp(xs[j]))
    return np.column_stack(cols), terms


def stlsq(A, b, threshold, iterations=10, ridge=1e-10):
    """Sequentially thresholded least squares on column-normalised ``A``; coefficients in
    the normalised basis below ``threshold`` (relative to the largest) are set to zero."""
    scale = np.linalg.norm(A, axis=0)
    scale[scale == 0] = 1.0
    An = A / scale
    m = An.shape[1]

    def solve(support):
        coef = np.zeros(m)
        if support.any():
            S = An[:, support]
            coef[support] = np.linalg.solve(S.T @ S + ridge * np.eye(S.shape[1]), S.T @ b)
        return coef

    support = np.ones(m, dtype=bool)
    coef = solve(support)
    for _ in range(iterations):
        big = np.abs(coef) >= threshold * max(np.max(np.abs(coef)), 1e-300)
        if np.array_equal(big, support):
            break
        support = big
        coef = solve(support)
    return coef / scale


class SparseEngine(AbstractEngine):
    """STLSQ over polynomial terms up to ``degree`` plus optional ``functions`` (any of
    ``log, inv, sqrt, exp``); ``rational=True`` adds denominators built from the terms up
    to ``denominator_degree``. ``thresholds`` is the grid swept (relative thresholds)."""

    name = "sparse"

    def __init__(self, seed=0, degree=3, rational=True, denominator_degree=2, functions=(),
                 thresholds=None, prune=False, **kwargs):
        super().__init__(seed=seed, prune=prune, **kwargs)
        unknown = set(functions) - set(FUNCTIONS)
        if unknown:
            raise ValueError(f"SparseEngine functions must be among {FUNCTIONS}; got {sorted(unknown)}")
        self.degree = degree
        self.rational = rational
        self.denominator_degree = denominator_degree
        self.functions = tuple(functions)
        self.thresholds = np.logspace(-8, -0.3, 40) if thresholds is None else np.asarray(thresholds)

    def _search(self, X, y):
        A, terms = _library(X, self.degree, self.functions)
        candidates = {}

        def add(expr):
            if expr != 0:
                candidates.setdefault(sympy.srepr(expr), expr)

        for t in self.thresholds:
            c = stlsq(A, y, t)
            add(sum(sympy.Float(v, 15) * term for v, term in zip(c, terms) if v != 0))
        if self.rational:
            D, dterms = _library(X, self.denominator_degree, self.functions)
            D, dterms = D[:, 1:], dterms[1:]  # denominator 1 + sum b_k theta_k
            B = np.column_stack([A, -y[:, None] * D])
            for t in self.thresholds:
                c = stlsq(B, y, t)
                a, b = c[: A.shape[1]], c[A.shape[1]:]
                if not np.any(b):
                    continue
                num = sum(sympy.Float(v, 15) * term for v, term in zip(a, terms) if v != 0)
                den = 1 + sum(sympy.Float(v, 15) * term for v, term in zip(b, dterms) if v != 0)
                add(num / den)
        return list(candidates.values())
