"""Sympy expressions with numeric constants: parsing, tidying, sizing, constant refits.

Engines work on internal variable names ``x0, x1, ...`` (so that user names such as
``Q``, ``I`` or ``E`` never collide with sympy's own symbols) and hand back expressions
in those; :func:`rename` maps them to the caller's names at the end.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from typing import Any, Callable

import numpy as np
import sympy
from scipy.optimize import least_squares
from sympy.polys.constructor import construct_domain
from sympy.polys.rings import PolyRing

try:  # private in sympy (unpinned): without it cancel_together takes sympy's own path
    from sympy.polys.polyutils import _sort_gens
except ImportError:  # pragma: no cover - depends on the installed sympy
    _sort_gens = None

_FUNCTIONS = {
    "exp": sympy.exp,
    "log": sympy.log,
    "sqrt": sympy.sqrt,
    "abs": sympy.Abs,
    "sin": sympy.sin,
    "cos": sympy.cos,
    "tanh": sympy.tanh,
    "square": lambda a: a ** 2,
    "cube": lambda a: a ** 3,
    "pow": lambda a, b: a ** b,
}


def internal_symbols(n):
    """The internal variables ``x0 .. x{n-1}`` every engine searches over."""
    return [sympy.Symbol(f"x{i}", real=True) for i in range(n)]


def parse(text, n_variables):
    """Infix text from an engine (variables ``x0..``) -> sympy expression with Floats."""
    local = dict(_FUNCTIONS)
    local.update({s.name: s for s in internal_symbols(n_variables)})
    expr = sympy.sympify(text.replace("^", "**"), locals=local)
    return sympy.N(expr)


def rename(expr, names):
    """Replace ``x0, x1, ...`` by plain symbols with the caller's ``names``."""
    mapping = {s: sympy.Symbol(name) for s, name in zip(internal_symbols(len(names)), names)}
    return expr.xreplace(mapping)


def tree_size(expr):
    """Complexity used by every engine: number of nodes of the sympy expression tree."""
    return sum(1 for _ in sympy.preorder_traversal(expr))


def _is_monomial_factor(a):
    """A symbol or a symbol to a positive integer power."""
    return a.is_Symbol or (a.is_Pow and a.base.is_Symbol and a.exp.is_Integer and a.exp > 0)


def _is_term(t):
    """A number, a monomial, or one number times a monomial: nothing to multiply out."""
    if t.is_Number or _is_monomial_factor(t):
        return True
    if not t.is_Mul:
        return False
    rest = [a for a in t.args if not a.is_Number]
    return len(t.args) - len(rest) <= 1 and all(_is_monomial_factor(a) for a in rest)


def _is_expanded_polynomial(e):
    return all(_is_term(t) for t in e.args) if e.is_Add else _is_term(e)


def _expanded_fraction(expr):
    """``(p, q)`` when ``expr`` is already ``p`` or ``p / q`` with ``p, q`` expanded polynomials (every
    coefficient a single number, as :func:`tidy` writes them), else None."""
    if _is_expanded_polynomial(expr):
        return expr, sympy.S.One
    if not expr.is_Mul:
        return None
    dens = [a for a in expr.args if a.is_Pow and a.exp == -1 and a.base.is_Add and _is_expanded_polynomial(a.base)]
    if len(dens) != 1:
        return None
    rest = [a for a in expr.args if a is not dens[0]]
    if len(rest) == 1 and _is_expanded_polynomial(rest[0]):
        return rest[0], dens[0].base
    if all(a.is_Number or _is_monomial_factor(a) for a in rest) and sum(a.is_Number for a in rest) <= 1:
        return sympy.Mul(*rest), dens[0].base
    return None


_DOMAINS = {}  # coefficient kinds -> the domain sring's construct_domain picks for them


def _coefficient_kind(c):
    if c.is_Integer:
        return "ZZ"
    return ("RR", c._prec) if c.is_Float else None  # not Rationals: cancel clears their denominators first


def _no_content(rep):
    """True when cancel's factor_terms can pull no number out of this polynomial's terms: integers
    only +-1, floats not integral, no two floats of one magnitude (generic fitted constants)."""
    magnitudes = [abs(float(c)) for c, _ in rep if not (c.is_Integer and abs(c) == 1)]
    if any(c.is_Integer and abs(c) != 1 for c, _ in rep):
        return False
    if any(m == 1.0 for m in magnitudes) and len(rep) == 1:
        return True
    return len(set(magnitudes)) == len(magnitudes) and not any(m.is_integer() and m != 1.0 for m in magnitudes)


