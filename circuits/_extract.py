"""Circuit extraction: an NCM built from an mPNP Dataset, with nothing fitted to its CV.

All per projected electrode area, SI, electrode-side sign (``q_k = -slit_charge_k``),
node 0 = the open space.

* Capacitors: from ``equilibrium`` data, each node's equilibrium charge against the
  electrode potential ``q_k^eq(phi_m)`` (a ``jaxpnp.equilibrium`` Dataset, dims
  ``(potential, slit)``, or the charging half of a slow mPNP sweep, dims
  ``(time, slit)``) -> :class:`TabulatedCapacitor`. Without it: linear chord
  capacitors ``C_k = max_t q_k / max_t phi_m`` of the run itself (the paper's NCM).
* Node potentials: ``V_k = phi_m - (q_k^eq)^-1(q_k)`` (:func:`node_potentials`), 0 V at
  equilibrium, unlike the mid-slit potential (overlapping double layers carry a
  Donnan-like offset that no resistor produces).
* Links: the laws ``discovery.trans_slit_law`` finds on the chosen potential, each
  reduced to the paper's form ``R_c (1 - gamma Q/Q^max)`` (``discovery.paper_parameters``);
  ``Q_i^max`` is the discovery's charge scale (its max while charging). The law's charge
  (``charge=``): on node potentials by default ``"nodes"``, the mean charge of the two
  regions the link joins (a state: ``NCM(charge="nodes")``); ``"passed"`` (the paper's
  ``int I_i dt``, the default on mid-slit potentials). At the paper's 0.2 V window the passed
  charge of the deep links keeps growing after the vertex to ~5 Q^max, where a law read
  on the charging half-cycle no longer holds; the slits' charge stays in range.
* Open space: on node potentials the same form ``R_open (1 - gamma_open Q_e/Q_e^max)`` by
  least squares (:func:`open_space_law`, on the electrode charge ``Q_e`` whatever the links
  read); on mid-slit potentials the separator's ohmic
  resistance ``L_sep / kappa`` (:func:`separator_resistance`), or for linear capacitors a
  least-squares ``R_open`` on the charging half-cycle.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np
import xarray as xr
from scipy.integrate import cumulative_trapezoid

import discovery
import jaxpnp

from ._ncm import NCM, TabulatedCapacitor
from ._salt_extract import salt_ladder_from_mpnp, salt_ncm_from_mpnp

FROM_MPNP_KINDS = ("ncm", "salt")  # the kinds from_mpnp builds; "salt": circuits.SaltLadder / SaltNCM (_salt_extract)
SALT_MODELS = ("ladder", "content")
# the discovery budget when extract is given no discovery_options: Operon's 300 x 60 (the quick reproduce
# config's) gives every link of the 0.2 V and 1 V paper-case runs the law the default 500 x 100 gives, within
# 1e-3 / 3e-2 of the data's spread, at half the search time (benchmarks/build_cost.py, NOTES 2026-12-02)
DISCOVERY_OPTIONS = {"operon": dict(population_size=300, generations=60)}  # from_mpnp(kind="salt", salt_model=...): SaltLadder (default) / SaltNCM


def _charging(ds):
    """Index slice of the first charging half-cycle of a time series (``discovery.charging_window``)."""
    start, end, _ = discovery.charging_window(np.asarray(ds["time"]), np.asarray(ds["cell_voltage"]))
    return slice(start, end + 1)


def equilibrium_curves(equilibrium: xr.Dataset):
    """``(phi_m (m,) V, q (m, n+1) C/m^2)``: every node's equilibrium charge against the electrode
    potential, from 0 V up, electrode side; non-decreasing in ``phi_m``.

    ``equilibrium``: a ``jaxpnp.equilibrium`` Dataset (``potential`` dim) or a slow mPNP sweep
    (``time`` dim; its first charging half-cycle is used).
    """
    if "potential" in equilibrium.dims:
        phi = np.asarray(equilibrium["potential"], dtype=float)
        q = -np.asarray(equilibrium["slit_charge"].transpose("potential", "slit"), dtype=float)
        order = np.argsort(phi)
        phi, q = phi[order], q[order]
        if phi[0] > 0:  # equilibrium at 0 V holds no charge
            phi, q = np.r_[0.0, phi], np.vstack([np.zeros((1, q.shape[1])), q])
    elif "time" in equilibrium.dims:
        half = _charging(equilibrium)
        phi = np.asarray(equilibrium["electrode_potential"], dtype=float)[half]
        q = -np.asarray(equilibrium["slit_charge"].transpose("time", "slit"), dtype=float)[half]
    else:
        raise ValueError("equilibrium must have a 'potential' (jaxpnp.equilibrium) or 'time' (slow sweep) dimension")
    if phi.size < 2 or not phi[-1] > phi[0]:
        raise ValueError("equilibrium data must span a range of electrode potentials")
    return phi, np.maximum.accumulate(q, axis=0)


def equilibrium_capacitor(equilibrium: xr.Dataset, n_table: int = 200):
    """``(TabulatedCapacitor, C (n+1,) F/m^2)`` of the nodes' equilibrium curves; ``C_k`` the chord at the top."""
    phi, q = equilibrium_curves(equilibrium)
    v = np.linspace(0.0, float(phi[-1]), n_table)
    shapes, C = [], []
    for k in range(q.shape[1]):
        curve = np.interp(v, phi, np.maximum(q[:, k], 0.0))
        curve = curve - curve[0] + 1e-9 * np.max(curve) * np.arange(n_table)  # start at 0, strictly increasing
        c = curve[-1] / v[-1]
        shapes.append(curve / c)
        C.append(c)
    return TabulatedCapacitor(v, np.array(shapes)), np.array(C)


