"""`trans_slit_law`: discover int U dt = F(int I dt) per link, differentiate to U = R(t) I.

The discovery step searches a generic space (the engine's); only afterwards does
:func:`paper_form` *check* whether the law found is of the paper's form (F a polynomial
of degree <= 2 in q with F(0) = 0, i.e. R = R_c (1 - gamma q)). Nothing is forced.

With ``charge="nodes"`` (see :func:`discovery.prepare`) the law's variable is the mean
charge of the two regions a link joins and the regression is differential: ``r = F(q)``
with ``r = U / (I R_s)`` (``R_s`` the median measured U / I); :func:`paper_form_resistance`
checks it (F a polynomial of degree <= 1: ``R = R_c (1 - gamma q)``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import sympy
import xarray as xr

from ._discover import discover, fitted_engine
from ._expression import numpy_function
from ._prepare import prepare

CHARGE = "q"  # name of the normalised transferred charge in discovered laws
SEARCHES = ("per_link", "once")  # trans_slit_law(search=...): an engine search per link, or one for all links


def integral_to_differential(F, charge, voltage_integral_scale=1.0, charge_scale=1.0):
    """R(Q) in ohm m^2 from a law ``a = F(q)`` on normalised integrals.

    With ``A = voltage_integral_scale * F(Q / charge_scale)`` (V s) and ``Q = int I dt``
    (C/m^2): ``U = dA/dt = voltage_integral_scale / charge_scale * F'(q) * I``, so
    ``R(Q) = (voltage_integral_scale / charge_scale) * F'(Q / charge_scale)``. Returns the
    sympy expression in the SI symbol ``Q`` (C/m^2). ``charge``: the symbol (or name) of q
    in ``F``.
    """
    q = sympy.Symbol(charge) if isinstance(charge, str) else charge
    Q = sympy.Symbol("Q")
    a_s, q_s = sympy.sympify(voltage_integral_scale), sympy.sympify(charge_scale)
    return (a_s / q_s * sympy.diff(F, q)).subs(q, Q / q_s)


def _polynomial_coefficients(F, charge) -> list | None:
    """[c0, c1, ...] of ``F`` if it is a polynomial in ``charge`` alone (after cancelling), else None."""
    q = sympy.Symbol(charge) if isinstance(charge, str) else charge
    expr = sympy.expand(sympy.N(F))
    if expr.free_symbols - {q}:
        return None
    try:
        num, den = sympy.fraction(sympy.cancel(sympy.together(expr)))
        if not den.is_number or not num.is_polynomial(q):
            return None
        poly = sympy.Poly(sympy.expand(num / den), q)
    except (sympy.PolynomialError, TypeError, ValueError):
        return None
    return [float(poly.coeff_monomial(q ** k)) for k in range(poly.degree() + 1)]


def paper_form(F, charge=CHARGE, intercept_tolerance=1e-3):
    """Is ``F(q)`` of the paper's form ``c1 q + c2 q^2`` (F(0) = 0 within
    ``intercept_tolerance``, in units of the normalised integral)? Returns a dict with
    ``form`` ("quadratic", "linear" or "other"), ``paper`` (bool), and for the paper's form
    the normalised ``R_c`` (= F'(0)) and ``gamma`` (= -F''(0) / F'(0), so that
    F'(q) = R_c (1 - gamma q))."""
    other = {"form": "other", "paper": False, "R_c": math.nan, "gamma": math.nan, "intercept": math.nan}
    coeffs = _polynomial_coefficients(F, charge)
    if coeffs is None:
        return other
    degree = len(coeffs) - 1
    if degree > 2 or degree < 1 or coeffs[1] == 0:
        return dict(other, intercept=coeffs[0] if coeffs else math.nan)
    c0, c1 = coeffs[0], coeffs[1]
    c2 = coeffs[2] if degree == 2 else 0.0
    paper = abs(c0) <= intercept_tolerance
    return {"form": "quadratic" if c2 != 0 else "linear", "paper": bool(paper), "R_c": c1,
            "gamma": paper_gamma(c1, c2), "intercept": c0}


def paper_gamma(c1, c2):
    """gamma of ``F(q) = c1 q + c2 q^2``: ``F'(q) = c1 (1 - gamma q)`` -> ``gamma = -2 c2 / c1``.

    The one place this algebra is written (the paper-form check, its projection and the
    open-space law all use it)."""
    return -2.0 * c2 / c1


def quadratic_integral_fit(charge, voltage_integral):
    """Least squares ``A = c1 Q + c2 Q^2`` (the paper's law in integral form, no intercept).

    Any units (normalised or SI); returns ``(c1, c2, r2)``. ``c1`` is then ``R_c`` (in the
    units of A / Q) and :func:`paper_gamma` gives gamma (per unit of Q)."""
    Q = np.asarray(charge, dtype=float)
    A = np.asarray(voltage_integral, dtype=float)
    M = np.stack([Q, Q ** 2], axis=1)
    (c1, c2), *_ = np.linalg.lstsq(M, A, rcond=None)
    r2 = 1.0 - float(np.sum((M @ np.array([c1, c2]) - A) ** 2) / np.sum((A - A.mean()) ** 2))
    return float(c1), float(c2), r2


def paper_form_resistance(F, charge=CHARGE):
    """Is a differential law ``r = F(q)`` (``charge="nodes"``) of the paper's form
    ``c0 + c1 q`` (``R = R_c (1 - gamma q)``, ``c0 > 0``)? Returns a dict as :func:`paper_form`
    with ``form`` "linear", "constant" or "other", the normalised ``R_c`` (= F(0)) and
    ``gamma`` (= -F'(0) / F(0)); ``intercept`` is F(0)."""
    other = {"form": "other", "paper": False, "R_c": math.nan, "gamma": math.nan, "intercept": math.nan}
    coeffs = _polynomial_coefficients(F, charge)
    if coeffs is None:
        return other
    degree = len(coeffs) - 1
    if degree > 1 or not coeffs[0] > 0:
        return dict(other, intercept=coeffs[0] if coeffs else math.nan)
    c1 = coeffs[1] if degree == 1 else 0.0
    return {"form": "linear" if c1 != 0 else "constant", "paper": True, "R_c": coeffs[0],
            "gamma": -c1 / coeffs[0], "intercept": coeffs[0]}


def _nodes(prepared) -> bool:
    return prepared.attrs.get("charge", "passed") == "nodes"


def paper_form_projection(prepared, link):
    """The paper's form closest to a link's data: least squares ``a = c1 q + c2 q^2`` on the
    normalised integrals of :func:`prepare` (with ``charge="nodes"``: ``U = I R_c (1 - gamma q)``
    on the usable charging samples). Returns ``(R_c (ohm m^2), gamma, r2)`` with
    ``R_c = (A_s / Q_s) c1``: what a law not of the paper's form reduces to."""
    p = prepared.sel(link=link)
    if _nodes(prepared):
        ok = np.asarray(p["usable"].values, dtype=bool)
        I, q, U = (np.asarray(p[k].values, dtype=float)[ok] for k in ("current", "charge", "voltage"))
        M = np.stack([I, I * q], axis=1)
        (c0, c1), *_ = np.linalg.lstsq(M, U, rcond=None)
        r2 = 1.0 - float(np.sum((M @ np.array([c0, c1]) - U) ** 2) / np.sum((U - U.mean()) ** 2))
        return float(c0), float(-c1 / c0), r2
    c1, c2, r2 = quadratic_integral_fit(p["charge"].values, p["voltage_integral"].values)
    ratio = float(p["voltage_integral_scale"]) / float(p["charge_scale"])
    return ratio * c1, paper_gamma(c1, c2), r2


def paper_parameters(result, link):
    """``(R_c (ohm m^2), gamma, projected)`` of one link of a :class:`TransSlitResult`: the
    discovered law's own when it is of the paper's form, else its :func:`paper_form_projection`."""
    law = result.all_links()[link]
    if law.paper_form:
        return float(law.R_c), float(law.gamma), False
    R_c, gamma, _ = paper_form_projection(result.prepared, link)
    return R_c, gamma, True


@dataclasses.dataclass(frozen=True)
class LinkLaw:
    """The law of one link. ``law``: a = F(q) on normalised integrals (a :class:`Law`; with
    ``charge="nodes"`` r = U / (I R_s) = F(q), ``charge_scale`` then the scale of that charge).
    ``resistance``: sympy R(Q) in ohm m^2, Q in C/m^2. ``R_c`` (ohm m^2) and ``gamma`` (-)
    when ``paper_form``; NaN otherwise. ``differential_r2``: R^2 of U = R(t) I against the
    data on the charging half-cycle. ``open_space``: link 0 (not an ohmic link)."""

    link: int
    law: Any
    form: str
    paper_form: bool
    R_c: float
    gamma: float
    intercept: float
    resistance: Any
    r2: float
    differential_r2: float
    charge_scale: float
    voltage_integral_scale: float
    open_space: bool


@dataclasses.dataclass(frozen=True)
class TransSlitResult:
    """Per-link laws and R(t) over the analysed cycle.

    ``links``: {link: LinkLaw} for the inner links; ``open_space_link``: LinkLaw of link 0
    when it was asked for (reported separately: it carries an equilibrium potential
    offset). ``resistance``: DataArray (cycle_time, link) R(t) in ohm m^2 over the cycle
    (charging half-cycle then discharging, coordinate ``charging``). ``R_max``/``R_min``:
    (link) ohm m^2. ``prepared``: the :func:`prepare` output used.
    """

    links: dict
    open_space_link: Any
    resistance: Any
    R_max: Any
    R_min: Any
    prepared: Any

    def _per_link(self, field):
        laws = self.all_links()
        return xr.DataArray([getattr(laws[i], field) for i in laws], dims="link",
                            coords={"link": list(laws)}, name=field)

    def all_links(self):
        laws = dict(self.links)
        if self.open_space_link is not None:
            laws = {self.open_space_link.link: self.open_space_link, **laws}
        return laws

    @property
    def R_c(self):
        return self._per_link("R_c")

    @property
    def gamma(self):
        return self._per_link("gamma")

    @property
    def r2(self):
        return self._per_link("r2")

    def summary(self):
        lines = []
        for i, law in self.all_links().items():
            tag = " (open space, not ohmic)" if law.open_space else ""
            lines.append(
                f"link {i}{tag}: a = {law.law.expression}  [{law.law.engine}, R^2={law.r2:.6f}, "
                f"dU R^2={law.differential_r2:.4f}, form={law.form}, paper form={law.paper_form}] "
                f"R_c={law.R_c:.4g} ohm m^2, gamma={law.gamma:.4g}, "
                f"R_max={float(self.R_max.sel(link=i)):.4g}, R_min={float(self.R_min.sel(link=i)):.4g}")
        return "\n".join(lines)


def _subsample(n, max_points):
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, max_points)).astype(int))


