"""One Dataset-attribute schema for a protocol, written and read by one pair of functions.

Both the mPNP Datasets (``jaxpnp.simulate``) and the circuit Datasets
(``circuits.simulate``) carry ``attrs["protocol"]`` (the class name), the protocol's own
fields under their own names (``v_min``, ``v_max``, ``scan_rate_V_s``, ``cycles``,
``v_step``, ``current_density_A_m2``, ...; SI) and ``duration_s`` (s).
"""

from __future__ import annotations

import dataclasses
import numbers

from ._protocol import CV, AbstractProtocol, Galvanostatic, PotentialStep, Sine

PROTOCOLS = {cls.__name__: cls for cls in (CV, PotentialStep, Galvanostatic, Sine)}


def _fields(cls):
    return [f for f in dataclasses.fields(cls) if f.init]


def protocol_attrs(protocol: AbstractProtocol) -> dict:
    """The attributes that describe ``protocol`` on a Dataset (plain numbers and strings)."""
    if not isinstance(protocol, AbstractProtocol):
        raise TypeError(f"protocol_attrs needs a jaxpnp protocol, got {type(protocol).__name__}")
    attrs = {"protocol": type(protocol).__name__, "duration_s": float(protocol.duration)}
    for f in _fields(type(protocol)):
        value = getattr(protocol, f.name)
        if isinstance(value, bool) or not isinstance(value, numbers.Number) and not hasattr(value, "item"):
            continue
        attrs[f.name] = int(value) if isinstance(f.default, int) and not isinstance(f.default, bool) else float(value)
    return attrs


def protocol_from_attrs(attrs) -> AbstractProtocol:
    """The protocol :func:`protocol_attrs` described (ValueError if ``attrs`` name none)."""
    name = attrs.get("protocol")
    if name not in PROTOCOLS:
        raise ValueError(f"attrs describe no known protocol (attrs['protocol'] = {name!r}; "
                         f"known: {sorted(PROTOCOLS)})")
    cls = PROTOCOLS[name]
    kwargs = {}
    for f in _fields(cls):
        if f.name in attrs:
            value = attrs[f.name]
            kwargs[f.name] = int(value) if isinstance(f.default, int) and not isinstance(f.default, bool) \
                else float(value)
    return cls(**kwargs)
