"""Exact fast Poisson solve for the fixed geometry (capacitance-matrix method).

On the whole node rectangle the operator ``A0 = Tx (+) Ty`` (Dirichlet psi = 0 at the
mid-plane face, mirror planes in y) is diagonalised once by the eigenvectors of its
1D factors, so a solve is four small dense matrix products (fast on CPU and GPU,
differentiable). Conductor surface nodes are then pinned at the electrode potential
by a precomputed ``m x m`` capacitance matrix: two fast solves per Poisson solve.

Lengths are in grid cells here; ``scale = (lambda_D / h)^2`` multiplies the
right-hand side so that the same factorisation serves any Debye length (and can be
differentiated with respect to it).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from ._geometry import Grid


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
    """

    qx: jnp.ndarray  # (nx, nx) orthonormal eigenvectors of Tx
    qy: jnp.ndarray  # (ny, ny) eigenvectors of Ty (W-orthonormal)
    qy_inv: jnp.ndarray  # (ny, ny)
    inv_eig: jnp.ndarray  # (nx, ny) 1 / (lx_i + ly_j)
    surface_flat: jnp.ndarray  # (m,) flat indices of pinned conductor nodes
    cap_inv: jnp.ndarray  # (m, m) inverse capacitance matrix (grid units)
    free_mask: jnp.ndarray  # (nx, ny) 1.0 on free nodes

    @classmethod
    def build(cls, grid: Grid) -> "FastPoisson":
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
        cap_inv = np.linalg.inv(cap)  # A0 is not symmetric (mirror rows), neither is C
        return cls(qx=jnp.asarray(qx), qy=jnp.asarray(qy), qy_inv=jnp.asarray(qy_inv),
                   inv_eig=jnp.asarray(inv_eig), surface_flat=jnp.asarray(surface),
                   cap_inv=jnp.asarray(cap_inv), free_mask=jnp.asarray(grid.free_node, float))

    def rectangle_solve(self, f):
        """A0^{-1} f on the full node rectangle (grid units)."""
        g = self.qx.T @ f @ self.qy_inv.T
        return self.qx @ (g * self.inv_eig) @ self.qy.T

    def __call__(self, rho, phi_m, scale):
        """Potential (kT/e) for net charge ``rho`` (c0 units) and electrode potential ``phi_m``.

        ``scale = (h / lambda_D)^2`` turns grid-unit Laplacians into Debye units.
        """
        f = 0.5 * scale * rho * self.free_mask
        u = self.rectangle_solve(f)
        sigma = self.cap_inv @ (phi_m - u.ravel()[self.surface_flat])
        src = jnp.zeros(u.size, u.dtype).at[self.surface_flat].set(sigma).reshape(u.shape)
        return u + self.rectangle_solve(src)
