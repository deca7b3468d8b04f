"""Saving, loading and TOML run configurations."""

from __future__ import annotations

import dataclasses
import os
import tomllib

import xarray as xr

from ._electrolyte import Electrolyte
from ._geometry import Electrode
from ._protocol import CV, PotentialStep

TABLES = ("electrolyte", "electrode", "protocol", "simulation")


def load(path) -> xr.Dataset:
    """Load a Dataset written by ``simulate`` (or ``Dataset.to_netcdf``) into memory."""
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


def save(dataset: xr.Dataset, path) -> None:
    dataset.to_netcdf(path, engine="h5netcdf")


_PROTOCOLS = {"cv": CV, "step": PotentialStep, "potential_step": PotentialStep}
_PROTOCOL_NAMES = {CV: "cv", PotentialStep: "step"}


def read_config(source):
    """A run description -> (electrolyte, electrode, protocol, simulate keyword arguments).

    ``source``: a TOML file path, or a dict of the same tables. Tables: ``[electrolyte]``
    and ``[electrode]`` take the constructor arguments, ``[protocol]`` takes
    ``type = "cv" | "step"`` plus its arguments, ``[simulation]`` takes ``simulate``'s
    keyword arguments (grid_nm, boundary, points_per_cycle, ...).
    """
    if isinstance(source, dict):
        cfg, where = source, "the configuration"
    else:
        with open(os.fspath(source), "rb") as fh:
            cfg = tomllib.load(fh)
        where = os.fspath(source)
    unknown = set(cfg) - set(TABLES)
    if unknown:
        raise ValueError(f"unknown table(s) in {where}: {sorted(unknown)}")
    proto = dict(cfg.get("protocol", {"type": "cv"}))
    kind = str(proto.pop("type", "cv")).lower()
    if kind not in _PROTOCOLS:
        raise ValueError(f"protocol.type must be one of {sorted(_PROTOCOLS)}, got {kind!r}")
    try:
        electrolyte = Electrolyte(**cfg.get("electrolyte", {}))
        electrode = Electrode(**cfg.get("electrode", {}))
        protocol = _PROTOCOLS[kind](**proto)
    except TypeError as err:
        raise ValueError(f"bad key in {where}: {err}") from None
    return electrolyte, electrode, protocol, dict(cfg.get("simulation", {}))


def config_dict(electrolyte, electrode, protocol, simulation=None) -> dict:
    """The tables of :func:`read_config` holding every field of the three objects (fields
    that are ``None`` left out, as TOML has no null) and ``simulation`` (a dict of
    ``simulate`` keyword arguments) as given."""
    def fields(obj):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)
                if f.init and getattr(obj, f.name) is not None}

    if type(protocol) not in _PROTOCOL_NAMES:
        raise ValueError(f"no configuration form for {type(protocol).__name__}; "
                         f"one of {[p.__name__ for p in _PROTOCOL_NAMES]}")
    return {"electrolyte": fields(electrolyte), "electrode": fields(electrode),
            "protocol": {"type": _PROTOCOL_NAMES[type(protocol)], **fields(protocol)},
            "simulation": dict(simulation or {})}