def node_potentials(ds: xr.Dataset, equilibrium: xr.Dataset) -> np.ndarray:
    """Circuit node potential of every region (V, (time, slit)) of an mPNP run.

    An NCM node holds ``q_k = q_k^eq(phi_m - V_k)``; inverting the equilibrium curve on
    the run's own charges gives ``V_k(t) = phi_m(t) - (q_k^eq)^-1(q_k(t))``. Charges beyond
    the table's last value map to its end.
    """
    phi_eq, q_eq = equilibrium_curves(equilibrium)
    phi = np.asarray(ds["electrode_potential"], dtype=float)
    q = -np.asarray(ds["slit_charge"].transpose("time", "slit"), dtype=float)
    if q.shape[1] != q_eq.shape[1]:
        raise ValueError(f"the equilibrium data have {q_eq.shape[1]} regions, the run {q.shape[1]}")
    out = np.empty_like(q)
    for k in range(q.shape[1]):
        curve = q_eq[:, k] + 1e-12 * np.max(np.abs(q_eq[:, k])) * np.arange(q_eq.shape[0])  # strictly increasing
        out[:, k] = phi - np.sign(q[:, k]) * np.interp(np.abs(q[:, k]), curve, phi_eq)
    return out


@dataclasses.dataclass(frozen=True)
class OpenSpaceLaw:
    """``V_0 = I R_open (1 - gamma_open Q_e / Q_e^max)``: ``R_open`` (ohm m^2), ``gamma_open``,
    ``q_max_open`` (C/m^2), ``r2`` of the integral-form least squares."""

    R_open: float
    gamma_open: float
    q_max_open: float
    r2: float


def open_space_law(ds: xr.Dataset, node_potential) -> OpenSpaceLaw:
    """The open-space branch's law from an mPNP run and its node potentials (V, (time, slit)).

    Least squares in the discovery's integral form over the charging half-cycle:
    ``int V_0 dt = R_open (Q_e - gamma_open Q_e^2 / (2 Q_e^max))``, ``Q_e = int I dt``.
    (The electrode charge, whatever the links read: at 1 V the open space's own charge
    is not monotonic while charging and a law in it is not a resistance.)
    """
    half = _charging(ds)
    t = np.asarray(ds["time"], dtype=float)[half]
    Q = cumulative_trapezoid(np.asarray(ds["current_density"], dtype=float)[half], t, initial=0.0)
    A = cumulative_trapezoid(np.asarray(node_potential, dtype=float)[half, 0], t, initial=0.0)
    q_max = float(np.max(Q))
    if not q_max > 0:
        raise ValueError("no charge passes the open space while charging")
    c1, c2, r2 = discovery.quadratic_integral_fit(Q / q_max, A)
    return OpenSpaceLaw(R_open=c1 / q_max, gamma_open=discovery.paper_gamma(c1, c2), q_max_open=q_max, r2=r2)


def _electrolyte(attrs) -> jaxpnp.Electrolyte:
    return jaxpnp.Electrolyte(concentration_M=float(attrs["concentration_M"]),
                              ion_diameter_nm=float(attrs["ion_diameter_nm"]),
                              diffusivity_m2_s=float(attrs["diffusivity_m2_s"]),
                              anion_diffusivity_m2_s=float(attrs["anion_diffusivity_m2_s"]),
                              relative_permittivity=float(attrs["relative_permittivity"]),
                              temperature_K=float(attrs["temperature_K"]))


