"""circuits.sharded_vmap: NCM parameter sets split over the local devices.

This machine has one CPU device, so the several-device case runs in a subprocess with
XLA's host platform split into 2 devices (--xla_force_host_platform_device_count).
"""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np

import circuits
import jaxpnp

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    import circuits, jaxpnp

    cv = jaxpnp.CV(v_max=1.0, scan_rate_V_s=1e8)

    def one(r_c, gamma):
        model = circuits.NCM(4, 1e-9, 0.05, 0.1, r_c, gamma)
        return circuits.solve(model, cv, method="fast", points_per_cycle=40).current_density

    with jaxpnp.float64():
        out = {"devices": len(jax.devices())}
        for n in (5,):  # padded to 6, a multiple of the 2 devices, and trimmed back
            r, g = jnp.linspace(1e-9, 5e-9, n), jnp.linspace(0.1, 0.6, n)
            plain = np.asarray(jax.jit(jax.vmap(one))(r, g))
            sharded = circuits.sharded_vmap(one)(r, g)
            out[str(n)] = {"diff": float(np.abs(np.asarray(sharded) - plain).max()),
                           "peak": float(np.abs(plain).max()), "shape": list(sharded.shape),
                           "on": len(sharded.sharding.device_set)}
    json.dump(out, sys.stdout)
""")


def test_sharded_vmap_on_two_devices_equals_vmap():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    run = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    import json

    out = json.loads(run.stdout)
    assert out["devices"] == 2
    assert out["5"]["shape"] == [5, 41]
    assert out["5"]["diff"] <= 1e-12 * out["5"]["peak"]
    assert out["5"]["on"] == 2  # computed on both devices


def test_sharded_vmap_on_one_device_and_bad_batch():
    f = circuits.sharded_vmap(lambda a, b: a * b + jnp.sin(a), devices=jax.local_devices()[:1])
    x, y = jnp.arange(3.0), jnp.arange(3.0) + 1
    np.testing.assert_array_equal(np.asarray(f(x, y)), np.asarray(x * y + jnp.sin(x)))
    try:
        f(x, jnp.arange(4.0))
    except ValueError as err:
        assert "leading (batch) axis" in str(err)
    else:
        raise AssertionError("mismatched batch sizes accepted")
