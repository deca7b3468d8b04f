"""Discrete equilibrium (steady state) of the mPNP half cell at a fixed electrode potential.

The Scharfetter-Gummel fluxes vanish on every face exactly when each species'
``c exp(z psi + mu_s)`` is uniform, so the steady state of the discrete scheme is the
discrete Bikerman state (all lengths Debye, concentrations in c0, psi in kT/e)

    c+- = c_r exp(-+psi) / (1 + nu c_r (cosh psi - 1)),    nu = 2 a^3 c0,

with ``c_r`` the concentration where psi = 0: 1 for the reservoir (bulk on the
mid-plane face), and for the closed (symmetric) cell the value that keeps the total
ion content at the uniform-bulk value. Inserting it into the model's own box-method
Poisson rows (the same rows ``FastPoisson`` solves exactly, Dirichlet or Stern/Robin
at the conductors) leaves a modified Poisson-Boltzmann equation in psi alone, with a
sparse Jacobian ``A0 + diag(positive)``: it is solved by damped Newton with a sparse
LU (SciPy), continued in the electrode potential with an Euler tangent predictor.
The result is re-evaluated through the model's exact Poisson solve and observables,
so it is the long-time limit of ``simulate`` on the same grid.
"""

from __future__ import annotations

import dataclasses
import math
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import xarray as xr
from tqdm.auto import tqdm

from ._checks import real_vector
from . import _simulate  # module import: _simulate starts protocols from equilibrium (no cycle at import)
from ._electrolyte import Electrolyte
from ._geometry import Electrode
from ._observables import to_dataset
from ._poisson import _second_difference_x, _second_difference_y, robin_rows
from ._precision import float64
from ._protocol import PotentialStep
from ._protocol_attrs import protocol_attrs
from ._units import to_cf

_PSI_CLIP = 300.0  # kT/e; keeps exp/cosh finite on wild Newton trials
_MAX_STEP = 4.0  # kT/e: largest change of phi_m per continuation step, and of psi per Newton step


class EquilibriumError(RuntimeError):
    """The Newton solve for the discrete equilibrium did not converge."""


@dataclasses.dataclass(frozen=True)
class EquilibriumState:
    """One discrete equilibrium (dimensionless).

    ``c``: (2, nx, ny) cation/anion concentrations (c0 units, zero off the electrolyte);
    ``psi``: (nx, ny) potential (kT/e) from the model's own Poisson solve; ``c_ref``:
    concentration at psi = 0 (c0 units); ``phi_m``: electrode potential (kT/e).
    """

    c: np.ndarray
    psi: np.ndarray
    c_ref: float
    phi_m: float
    newton_iterations: int


