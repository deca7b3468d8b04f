"""Build a :class:`SaltNCM` from mPNP data with nothing fitted to the CV.

* Storage: each node's equilibrium charge and ion content (``jaxpnp.equilibrium``
  Datasets, one or several bulk concentrations) fitted by a physical law: the open
  space by a planar Bikerman double layer (:class:`PlanarStorage`), each slit by a
  modified-Donnan pore (:class:`DonnanStorage`). The separator's bulk salt
  (``2 c L_sep``) is the separator line's, not node 0's.
* Separator: length, electrolyte and diffusivities from the run's attributes.
* Links: the run's own trans-slit data at small charge (``R_c``: least squares of the
  trans-slit voltage between circuit node potentials against the trans-slit current over
  charging samples up to ``linear_V``), the same quantity the
  discovered law's ``R_c`` estimates; or ``R_c`` passed in (e.g. from ``discovery``).
  The content dependence of the conductance is then physics, not a fit.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from scipy.integrate import cumulative_trapezoid
from scipy.optimize import least_squares

import discovery
from jaxpnp import float64

from . import _extract  # circular: _extract imports this module; its functions are used at call time only
from ._salt_ladder import FARADAY, SaltLadder
from ._salt import (DonnanStorage, Env, IonContentLinks, PlanarStorage, SaltNCM, SplitStorage,
                    separator_volume_in_line)

# the run variables links_from="species" reads (jaxpnp.simulate writes them): each region's ion contents
ION_CONTENTS = ("slit_cation_content", "slit_anion_content")
_P_GRID = np.concatenate([np.linspace(0.0, 2.0, 81)[:-1], np.linspace(2.0, 45.0, 400)])


def _env(attrs, concentration_M=None):
    c = float(attrs["concentration_M"] if concentration_M is None else concentration_M)
    return Env(c0=np.float64(c * 1e3), a=np.float64(float(attrs["ion_diameter_nm"]) * 1e-9),
               V_T=np.float64(float(attrs["thermal_voltage_V"])))


@eqx.filter_jit
def _curves_jit(storage, env, c, p):
    q, N, u = jax.vmap(lambda pp: storage.state(pp, c, env))(p)
    return u, q, N


def _curves(storage, env, c_M, n):
    """``(u, q, N)`` of every node on the p grid (arrays (P, n)) at bulk concentration ``c_M``."""
    with float64():
        p = jnp.asarray(np.repeat(_P_GRID[:, None], n, axis=1))
        c = jnp.full((n,), c_M * 1e3)
        env = Env(c0=jnp.asarray(env.c0), a=jnp.asarray(env.a), V_T=jnp.asarray(env.V_T))
        u, q, N = _curves_jit(storage, env, c, p)
    return np.asarray(u), np.asarray(q), np.asarray(N)


def _at_potential(storage, env, c_M, n, phi):
    """Node charges and contents at double-layer voltage ``phi`` (V, (P,)) for every node: (P, n) each."""
    u, q, N = _curves(storage, env, c_M, n)
    qs = np.stack([np.interp(phi, u[:, k], q[:, k]) for k in range(n)], axis=1)
    Ns = np.stack([np.interp(phi, u[:, k], N[:, k]) for k in range(n)], axis=1)
    return qs, Ns


def _equilibria(equilibrium) -> list:
    eqs = [equilibrium] if isinstance(equilibrium, xr.Dataset) else list(equilibrium)
    if not eqs:
        raise ValueError("need at least one equilibrium Dataset")
    for e in eqs:
        for var in ("slit_charge", "slit_ion_content"):
            if var not in e:
                raise ValueError(f"equilibrium Dataset lacks {var!r} (expected jaxpnp.equilibrium output)")
        if str(e.attrs.get("boundary", "reservoir")) != "reservoir":
            raise ValueError("storage curves need reservoir-boundary equilibria (the bulk at c0)")
    return eqs


def fit_storage(equilibrium, separator_m: float | None = None, separator_nodes: int = 2):
    """Fit node storage laws to equilibrium charge/content curves.

    ``equilibrium``: a ``jaxpnp.equilibrium`` Dataset (reservoir boundary, potentials
    >= 0) or a sequence of them at several bulk concentrations (all used). Returns
    ``(storage, report)``: a :class:`SplitStorage` (planar open space, Donnan slits) and
    per node the RMS misfit relative to the curves' maxima.
    """
    eqs = _equilibria(equilibrium)
    ref = eqs[0]
    n = int(ref.sizes["slit"])
    L = float(ref.attrs["snapped_separator_nm"]) * 1e-9 if separator_m is None else float(separator_m)
    eps = float(ref.attrs["relative_permittivity"]) * 8.8541878128e-12
    data = []
    for e in eqs:
        phi = np.asarray(e["potential"], float)
        keep = phi >= 0
        c_M = float(e.attrs["concentration_M"])
        q = -np.asarray(e["slit_charge"], float)[keep]
        N = np.asarray(e["slit_ion_content"], float)[keep].copy()
        # the separator line holds (most of) the bulk salt in front of node 0
        N[:, 0] -= 2.0 * c_M * 1e3 * separator_volume_in_line(L, separator_nodes)
        data.append((phi[keep], q, N, c_M, _env(e.attrs, c_M)))
    report = {}

    def residual(make, k, theta):
        st = make(theta)
        r = []
        for phi, q, N, c_M, env in data:
            qs, Ns = _at_potential(st, env, c_M, 1, phi)
            r.append((qs[:, 0] - q[:, k]) / np.max(np.abs(q[:, k])))
            r.append((Ns[:, 0] - N[:, k]) / max(np.max(np.abs(N[:, k])), 1e-30))
        return np.concatenate(r)

    with float64():
        make0 = lambda th: PlanarStorage(np.array([np.exp(th[0])]), np.array([max(th[1], 0.0) * 1e-9]),  # noqa: E731
                                         permittivity_F_m=eps)
        s0 = least_squares(lambda th: residual(make0, 0, th), [0.0, 1.0], bounds=([-3, 0], [3, 50]))  # neutral volume in nm
        report[0] = float(np.sqrt(np.mean(s0.fun ** 2)))
        params = []
        for k in range(1, n):
            make = lambda th: DonnanStorage(np.array([np.exp(th[0]) * 1e-9]), np.array([np.exp(th[1])]),  # noqa: E731
                                            np.array([np.exp(th[2]) * 1e-9]))
            sk = least_squares(lambda th: residual(make, k, th), [0.0, 1.0, -2.0],
                               bounds=([-5, -5, -12], [5, 6, 3]))
            params.append(np.exp(sk.x) * np.array([1e-9, 1.0, 1e-9]))
            report[k] = float(np.sqrt(np.mean(sk.fun ** 2)))
    params = np.array(params)
    storage = SplitStorage(make0(s0.x), DonnanStorage(params[:, 0], params[:, 1], params[:, 2]))
    return storage, report


def node_potentials(ds, storage) -> np.ndarray:
    """Circuit node potentials (V, (time, n+1)) of an mPNP run: ``phi_m - u_k``, ``q_k = q_k^eq(u_k, c0)``."""
    n = int(ds.sizes["slit"])
    env = _env(ds.attrs)
    with float64():
        u, q, _ = _curves(storage, env, float(ds.attrs["concentration_M"]), n)
    qd = -np.asarray(ds["slit_charge"], float)
    phi = np.asarray(ds["electrode_potential"], float)
    out = np.empty_like(qd)
    for k in range(n):
        out[:, k] = phi - np.sign(qd[:, k]) * np.interp(np.abs(qd[:, k]), q[:, k], u[:, k])
    return out


def link_resistances(ds, storage, linear_V: float = 0.05) -> np.ndarray:
    """Small-charge trans-slit resistance of every link (ohm m^2, (n,)) from an mPNP run.

    Least squares ``V_{i+1} - V_i = R_i I_i`` (circuit node potentials, circuit current
    sign) over the charging samples where the link has passed at most the charge its
    downstream nodes hold in equilibrium at ``linear_V`` (V; 0.05 V = 2 kT/e is where the
    slit capacitance is still linear within 10%).
    """
    V = node_potentials(ds, storage)
    env = _env(ds.attrs)
    q_lin = _at_potential(storage, env, float(ds.attrs["concentration_M"]), V.shape[1], np.array([linear_V]))[0][0]
    I = -np.asarray(ds["trans_slit_current"], float)  # circuit sign: positive charges the deeper node
    t = np.asarray(ds["time"], float)
    phi = np.asarray(ds["electrode_potential"], float)
    half = int(np.argmax(phi)) + 1
    n = V.shape[1] - 1
    R = np.empty(n)
    for i in range(n):
        Q = cumulative_trapezoid(I[:half, i], t[:half], initial=0.0)
        # the link's linear regime: at most the charge its downstream nodes hold at linear_V
        sel = (Q > 0) & (Q <= q_lin[i + 1:].sum())
        dV = V[:half, i + 1] - V[:half, i]
        R[i] = float(np.sum(dV[sel] * I[:half, i][sel]) / np.sum(I[:half, i][sel] ** 2))
    if not np.all(np.isfinite(R) & (R > 0)):
        raise ValueError(f"non-positive or undefined small-charge link resistance: {R}")
    return R


def residual_link_law(ds, storage, content0, R_c):
    """``(gamma, q_max)`` per link: the paper's form fitted to what the content law leaves.

    On the charging half of ``ds``'s trans-slit data, with the nodes' contents from the
    storage law at the circuit node potentials (bulk concentration), the content-corrected
    voltage ``(V_{i+1} - V_i) G_i/G_i(0)`` obeys ``R_c (1 - gamma Q_i/Q_i^max) I_i``; least
    squares in the integral form (as the discovery does), ``R_c`` held. ``Q_i^max``: the
    largest charge passed while charging.
    """
    V = node_potentials(ds, storage)
    env = _env(ds.attrs)
    c_M = float(ds.attrs["concentration_M"])
    u = np.asarray(ds["electrode_potential"], float)[:, None] - V
    n = V.shape[1]
    q_eq, N_eq = [], []
    uu, qq, NN = _curves(storage, env, c_M, n)
    for k in range(n):
        q_eq.append(np.sign(u[:, k]) * np.interp(np.abs(u[:, k]), uu[:, k], qq[:, k]))
        N_eq.append(np.interp(np.abs(u[:, k]), uu[:, k], NN[:, k]))
    q_eq, N_eq = np.stack(q_eq, 1), np.stack(N_eq, 1)
    links = IonContentLinks(np.asarray(R_c), np.asarray(content0))
    share = float(ds.attrs["diffusivity_m2_s"]) / (float(ds.attrs["diffusivity_m2_s"])
                                                    + float(ds.attrs.get("anion_diffusivity_m2_s", ds.attrs["diffusivity_m2_s"])))
    with float64():
        G = np.stack([np.asarray(sum(links.conductances(jnp.asarray(q_eq[t]), jnp.asarray(N_eq[t]), share, env,
                                                        jnp.full((n,), env.c0))))
                      for t in range(q_eq.shape[0])])
        G0 = np.asarray(sum(links.conductances(jnp.zeros(n), jnp.asarray(content0), share, env, jnp.full((n,), env.c0))))
    I = -np.asarray(ds["trans_slit_current"], float)
    t = np.asarray(ds["time"], float)
    half = int(np.argmax(np.asarray(ds["electrode_potential"]))) + 1
    gam, qmax = np.zeros(n - 1), np.ones(n - 1)
    for i in range(n - 1):
        Q = cumulative_trapezoid(I[:half, i], t[:half], initial=0.0)
        A = cumulative_trapezoid(((V[:, i + 1] - V[:, i]) * G[:, i] / G0[i])[:half], t[:half], initial=0.0)
        qmax[i] = max(float(np.max(Q)), 1e-30)
        # A = R_c (Q - gamma Q^2 / (2 Q^max)): one unknown, R_c held at the small-charge value
        y = A / R_c[i] - Q
        x = -Q ** 2 / (2 * qmax[i])
        gam[i] = float(np.sum(x * y) / np.sum(x * x))
    return np.clip(gam, -5.0, 0.99), qmax


# Two separator nodes: node 0 then holds L/4 = 2.5 nm of the 10 nm separator's bulk. Its share
# must exceed the co-ion depletion thickness of the crowded open-space layer, or the node's
# (charge, salt) storage turns thermodynamically unstable: measured at the 1 V paper case,
# L/8 = 1.27 nm (4 nodes) gave a positive eigenvalue (~2e13 /s) near the vertex, 2.5 nm runs.
DEFAULT_SEPARATOR_NODES = 2


def salt_ncm_from_mpnp(ds, *, equilibrium, R_c=None, separator_nodes: int = DEFAULT_SEPARATOR_NODES, boundary=None,
                       linear_V: float = 0.05, residual_law: bool = False, laws=None, engine=None, seed=None,
                       discovery_options=None):
    """A :class:`SaltNCM` extracted from the mPNP run ``ds`` and its equilibrium curves.

    ``equilibrium``: ``jaxpnp.equilibrium`` Dataset(s) of the same electrode (reservoir
    boundary), several bulk concentrations welcome. ``R_c`` (ohm m^2, per link): the
    links' small-charge resistances; default: from ``ds``'s own trans-slit data
    (:func:`link_resistances`). ``residual_law``: also the paper-form law of what the
    content dependence leaves in the run's trans-slit data (:func:`residual_link_law`).
    ``laws``, ``engine``, ``seed``, ``discovery_options``
    (what ``from_mpnp`` passes for ``kind="ncm"``) are accepted and unused: the link
    resistances come from the trans-slit data between the circuit's own node potentials.
    Returns ``(model, info)``.
    """
    eqs = _equilibria(equilibrium)
    n_regions = int(ds.sizes["slit"])
    if int(eqs[0].sizes["slit"]) != n_regions:
        raise ValueError(f"equilibrium has {int(eqs[0].sizes['slit'])} regions, the run {n_regions}")
    storage, misfit = fit_storage(eqs, separator_nodes=separator_nodes)
    if R_c is None:
        R_c = link_resistances(ds, storage, linear_V)
    R_c = np.broadcast_to(np.asarray(R_c, float), (n_regions - 1,)).copy()
    a = ds.attrs
    env = _env(a)
    with float64():
        p0 = jnp.zeros((n_regions,))
        _, N0, _ = storage.state(p0, jnp.full((n_regions,), env.c0), env)
    links = IonContentLinks(R_c, np.asarray(N0))
    if residual_law:
        gam, qmax = residual_link_law(ds, storage, np.asarray(N0), R_c)
        links = IonContentLinks(R_c, np.asarray(N0), gamma=gam, q_max=qmax)
    model = SaltNCM(n_regions - 1, storage, links,
                    separator_m=float(a["snapped_separator_nm"]) * 1e-9,
                    concentration_M=float(a["concentration_M"]), ion_diameter_nm=float(a["ion_diameter_nm"]),
                    diffusivity_m2_s=float(a["diffusivity_m2_s"]),
                    anion_diffusivity_m2_s=float(a.get("anion_diffusivity_m2_s", a["diffusivity_m2_s"])),
                    temperature_K=float(a["temperature_K"]), separator_nodes=int(separator_nodes),
                    boundary=str(a.get("boundary", "reservoir")) if boundary is None else boundary)
    return model, dict(storage_misfit=misfit, R_c=R_c.tolist(), gamma=np.asarray(model.links.gamma).tolist())


# ----------------------------------------------------------------------------
# SaltLadder: the node-potential NCM's laws plus a separator salt balance (the default kind="salt")
# ----------------------------------------------------------------------------


def _run_equilibrium(equilibrium, ds) -> xr.Dataset:
    """The equilibrium Dataset at the run's bulk concentration (one of several welcome)."""
    eqs = _equilibria(equilibrium)
    c_run = float(ds.attrs["concentration_M"])
    for e in eqs:
        if abs(float(e.attrs["concentration_M"]) - c_run) <= 1e-9 * c_run:
            return e
    raise ValueError(f"no equilibrium Dataset at the run's concentration {c_run} M "
                     f"(got {[float(e.attrs['concentration_M']) for e in eqs]})")


