"""Discovered laws exported as people use them: LaTeX and the Pareto front as a DataFrame."""

import numpy as np
import sympy

import discovery


def _law():
    rng = np.random.default_rng(0)
    q = rng.uniform(0.0, 1.0, 300)
    a = 0.8 * q - 0.3 * q ** 2 + 1e-4 * rng.standard_normal(q.size)
    return discovery.discover(q[:, None], a, ["q"], engine="sparse", seed=0)


def test_latex_and_pareto_dataframe():
    law = _law()
    tex = law.latex(digits=3)
    assert "q^{2}" in tex and "0.8" in tex and "0.3" in tex
    # the LaTeX is the expression itself: sympy's own rendering of the rounded law
    q = sympy.Symbol("q")
    rounded = law.expression.xreplace({f: sympy.Float(f, 3) for f in law.expression.atoms(sympy.Float)})
    assert tex == sympy.latex(rounded)
    front = law.pareto_dataframe()
    assert list(front.columns) == ["complexity", "loss", "expression", "latex", "chosen"]
    assert len(front) == len(law.pareto_front) >= 2
    assert np.all(np.diff(front.complexity) > 0) and np.all(np.diff(front.loss) < 0)  # a Pareto front
    assert front.chosen.sum() == 1
    chosen = front[front.chosen].iloc[0]
    assert chosen.complexity == law.complexity
    # each row's expression string is the front member (parses back to the same numbers)
    grid = np.linspace(0.0, 1.0, 7)
    for (c, e, x), text in zip(law.pareto_front, front.expression):
        back = sympy.lambdify(q, sympy.sympify(text, locals={"q": q}))(grid)
        np.testing.assert_allclose(back, sympy.lambdify(q, x)(grid) * np.ones_like(grid), rtol=1e-15, atol=1e-300)
    # and the law predicts the data it came from
    np.testing.assert_allclose(law.predict(np.array([[0.5]])), 0.8 * 0.5 - 0.3 * 0.25, atol=1e-3)
