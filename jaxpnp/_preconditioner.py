"""Preconditioners for the implicit stage equations ``(I - h gamma J) x = r``.

``SparseLUPreconditioner`` factorises the Jacobian of the *extended* system in
(c+, c-, psi): there the Poisson coupling is local, so the matrix is sparse, and
its Schur complement in c is exactly ``I - h gamma J`` of the reduced system. The
factorisation (SuperLU, on the host through ``jax.pure_callback``) is built once per
step from face-flux derivatives computed in JAX, then reused by every Krylov
iteration of that step. It preserves the ion-count invariant, so salt is conserved
to round-off even with inexact Newton-Krylov.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ._fluxes import species_fluxes
from ._poisson import _second_difference_x, _second_difference_y, robin_rows

_FACTORS: "OrderedDict[int, object]" = OrderedDict()
_LAST: dict = {}  # pattern id -> (key, hgamma, values) of the newest factorisation
_KEYS = itertools.count(1)
_MAX_CACHED = 4  # factors of fine grids are large; only the newest few are ever reused
_EXECUTOR: "ThreadPoolExecutor | None" = None
_EXECUTOR_LOCK = threading.Lock()


def _on_host_thread(fn, *args):
    """Run ``fn`` on the one thread that owns every SuperLU object.

    JAX runs host callbacks on whichever runtime thread is free. SuperLU factors
    made on one thread and freed on another were never returned to the OS (measured:
    resident memory grew by one factor's size, ~4 MB at 0.25 nm and ~23 MB at
    0.125 nm, per factorisation); confining them to one thread keeps it flat.
    """
    global _EXECUTOR
    if _EXECUTOR is None:
        with _EXECUTOR_LOCK:
            if _EXECUTOR is None:
                _EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jaxpnp-superlu")
    return _EXECUTOR.submit(fn, *args).result()


class _Pattern:
    """Static sparsity pattern of the extended Jacobian, and the host-side factoriser."""

    def __init__(self, grid, stern=False):
        nx, ny = grid.nx, grid.ny
        n = nx * ny
        self.n = n
        node = np.arange(n).reshape(nx, ny)
        rows, cols = [], []
        # identity on every c row, on psi rows of non-free nodes
        rows.append(np.arange(2 * n)); cols.append(np.arange(2 * n))
        nonfree = np.flatnonzero(~grid.free_node.ravel())
        rows.append(2 * n + nonfree); cols.append(2 * n + nonfree)
        self.n_static_ones = 2 * n + nonfree.size
        # Poisson rows of free nodes: A0 stencil, then the charge coupling
        a0 = (sp.kron(sp.csr_matrix(_second_difference_x(nx)), sp.identity(ny))
              + sp.kron(sp.identity(nx), sp.csr_matrix(_second_difference_y(ny)))).tocsr()
        a0.eliminate_zeros()  # kron stores whole 2x2 blocks when ny = 2 (planar): no false couplings
        free = np.flatnonzero(grid.free_node.ravel())
        sub = a0[free].tocoo()
        rows.append(2 * n + free[sub.row]); cols.append(2 * n + sub.col)
        self.a0_values = sub.data.astype(float)
        rows.append(2 * n + free); cols.append(free)
        rows.append(2 * n + free); cols.append(n + free)
        self.n_free = free.size
        # faces with electrolyte: x, y, and the mid-plane
        ax, ay = grid.area_x, grid.area_y
        ix, jx = np.nonzero(ax > 0)
        iy, jy = np.nonzero(ay > 0)
        self.x_a, self.x_b = node[ix, jx], node[ix + 1, jx]
        self.y_a, self.y_b = node[iy, jy], node[iy, jy + 1]
        self.x_area, self.y_area = ax[ix, jx], ay[iy, jy]
        self.mid_node = node[0, :]
        self.mid_area = grid.area_mid
        for a, b in ((self.x_a, self.x_b), (self.y_a, self.y_b)):
            var_nodes = [a, a, a, b, b, b]
            for s in range(2):
                for v in range(6):
                    block = v % 3
                    rows.append(s * n + a); cols.append(block * n + var_nodes[v])
                    rows.append(s * n + b); cols.append(block * n + var_nodes[v])
        for s in range(2):
            for v in range(3):
                rows.append(s * n + self.mid_node); cols.append(v * n + self.mid_node)
        # the h gamma-scaled flux entries: the only ones that change within a run
        self.dynamic = slice(self.n_static_ones + self.a0_values.size + 2 * self.n_free,
                             sum(r.size for r in rows))
        # Stern layer: surface psi rows are Robin rows, identity (above) + lambda (w . psi - vol f)
        self.robin = None
        if stern:
            surface, r_idx, r_w, r_vol = robin_rows(grid)
            self.robin = (r_w, r_vol)
            for k in range(r_idx.shape[1]):
                rows.append(2 * n + surface); cols.append(2 * n + r_idx[:, k])
            rows.append(2 * n + surface); cols.append(surface)
            rows.append(2 * n + surface); cols.append(n + surface)
        rows = np.concatenate(rows); cols = np.concatenate(cols)
        self.nx, self.ny = nx, ny
        self.rows, self.cols = rows, cols  # entry coordinates, in the order `assemble` emits values
        # duplicates are summed: map every entry to its slot of the CSC structure
        shape = (3 * n, 3 * n)
        pattern = sp.csc_matrix((np.arange(1, rows.size + 1, dtype=float), (rows, cols)), shape=shape)
        pattern.sum_duplicates()
        keyed = sp.csc_matrix((np.ones(rows.size), (rows, cols)), shape=shape)
        keyed.sum_duplicates()
        lin = cols.astype(np.int64) * shape[0] + rows
        order_lin = np.empty(keyed.nnz, np.int64)
        col_of = np.repeat(np.arange(shape[1]), np.diff(keyed.indptr))
        order_lin[:] = col_of.astype(np.int64) * shape[0] + keyed.indices
        self.slot = np.searchsorted(order_lin, lin)
        self.indices, self.indptr, self.shape, self.nnz = keyed.indices, keyed.indptr, shape, keyed.nnz
        self.n_entries = rows.size

    def factorise(self, full_values, hgamma, reuse_tolerance):
        """Factorise, or hand back the newest factorisation while it is still close.

        Like CVODE's lagged Newton matrix: refactoring costs far more than the extra
        Krylov iterations of a slightly stale preconditioner. It is reused while
        h*gamma is within 30% and the flux Jacobian entries (the constant identity and
        Poisson entries left out, which would dilute the change) moved by less than
        ``reuse_tolerance`` (relative 2-norm); 0 refactors every step.
        """
        values = np.asarray(full_values)[self.dynamic]
        hgamma = float(hgamma)
        if hgamma == 0.0:
            # diffrax evaluates the Jacobian hook on the explicit first ESDIRK stage too
            # (a_11 = 0): the stage matrix is the identity, nothing to factorise
            return np.asarray(0, np.int64)
        last = _LAST.get(id(self))
        if (last is not None and reuse_tolerance > 0 and last[0] in _FACTORS
                and abs(hgamma - last[1]) < 0.3 * abs(last[1])):
            change = np.linalg.norm(values - last[2]) / max(np.linalg.norm(last[2]), 1e-300)
            if change < reuse_tolerance:
                return np.asarray(last[0], np.int64)
        data = np.bincount(self.slot, weights=np.asarray(full_values), minlength=self.nnz)
        mat = sp.csc_matrix((data, self.indices, self.indptr), shape=self.shape)
        lu = spla.splu(mat, permc_spec="COLAMD", options=dict(SymmetricMode=False))
        key = next(_KEYS)
        _FACTORS[key] = lu
        while len(_FACTORS) > _MAX_CACHED:
            _FACTORS.popitem(last=False)
        _LAST[id(self)] = (key, hgamma, values)
        return np.asarray(key, np.int64)

    def solve(self, key, rhs):
        if int(key) == 0:
            return np.array(rhs, copy=True)
        lu = _FACTORS[int(key)]
        full = np.zeros(3 * self.n)
        full[:2 * self.n] = np.asarray(rhs)
        return lu.solve(full)[:2 * self.n].astype(np.asarray(rhs).dtype)


class SparseLUPreconditioner(eqx.Module):
    """Exact factorisation of the stage Jacobian at the linearisation point."""

    pattern: _Pattern = eqx.field(static=True)
    reuse_tolerance: float = eqx.field(static=True, default=0.0)

    @classmethod
    def build_for(cls, grid, stern=False):
        return cls(pattern=_Pattern(grid, stern))

    def _face_jacobian(self, model, c, psi, a, b, dist=1.0):
        cf = c.reshape(2, -1)
        pf = psi.ravel()
        args = (cf[0, a], cf[1, a], pf[a], cf[0, b], cf[1, b], pf[b])

        def f(*v):
            return jnp.stack(species_fluxes(*v, model.nu, model.d_minus, dist))

        jac = jax.vmap(jax.jacfwd(f, argnums=tuple(range(6))))(*args)  # 6 x (nf, 2)
        return jnp.stack(jac, axis=-1)  # (nf, 2, 6)

    def assemble(self, model, c, psi, hgamma):
        """Entry values of the extended matrix (ordered like the pattern)."""
        p = self.pattern
        h2 = model.h ** 2
        inv_vol = model.inv_volume.ravel()
        vals = [jnp.ones(p.n_static_ones), jnp.asarray(p.a0_values),
                jnp.full(p.n_free, -0.5) * h2, jnp.full(p.n_free, 0.5) * h2]
        for a, b, area in ((p.x_a, p.x_b, p.x_area), (p.y_a, p.y_b, p.y_area)):
            jac = self._face_jacobian(model, c, psi, a, b)
            coef_a = hgamma * jnp.asarray(area) * inv_vol[a] / h2
            coef_b = -hgamma * jnp.asarray(area) * inv_vol[b] / h2
            for s in range(2):
                for v in range(6):
                    vals.append(coef_a * jac[:, s, v])
                    vals.append(coef_b * jac[:, s, v])
        # mid-plane faces: the ghost values depend on node 0 itself
        cf = c.reshape(2, -1)
        pf = psi.ravel()
        m = p.mid_node

        def mid_flux(cp0, cm0, psi0):
            return jnp.stack(model.midplane_flux(cp0, cm0, psi0))

        jac = jnp.stack(jax.vmap(jax.jacfwd(mid_flux, argnums=(0, 1, 2)))(cf[0, m], cf[1, m], pf[m]), -1)
        coef = -hgamma * jnp.asarray(p.mid_area) * inv_vol[m] / h2
        for s in range(2):
            for v in range(3):
                vals.append(coef * jac[:, s, v])
        if p.robin is not None:
            lam = model.poisson.stern_length
            r_w, r_vol = p.robin
            vals.extend(lam * jnp.asarray(r_w[:, k]) for k in range(r_w.shape[1]))
            vals += [-0.5 * h2 * lam * jnp.asarray(r_vol), 0.5 * h2 * lam * jnp.asarray(r_vol)]
        return jnp.concatenate(vals)

    def build(self, model, c, t, hgamma):
        """Factorise at state ``c`` (time t, dimensionless) for step coefficient ``hgamma``."""
        c, t, hgamma, model = jax.lax.stop_gradient((c, t, hgamma, model))
        psi = model.potential(c, model.electrode_potential(t))
        vals = self.assemble(model, c, psi, hgamma)
        factorise = lambda v, hg: _on_host_thread(self.pattern.factorise, v, hg, self.reuse_tolerance)
        return jax.pure_callback(factorise, jax.ShapeDtypeStruct((), jnp.int64), vals, hgamma,
                                 vmap_method="sequential")

    def apply(self, state, r):
        solve = lambda key, rhs: _on_host_thread(self.pattern.solve, key, rhs)
        out = jax.pure_callback(solve, jax.ShapeDtypeStruct((r.size,), r.dtype), state,
                                r.ravel(), vmap_method="sequential")
        return out.reshape(r.shape)