def uptake_tables(equilibrium: xr.Dataset):
    """``(q (n+1, P) C/m^2, w (n+1, P) mol/m^2)``: each node's equilibrium charge (electrode side,
    strictly increasing from 0) and excess ion content ``N(phi_m) - N(0)`` there."""
    if "slit_ion_content" not in equilibrium:
        raise ValueError("equilibrium Dataset lacks 'slit_ion_content' (expected jaxpnp.equilibrium output)")
    phi = np.asarray(equilibrium["potential"], float)
    if not np.any(phi == 0.0):
        raise ValueError("the salt uptake needs the 0 V equilibrium point (the uncharged ion content)")
    keep = phi >= 0.0
    order = np.argsort(phi[keep])
    q = -np.asarray(equilibrium["slit_charge"].transpose("potential", "slit"), float)[keep][order]
    N = np.asarray(equilibrium["slit_ion_content"].transpose("potential", "slit"), float)[keep][order]
    q = np.maximum.accumulate(q - q[0], axis=0)
    w = N - N[0]
    # strictly increasing charges (a crowded node's curve may be flat to rounding)
    ramp = 1e-9 * np.max(np.abs(q), axis=0, keepdims=True) * np.arange(q.shape[0])[:, None]
    return (q + ramp).T.copy(), w.T.copy()