class EquilibriumSolver:
    """Newton solver of the discrete Bikerman equilibrium for one ``MPNPModel``.

    ``solve(phi_m)`` (phi_m in kT/e) returns an ``EquilibriumState``; successive calls
    continue from the previous solution (call in order of potential for speed). The
    model's ``reservoir`` flag chooses the boundary (reservoir: c_ref = 1; closed
    cell: c_ref solved from the ion content of the uniform bulk).
    """

    def __init__(self, model, tol=1e-11, max_iterations=60):
        g = model.grid
        self.model = model
        self.tol = float(tol)
        self.max_iterations = int(max_iterations)
        self.nx, self.ny = g.nx, g.ny
        n = g.nx * g.ny
        self.n = n
        self.h2 = float(model.h) ** 2
        self.nu = float(model.nu)
        self.reservoir = bool(model.reservoir)
        self.ion = np.asarray(g.ion_node, bool).ravel()
        self.free = np.asarray(g.free_node, bool).ravel()
        self.vol = np.asarray(g.volume, float).ravel()
        a0 = (sp.kron(sp.csr_matrix(_second_difference_x(g.nx)), sp.identity(g.ny))
              + sp.kron(sp.identity(g.nx), sp.csr_matrix(_second_difference_y(g.ny)))).tocsr()
        fixed = np.flatnonzero(~self.free)
        eye_fixed = sp.csr_matrix((np.ones(fixed.size), (fixed, fixed)), shape=(n, n))
        # linear part: A0 on free rows, identity on conductor rows (psi = phi_m) ...
        lin = sp.diags(self.free.astype(float)) @ a0 + eye_fixed
        # ... weight of the source on each row: 1/2 h^2 on free rows, Robin rows below
        src = np.where(self.free, 0.5 * self.h2, 0.0)
        self.boundary_rows = (~self.free).astype(float)  # d(residual)/d(phi_m) = -1 there
        stern = model.poisson.stern_length
        if stern is not None:
            lam = float(stern)
            surface, idx, w, rvol = robin_rows(g)
            rows = np.repeat(surface, idx.shape[1])
            lin = lin + sp.csr_matrix((lam * w.ravel(), (rows, idx.ravel())), shape=(n, n))
            src[surface] = lam * rvol * 0.5 * self.h2
        self.lin = lin.tocsc()
        self.src = src
        self.n_ions_bulk = float(np.sum(2.0 * self.vol * self.ion))
        self._last = None  # (phi_m, psi, log_cr, tangent)

    # ---- Bikerman closure -------------------------------------------------
    def _local(self, psi, cr):
        """rho, drho/dpsi, drho/dcr, s, ds/dpsi, ds/dcr on every node (zero off the electrolyte)."""
        p = np.clip(psi, -_PSI_CLIP, _PSI_CLIP)
        ch, sh = np.cosh(p), np.sinh(p)
        nc = self.nu * cr
        d = 1.0 + nc * (ch - 1.0)
        m = self.ion
        rho = np.where(m, -2.0 * cr * sh / d, 0.0)
        drho = np.where(m, -2.0 * cr * (ch * (1.0 - nc) + nc) / d ** 2, 0.0)
        drho_cr = np.where(m, -2.0 * sh / d ** 2, 0.0)
        s = np.where(m, 2.0 * cr * ch / d, 0.0)
        ds = np.where(m, 2.0 * cr * sh * (1.0 - nc) / d ** 2, 0.0)
        ds_cr = np.where(m, 2.0 * ch / d ** 2, 0.0)
        return rho, drho, drho_cr, s, ds, ds_cr

    def concentrations(self, psi, cr):
        """(2, nx, ny) c+- of the Bikerman state for potential ``psi`` (nx, ny) and c_ref."""
        p = np.clip(np.asarray(psi, float).ravel(), -_PSI_CLIP, _PSI_CLIP)
        d = 1.0 + self.nu * cr * (np.cosh(p) - 1.0)
        cp = np.where(self.ion, cr * np.exp(-p) / d, 0.0)
        cm = np.where(self.ion, cr * np.exp(p) / d, 0.0)
        return np.stack([cp, cm]).reshape(2, self.nx, self.ny)

    # ---- residual and Newton -------------------------------------------
    def _residual(self, psi, log_cr, phi):
        cr = math.exp(log_cr)
        rho, drho, drho_cr, s, ds, ds_cr = self._local(psi, cr)
        f = self.lin @ psi - self.src * rho - phi * self.boundary_rows
        jac = (self.lin - sp.diags(self.src * drho)).tocsc()
        extra = None
        if not self.reservoir:  # ion content = uniform bulk, relative
            g = float(np.sum(self.vol * s)) / self.n_ions_bulk - 1.0
            extra = dict(g=g, g_psi=self.vol * ds / self.n_ions_bulk,
                         g_ell=float(np.sum(self.vol * ds_cr)) * cr / self.n_ions_bulk,
                         f_ell=-self.src * drho_cr * cr)
        return f, jac, extra

    def _linear_solve(self, lu, extra, f, g):
        """Solve the (bordered) Newton system for (dpsi, dell) with the LU of the psi block."""
        if extra is None:
            return lu.solve(f), 0.0
        a = lu.solve(f)
        b = lu.solve(extra["f_ell"])
        dell = (g - extra["g_psi"] @ a) / (extra["g_ell"] - extra["g_psi"] @ b)
        return a - b * dell, dell

    def _norm(self, f, extra):
        r = float(np.max(np.abs(f)))
        return max(r, abs(extra["g"])) if extra is not None else r

    def _newton(self, psi, log_cr, phi):
        f, jac, extra = self._residual(psi, log_cr, phi)
        res = self._norm(f, extra)
        for it in range(1, self.max_iterations + 1):
            lu = spla.splu(jac)
            dpsi, dell = self._linear_solve(lu, extra, f, 0.0 if extra is None else extra["g"])
            big = max(float(np.max(np.abs(dpsi))), abs(dell))
            t = min(1.0, _MAX_STEP / big) if big > 0 else 1.0
            while True:  # backtrack on the residual (max norm)
                psi_t, ell_t = psi - t * dpsi, log_cr - t * dell
                f_t, jac_t, extra_t = self._residual(psi_t, ell_t, phi)
                res_t = self._norm(f_t, extra_t)
                if res_t <= (1.0 - 1e-4 * t) * res or t < 1e-4 or res < 1e-13:
                    break
                t *= 0.5
            psi, log_cr, f, jac, extra, res = psi_t, ell_t, f_t, jac_t, extra_t, res_t
            if t == 1.0 and big < self.tol:
                lu = spla.splu(jac)
                return psi, log_cr, it, lu, extra
        raise EquilibriumError(f"equilibrium Newton solve did not converge at phi_m = {phi:.4g} kT/e "
                               f"(residual {res:.3g} after {self.max_iterations} iterations)")

    def _tangent(self, lu, extra):
        """d(psi, log c_ref)/d(phi_m) at a converged state (Euler predictor)."""
        dpsi, dell = self._linear_solve(lu, extra, self.boundary_rows, 0.0)
        return dpsi, dell

    def reset(self):
        """Forget the previous solution (the next solve continues from 0 V)."""
        self._last = None

    def solve(self, phi_m):
        """The equilibrium at electrode potential ``phi_m`` (kT/e), by continuation."""
        c, cr, iterations = self._continue(phi_m)
        with float64():
            psi_model = np.asarray(self.model.potential(jnp.asarray(c), jnp.asarray(float(phi_m))))
        return EquilibriumState(c=c, psi=psi_model, c_ref=cr, phi_m=float(phi_m), newton_iterations=iterations)

    def _continue(self, phi_m):
        """``(c (2, nx, ny), c_ref, Newton iterations)`` at ``phi_m`` (kT/e) by continuation from
        the last solution: :meth:`solve` without the model's Poisson solve."""
        phi_m = float(phi_m)
        iterations = 0
        if self._last is None:  # first solve: continue out from the uniform bulk at phi_m = 0
            psi, ell, it, lu, extra = self._newton(np.zeros(self.n), 0.0, 0.0)
            iterations += it
            self._last = (0.0, psi, ell, self._tangent(lu, extra))
        phi0, psi, ell, tan = self._last
        step = _MAX_STEP
        while True:
            gap = phi_m - phi0
            if gap == 0.0:
                break
            dphi = math.copysign(min(abs(gap), step), gap)
            guess_psi = psi + dphi * tan[0]
            guess_ell = ell + dphi * tan[1]
            try:
                psi_n, ell_n, it, lu, extra = self._newton(guess_psi, guess_ell, phi0 + dphi)
            except EquilibriumError:
                step *= 0.5
                if step < 1e-3:
                    raise
                continue
            iterations += it
            psi, ell, phi0 = psi_n, ell_n, phi0 + dphi
            tan = self._tangent(lu, extra)
        self._last = (phi0, psi, ell, tan)
        cr = math.exp(ell)
        return self.concentrations(psi, cr), cr, iterations


