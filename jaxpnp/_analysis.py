"""Comparisons of runs: the NRMSE of two currents and the sign relations of the flux parts (Figure 1)."""

from __future__ import annotations

import math

import numpy as np

SIGNIFICANT = 0.02  # a sample counts when both series exceed 2% of their own maximum


def nrmse(model_current, reference_current) -> float:
    """``RMS(model - reference) / RMS(reference)`` (dimensionless), over the given samples."""
    a, b = np.asarray(model_current, float), np.asarray(reference_current, float)
    if a.shape != b.shape:
        raise ValueError(f"nrmse: shapes differ, {a.shape} vs {b.shape}")
    return float(np.sqrt(np.mean((a - b) ** 2)) / np.sqrt(np.mean(b ** 2)))


def sign_agreement(a, b, threshold: float = SIGNIFICANT):
    """``(same-sign fraction, weighted correlation)`` of two series.

    The fraction counts the samples where both exceed ``threshold`` of their own maximum
    (NaN if none); the correlation is ``sum(a b) / sum(|a| |b|)`` in [-1, 1] (+1: always the
    same sign, -1: always opposite), weighted by the magnitudes.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    sig = (np.abs(a) > threshold * max(np.max(np.abs(a)), 1e-300)) & \
          (np.abs(b) > threshold * max(np.max(np.abs(b)), 1e-300))
    frac = float(np.mean(np.sign(a[sig]) == np.sign(b[sig]))) if sig.any() else math.nan
    den = float(np.sum(np.abs(a) * np.abs(b)))
    corr = float(np.sum(a * b) / den) if den > 0 else math.nan
    return frac, corr


def _relations(migration, diffusion, steric) -> dict:
    f, c = sign_agreement(migration, diffusion)
    fs, cs = sign_agreement(migration, steric)
    return dict(migration_diffusion_same_sign_fraction=f, migration_diffusion_correlation=c,
                migration_steric_same_sign_fraction=fs, migration_steric_correlation=cs)


def flux_relations(ds) -> dict:
    """Sign relations of the net-ion flux parts of an mPNP Dataset (``jaxpnp.simulate``).

    ``open_space``: of the surface fluxes (``surface_flux_*``); ``slits``: of the trans-slit
    fluxes (``flux_*``) summed over the inner links ``1..n-1`` (slit i -> i+1; the last slit
    passes none), with ``per_link`` and ``links``.
    """
    parts = ("migration", "diffusion", "steric")
    out = {"open_space": _relations(*(np.asarray(ds[f"surface_flux_{k}"]) for k in parts))}
    links = list(range(1, int(ds.sizes["slit"]) - 1))
    if links:
        per_link = {i: _relations(*(np.asarray(ds[f"flux_{k}"].sel(slit=i)) for k in parts)) for i in links}
        total = _relations(*(np.asarray(ds[f"flux_{k}"].sel(slit=links).sum("slit")) for k in parts))
        out["slits"] = dict(total, links=links, per_link=per_link)
    return out