def _expanded_ring(p, q):
    """``sring((p, q))`` for expanded polynomials ``p, q``: the same ring (generators sorted as sring
    sorts them, domain as construct_domain picks it, cached by coefficient kind) and elements,
    without sring's ``expand`` of input that is already expanded; None unless every coefficient is a
    Float or an Integer."""
    terms = []
    gens = set()
    for e in (p, q):
        rep = []
        for term in sympy.Add.make_args(e):
            coeff, powers = sympy.S.One, {}
            for factor in sympy.Mul.make_args(term):
                if factor.is_Number:
                    coeff = factor
                else:
                    base, exp = (factor.base, int(factor.exp)) if factor.is_Pow else (factor, 1)
                    powers[base] = exp
                    gens.add(base)
            rep.append((coeff, powers))
        terms.append(rep)
    coeffs = [c for rep in terms for c, _ in rep]
    kinds = tuple(sorted({_coefficient_kind(c) for c in coeffs}, key=str))
    if None in kinds or not all(_no_content(rep) for rep in terms):
        return None
    if kinds not in _DOMAINS:
        _DOMAINS[kinds] = construct_domain(coeffs)[0]
    domain = _DOMAINS[kinds]
    gens = _sort_gens(gens)
    index = {g: i for i, g in enumerate(gens)}
    ring = PolyRing(gens, domain)
    polys = []
    for rep in terms:
        d = {}
        for c, powers in rep:
            monom = [0] * len(gens)
            for base, exp in powers.items():
                monom[index[base]] = exp
            d[tuple(monom)] = domain.from_sympy(c)
        polys.append(ring.from_dict(d))
    return ring, polys


def cancel_together(expr):
    """``sympy.cancel(sympy.together(expr))``, the same expression, cheaply when ``expr`` is already
    ``p / q`` of expanded polynomials (every tidied, refit or pruned candidate).

    For such input ``together`` and ``cancel``'s rewrites before its polynomial step (signsimp,
    factor_terms, as_numer_denom) only move signs and monomial factors, exact in floating point, so
    the polynomials ``cancel`` reduces are ``+-p, +-q`` coefficient for coefficient; the reduction
    here is the same ring ``cancel`` (its gcd is exact, its sign normalisation fixes the +-). Those
    rewrites are ~70% of a tidy's cost. Anything else goes through sympy's own path."""
    parts = _expanded_fraction(expr) if expr.free_symbols and _sort_gens is not None else None
    if parts is None:
        return sympy.cancel(sympy.together(expr))
    built = _expanded_ring(*parts)
    if built is None or not built[0].ngens:
        return sympy.cancel(sympy.together(expr))
    ring, (num, den) = built
    num, den = num.cancel(den)
    return num.as_expr() / den.as_expr()


def _expand(e):
    """``sympy.expand(e)``; an expanded polynomial is returned as it is (expand would rebuild it unchanged)."""
    return e if _is_expanded_polynomial(e) else sympy.expand(e)


def _evaluated(expr):
    """``sympy.N(expr)``; p/q of expanded polynomials whose numbers are all 53-bit Floats (or the
    -1 of a negated monomial, which N keeps) is returned as it is (N would rebuild it unchanged)."""
    parts = _expanded_fraction(expr)
    if parts is not None and all(a.is_Float and a._prec == 53 or a is sympy.S.NegativeOne and term.is_Mul
                                 for part in parts for term in sympy.Add.make_args(part)
                                 for a in sympy.Mul.make_args(term) if a.is_Number):
        return expr
    return sympy.N(expr)


def tidy(expr, variables):
    """Canonical form: rational functions as one cancelled fraction p/q, others as found.

    Collapses redundant constants (``-172.8*x + 173.4*x`` -> ``0.57*x``) so that constant
    refits are well posed and sizes compare across engines. Floats stay Floats.
    """
    expr = _evaluated(expr)
    try:
        if expr.is_rational_function(*variables):
            num, den = sympy.fraction(cancel_together(expr))
            num, den = _expand(num), _expand(den)
            if den.is_number:
                return _expand(num / den)
            # make the denominator's constant (or lowest) coefficient 1
            poly = sympy.Poly(den, *variables)
            lead = poly.coeffs()[-1]
            if lead != 0:
                num, den = _expand(num / lead), _expand(den / lead)
            return num / den
    except (sympy.PolynomialError, TypeError, ValueError, ZeroDivisionError):
        pass
    return expr