def trans_slit_law(data, engine="auto", slits=None, seed=0, parsimony=None, cycle=0,
                   max_points=400, potential="slit_potential", charge="passed", min_current=0.1,
                   search="per_link", **engine_options):
    """Discover the trans-slit law of each link of ``data`` (a ``jaxpnp.simulate`` Dataset,
    or the output of :func:`prepare`; ``potential``, ``charge``, ``min_current`` as in
    :func:`prepare`). The regression is ``a = F(q)`` (normalised integrals, charging
    half-cycle, at most ``max_points`` evenly spaced samples); then R(t) = (A_s/Q_s) F'(q(t))
    over the cycle. With ``charge="nodes"``: ``U / (I R_s) = F(q)`` on the usable charging
    samples, R(t) = R_s F(q(t)).

    ``search``: ``"per_link"`` (an engine search on every link's samples) or ``"once"`` (one
    search on the pooled normalised samples of all links, at most ``max_points``; each link's
    law is then picked, by the same held-out front and parsimony rule, among the forms that
    search found, their constants refit by least squares on the link's own samples: the form
    comes from the data of every link, the constants from each link's). Returns a
    :class:`TransSlitResult`."""
    if search not in SEARCHES:
        raise ValueError(f"search must be one of {SEARCHES}, got {search!r}")
    prepared = data if "voltage_integral" in getattr(data, "variables", {}) else \
        prepare(data, slits=slits, cycle=cycle, potential=potential, charge=charge, min_current=min_current)
    if _nodes(prepared):
        return _differential_laws(prepared, engine, seed, parsimony, max_points, search, engine_options)
    q = sympy.Symbol(CHARGE)
    links = [int(v) for v in prepared["link"].values]
    samples = {}
    for i in links:
        p = prepared.sel(link=i)
        x, a = np.asarray(p["charge"].values), np.asarray(p["voltage_integral"].values)
        keep = _subsample(x.size, max_points)
        samples[i] = (x[keep], a[keep])
    laws = _link_laws(samples, search, engine, seed, parsimony, max_points, engine_options)
    results, curves = {}, []
    for i in links:
        p = prepared.sel(link=i)
        x = np.asarray(p["charge"].values)
        law = laws[i]
        q_s, a_s = float(p["charge_scale"]), float(p["voltage_integral_scale"])
        check = paper_form(law.expression, q, intercept_tolerance=max(1e-3, 3.0 * law.rmse))
        slope = sympy.diff(law.expression, q)
        r_of_q = numpy_function(slope, [q])
        ratio = a_s / q_s
        r_cycle = ratio * r_of_q(np.asarray(p["cycle_charge"].values)[:, None])
        r_charge = ratio * r_of_q(x[:, None])
        u, current = np.asarray(p["voltage"].values), np.asarray(p["current"].values)
        ss_tot = float(np.sum((u - u.mean()) ** 2))
        dr2 = 1.0 - float(np.sum((r_charge * current - u) ** 2)) / ss_tot if ss_tot > 0 else math.nan
        link = LinkLaw(
            link=i, law=law, form=check["form"], paper_form=check["paper"],
            R_c=ratio * check["R_c"] if check["paper"] else math.nan,
            gamma=check["gamma"] if check["paper"] else math.nan,
            intercept=check["intercept"],
            resistance=integral_to_differential(law.expression, q, a_s, q_s),
            r2=law.r2, differential_r2=dr2, charge_scale=q_s, voltage_integral_scale=a_s,
            open_space=(i == 0),
        )
        results[i] = link
        curves.append(r_cycle)
    return _transslit_result(prepared, links, curves, results)