def separator_resistance(ds: xr.Dataset) -> float:
    """Ohmic resistance (ohm m^2) of the separator's bulk electrolyte, ``L_sep / kappa``."""
    return float(ds.attrs["snapped_separator_nm"]) * 1e-9 / float(_electrolyte(ds.attrs).conductivity_S_m)


@dataclasses.dataclass(frozen=True)
class Extraction:
    """What :func:`extract` built and from what: ``model`` (the NCM), ``laws`` (the
    ``discovery.TransSlitResult`` the links come from), ``potential`` (the name of the link
    voltage it used), ``node_potential`` ((time, slit) V, or None), ``open_law``
    (:class:`OpenSpaceLaw` or None), ``R_open_source`` (how R_open was found),
    ``capacitance`` ((n+1,) F/m^2: chord capacitances of the nodes), ``link_R_c`` /
    ``link_gamma`` ((n,) the per-link paper-form values), ``projected`` ((n,) bool: the
    law found was not of the paper's form and was projected on it)."""

    model: NCM
    laws: Any
    potential: str
    node_potential: Any
    open_law: OpenSpaceLaw | None
    R_open_source: str
    capacitance: np.ndarray
    link_R_c: np.ndarray
    link_gamma: np.ndarray
    projected: np.ndarray


def _chord(ds):
    """Linear chord capacitors and a least-squares R_open of the run (the paper's NCM)."""
    phi = np.asarray(ds["electrode_potential"], dtype=float)
    q = -np.asarray(ds["slit_charge"].transpose("time", "slit"), dtype=float)
    current = np.asarray(ds["current_density"], dtype=float)
    C = np.max(q, axis=0) / float(np.max(phi))
    if not np.all(C > 0):
        raise ValueError(f"a node never charges positively in this run (chord capacitances {C}): no linear capacitor")
    half = _charging(ds)
    x = phi[half] - q[half, 0] / C[0]
    R_open = float(np.sum(x * current[half]) / np.sum(current[half] ** 2))
    source = "least squares on the charging half-cycle"
    if not R_open > 0:
        # the linear branch cannot represent this run: the separator's ohmic resistance instead
        source = f"separator bulk resistance (least squares gave a non-positive {R_open:.3g} ohm m^2)"
        R_open = separator_resistance(ds)
    return C, R_open, source


def _gamma_args(gamma) -> dict:
    """``allow_gamma_outside_unit`` when a discovered gamma leaves [0, 1], with a warning (never clipped)."""
    g = np.asarray(gamma, dtype=float)
    if np.all((g >= 0) & (g <= 1)):
        return {}
    warnings.warn(f"discovered gamma {np.round(g, 3).tolist()} leaves [0, 1]: the NCM keeps it "
                  "(allow_gamma_outside_unit=True), not clipped", stacklevel=3)
    return dict(allow_gamma_outside_unit=True)


