"""Local float64: the solver enables x64 inside its own calls, not on import."""

from __future__ import annotations

import contextlib

import jax


@contextlib.contextmanager
def float64():
    """Run the enclosed JAX code in float64 without changing the global default."""
    if jax.config.jax_enable_x64:
        yield
    else:
        with jax.enable_x64(True):
            yield
