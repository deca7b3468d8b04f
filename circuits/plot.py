"""Matplotlib helpers; headless-safe (matplotlib falls back to Agg without a display).

Pass an ``ax`` or one is made on a new figure.

They take the Datasets of :func:`circuits.simulate` (or the mPNP solver: same names)
and :func:`circuits.peak_map`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

import jaxpnp


def _axes(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.5), constrained_layout=True)
    return ax


def cv(datasets, labels=None, ax=None, styles=None):
    """Current density (A/m^2) against cell voltage (V) for one Dataset or a list (paper Fig. 3c/d)."""
    ax = _axes(ax)
    if not isinstance(datasets, (list, tuple)):
        datasets = [datasets]
    labels = labels or [None] * len(datasets)
    styles = styles or ["-"] * len(datasets)
    for ds, label, style in zip(datasets, labels, styles):
        ax.plot(np.asarray(ds["cell_voltage"]), np.asarray(ds["current_density"]), style, label=label)
    ax.set_xlabel("cell voltage $V_m$ (V)")
    ax.set_ylabel("current density (A m$^{-2}$)")
    if any(label is not None for label in labels):
        ax.legend(frameon=False)
    return ax


def slit_charge(ds, ax=None, cmap="viridis", normalise=True):
    """Charge per node over time as an image (paper Fig. 3e/f): x = time in cycles if a CV, y = slit."""
    ax = _axes(ax)
    t = np.asarray(ds["time"])
    q = np.asarray(ds["slit_charge"])
    period = jaxpnp.protocol_from_attrs(ds.attrs).period if ds.attrs.get("protocol") == "CV" else None
    x = t / period if period else t
    if normalise:
        q = q / max(np.max(np.abs(q)), 1e-300)
    mesh = ax.pcolormesh(x, np.asarray(ds["slit"]), q.T, cmap=cmap, shading="auto")
    ax.figure.colorbar(mesh, ax=ax, label="charge / max" if normalise else "charge (C m$^{-2}$)")
    ax.set_xlabel("time (cycles)" if period else "time (s)")
    ax.set_ylabel("node (0 = open space)")
    return ax


def peak_map(ds, ax=None, variable="peak_current", cmap="magma"):
    """The (gamma, R_c) map of :func:`circuits.peak_map` (paper Fig. 3g)."""
    ax = _axes(ax)
    mesh = ax.pcolormesh(np.asarray(ds["R_c"]), np.asarray(ds["gamma"]), np.asarray(ds[variable]),
                         cmap=cmap, shading="auto")
    ax.figure.colorbar(mesh, ax=ax, label=f"{variable} ({ds[variable].attrs.get('units', '')})")
    if np.all(np.asarray(ds["R_c"]) > 0) and ds.sizes["R_c"] > 2:
        ax.set_xscale("log")
    ax.set_xlabel("$R_c$ ($\\Omega$ m$^2$)")
    ax.set_ylabel("$\\gamma$")
    return ax