def extract(ds: xr.Dataset, *, equilibrium: xr.Dataset | None = None, potential: str | None = None,
            charge: str | None = None, laws=None, per_link: bool = True, n_slits: int | None = None,
            engine: str = "operon", seed: int = 0, discovery_options: dict | None = None,
            search: str = "once") -> Extraction:
    """Build the NCM of an mPNP run (see the module docstring) and say how; nothing is fitted to the CV.

    ``potential``: ``"node_potential"`` (default when ``equilibrium`` is given: every element's
    law on the circuit node potentials, with the open-space law) or ``"slit_potential"``
    (the paper's mid-slit trans-slit voltage, ohmic R_open). ``charge``: the laws' charge
    variable, ``"nodes"`` (default on node potentials) or ``"passed"`` (default on mid-slit
    potentials; see the module docstring). ``laws``: a ``discovery.TransSlitResult`` found on
    that potential and charge with ``slits="all"`` (else discovery runs here with ``engine``,
    ``seed``, ``discovery_options`` (default ``DISCOVERY_OPTIONS[engine]``) and ``search``: ``"once"``, one engine search on the pooled
    samples of all links whose forms each link refits by least squares, or ``"per_link"``, a
    search per link; see ``discovery.trans_slit_law``). ``per_link``: each
    link its own R_c and gamma (else one pair, the inner links' mean: the paper's NCM).
    ``n_slits``: another depth than the run's (one R_c, gamma; the slits' mean capacitor; default Q^max).
    """
    if potential is None:
        potential = "node_potential" if equilibrium is not None else "slit_potential"
    if potential not in ("node_potential", "slit_potential"):
        raise ValueError(f"potential must be 'node_potential' or 'slit_potential', got {potential!r}")
    if potential == "node_potential" and equilibrium is None:
        raise ValueError("node potentials need the nodes' equilibrium curves: pass equilibrium=")
    if charge is None:
        charge = "nodes" if potential == "node_potential" else "passed"
    if charge not in ("passed", "nodes"):
        raise ValueError(f"charge must be 'passed' or 'nodes', got {charge!r}")
    missing = [v for v in ("time", "slit", "electrode_potential", "cell_voltage", "current_density",
                           "slit_charge", "trans_slit_current") if v not in ds.variables]
    if missing:
        raise ValueError(f"extract needs an mPNP Dataset (jaxpnp.simulate); missing {missing}")
    V = node_potentials(ds, equilibrium) if potential == "node_potential" else None
    if laws is None:
        data = ds.assign(node_potential=(("time", "slit"), V)) if V is not None else ds
        laws = discovery.trans_slit_law(data, engine=engine, slits="all", seed=seed, potential=potential,
                                        charge=charge, search=search,
                                        **(DISCOVERY_OPTIONS.get(engine, {}) if discovery_options is None else discovery_options))
    law_charge = laws.prepared.attrs.get("charge", "passed")
    if law_charge != charge:
        raise ValueError(f"the laws were found with charge={law_charge!r}, the extraction asks for {charge!r}")
    n_run = int(ds.sizes["slit"]) - 1  # slits; link i joins node i to i + 1, i = 0..n_run-1
    laws_by_link = laws.all_links()
    if sorted(laws_by_link) != list(range(n_run)):
        raise ValueError(f"laws must cover every link 0..{n_run - 1} (slits='all'), got {sorted(laws_by_link)}")
    params = [discovery.paper_parameters(laws, i) for i in range(n_run)]
    R_c = np.array([p[0] for p in params])
    gamma = np.array([p[1] for p in params])
    projected = np.array([p[2] for p in params])
    q_max = np.array([laws_by_link[i].charge_scale for i in range(n_run)])
    inner = slice(1, n_run) if n_run > 1 else slice(0, 1)  # the slit-to-slit links (0 is the open space's)
    if equilibrium is not None:
        capacitor, C = equilibrium_capacitor(equilibrium)
    else:
        capacitor, C = None, None
    open_law = open_space_law(ds, V) if V is not None else None
    if open_law is not None:
        R_open, source = open_law.R_open, "open-space law on the node potential (integral-form least squares)"
    elif capacitor is not None:
        R_open, source = separator_resistance(ds), "separator bulk resistance L/kappa"
    else:
        C, R_open, source = _chord(ds)
    same = n_slits is None or int(n_slits) == n_run
    n = n_run if same else int(n_slits)
    if per_link and same:
        rc, g = R_c.copy(), gamma.copy()
        bad = ~(np.isfinite(rc) & (rc > 0) & np.isfinite(g))
        if np.any(bad):  # a link no positive resistance describes (e.g. the open-space link on mid-slit potentials)
            ok = ~bad
            rc[bad] = np.mean(R_c[inner][ok[inner]]) if np.any(ok[inner]) else np.mean(R_c[ok])
            g[bad] = np.mean(gamma[inner][ok[inner]]) if np.any(ok[inner]) else np.mean(gamma[ok])
            warnings.warn(f"links {np.flatnonzero(bad).tolist()}: discovered R_c {R_c[bad].tolist()} is not a "
                          "positive resistance; they get the other links' mean R_c and gamma", stacklevel=2)
        q_max_model = q_max if np.all(np.isfinite(q_max)) else None
    else:  # the paper's NCM: one R_c and gamma, the inner links' mean
        rc, g, q_max_model = float(np.mean(R_c[inner])), float(np.mean(gamma[inner])), None
    if not same and capacitor is not None:  # another depth: the slits' mean curve for every node
        capacitor = TabulatedCapacitor(capacitor.voltage_V, np.asarray(capacitor.shape_V)[1:].mean(axis=0))
    C_slit = C[1:] if same else float(np.mean(C[1:]))
    open_args = dict(gamma_open=open_law.gamma_open, q_max_open=open_law.q_max_open) if open_law and same else {}
    if charge == "nodes" and q_max_model is None:  # one law for several links: the inner links' mean scale
        q_max_model = float(np.mean(q_max[inner]))
    if charge == "nodes" and open_law is not None and not same:  # another depth keeps the open-space law
        open_args = dict(gamma_open=open_law.gamma_open, q_max_open=open_law.q_max_open)
    model = NCM(n, R_open, float(C[0]), C_slit, rc, g, q_max=q_max_model, capacitor=capacitor,
                charge="nodes" if charge == "nodes" else "link", **_gamma_args(g), **open_args)
    return Extraction(model=model, laws=laws, potential=potential, node_potential=V, open_law=open_law,
                      R_open_source=source, capacitance=np.asarray(C), link_R_c=R_c, link_gamma=gamma,
                      projected=projected)