@eqx.filter_jit
def _observables(model, c, phi_m):
    """Per-region observables (dimensionless) of equilibrium states ``c`` (P, 2, nx, ny) at
    ``phi_m`` (P,) kT/e, through the model's own Poisson solve. One compiled call for all
    potentials (module level: reused by every ``equilibrium`` call on the same grid) instead
    of a few dozen op-by-op dispatches per potential."""
    region = jnp.asarray(model.grid.region.ravel())
    n_reg = model.grid.n_regions

    def one(c, phi):
        psi = model.potential(c, phi)
        ions = (c[0] + c[1]) * model.volume * model.h ** 2 / model.length_y
        return dict(slit_charge=model.region_charge(c),
                    slit_ion_content=jax.ops.segment_sum(ions.ravel(), region, num_segments=n_reg),
                    slit_potential=model.probe_potentials(psi), electrode_charge=model._electrode_charge(c, psi),
                    total_salt=model.total_ions(c))

    return jax.vmap(one)(c, phi_m)


def equilibrium(electrolyte: Electrolyte, electrode: Electrode, potentials_V, *, grid_nm,
                boundary: str = "reservoir", allow_subnanometre_slits: bool = False,
                progress: bool = False) -> xr.Dataset:
    """Discrete equilibrium of the half cell at each electrode potential phi_m (V).

    The steady state of ``simulate``'s discretisation (same grid ``grid_nm`` in nm,
    geometry, box method and Stern option) held at phi_m against the mid-plane / bulk
    (cell voltage 2 phi_m), by a Newton solve. ``boundary="reservoir"``: bulk c0 at the
    mid-plane face; ``"symmetric"``: closed cell holding the uniform-bulk ion content
    (the reference concentration at psi = 0 is solved for).

    Returns an ``xarray.Dataset`` over ("potential", "slit") (slit 0 = open space),
    per projected electrode area: ``slit_charge`` (C/m^2, net ionic charge per region),
    ``slit_ion_content`` (mol/m^2, c+ + c- per region), ``slit_potential`` (V, mid-slit),
    ``electrode_charge`` (C/m^2), ``total_salt`` (mol/m^2), ``reference_concentration``
    (mol/L); attributes as ``simulate`` writes them, plus ``newton_iterations`` per
    potential and the run time.
    """
    pots = real_vector(potentials_V, "potentials_V", "electrode potentials in V")
    if not isinstance(progress, bool):
        raise ValueError(f"progress must be True or False, got {progress!r}")
    dummy = PotentialStep(v_step=0.0, duration_s=1.0)
    _simulate.validate(electrolyte, electrode, dummy, grid_nm, boundary, allow_subnanometre_slits)
    t0 = time.perf_counter()
    vt = float(electrolyte.thermal_voltage_V)
    q_scale = float(electrolyte.charge_scale_C_m2)
    lam = float(electrolyte.debye_length_m)
    c0_mol_m3 = float(electrolyte.concentration_M) * 1e3
    with float64():
        model, _ = _simulate.build_model(electrolyte, electrode, dummy, grid_nm, boundary)
        solver = EquilibriumSolver(model)
        n_reg = model.grid.n_regions
        states = np.zeros((pots.size, 2, model.grid.nx, model.grid.ny))
        c_ref = np.zeros(pots.size)
        iterations = np.zeros(pots.size, dtype=int)
        # continuation is cheapest along a monotone path from 0 V
        order = np.argsort(pots)
        start = np.searchsorted(pots[order], 0.0)
        paths = [order[start:], order[:start][::-1]]
        bar = None
        if progress:
            bar = tqdm(total=pots.size, desc="equilibrium", unit="potential")
        for path in paths:
            solver.reset()
            for k in path:
                states[k], c_ref[k], iterations[k] = solver._continue(pots[k] / vt)
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
        obs = {k: np.asarray(v) for k, v in _observables(model, jnp.asarray(states), jnp.asarray(pots / vt)).items()}
        out = dict(slit_charge=obs["slit_charge"] * q_scale, slit_ion_content=obs["slit_ion_content"] * c0_mol_m3 * lam,
                   slit_potential=obs["slit_potential"] * vt, electrode_charge=obs["electrode_charge"] * q_scale,
                   total_salt=obs["total_salt"] * c0_mol_m3 * lam,
                   reference_concentration=c_ref * float(electrolyte.concentration_M), iterations=iterations)
        base = to_dataset(model, electrolyte, electrode, dummy, grid_nm, boundary,
                          dict(ts=[], obs=[], ys=[]), None, {})
    attrs = {k: v for k, v in base.attrs.items() if k not in protocol_attrs(dummy)}
    attrs.update(title="jaxpnp mPNP half-cell discrete equilibrium",
                 equilibrium_run_time_s=time.perf_counter() - t0)
    a = lambda units, name: dict(units=units, long_name=name)
    data = {
        "slit_charge": (("potential", "slit"), out["slit_charge"],
                        a("C/m^2", "net ionic charge in the slit region per projected area")),
        "slit_ion_content": (("potential", "slit"), out["slit_ion_content"],
                             a("mol/m^2", "total ions (c+ + c-) in the slit region per projected area")),
        "slit_potential": (("potential", "slit"), out["slit_potential"],
                           a("V", "potential at the slit mid-point (slit 0: d/2 in front of sheet 1)")),
        "electrode_charge": (("potential",), out["electrode_charge"],
                             a("C/m^2", "electronic charge of the electrode per projected area")),
        "total_salt": (("potential",), out["total_salt"],
                       a("mol/m^2", "total ions (cations + anions) per projected area")),
        "reference_concentration": (("potential",), out["reference_concentration"],
                                    a("mol/L", "ion concentration where the potential is 0 (bulk for the reservoir)")),
        "newton_iterations": (("potential",), out["iterations"].astype(int),
                              a("1", "Newton iterations spent reaching this potential")),
    }
    coords = {"potential": ("potential", pots, a("V", "electrode potential phi_m against the mid-plane")),
              "slit": ("slit", np.arange(n_reg), a("1", "slit index (0 = open space)"))}
    return to_cf(xr.Dataset({k: (d, v, at) for k, (d, v, at) in data.items()},
                            coords={k: (d, v, at) for k, (d, v, at) in coords.items()}, attrs=attrs))