def region_volumes(equilibrium: xr.Dataset) -> np.ndarray:
    """Electrolyte volume per projected area (m, (n+1,)) of every node: its uncharged ion content over ``2 c0``
    (at 0 V the discrete equilibrium is the uniform bulk)."""
    phi = np.asarray(equilibrium["potential"], float)
    if not np.any(phi == 0.0):
        raise ValueError("the node volumes need the 0 V equilibrium point (the uncharged ion content)")
    N0 = np.asarray(equilibrium["slit_ion_content"].transpose("potential", "slit"), float)[np.argmax(phi == 0.0)]
    return N0 / (2.0 * float(equilibrium.attrs["concentration_M"]) * 1e3)


def node_potential_links(ds, equilibrium: xr.Dataset):
    """``(R_c, gamma, q_max)`` per link (n,): the paper's law ``R_c (1 - gamma Q/Q_max)`` on the circuit
    node potentials, by the discovery's integral-form least squares over the charging half-cycle
    (``discovery.paper_form_projection``; what a discovered paper-form law reduces to); ``Q_max`` the
    discovery's charge scale (the largest charge passed while charging)."""
    V = _extract.node_potentials(ds, equilibrium)
    prepared = discovery.prepare(ds.assign(node_potential=(("time", "slit"), V)), slits="all",
                                 potential="node_potential")
    n = int(ds.sizes["slit"]) - 1
    fits = [discovery.paper_form_projection(prepared, i) for i in range(n)]
    R_c = np.array([f[0] for f in fits])
    gamma = np.array([f[1] for f in fits])
    q_max = np.asarray(prepared["charge_scale"].sel(link=list(range(n))), float)
    if not np.all(np.isfinite(R_c) & (R_c > 0)):
        raise ValueError(f"a link has no positive small-charge resistance on the node potentials: R_c = {R_c}")
    return R_c, gamma, q_max