def _per_node(value, n):
    return np.broadcast_to(np.asarray(value, dtype=float), (n,))


def at_depth(model: NCM, n_slits: int) -> NCM:
    """The same elements for an electrode of ``n_slits`` slits, nothing refitted: what a model
    extracted from one electrode predicts for a deeper or shallower one.

    Kept as they are: the open space (``R_open``, its law, ``C_open``), the first slit's node
    and link 0 (open space -> slit 1), the last slit's node (against the current collector).
    The inner slits' nodes get the mean of the model's inner slits (capacitance and curve),
    the inner links the mean of its inner links' ``R_c``, ``gamma`` and ``q_max``. Needs a
    model with at least 3 slits (inner ones to average) and ``n_slits >= 2``.
    """
    if not isinstance(model, NCM) or model.law is not None:
        raise ValueError("at_depth needs an NCM with the built-in law")
    n, m = model.n_slits, int(n_slits)
    if n < 3 or m < 2:
        raise ValueError(f"at_depth needs a model of >= 3 slits and n_slits >= 2, got {n} -> {m}")
    nodes = lambda a: np.concatenate([a[:2], np.repeat(a[2:n].mean(axis=0, keepdims=True), m - 2, axis=0),  # noqa: E731
                                      a[n:]])
    links = lambda a: np.concatenate([a[:1], np.full(m - 1, a[1:].mean())])  # noqa: E731
    C = nodes(np.asarray(model.capacitances(), dtype=float))
    capacitor = model.capacitor
    if isinstance(capacitor, TabulatedCapacitor) and np.ndim(capacitor.shape_V) == 2:
        # the curves are q / C: average the charge curves, then rescale by the averaged C
        q = np.asarray(capacitor.shape_V, dtype=float) * np.asarray(model.capacitances(), dtype=float)[:, None]
        capacitor = TabulatedCapacitor(capacitor.voltage_V, nodes(q) / C[:, None])
    q_max = None if model.q_max is None else links(_per_node(model.q_max, n))
    return dataclasses.replace(model, n_slits=m, C_open=float(C[0]), C_slit=C[1:], R_c=links(_per_node(model.R_c, n)),
                               gamma=links(_per_node(model.gamma, n)), q_max=q_max, capacitor=capacitor)


def from_mpnp(ds: xr.Dataset, *, kind: str = "ncm", equilibrium: xr.Dataset | None = None,
              potential: str | None = None, **options):
    """The circuit model of an mPNP Dataset, nothing fitted to its CV (``extract(...).model``).

    ``kind="ncm"``: :class:`NCM` (see :func:`extract` for ``potential`` and ``options``).
    ``kind="salt"``: the salt-aware model. ``salt_model="ladder"`` (default): :class:`SaltLadder`,
    the node-potential NCM's laws plus a separator salt balance
    (``circuits._salt_extract.salt_ladder_from_mpnp``; options ``separator_nodes``, ``boundary``,
    ``open_law``, ``saturate``, ``coions``, ``link_law``, ``separator``, ``links``, ``links_from``). ``salt_model="content"``: :class:`SaltNCM` (storage
    fitted to the ``equilibrium`` curves, ion-content links; ``salt_ncm_from_mpnp``'s options).
    """
    if kind not in FROM_MPNP_KINDS:
        raise ValueError(f"from_mpnp: unknown kind {kind!r}; known: {list(FROM_MPNP_KINDS)}")
    if kind == "salt":
        if equilibrium is None:
            raise ValueError("from_mpnp(kind='salt') needs equilibrium= (jaxpnp.equilibrium Dataset(s), "
                             "reservoir boundary; several bulk concentrations welcome)")
        salt_model = options.pop("salt_model", "ladder")
        if salt_model not in SALT_MODELS:
            raise ValueError(f"from_mpnp(kind='salt'): salt_model must be one of {list(SALT_MODELS)}, got {salt_model!r}")
        build = salt_ladder_from_mpnp if salt_model == "ladder" else salt_ncm_from_mpnp
        return build(ds, equilibrium=equilibrium, **options)[0]
    return extract(ds, equilibrium=equilibrium, potential=potential, **options).model
