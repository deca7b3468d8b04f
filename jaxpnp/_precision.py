"""Local float64: the solver enables x64 for the duration of its own calls, not on import.

The flag is switched on globally for the duration of the call and restored afterwards
(a thread-local ``jax.enable_x64`` context would not reach the host callbacks of the
sparse preconditioner, which run on other threads).
"""

from __future__ import annotations

import contextlib

import jax


@contextlib.contextmanager
def float64():
    """Run the enclosed JAX code in float64, restoring the previous default afterwards."""
    if jax.config.jax_enable_x64:
        yield
        return
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", False)
