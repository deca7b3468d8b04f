"""The uniform Bikerman-Donnan two-slit ladder the co-ion tests share: each node a uniform slit
behind a Stern layer, its equilibrium tables in the jaxpnp.equilibrium layout, and a
SaltLadder(coions="dynamic") built on them."""

import numpy as np
import xarray as xr

import circuits
import jaxpnp

F = 96485.33212
VT = 0.025693
C0 = 1e3  # mol/m^3
A3NA = (0.66e-9) ** 3 * 6.02214076e23  # m^3/mol: close packing 1 / A3NA
NU = 2 * A3NA * C0  # 0.35
N_SLITS = 2
VOLUME = np.array([10e-9, 1.5e-9, 1.5e-9])  # m per projected area: open space, two slits
STERN = np.array([0.3, 1.0, 1.0])  # F/m^2: electrode -> slit centre
POTENTIALS = np.linspace(0.0, 0.6, 241)  # V


def donnan(phi_d, k):
    """Uniform Bikerman slit k at Donnan potential phi_d (kT/e): (q C/m^2, cations, anions mol/m^2)."""
    d = 1 + NU * (np.cosh(phi_d) - 1)
    return VOLUME[k] * C0 * (np.exp(phi_d) - np.exp(-phi_d)) / d * F, VOLUME[k] * C0 * np.exp(-phi_d) / d, \
        VOLUME[k] * C0 * np.exp(phi_d) / d


def equilibrium(stern=STERN):
    """The nodes' equilibrium (the jaxpnp.equilibrium layout) on one electrode-potential grid; ``stern``
    (F/m^2, per node): the Stern capacitances (large: the slits pack at the grid's top potentials)."""
    phi_d = np.linspace(0.0, 30.0, 20001)
    q, N = [], []
    for k in range(N_SLITS + 1):
        qk, p, n = donnan(phi_d, k)
        phi_m = VT * phi_d + qk / np.broadcast_to(stern, (N_SLITS + 1,))[k]
        q.append(np.interp(POTENTIALS, phi_m, qk))
        N.append(np.interp(POTENTIALS, phi_m, p + n))
    attrs = dict(concentration_M=1.0)
    return xr.Dataset({"slit_charge": (("potential", "slit"), -np.stack(q, 1)),
                       "slit_ion_content": (("potential", "slit"), np.stack(N, 1))},
                      coords={"potential": POTENTIALS, "slit": np.arange(N_SLITS + 1)}, attrs=attrs)


def ladder(stern=STERN, **kw):
    eq = equilibrium(stern)
    cap, C = circuits.equilibrium_capacitor(eq, n_table=400)
    qc, ws = circuits.uptake_tables(eq)
    with jaxpnp.float64():
        return circuits.SaltLadder(N_SLITS, 6.7e-10, C, np.array([1e-9, 1.5e-9]), np.array([0.2, 0.5]),
                                   np.array([0.8, 0.4]), qc, ws, separator_m=1e-8, capacitor=cap, separator_nodes=4,
                                   coions="dynamic", region_volume_m=circuits.region_volumes(eq), **kw)