def species_potential_links(model: SaltLadder, time, node_charge, cations, link_current, *, min_current: float = 0.1):
    """``(R_c, gamma, q_max)`` per link (n,): the saturating paper law ``R_c (1 - gamma min(Q, Q_max)/Q_max)`` on
    the co-ion-aware node potentials of ``model`` (``coions="dynamic"``).

    ``time`` (t,) s; ``node_charge`` (t, n+1) C/m^2 and ``cations`` (t, n) mol/m^2 of the slits (the model's
    sign: ``q = F (anions - cations)``); ``link_current`` (t, n) A/m^2, circuit sign (positive charges the deeper
    node). Each link's driving voltage is the one ``model``'s link law uses, ``(1 - s)(u-_i - u-_{i+1}) +
    s (u+_i - u+_{i+1})`` (``SaltLadder.ion_potentials`` at the measured q, p; ``s`` the link's co-ion share by
    ``model.link_share``), so that ``J = V / R``. ``Q``: the charge the link has passed since ``time[0]``.
    Least squares on ``V - J R(Q)`` over the samples with ``|J|`` above ``min_current`` of its maximum, the
    whole record (the law's saturation shows after ``Q`` passes ``Q_max``: a charging-half projection of the
    linear form cannot see it and under-estimates the saturated resistance)."""
    if model.coions != "dynamic":
        raise ValueError("species_potential_links needs a SaltLadder(coions='dynamic') (its species potentials)")
    t = np.asarray(time, float)
    q, p, J = (np.asarray(a, float) for a in (node_charge, cations, link_current))
    n = model.n_slits
    if q.shape != (t.size, n + 1) or p.shape != (t.size, n) or J.shape != (t.size, n):
        raise ValueError(f"species_potential_links: node_charge ({t.size}, {n + 1}), cations and link_current "
                         f"({t.size}, {n}) expected, got {q.shape}, {p.shape}, {J.shape}")
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(p)) and np.all(np.isfinite(J))):
        raise ValueError("species_potential_links: the records must be finite")
    with float64():
        pots = [tuple(np.asarray(a) for a in model.ion_potentials(jnp.asarray(q[i]), jnp.asarray(p[i])))
                for i in range(t.size)]
    um, up = np.stack([a[0] for a in pots]), np.stack([a[1] for a in pots])
    V = np.asarray(model.region_volume_m, float)
    cp, cn = np.stack([a[2] for a in pots]) / V, np.stack([a[3] for a in pots]) / V
    if model.link_share == "min":
        share = cp / (cp + cn)
        s = np.minimum(share[:, :-1], share[:, 1:])
    else:
        s = (cp[:, :-1] + cp[:, 1:]) / (cp[:, :-1] + cp[:, 1:] + cn[:, :-1] + cn[:, 1:])
    drive = (1.0 - s) * (um[:, :-1] - um[:, 1:]) + s * (up[:, :-1] - up[:, 1:])
    Q = np.stack([cumulative_trapezoid(J[:, i], t, initial=0.0) for i in range(n)], 1)
    R_c, gamma, q_max = np.empty(n), np.empty(n), np.empty(n)
    for i in range(n):
        ok = np.abs(J[:, i]) > min_current * np.max(np.abs(J[:, i]))
        if ok.sum() < 4 or np.max(Q[ok, i]) <= 0:
            raise ValueError(f"species_potential_links: link {i} has too few samples above min_current")
        scale_V = np.max(np.abs(drive[ok, i]))
        R0 = float(np.sum(drive[ok, i] * J[ok, i]) / np.sum(J[ok, i] ** 2))

        def residual(x, i=i, ok=ok, scale_V=scale_V, R0=R0):
            r, g, qm = x
            return (drive[ok, i] - J[ok, i] * R0 * r * (1.0 - g * np.minimum(Q[ok, i], qm) / qm)) / scale_V

        Qtop = float(np.max(Q[ok, i]))
        fit = least_squares(residual, [1.0, 0.3, 0.5 * Qtop], bounds=([1e-3, -5.0, 1e-3 * Qtop], [1e3, 0.999, Qtop]))
        R_c[i], gamma[i], q_max[i] = R0 * fit.x[0], fit.x[1], fit.x[2]
    return R_c, gamma, q_max