def cancel_near_common_roots(expr, variables, rtol=0.05):
    """Univariate rational p/q: divide out root pairs of p and q that nearly coincide
    (within ``rtol`` relative); None when there is nothing to cancel. A generic
    simplification: noisy fits often return ``k (x - r)/((x - r')(...))`` with r ~ r'."""
    if len(variables) != 1:
        return None
    (x,) = variables
    try:
        num, den = sympy.fraction(cancel_together(expr))
        pn, pd = sympy.Poly(num, x), sympy.Poly(den, x)
    except (sympy.PolynomialError, TypeError, ValueError):
        return None
    if pn.degree() < 1 or pd.degree() < 1:
        return None
    rn = list(np.roots([float(c) for c in pn.all_coeffs()]))
    rd = list(np.roots([float(c) for c in pd.all_coeffs()]))
    cancelled = False
    for r in list(rn):
        close = [d for d in rd if abs(d - r) <= rtol * max(abs(r), abs(d), 1e-12)]
        if close:
            rn.remove(r)
            rd.remove(min(close, key=lambda d: abs(d - r)))
            cancelled = True
    if not cancelled:
        return None

    def rebuild(lead, roots):
        coeffs = np.real_if_close(np.poly(roots), tol=1e6) if roots else np.array([1.0])
        if np.iscomplexobj(coeffs):
            return None
        return float(lead) * sum(sympy.Float(float(c), 15) * x ** (len(coeffs) - 1 - k)
                                 for k, c in enumerate(coeffs))

    n, d = rebuild(pn.LC(), rn), rebuild(pd.LC(), rd)
    if n is None or d is None:
        return None
    return tidy(n / d, variables)


def floats_of(expr):
    """The numeric constants of ``expr`` in a fixed (sorted-by-string) order."""
    return sorted(expr.atoms(sympy.Float), key=lambda f: (str(f), float(f)))


def parametrise(expr):
    """Replace every Float by a symbol ``c_k``; returns (expression, symbols, values)."""
    floats = floats_of(expr)
    params = [sympy.Symbol(f"c_{k}") for k in range(len(floats))]
    return expr.xreplace(dict(zip(floats, params))), params, np.array([float(f) for f in floats])


@functools.lru_cache(maxsize=512)  # ~75 kB each (lambdify copies the numpy namespace)
def _lambdify(args, expr):
    """``sympy.lambdify(args, expr)`` (numpy), cached: a polish and its refits evaluate the same
    expressions many times, and printing one to Python source costs milliseconds. No docstring
    (lambdify prints the whole expression again for it)."""
    return sympy.lambdify(args, expr, modules="numpy", docstring_limit=0)


def numpy_function(expr, variables):
    """``f(X)`` evaluating ``expr`` on the columns of ``X`` (n, k) with numpy."""
    fn = _lambdify(tuple(variables), expr)

    def f(X):
        with np.errstate(all="ignore"):
            out = fn(*[X[:, j] for j in range(X.shape[1])])
        return np.broadcast_to(np.asarray(out, dtype=float), (X.shape[0],)).copy()

    return f


def rmse(expr, variables, X, y):
    """Root-mean-square error of ``expr`` on (X, y); inf when not finite."""
    pred = numpy_function(expr, variables)(X)
    if not np.all(np.isfinite(pred)):
        return math.inf
    return float(np.sqrt(np.mean((pred - y) ** 2)))


def refit_constants(expr, variables, X, y, max_nfev=200):
    """Least-squares refit (float64, scipy) of the constants of ``expr`` on (X, y)."""
    template, params, values = parametrise(expr)
    if len(params) == 0:
        return expr
    fn = _lambdify(tuple(params) + tuple(variables), template)
    try:
        sol = _least_squares(fn, values, X, y, max_nfev)
    except Exception:  # noqa: BLE001 - a refit is an improvement attempt only
        return expr
    new = template.xreplace({p: sympy.Float(float(v), 15) for p, v in zip(params, sol.x)})
    return new if rmse(new, variables, X, y) <= rmse(expr, variables, X, y) else expr


