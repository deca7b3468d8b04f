"""Exact fast Poisson solve for the fixed geometry (capacitance-matrix method).

On the whole node rectangle the operator ``A0 = Tx (+) Ty`` (Dirichlet psi = 0 at the
mid-plane face, mirror planes in y) is diagonalised once by the eigenvectors of its
1D factors, so a solve is four small dense matrix products (fast on CPU and GPU,
differentiable). Conductor surface nodes are then pinned at the electrode potential
by a precomputed ``m x m`` capacitance matrix: two fast solves per Poisson solve.

Lengths are in grid cells here; ``scale = (lambda_D / h)^2`` multiplies the
right-hand side so that the same factorisation serves any Debye length (and can be
differentiated with respect to it).

Optional Stern layer (``FastPoisson.build(grid, stern=True)`` then ``with_stern``): the
conductor surface nodes then sit on the electrolyte side of a charge-free layer of
capacitance C_S, ``psi_s = phi_m - lambda_S E_n`` with ``lambda_S = eps / C_S``. Each
surface node keeps its box-method balance, closed at the metal by the Robin flux
``L (psi_s - phi_m) / lambda_S`` (``L``: length of metal boundary in its control
volume); the row is linear, so the same point sources at the surface nodes solve it
exactly with the capacitance matrix ``B A0^{-1} S`` (``B``: the Robin rows).
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from ._geometry import Grid


def robin_rows(grid: Grid):
    """Box-method Robin rows of the surface nodes (grid units), normalised by their metal length.

    Returns ``(surface, idx, w, vol)``: flat surface-node indices (m,), and for each the
    flat indices (m, 5) and weights (m, 5) of ``(1/L) sum_j a_ij (psi_i - psi_j)`` (self,
    then the x and y neighbours; absent ones point at the node itself with weight 0,
    the mid-plane face adds to the self weight), and ``vol / L`` (m,). The row of node
    i is then ``psi_i + lambda (w . psi[idx] - vol f_i) = phi_m`` with ``f`` the
    grid-unit source density and ``lambda = lambda_S / h``.
    """
    nx, ny = grid.nx, grid.ny
    fluid = np.asarray(grid.fluid_cell, bool)  # (nx, ny-1); column nx-1: metal beyond the collector
    metal_len = np.zeros((nx, ny))
    # edges x = node column i between cells (i-1, j) and (i, j); the half cell before node 0 is electrolyte
    left = np.concatenate([np.ones((1, ny - 1), bool), fluid[:-1]], axis=0)
    vert = left != fluid  # (nx, ny-1), edge from node (i, j) to (i, j+1)
    metal_len[:, :-1] += 0.5 * vert
    metal_len[:, 1:] += 0.5 * vert
    # edges y = node row j between cells (i, j-1) and (i, j), interior rows only (mirror planes)
    horiz = fluid[:, :-1] != fluid[:, 1:]  # (nx, ny-2), edge from node (i, j+1) to (i+1, j+1)
    metal_len[:, 1:-1] += 0.5 * horiz
    metal_len[1:, 1:-1] += 0.5 * horiz[:-1]
    node = np.arange(nx * ny).reshape(nx, ny)
    surface = np.flatnonzero(grid.surface_node.ravel())
    si, sj = np.unravel_index(surface, (nx, ny))
    length = metal_len[si, sj]
    if np.any(length <= 0):
        raise AssertionError("a conductor surface node without a metal boundary")
    ax = np.pad(np.asarray(grid.area_x, float), ((1, 1), (0, 0)))  # ax[i] : face between i-1 and i
    ay = np.pad(np.asarray(grid.area_y, float), ((0, 0), (1, 1)))
    a_lo_x, a_hi_x = ax[si, sj], ax[si + 1, sj]
    a_lo_y, a_hi_y = ay[si, sj], ay[si, sj + 1]
    mid = np.where(si == 0, 2.0 * np.asarray(grid.area_mid)[sj], 0.0)  # psi = 0 half a cell before column 0
    idx = np.stack([node[si, sj],
                    np.where(a_lo_x > 0, node[np.maximum(si - 1, 0), sj], node[si, sj]),
                    np.where(a_hi_x > 0, node[np.minimum(si + 1, nx - 1), sj], node[si, sj]),
                    np.where(a_lo_y > 0, node[si, np.maximum(sj - 1, 0)], node[si, sj]),
                    np.where(a_hi_y > 0, node[si, np.minimum(sj + 1, ny - 1)], node[si, sj])], axis=1)
    w = np.stack([a_lo_x + a_hi_x + a_lo_y + a_hi_y + mid, -a_lo_x, -a_hi_x, -a_lo_y, -a_hi_y], axis=1)
    vol = np.asarray(grid.volume)[si, sj]
    return surface, idx, w / length[:, None], vol / length


def _second_difference_x(nx: int) -> np.ndarray:
    t = 2.0 * np.eye(nx) - np.eye(nx, k=1) - np.eye(nx, k=-1)
    t[0, 0] = 3.0  # psi = 0 on the mid-plane face, half a cell before node 0
    return t


def _second_difference_y(ny: int) -> np.ndarray:
    t = 2.0 * np.eye(ny) - np.eye(ny, k=1) - np.eye(ny, k=-1)
    t[0, 1] = -2.0  # mirror planes through the end nodes
    t[-1, -2] = -2.0
    return t


class FastPoisson(eqx.Module):
    """Solves ``-lap psi = rho / 2`` (Debye units) with psi = phi_m on conductor nodes.

    Arrays are (nx, ny) node fields; only free-node values of the source matter.
    With a Stern layer (``stern_length`` = lambda_S / h set by ``with_stern``) the
    surface nodes obey the Robin rows of ``robin_rows`` instead (their source counts
    too), and conductor nodes without electrolyte are reported at phi_m.
    """

    qx: jnp.ndarray  # (nx, nx) orthonormal eigenvectors of Tx
    qy: jnp.ndarray  # (ny, ny) eigenvectors of Ty (W-orthonormal)
    qy_inv: jnp.ndarray  # (ny, ny)
    inv_eig: jnp.ndarray  # (nx, ny) 1 / (lx_i + ly_j)
    surface_flat: jnp.ndarray  # (m,) flat indices of pinned conductor nodes
    cap_inv: jnp.ndarray  # (m, m) inverse capacitance matrix (grid units)
    free_mask: jnp.ndarray  # (nx, ny) 1.0 on free nodes
    # Stern layer (all None without one)
    stern_length: jnp.ndarray | None = None  # lambda_S / h (grid units); None: Dirichlet
    robin_idx: jnp.ndarray | None = None  # (m, 5) see robin_rows
    robin_w: jnp.ndarray | None = None  # (m, 5)
    robin_vol: jnp.ndarray | None = None  # (m,)
    metal_mask: jnp.ndarray | None = None  # (nx, ny) bool: conductor nodes without electrolyte
    cap_dirichlet: jnp.ndarray | None = None  # (m, m) A0^{-1}[S, S], kept for with_stern
    cap_robin: jnp.ndarray | None = None  # (m, m) W A0^{-1}[:, S], kept for with_stern

    @classmethod
    def build(cls, grid: Grid, stern: bool = False) -> "FastPoisson":
        """Factorise for ``grid``; ``stern=True`` also keeps what ``with_stern`` needs."""
        nx, ny = grid.nx, grid.ny
        lx, qx = np.linalg.eigh(_second_difference_x(nx))
        w = np.ones(ny)
        w[0] = w[-1] = 0.5
        ty = _second_difference_y(ny)
        ly, qy = scipy.linalg.eigh(np.diag(w) @ ty, np.diag(w))
        qy_inv = qy.T @ np.diag(w)
        inv_eig = 1.0 / (lx[:, None] + ly[None, :])
        surface = np.flatnonzero(grid.surface_node.ravel())
        m = surface.size
        if stern:
            _, r_idx, r_w, r_vol = robin_rows(grid)
            cap_r = np.empty((m, m))
        # columns of A0^{-1} at the surface nodes, in batches to bound memory
        cap = np.empty((m, m))
        for start in range(0, m, 512):
            idx = surface[start:start + 512]
            rhs = np.zeros((idx.size, nx * ny))
            rhs[np.arange(idx.size), idx] = 1.0
            rhs = rhs.reshape(idx.size, nx, ny)
            sol = np.einsum("ai,bij,jc->bac", qx.T, rhs, qy_inv.T, optimize=True)
            sol = sol * inv_eig[None]
            sol = np.einsum("ai,bij,jc->bac", qx, sol, qy.T, optimize=True)
            cap[:, start:start + idx.size] = sol.reshape(idx.size, -1)[:, surface].T
            if stern:
                flat = sol.reshape(idx.size, -1)
                cap_r[:, start:start + idx.size] = np.einsum("bmk,mk->mb", flat[:, r_idx], r_w)
        cap_inv = np.linalg.inv(cap)  # A0 is not symmetric (mirror rows), neither is C
        extra = {}
        if stern:
            metal = ~np.asarray(grid.ion_node, bool)
            extra = dict(robin_idx=jnp.asarray(r_idx), robin_w=jnp.asarray(r_w), robin_vol=jnp.asarray(r_vol),
                         metal_mask=jnp.asarray(metal), cap_dirichlet=jnp.asarray(cap),
                         cap_robin=jnp.asarray(cap_r))
        return cls(qx=jnp.asarray(qx), qy=jnp.asarray(qy), qy_inv=jnp.asarray(qy_inv),
                   inv_eig=jnp.asarray(inv_eig), surface_flat=jnp.asarray(surface),
                   cap_inv=jnp.asarray(cap_inv), free_mask=jnp.asarray(grid.free_node, float), **extra)

    def with_stern(self, stern_length):
        """This solver with a Stern layer of thickness ``stern_length`` = lambda_S / h (grid units).

        ``lambda_S = eps0 eps_r / C_S``; may be a JAX tracer (differentiable). Needs
        ``build(grid, stern=True)``; the m x m capacitance matrix is inverted here, once.
        """
        if self.cap_robin is None:
            raise ValueError("FastPoisson.with_stern needs a solver built with stern=True")
        lam = jnp.asarray(stern_length, dtype=self.cap_robin.dtype)
        cap_inv = jnp.linalg.inv(self.cap_dirichlet + lam * self.cap_robin)
        return dataclasses.replace(self, stern_length=lam, cap_inv=cap_inv, cap_dirichlet=None,
                                   cap_robin=None)

    def rectangle_solve(self, f):
        """A0^{-1} f on the full node rectangle (grid units)."""
        g = self.qx.T @ f @ self.qy_inv.T
        return self.qx @ (g * self.inv_eig) @ self.qy.T

    def __call__(self, rho, phi_m, scale):
        """Potential (kT/e) for net charge ``rho`` (c0 units) and electrode potential ``phi_m``.

        ``scale = (h / lambda_D)^2`` turns grid-unit Laplacians into Debye units.
        """
        if self.stern_length is not None:
            return self._solve_stern(rho, phi_m, scale)
        f = 0.5 * scale * rho * self.free_mask
        u = self.rectangle_solve(f)
        sigma = self.cap_inv @ (phi_m - u.ravel()[self.surface_flat])
        src = jnp.zeros(u.size, u.dtype).at[self.surface_flat].set(sigma).reshape(u.shape)
        return u + self.rectangle_solve(src)

    def _solve_stern(self, rho, phi_m, scale):
        f = 0.5 * scale * rho
        u = self.rectangle_solve(f * self.free_mask).ravel()
        lam = self.stern_length
        robin_u = u[self.surface_flat] + lam * jnp.sum(self.robin_w * u[self.robin_idx], axis=1)
        target = phi_m + lam * self.robin_vol * f.ravel()[self.surface_flat]
        sigma = self.cap_inv @ (target - robin_u)
        src = jnp.zeros(u.size, u.dtype).at[self.surface_flat].set(sigma).reshape(rho.shape)
        psi = u.reshape(rho.shape) + self.rectangle_solve(src)
        return jnp.where(self.metal_mask, phi_m, psi)