def _link_laws(samples, search, engine, seed, parsimony, max_points, engine_options) -> dict:
    """{link: Law} of {link: (q (n,), y (n,))}: see :func:`trans_slit_law`'s ``search``. The
    law's ``selection`` record says which search it came from."""
    options = dict(engine=engine, seed=seed, parsimony=parsimony, **engine_options)
    if search == "per_link":
        laws = {i: discover(x[:, None], y, names=[CHARGE], **options) for i, (x, y) in samples.items()}
    else:
        x = np.concatenate([x for x, _ in samples.values()])
        y = np.concatenate([y for _, y in samples.values()])
        keep = _subsample(x.size, max_points)  # evenly spaced over the links in turn: each keeps its share
        fitted = fitted_engine(x[keep, None], y[keep], names=[CHARGE], **options)
        laws = {i: fitted.refit_forms(x[:, None], y, names=[CHARGE]).law_ for i, (x, y) in samples.items()}
    return {i: dataclasses.replace(law, selection={**law.selection, "search": search}) for i, law in laws.items()}


def _transslit_result(prepared, links, curves, results) -> TransSlitResult:
    """The laws per link (link 0, the open space, set apart) with each link's R(t) over the cycle."""
    resistance = xr.DataArray(
        np.stack(curves, axis=1), dims=("cycle_time", "link"),
        coords={"cycle_time": prepared["cycle_time"], "link": links,
                "charging": prepared["charging"], "open_space": prepared["open_space"]},
        name="resistance", attrs={"units": "ohm m^2", "long_name": "trans-slit resistance R(t)"})
    open_space = results.pop(0, None)
    return TransSlitResult(
        links=results, open_space_link=open_space, resistance=resistance,
        R_max=resistance.max("cycle_time").assign_attrs(units="ohm m^2"),
        R_min=resistance.min("cycle_time").assign_attrs(units="ohm m^2"),
        prepared=prepared,
    )


