"""Saving, loading and TOML run configurations."""

from __future__ import annotations

import tomllib

import xarray as xr

from ._electrolyte import Electrolyte
from ._geometry import Electrode
from ._protocol import CV, PotentialStep


def load(path) -> xr.Dataset:
    """Load a Dataset written by ``simulate`` (or ``Dataset.to_netcdf``) into memory."""
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


def save(dataset: xr.Dataset, path) -> None:
    dataset.to_netcdf(path, engine="h5netcdf")


_PROTOCOLS = {"cv": CV, "step": PotentialStep, "potential_step": PotentialStep}


def read_config(path):
    """A TOML run description -> (electrolyte, electrode, protocol, simulate keyword arguments).

    Tables: ``[electrolyte]`` and ``[electrode]`` take the constructor arguments,
    ``[protocol]`` takes ``type = "cv" | "step"`` plus its arguments, ``[simulation]``
    takes ``simulate``'s keyword arguments (grid_nm, boundary, points_per_cycle, ...).
    """
    with open(path, "rb") as fh:
        cfg = tomllib.load(fh)
    unknown = set(cfg) - {"electrolyte", "electrode", "protocol", "simulation"}
    if unknown:
        raise ValueError(f"unknown table(s) in {path}: {sorted(unknown)}")
    proto = dict(cfg.get("protocol", {"type": "cv"}))
    kind = str(proto.pop("type", "cv")).lower()
    if kind not in _PROTOCOLS:
        raise ValueError(f"protocol.type must be one of {sorted(_PROTOCOLS)}, got {kind!r}")
    try:
        electrolyte = Electrolyte(**cfg.get("electrolyte", {}))
        electrode = Electrode(**cfg.get("electrode", {}))
        protocol = _PROTOCOLS[kind](**proto)
    except TypeError as err:
        raise ValueError(f"bad key in {path}: {err}") from None
    return electrolyte, electrode, protocol, dict(cfg.get("simulation", {}))
