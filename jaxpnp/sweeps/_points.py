"""The points of a sweep: a base case and axes -> one full parameter set per point, named by its hash."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import itertools
import json
import math
import os
import tomllib
from pathlib import Path

from .._electrolyte import Electrolyte
from .._geometry import Electrode
from .._io import TABLES, config_dict, config_path, read_config
from .._protocol import CV, AbstractProtocol, PotentialStep, Sine
from .._simulate import simulate, validate

# simulate's keyword arguments that define a run (progress and file handling do not)
SIMULATION_DEFAULTS = {
    name: p.default for name, p in inspect.signature(simulate).parameters.items()
    if p.default is not inspect.Parameter.empty and name not in ("progress", "checkpoint_path", "resume")}
_SCHEMA = "jaxpnp-sweep-point/1"


def _init_fields(cls):
    return {f.name for f in dataclasses.fields(cls) if f.init}


_TABLE_FIELDS = {"electrolyte": _init_fields(Electrolyte), "electrode": _init_fields(Electrode),
                 "simulation": set(SIMULATION_DEFAULTS)}
_PROTOCOL_FIELDS = {"cv": _init_fields(CV), "step": _init_fields(PotentialStep),
                    "potential_step": _init_fields(PotentialStep), "sine": _init_fields(Sine)}


@dataclasses.dataclass(frozen=True)
class Point:
    """One parameter point. ``index``: its position on the sweep axes; ``values``: axis
    name -> value; ``config``: the run tables (base with the values applied);
    ``parameters``: the full parameter set (every field and simulate option, defaults
    filled in) or None when invalid; ``point_id``: hash naming its files; ``error``: why
    it is invalid (None when valid)."""

    index: tuple
    values: dict
    config: dict
    parameters: dict | None
    point_id: str
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """``kind``: "grid" (product of the axes) or "list" (explicit points, one ``point`` axis);
    ``dims``: the sweep dimensions; ``axes``: axis name -> values (for a list, each
    parameter's value per point); ``points``: every :class:`Point`."""

    base: dict
    kind: str
    dims: tuple
    axes: dict
    points: tuple


def base_config(base) -> dict:
    """The run tables of ``base``: a TOML run file (as for ``jaxpnp simulate``), a dict of
    its tables, or an ``(electrolyte, electrode, protocol[, simulate_kwargs])`` tuple."""
    if isinstance(base, (str, os.PathLike)):
        try:
            path = config_path(base)
        except FileNotFoundError as err:
            raise ValueError(f"base case: {err}") from None
        with open(path, "rb") as fh:
            cfg = tomllib.load(fh)
    elif isinstance(base, dict):
        cfg = copy.deepcopy(base)
    elif isinstance(base, (tuple, list)) and len(base) in (3, 4):
        if not (isinstance(base[0], Electrolyte) and isinstance(base[1], Electrode)
                and isinstance(base[2], AbstractProtocol)):
            raise TypeError("base as a tuple must be (Electrolyte, Electrode, protocol[, simulate kwargs])")
        cfg = config_dict(base[0], base[1], base[2], base[3] if len(base) == 4 else None)
    else:
        raise TypeError("base must be a TOML run file, a dict of its tables or an "
                        f"(electrolyte, electrode, protocol[, kwargs]) tuple, got {type(base).__name__}")
    unknown = set(cfg) - set(TABLES)
    if unknown:
        raise ValueError(f"unknown table(s) in the base case: {sorted(unknown)}; allowed: {list(TABLES)}")
    cfg = {t: dict(cfg.get(t, {})) for t in TABLES}
    cfg["protocol"].setdefault("type", "cv")
    return cfg


def _table_of(name: str, base: dict) -> tuple[str, str]:
    """(table, key) of a sweep parameter: ``"slit_nm"`` or dotted ``"electrode.slit_nm"``."""
    kind = str(base["protocol"].get("type", "cv")).lower()
    fields = dict(_TABLE_FIELDS, protocol=_PROTOCOL_FIELDS.get(kind, set()))
    if "." in name:
        table, key = name.split(".", 1)
        if table not in fields or key not in fields[table]:
            raise ValueError(f"unknown sweep parameter {name!r}")
        return table, key
    hits = [t for t, keys in fields.items() if name in keys]
    if not hits:
        raise ValueError(f"unknown sweep parameter {name!r}: not a field of Electrolyte, Electrode, "
                         f"the {kind} protocol or a simulate option")
    return hits[0], name


def full_parameters(config: dict) -> dict:
    """Every field and simulate option of one run (defaults filled in); ValueError/TypeError
    for bad input (the checks ``simulate`` makes before computing)."""
    electrolyte, electrode, protocol, kwargs = read_config(config)
    unknown = set(kwargs) - set(SIMULATION_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown simulate option(s): {sorted(unknown)}")
    options = {**SIMULATION_DEFAULTS, **kwargs}
    validate(electrolyte, electrode, protocol, options["grid_nm"], options["boundary"],
             bool(options["allow_subnanometre_slits"]))
    full = config_dict(electrolyte, electrode, protocol,
                       {k: v for k, v in options.items() if v is not None})
    return json.loads(json.dumps(full, default=_jsonable))


def _jsonable(v):
    if hasattr(v, "tolist"):
        return v.tolist()
    raise TypeError(f"not a plain value: {v!r}")


def _canonical(v):
    """Numbers as floats (1 and 1.0 are the same parameter), containers recursively."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, dict):
        return {str(k): _canonical(x) for k, x in sorted(v.items())}
    if isinstance(v, (list, tuple)):
        return [_canonical(x) for x in v]
    return repr(v)


def point_id(parameters: dict) -> str:
    """16 hex digits of the SHA-256 of the canonical parameter set: the point's file name."""
    text = json.dumps({"schema": _SCHEMA, "parameters": _canonical(parameters)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _make_point(base, index, values):
    cfg = copy.deepcopy(base)
    for name, value in values.items():
        table, key = _table_of(name, base)
        cfg[table][key] = value
    try:
        params = full_parameters(cfg)
    except (ValueError, TypeError, NotImplementedError) as err:
        return Point(index=index, values=values, config=cfg, parameters=None,
                     point_id="invalid-" + point_id(cfg), error=f"{type(err).__name__}: {err}")
    return Point(index=index, values=values, config=cfg, parameters=params, point_id=point_id(params))


def make_spec(base, over=None, points=None) -> SweepSpec:
    """The sweep's points: the product of the axes in ``over`` (name -> list of values, in
    order) or the explicit ``points`` (a list of name -> value dicts)."""
    cfg = base_config(base)
    if (over is None) == (points is None):
        raise ValueError("give exactly one of over= (a grid of axes) or points= (a list of points)")
    if over is not None:
        if not isinstance(over, dict) or not over:
            raise TypeError("over must be a non-empty dict: parameter name -> list of values")
        axes = {}
        for name, values in over.items():
            _table_of(name, cfg)
            if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
                raise TypeError(f"over[{name!r}] must be a list of values, got {values!r}")
            values = [v.item() if hasattr(v, "item") else v for v in values]
            if not values:
                raise ValueError(f"over[{name!r}] is empty")
            if len(set(map(repr, values))) != len(values):
                raise ValueError(f"over[{name!r}] repeats a value: {values}")
            axes[name] = values
        dims = tuple(axes)
        pts = tuple(_make_point(cfg, idx, {d: axes[d][i] for d, i in zip(dims, idx)})
                    for idx in itertools.product(*(range(len(axes[d])) for d in dims)))
        kind = "grid"
    else:
        if not isinstance(points, (list, tuple)) or not points or not all(isinstance(p, dict) for p in points):
            raise TypeError("points must be a non-empty list of dicts: parameter name -> value")
        names = list(dict.fromkeys(k for p in points for k in p))
        for name in names:
            _table_of(name, cfg)
        axes = {n: [p.get(n, math.nan) for p in points] for n in names}
        dims = ("point",)
        pts = tuple(_make_point(cfg, (i,), dict(p)) for i, p in enumerate(points))
        kind = "list"
    ids = [p.point_id for p in pts]
    if len(set(ids)) != len(ids):
        raise ValueError("two sweep points have the same full parameter set")
    return SweepSpec(base=cfg, kind=kind, dims=dims, axes=axes, points=pts)


_OPTIONS = {"discover", "engine", "discover_options", "compilation_cache"}


def read_sweep(path):
    """A sweep file -> keyword arguments of :func:`jaxpnp.sweep` (``base``, ``over`` or
    ``points``, and the ``[options]`` table: discover, engine, ...).

    ``base = "run.toml"`` (relative to the sweep file), a shipped parameter set
    (``base = "paper_case"``) or ``[base.electrolyte]`` ... tables;
    ``[over]``: axes of a grid product (name = [values]); or ``[[points]]``: one table per point.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"sweep file not found: {path}")
    with open(path, "rb") as fh:
        cfg = tomllib.load(fh)
    unknown = set(cfg) - {"base", "over", "points", "options"}
    if unknown:
        raise ValueError(f"unknown key(s) in {path}: {sorted(unknown)}; allowed: base, over, points, options")
    if "base" not in cfg:
        raise ValueError(f"{path}: no base case (base = \"run.toml\" or [base.*] tables)")
    options = dict(cfg.get("options", {}))
    bad = set(options) - _OPTIONS
    if bad:
        raise ValueError(f"unknown key(s) in [options] of {path}: {sorted(bad)}; allowed: {sorted(_OPTIONS)}")
    base = cfg["base"]
    if isinstance(base, str) and (path.parent / base).is_file():
        base = path.parent / base  # else the name of a shipped parameter set, or not found later
    out = dict(base=base, **options)
    if "over" in cfg:
        out["over"] = cfg["over"]
    if "points" in cfg:
        out["points"] = cfg["points"]
    return out
