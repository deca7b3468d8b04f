"""Type checks of the public constructors: a clear TypeError naming the argument, before any use.

Each eqx.Module calls :func:`check_field_types` first in its ``__check_init__``; the
field annotations (``float``, ``int``, ``str``, ``... | None``) say what is accepted.
"""

from __future__ import annotations

import dataclasses
import numbers

import jax
import numpy as np


class ParameterTypeError(TypeError, ValueError):
    """A constructor argument of the wrong type. A TypeError, and a ValueError too, since
    bad input to jaxpnp is reported as ValueError everywhere else (``except ValueError`` holds)."""


def _is_real(value) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, numbers.Real):
        return True
    if isinstance(value, jax.core.Tracer):  # under jax.grad/vmap: checked on the concrete run
        return True
    dtype = getattr(value, "dtype", None)
    return (dtype is not None and getattr(value, "ndim", None) == 0
            and (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)))


def _is_integer(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


_CHECKS = {"float": (_is_real, "a real number"), "int": (_is_integer, "an integer"),
           "str": (lambda v: isinstance(v, str), "a string")}


def check_field_types(obj) -> None:
    """:class:`ParameterTypeError` ``"Owner.field must be a real number, got '1' (str)"`` for the first field of
    ``obj`` whose value does not fit its annotation."""
    owner = type(obj).__name__
    for f in dataclasses.fields(obj):
        if not f.init:
            continue
        annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        kinds = [k.strip() for k in annotation.split("|")]
        value = getattr(obj, f.name)
        if value is None and "None" in kinds:
            continue
        known = [k for k in kinds if k in _CHECKS]
        if not known:
            continue
        if not any(_CHECKS[k][0](value) for k in known):
            wanted = " or ".join(_CHECKS[k][1] for k in known) + (" or None" if "None" in kinds else "")
            raise ParameterTypeError(f"{owner}.{f.name} must be {wanted}, got {value!r} ({type(value).__name__})")


def real_vector(values, name: str, what: str, *, positive: bool = False) -> np.ndarray:
    """``values`` as a non-empty 1-D float array (a scalar becomes length 1); ValueError naming
    ``name`` and ``what`` (e.g. "electrode potentials in V") otherwise."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 1D sequence of {what}, got {values!r}") from None
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1D sequence of {what}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr) & ((arr > 0) if positive else True)):
        raise ValueError(f"{name} must be {'positive and ' if positive else ''}finite")
    return arr