def salt_ladder_from_mpnp(ds, *, equilibrium, separator_nodes: int = 8, boundary=None, open_law="end",
                          saturate: bool = True, salt_release="none", coions=None, link_law="paper",
                          separator=None, links=None, links_from=None, laws=None, engine=None, seed=None,
                          discovery_options=None):
    """A :class:`SaltLadder` of the mPNP run ``ds``: nothing fitted to its CV. Returns ``(model, info)``.

    Capacitors (``circuits.equilibrium_capacitor``) and salt uptake (:func:`uptake_tables`) from the
    ``equilibrium`` Dataset at the run's concentration; links by :func:`node_potential_links` (or
    ``links=(R_c, gamma, q_max)``); ``R_open`` the separator's bulk resistance ``L/kappa``; the
    separator ``snapped_separator_nm`` long in ``separator_nodes`` nodes. gamma above 1 is held at
    0.999 (a resistance that would vanish before ``Q_max``). ``laws``/``engine``/``seed``/
    ``discovery_options`` (what ``from_mpnp`` passes) are unused: the laws' paper form comes from the
    node potentials here (a mid-slit law does not apply to node potentials). ``coions="dynamic"``: each
    slit carries its co-ion content as a state (``SaltLadder.ion_potentials``), the node volumes from
    the equilibrium data's uncharged ion content, ``N_k(0) / (2 c0)`` (:func:`region_volumes`).
    ``separator="charged"``: the separator line carries both species (``SaltLadder``'s option; the
    run's permittivity). Defaults (``None``): with a reservoir, ``coions="dynamic"`` and
    ``separator="charged"``, the pairing measured best at 1 V and at 0.2 V (issue 10:
    NRMSE 0.075 / 0.037 against 0.113 / 0.041 for the equilibrium co-ions on a neutral line,
    ``benchmarks/charged_separator.py``); the charged line needs the reservoir, so a closed cell
    gets ``"equilibrium"`` and ``"neutral"``.
    ``links_from="species"`` (needs ``coions="dynamic"`` and ``ds`` variables ``slit_cation_content`` and
    ``slit_anion_content``, mol/m^2 on (time, slit): each region's ion contents, as ``jaxpnp.simulate``
    writes them): the inner links 1..n-1 by :func:`species_potential_links` on the model's own co-ion-aware
    node potentials (link 0 as from the node potentials: node 0 holds equilibrium co-ions).
    ``links_from=None`` (default): ``"species"`` where it applies (``coions="dynamic"``, no ``links=``, the run
    carries the contents), else ``"nodes"``; a co-ion model on a run without the contents (a file written
    before ``simulate`` had them) gets ``"nodes"`` with a warning (measured, issue 10, 1 V: NRMSE 0.048
    against 0.075 at hp1000; ``benchmarks/species_links.py``). ``"nodes"`` or ``"species"`` passed
    explicitly is used as given (``"species"`` without the contents is an error).
    """
    boundary = str(ds.attrs.get("boundary", "reservoir")) if boundary is None else boundary
    reservoir = boundary == "reservoir"
    coions = ("dynamic" if reservoir else "equilibrium") if coions is None else coions
    separator = ("charged" if reservoir else "neutral") if separator is None else separator
    if links_from not in (None, "nodes", "species"):
        raise ValueError(f"links_from must be None, 'nodes' or 'species', got {links_from!r}")
    if links_from is None:
        missing = [v for v in ION_CONTENTS if v not in ds.variables]
        links_from = "species" if coions == "dynamic" and links is None and not missing else "nodes"
        if coions == "dynamic" and links is None and missing:
            warnings.warn(f"from_mpnp(kind='salt'): the run lacks {missing} (written before jaxpnp.simulate had them), "
                          "so the inner links are read on the equilibrium node potentials (links_from='nodes'), "
                          "not the co-ion-aware ones; re-run the mPNP for links_from='species' (issue 10 at 1 V: "
                          "NRMSE 0.075 against 0.048)", UserWarning, stacklevel=3)
    if links_from == "species":
        missing = [v for v in ION_CONTENTS if v not in ds.variables]
        if coions != "dynamic" or missing or links is not None:
            raise ValueError("links_from='species' needs coions='dynamic', no links=, and the run's per-region ion "
                             f"contents (missing: {missing})")
    eq = _run_equilibrium(equilibrium, ds)
    n = int(ds.sizes["slit"]) - 1
    if int(eq.sizes["slit"]) != n + 1:
        raise ValueError(f"equilibrium has {int(eq.sizes['slit'])} regions, the run {n + 1}")
    capacitor, C = _extract.equilibrium_capacitor(eq)
    R_c, gamma, q_max = node_potential_links(ds, eq) if links is None else (np.asarray(v, float) for v in links)
    gamma = np.minimum(np.broadcast_to(gamma, (n,)), 0.999)
    qc, ws = uptake_tables(eq)
    a = ds.attrs
    model = SaltLadder(n, _extract.separator_resistance(ds), np.asarray(C), np.broadcast_to(R_c, (n,)), gamma,
                       np.broadcast_to(q_max, (n,)), qc, ws,
                       separator_m=float(a["snapped_separator_nm"]) * 1e-9, concentration_M=float(a["concentration_M"]),
                       ion_diameter_nm=float(a["ion_diameter_nm"]), diffusivity_m2_s=float(a["diffusivity_m2_s"]),
                       anion_diffusivity_m2_s=float(a.get("anion_diffusivity_m2_s", a["diffusivity_m2_s"])),
                       temperature_K=float(a["temperature_K"]), capacitor=capacitor,
                       separator_nodes=int(separator_nodes), open_law=open_law, saturate=bool(saturate),
                       salt_release=salt_release, coions=coions, link_law=link_law, region_volume_m=region_volumes(eq),
                       separator=separator, relative_permittivity=float(a["relative_permittivity"]),
                       boundary=boundary)
    if links_from == "species":
        Np = np.asarray(ds["slit_cation_content"].transpose("time", "slit"), float)
        Nn = np.asarray(ds["slit_anion_content"].transpose("time", "slit"), float)
        I = -np.asarray(ds["trans_slit_current"].transpose("time", "slit"), float)[:, :n]  # circuit sign
        sp = species_potential_links(model, np.asarray(ds["time"], float), FARADAY * (Nn - Np), Np[:, 1:], I)
        R_c, gamma, q_max = (np.concatenate([np.broadcast_to(np.asarray(a, float), (n,))[:1], b[1:]])
                             for a, b in zip((R_c, gamma, q_max), sp))
        gamma = np.minimum(gamma, 0.999)
        model = dataclasses.replace(model, R_c=R_c, gamma=gamma, q_max=q_max)
    return model, dict(R_c=np.asarray(R_c).tolist(), gamma=gamma.tolist(), q_max=np.asarray(q_max).tolist(),
                       R_open=float(model.R_open), capacitance=np.asarray(C).tolist(), links_from=links_from)
