"""Saving, loading and TOML run configurations."""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from pathlib import Path

import tomli_w
import xarray as xr

from ._electrolyte import Electrolyte
from ._geometry import Electrode
from ._protocol import CV, PotentialStep, Sine

TABLES = ("electrolyte", "electrode", "protocol", "simulation")
_CONFIGS = Path(__file__).resolve().parent / "configs"  # named parameter sets shipped with the package


def load(path) -> xr.Dataset:
    """Load a Dataset written by ``simulate`` (or ``Dataset.to_netcdf``) into memory."""
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


def save(dataset: xr.Dataset, path) -> None:
    dataset.to_netcdf(path, engine="h5netcdf")


_PROTOCOLS = {"cv": CV, "step": PotentialStep, "potential_step": PotentialStep, "sine": Sine}
_PROTOCOL_NAMES = {CV: "cv", PotentialStep: "step", Sine: "sine"}


def named_configs() -> list[str]:
    """Names of the parameter sets shipped with the package (``read_config(name)``)."""
    return sorted(p.stem for p in _CONFIGS.glob("*.toml"))


def config_path(source) -> Path:
    """The TOML file of ``source``: an existing path, or the name of a shipped parameter set."""
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"a configuration is a TOML path, a shipped name or a dict, got {type(source).__name__}")
    path = Path(source)
    if path.is_file():
        return path
    if isinstance(source, str) and source in named_configs():
        return _CONFIGS / f"{source}.toml"
    raise FileNotFoundError(f"no configuration file {os.fspath(source)!r} and no shipped parameter set of "
                            f"that name (shipped: {', '.join(named_configs())})")


def read_config(source):
    """A run description -> (electrolyte, electrode, protocol, simulate keyword arguments).

    ``source``: a TOML file path, the name of a parameter set shipped with the package
    (``"paper_case"``: the paper's 6-sheet, 1.5 nm case; see :func:`named_configs`), or a
    dict of the same tables. Tables: ``[electrolyte]`` and ``[electrode]`` take the
    constructor arguments, ``[protocol]`` takes ``type = "cv" | "step" | "sine"`` plus its
    arguments, ``[simulation]`` takes ``simulate``'s keyword arguments (grid_nm,
    boundary, points_per_cycle, ...). :func:`write_config` writes this form.
    """
    if isinstance(source, dict):
        cfg, where = source, "the configuration"
    else:
        path = config_path(source)
        with open(path, "rb") as fh:
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


def write_config(path, electrolyte, electrode, protocol, simulation=None) -> None:
    """Write a run as the TOML that :func:`read_config` reads back to equal objects: every
    field of the three objects (None fields left out: they are the defaults) and
    ``simulation`` (simulate keyword arguments; None values left out)."""
    cfg = config_dict(electrolyte, electrode, protocol, simulation)
    cfg["simulation"] = {k: v for k, v in cfg["simulation"].items() if v is not None}

    def plain(v):  # numpy/JAX scalars -> Python numbers, so TOML can hold them
        if hasattr(v, "tolist"):
            v = v.tolist()
        if isinstance(v, float) and not math.isfinite(v):
            return v  # TOML has inf and nan
        return v

    cfg = {t: {k: plain(v) for k, v in table.items()} for t, table in cfg.items() if table}
    Path(path).write_text(tomli_w.dumps(cfg))