def _differential_laws(prepared, engine, seed, parsimony, max_points, search, engine_options):
    """:func:`trans_slit_law` for ``charge="nodes"``: ``r = U / (I R_s) = F(q)`` per link."""
    q = sympy.Symbol(CHARGE)
    links = [int(v) for v in prepared["link"].values]
    samples, scales = {}, {}
    for i in links:
        p = prepared.sel(link=i)
        ok = np.asarray(p["usable"].values, dtype=bool)
        x = np.asarray(p["charge"].values)
        r = np.asarray(p["resistance"].values)
        r_s = float(np.median(r[ok]))
        if not r_s > 0:
            raise ValueError(f"link {i}: the measured U / I is not a positive resistance (median {r_s:.3g} ohm m^2)")
        keep = np.flatnonzero(ok)[_subsample(int(np.count_nonzero(ok)), max_points)]
        samples[i], scales[i] = (x[keep], r[keep] / r_s), r_s
    laws = _link_laws(samples, search, engine, seed, parsimony, max_points, engine_options)
    results, curves = {}, []
    for i in links:
        p = prepared.sel(link=i)
        x = np.asarray(p["charge"].values)
        law, r_s = laws[i], scales[i]
        check = paper_form_resistance(law.expression, q)
        r_of_q = numpy_function(law.expression, [q])
        q_s = float(p["charge_scale"])
        with np.errstate(divide="ignore", invalid="ignore"):  # a law may have a pole outside its data (q -> 0)
            r_cycle = r_s * np.broadcast_to(r_of_q(np.asarray(p["cycle_charge"].values)[:, None]),
                                            p["cycle_charge"].shape)
            r_charge = r_s * np.broadcast_to(r_of_q(x[:, None]), x.shape)
        u, current = np.asarray(p["voltage"].values), np.asarray(p["current"].values)
        ss_tot = float(np.sum((u - u.mean()) ** 2))
        with np.errstate(invalid="ignore", over="ignore"):
            dr2 = 1.0 - float(np.sum((r_charge * current - u) ** 2)) / ss_tot if ss_tot > 0 else math.nan
        results[i] = LinkLaw(
            link=i, law=law, form=check["form"], paper_form=check["paper"],
            R_c=r_s * check["R_c"] if check["paper"] else math.nan,
            gamma=check["gamma"] if check["paper"] else math.nan, intercept=check["intercept"],
            resistance=(r_s * law.expression).subs(q, sympy.Symbol("Q") / q_s), r2=law.r2, differential_r2=dr2,
            charge_scale=q_s, voltage_integral_scale=float(p["voltage_integral_scale"]), open_space=(i == 0))
        curves.append(r_cycle)
    return _transslit_result(prepared, links, curves, results)
