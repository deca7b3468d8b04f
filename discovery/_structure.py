"""`same_structure`: does a discovered expression have the structure of a reference one?

For rational functions (the case the tests and benchmarks score) both are brought to one
cancelled fraction p/q, normalised by the coefficient of the reference denominator's
lowest monomial; the structure matches when the sets of monomials with non-negligible
coefficients agree and every coefficient agrees within ``rtol``. Other expressions match
when they use the same non-arithmetic functions, the found tree is at most
``extra_nodes`` nodes larger than the reference's, and they agree within ``rtol``
(relative to the reference's spread) on ``X`` (pass points beyond the training range to
test extrapolation too).
"""

from __future__ import annotations

import numpy as np
import sympy

from ._expression import numpy_function, tree_size


def _fraction(expr, symbols):
    num, den = sympy.fraction(sympy.cancel(sympy.together(sympy.expand(sympy.N(expr)))))
    return sympy.Poly(sympy.expand(num), *symbols), sympy.Poly(sympy.expand(den), *symbols)


def _terms(poly, scale, negligible):
    out = {}
    for monom, coeff in poly.terms():
        c = float(coeff) / scale
        out[monom] = c
    big = max((abs(c) for c in out.values()), default=0.0)
    return {m: c for m, c in out.items() if abs(c) > negligible * big}


def same_structure(found, reference, variables, rtol=0.02, negligible=1e-4, X=None,
                   extra_nodes=2):
    """True when ``found`` has ``reference``'s structure (see module docstring).

    ``variables``: names (or symbols) of the variables both use. ``negligible``: relative
    size below which a coefficient counts as zero. ``X`` (n, k): points for the numerical
    comparison of non-rational expressions.
    """
    symbols = [sympy.Symbol(v) if isinstance(v, str) else v for v in variables]
    found, reference = sympy.sympify(found), sympy.sympify(reference)
    rational = all(e.is_rational_function(*symbols) for e in (found, reference))
    if rational:
        try:
            fn, fd = _fraction(found, symbols)
            rn, rd = _fraction(reference, symbols)
        except (sympy.PolynomialError, TypeError, ValueError):
            return False
        monom = min(rd.monoms())
        r_scale = float(rd.coeff_monomial(monom))
        f_scale = float(fd.coeff_monomial(monom)) if monom in fd.monoms() else 0.0
        if f_scale == 0.0:
            return False
        parts = [(_terms(fn, f_scale, negligible), _terms(rn, r_scale, negligible)),
                 (_terms(fd, f_scale, negligible), _terms(rd, r_scale, negligible))]
        for f_terms, r_terms in parts:
            if set(f_terms) != set(r_terms):
                return False
            for m, c in r_terms.items():
                if abs(f_terms[m] - c) > rtol * abs(c):
                    return False
        return True
    functions = lambda e: {type(a) for a in e.atoms(sympy.Function)}  # noqa: E731
    if functions(found) != functions(reference) or X is None:
        return False
    if tree_size(found) > tree_size(reference) + extra_nodes:
        return False
    X = np.asarray(X, dtype=float).reshape(len(X), -1)
    f = numpy_function(found, symbols)(X)
    r = numpy_function(reference, symbols)(X)
    spread = max(float(np.ptp(r)), float(np.max(np.abs(r))), 1e-300)
    return bool(np.all(np.isfinite(f)) and np.max(np.abs(f - r)) <= rtol * spread)
