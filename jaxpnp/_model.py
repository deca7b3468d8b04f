"""The mPNP vector field on the node grid (Debye units inside).

State ``c``: (2, nx, ny) cation and anion concentrations in units of the bulk c0
(zero and inert on nodes without electrolyte). The potential is not a state: it is
the exact Poisson solution for the charge and the electrode potential at time t.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._fluxes import flux_split, species_fluxes
from ._geometry import Grid
from ._poisson import FastPoisson
from ._protocol import AbstractProtocol


class MPNPModel(eqx.Module):
    """Discrete mPNP right-hand side and observables.

    Dynamic (differentiable) parameters: ``h`` (grid spacing in Debye lengths),
    ``nu`` (bulk packing fraction 2 a^3 c0), ``d_minus`` (anion/cation diffusivity),
    ``time_scale_s`` (Debye time), ``thermal_voltage_V``; the protocol's numbers.
    """

    grid: Grid = eqx.field(static=True)
    poisson: FastPoisson
    protocol: AbstractProtocol
    h: jnp.ndarray
    nu: jnp.ndarray
    d_minus: jnp.ndarray
    time_scale_s: jnp.ndarray
    thermal_voltage_V: jnp.ndarray
    reservoir: bool = eqx.field(static=True)
    ion_mask: jnp.ndarray
    inv_volume: jnp.ndarray
    volume: jnp.ndarray
    area_x: jnp.ndarray
    area_y: jnp.ndarray
    area_mid: jnp.ndarray

    @classmethod
    def build(cls, grid, poisson, protocol, h, nu, d_minus, time_scale_s, thermal_voltage_V, reservoir):
        vol = grid.volume
        inv_vol = np.where(vol > 0, 1.0 / np.where(vol > 0, vol, 1.0), 0.0)
        f = lambda a: jnp.asarray(a, dtype=float)
        return cls(grid=grid, poisson=poisson, protocol=protocol, h=f(h), nu=f(nu),
                   d_minus=f(d_minus), time_scale_s=f(time_scale_s),
                   thermal_voltage_V=f(thermal_voltage_V), reservoir=bool(reservoir),
                   ion_mask=f(grid.ion_node), inv_volume=f(inv_vol), volume=f(vol),
                   area_x=f(grid.area_x), area_y=f(grid.area_y), area_mid=f(grid.area_mid))

    # ---- drive ----------------------------------------------------------
    def electrode_potential(self, t):
        """phi_m in kT/e at dimensionless time t."""
        return self.protocol.electrode_potential(t * self.time_scale_s) / self.thermal_voltage_V

    def electrode_potential_rate(self, t):
        return jax.jvp(self.electrode_potential, (t,), (jnp.ones_like(t),))[1]

    def initial_state(self):
        return jnp.stack([self.ion_mask, self.ion_mask])

    # ---- potential and fluxes ------------------------------------------
    def potential(self, c, phi_m):
        return self.poisson(c[0] - c[1], phi_m, self.h ** 2)

    def midplane_flux(self, cp0, cm0, psi0):
        """Species fluxes (grid units) into the first node column across the face x = 0.

        ``reservoir``: bulk (c0, 0 V) held on the face, half a cell away. Symmetric
        cell: the antisymmetric image of column 0 one cell away (cations <-> anions,
        psi -> -psi), with the salt part of the flux removed so the half cell is
        closed exactly even when D+ != D- (for D+ = D- it is zero already).
        """
        if self.reservoir:
            one = jnp.ones_like(psi0)
            return species_fluxes(one, one, jnp.zeros_like(psi0), cp0, cm0, psi0,
                                  self.nu, self.d_minus, 0.5)
        jp, jm = species_fluxes(cm0, cp0, -psi0, cp0, cm0, psi0, self.nu, self.d_minus, 1.0)
        net = 0.5 * (jp - jm)
        return net, -net

    def face_fluxes(self, c, psi):
        """Grid-unit species fluxes (J+, J-) on x faces, y faces and the mid-plane face."""
        cp, cm = c
        jx = species_fluxes(cp[:-1], cm[:-1], psi[:-1], cp[1:], cm[1:], psi[1:], self.nu, self.d_minus, 1.0)
        jy = species_fluxes(cp[:, :-1], cm[:, :-1], psi[:, :-1], cp[:, 1:], cm[:, 1:], psi[:, 1:],
                            self.nu, self.d_minus, 1.0)
        jb = self.midplane_flux(cp[0], cm[0], psi[0])
        return jx, jy, jb

    def rate(self, c, psi):
        jx, jy, jb = self.face_fluxes(c, psi)
        out = []
        for s in range(2):
            fx = self.area_x * jx[s]
            fy = self.area_y * jy[s]
            net = jnp.zeros_like(c[s])
            net = net.at[:-1].add(-fx).at[1:].add(fx)
            net = net.at[:, :-1].add(-fy).at[:, 1:].add(fy)
            net = net.at[0].add(self.area_mid * jb[s])
            out.append(net * self.inv_volume / self.h ** 2)
        return jnp.stack(out)

    def vector_field(self, t, c, args=None):
        psi = self.potential(c, self.electrode_potential(t))
        return self.rate(c, psi)

    # ---- observables (dimensionless, per projected area) ---------------
    @property
    def length_y(self):
        return self.grid.length_y * self.h

    def ionic_charge(self, c):
        return jnp.sum((c[0] - c[1]) * self.volume) * self.h ** 2 / self.length_y

    def electrode_charge(self, c, phi_m):
        psi = self.potential(c, phi_m)
        return self._electrode_charge(c, psi)

    def _electrode_charge(self, c, psi):
        # Gauss: the metal charge balances the ions and the mid-plane field; this holds
        # for the Dirichlet and the Stern (Robin) conductor rows alike
        field = jnp.sum(self.area_mid * 2.0 * psi[0]) * 2.0 / self.length_y
        return field - self.ionic_charge(c)

    def current(self, t, c, t_rate=None):
        """dQ_e/dt along the trajectory (dimensionless).

        ``t_rate``: where to take the electrode-potential slope (a point inside the
        current segment), so that samples on a CV vertex give one-sided limits.
        """
        phi = self.electrode_potential(t)
        dc = self.vector_field(t, c)
        rate = self.electrode_potential_rate(t if t_rate is None else t_rate)
        return jax.jvp(self.electrode_charge, (c, phi), (dc, rate))[1]

    def total_ions(self, c):
        return jnp.sum((c[0] + c[1]) * self.volume) * self.h ** 2 / self.length_y

    def region_charge(self, c):
        rho = (c[0] - c[1]) * self.volume * self.h ** 2 / self.length_y
        return jax.ops.segment_sum(rho.ravel(), jnp.asarray(self.grid.region.ravel()),
                                   num_segments=self.grid.n_regions)

    def region_ions(self, c):
        """Cations and anions of each region per projected area (units of c0 * Debye length), (2, n_regions)."""
        amount = c * self.volume * self.h ** 2 / self.length_y
        region = jnp.asarray(self.grid.region.ravel())
        return jnp.stack([jax.ops.segment_sum(a.ravel(), region, num_segments=self.grid.n_regions) for a in amount])

    def probe_potentials(self, psi):
        nodes = self.grid.probe_nodes
        vals = psi[nodes[..., 0], nodes[..., 1]]
        return jnp.sum(vals * jnp.asarray(self.grid.probe_weights), axis=-1)

    def _column_current(self, c, psi, column):
        cp, cm = c
        sl = lambda a: (a[column], a[column + 1])
        (cpl, cpr), (cml, cmr), (pl, pr) = sl(cp), sl(cm), sl(psi)
        jp, jm = species_fluxes(cpl, cml, pl, cpr, cmr, pr, self.nu, self.d_minus, 1.0)
        split = flux_split(cpl, cml, pl, cpr, cmr, pr, self.nu, self.d_minus, 1.0)
        a = self.area_x[column]
        scale = 1.0 / self.length_y  # face flow (grid-unit area x grid-unit flux) is already a Debye-unit flow
        tot = jnp.sum(a * (jp - jm)) * scale
        return tot, tuple(jnp.sum(a * s) * scale for s in split)

    def observables(self, t, c, t_rate=None):
        """Dimensionless outputs at one time (see _observables for SI conversion)."""
        phi = self.electrode_potential(t)
        psi = self.potential(c, phi)
        links = self.grid.link_face
        n = self.grid.n_regions
        link_tot = jnp.zeros(n)
        link_split = jnp.zeros((3, n))
        for k, col in enumerate(links):
            tot, split = self._column_current(c, psi, int(col))
            link_tot = link_tot.at[k].set(tot)
            link_split = link_split.at[:, k].set(jnp.stack(split))
        s_tot, s_split = self._column_current(c, psi, int(self.grid.surface_face))
        return dict(
            electrode_potential=phi,
            electrode_charge=self._electrode_charge(c, psi),
            ionic_charge=self.ionic_charge(c),
            current=self.current(t, c, t_rate),
            total_ions=self.total_ions(c),
            slit_charge=self.region_charge(c),
            slit_ions=self.region_ions(c),
            slit_potential=self.probe_potentials(psi),
            link_current=link_tot,
            link_split=link_split,
            surface_current=s_tot,
            surface_split=jnp.stack(s_split),
            min_concentration=jnp.min(jnp.where(self.ion_mask > 0, jnp.minimum(c[0], c[1]), jnp.inf)),
            max_packing=jnp.max(0.5 * self.nu * (c[0] + c[1])),
        )