_FD_STEP = np.sqrt(np.finfo(float).eps)  # scipy's relative step for a 2-point difference


def _least_squares(fn, c0, X, y, max_nfev):
    """Levenberg-Marquardt (scipy, MINPACK) on the constants ``c`` of ``fn(*c, *columns of X)``
    against ``y``; non-finite residuals count as 1e6. Stops after ``max_nfev`` evaluations per
    constant (+1).

    The Jacobian is scipy's own 2-point forward difference (same steps, same formula), but all
    constants' steps go through ``fn`` in one broadcast call instead of one call each: on the
    discovered laws' 300-point samples Python overhead, not arithmetic, is what a call costs.
    """
    c0 = np.asarray(c0, dtype=float)
    cols = [X[:, j] for j in range(X.shape[1])]
    p = c0.size

    def evaluate(*c):  # under the errstate below
        r = np.asarray(fn(*c, *cols), dtype=float) - y
        return np.where(np.isfinite(r), r, 1e6)

    def residual(c):
        return np.broadcast_to(evaluate(*c), y.shape)

    def jacobian(c):
        h = _FD_STEP * ((c >= 0).astype(float) * 2 - 1) * np.maximum(1.0, np.abs(c))
        steps = np.tile(c, (p + 1, 1))  # row 0: c itself (scipy's f0), row 1 + i: c with c_i stepped
        steps[1 + np.arange(p), np.arange(p)] = c + h
        f = np.broadcast_to(evaluate(*steps.T[:, :, None]), (p + 1, y.size))
        return ((f[1:] - f[0]) / ((c + h) - c)[:, None]).T

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return least_squares(residual, c0, jac=jacobian, method="lm", max_nfev=max_nfev * (p + 1))


def drop_constants(expr, variables, X, y, tolerance):
    """Generic pruning: set constants to zero (one at a time, refitting the rest) while the
    RMSE stays within ``tolerance``; yields every accepted simpler expression."""
    current = expr
    out = []
    changed = True
    while changed:
        changed = False
        for f in floats_of(current):
            trial = sympy.N(current.xreplace({f: sympy.Integer(0)}))
            if trial == current or trial.is_number and not current.is_number:
                continue
            trial = tidy(refit_constants(tidy(trial, variables), variables, X, y), variables)
            if rmse(trial, variables, X, y) <= tolerance and tree_size(trial) < tree_size(current):
                current = trial
                out.append(current)
                changed = True
                break
    return out


@dataclasses.dataclass(frozen=True)
class Form:
    """An expression's structure with its constants as parameters, lambdified once, so that its
    constants can be refit on many data sets without sympy (:meth:`fit`, :meth:`rmse`).

    Exact +-1 constants stay fixed: :func:`tidy` writes a rational form with its denominator's
    lowest coefficient 1, and moving it would only rescale numerator and denominator together.
    ``size``: :func:`tree_size` of the expression (the same for any constants)."""

    template: Any
    params: tuple
    values: np.ndarray
    size: int
    fn: Callable

    @classmethod
    def of(cls, expr, variables):
        free = [f for f in floats_of(expr) if abs(float(f)) != 1.0]
        params = tuple(sympy.Symbol(f"c_{k}") for k in range(len(free)))
        template = expr.xreplace(dict(zip(free, params)))
        fn = _lambdify(params + tuple(variables), template)
        return cls(template, params, np.array([float(f) for f in free]), tree_size(expr), fn)

    def predict(self, c, X):
        with np.errstate(all="ignore"):
            out = self.fn(*c, *[X[:, j] for j in range(X.shape[1])])
        return np.broadcast_to(np.asarray(out, dtype=float), (X.shape[0],))

    def rmse(self, c, X, y):
        pred = self.predict(c, X)
        return float(np.sqrt(np.mean((pred - y) ** 2))) if np.all(np.isfinite(pred)) else math.inf

    def fit(self, X, y, max_nfev=200):
        """Least-squares constants on (X, y), started from the form's own; None when not finite."""
        if not self.params:
            return self.values
        try:
            sol = _least_squares(self.fn, self.values, X, y, max_nfev)
        except Exception:  # noqa: BLE001 - a form the data cannot take is dropped by the caller
            return None
        return sol.x if math.isfinite(self.rmse(sol.x, X, y)) else None

    def expression(self, c):
        return self.template.xreplace({p: sympy.Float(float(v), 15) for p, v in zip(self.params, c)})
