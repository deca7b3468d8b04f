"""CF conventions for every Dataset we write: UDUNITS unit strings, long names, ``Conventions``.

The one units table: our notation in the code ("A/m^2", "ohm m^2", "mol/L") -> UDUNITS
("A m-2", "ohm m2", "mol L-1"), which CF readers, ``cf_xarray`` and pint (through
cf_xarray's registry: ``ds.pint.quantify(unit_registry=cf_xarray.units.units)``) parse.
"""

from __future__ import annotations

import re

import numpy as np
import xarray as xr

CONVENTIONS = "CF-1.10"

# names UDUNITS spells otherwise (values are kept: concentrations stay in mol/L)
_SPECIAL = {"": "1", "-": "1", "M": "mol L-1", "mol/L": "mol L-1"}
_TOKEN = re.compile(r"^([A-Za-z]+)(?:\^|\*\*)?(-?\d+)?$")


def udunits(units: str) -> str:
    """A unit in our notation as a UDUNITS string: ``"A/m^2"`` -> ``"A m-2"``, ``"V/s"`` ->
    ``"V s-1"``, ``"m^2/s"`` -> ``"m2 s-1"``, ``"M"`` -> ``"mol L-1"``; UDUNITS input is returned as is."""
    u = " ".join(str(units).split())
    if u in _SPECIAL:
        return _SPECIAL[u]
    num, *den = [part.strip() for part in u.split("/")]
    out = []
    for sign, part in [(1, num)] + [(-1, d) for d in den]:
        for token in part.replace("**", "^").replace("*", " ").split():
            if token == "1":
                continue
            m = _TOKEN.match(token)
            if m is None:
                raise ValueError(f"cannot write unit {units!r} in UDUNITS form (token {token!r})")
            exp = sign * int(m.group(2) or 1)
            out.append(m.group(1) if exp == 1 else f"{m.group(1)}{exp}")
    return " ".join(out) or "1"


def to_cf(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` following the CF conventions: every numeric variable and coordinate with a
    UDUNITS ``units`` (index coordinates without one get "1") and a ``long_name``, and the
    global ``Conventions`` attribute. Values are unchanged. Modifies ``ds`` and returns it."""
    for name, var in ds.variables.items():
        numeric = np.issubdtype(var.dtype, np.number) or np.issubdtype(var.dtype, np.bool_)
        if "units" in var.attrs:
            var.attrs["units"] = udunits(var.attrs["units"])
        elif numeric:
            var.attrs["units"] = "1"
        if numeric or "long_name" not in var.attrs:
            var.attrs.setdefault("long_name", str(name).replace("_", " "))
    ds.attrs["Conventions"] = CONVENTIONS
    return ds
