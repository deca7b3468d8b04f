"""Batches of circuit parameter sets split over the local devices (``jax.sharding``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec


def sharded_vmap(fn, devices=None):
    """``jax.jit(jax.vmap(fn))`` with the batch split over ``devices`` (default: all local ones).

    Every argument is batched along its leading axis (same length). With several devices
    the batch is padded to a multiple of their number (repeating its last entry) and each
    device integrates its share (``jax.shard_map``: the batched solver's custom calls stay
    local, no cross-device traffic inside); the outputs are trimmed back. With one device
    it is exactly ``jax.jit(jax.vmap(fn))``.
    """
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices must name at least one device")
    batched = jax.vmap(fn)
    if len(devices) > 1:
        mesh = Mesh(np.asarray(devices), ("batch",))
        batched = jax.shard_map(batched, mesh=mesh, in_specs=PartitionSpec("batch"),
                                out_specs=PartitionSpec("batch"), check_vma=False)
    compiled = jax.jit(batched)

    def run(*args):
        leaves = jax.tree_util.tree_leaves(args)
        sizes = {jnp.shape(a)[0] if jnp.ndim(a) else None for a in leaves}
        if len(sizes) != 1 or None in sizes:
            raise ValueError(f"every argument needs the same leading (batch) axis, got sizes {sorted(map(str, sizes))}")
        n = sizes.pop()
        pad = (-n) % len(devices)
        if pad:
            args = jax.tree_util.tree_map(
                lambda a: jnp.concatenate([jnp.asarray(a), jnp.repeat(jnp.asarray(a)[-1:], pad, axis=0)]), args)
        out = compiled(*args)
        return jax.tree_util.tree_map(lambda x: x[:n], out) if pad else out

    return run
