"""A jaxpnp protocol turned into arrays the compiled solver can take without recompiling.

The protocol's own waveform is sampled at its knots (0, its jump times, its end):
all jaxpnp protocols are piecewise linear (voltage) or piecewise constant (current)
between them, which :func:`drive_from_protocol` verifies against the protocol's own
samples. Time inside the solver is ``tau = t / duration`` in [0, 1].
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


class Drive(eqx.Module):
    """Scaled forcing: ``knots`` (tau), and the electrode-potential change (V, at knots) or the current (A/m^2, per segment)."""

    knots: Float[Array, " k"]
    values: Float[Array, " m"]
    duration_s: Float[Array, ""]
    swing: Float[Array, ""]  # V for voltage control; peak charge (C/m^2) for current control
    phi_initial: Float[Array, ""]  # V, the electrode's equilibrium potential at t = 0
    controls: str = eqx.field(static=True)

    def __call__(self, tau):
        """Electrode potential minus its initial value (V), or applied current (A/m^2), at scaled time tau."""
        if self.controls == "voltage":
            return jnp.interp(tau, self.knots, self.values)
        segment = jnp.clip(jnp.searchsorted(self.knots, tau, side="right") - 1, 0, self.values.shape[0] - 1)
        return self.values[segment]

    def segment_value(self, tau_start, tau_end):
        """Forcing at both ends of a step that lies inside one segment."""
        if self.controls == "voltage":
            return self(tau_start), self(tau_end)
        mid = self(0.5 * (tau_start + tau_end))
        return mid, mid


def _initial_potential(protocol) -> float:
    if hasattr(protocol, "v_initial"):  # a potential step starts in equilibrium at v_initial
        return 0.5 * float(protocol.v_initial)
    return float(protocol.electrode_potential(0.0))


def drive_from_protocol(protocol) -> Drive:
    """Sample ``protocol`` at its knots; ValueError if it is not piecewise linear between them."""
    # The protocol is concrete even when the caller is being traced (jit/grad of a fit loss).
    with jax.ensure_compile_time_eval():
        return _drive_from_protocol(protocol)


def _drive_from_protocol(protocol) -> Drive:
    duration = float(protocol.duration)
    knots_s = np.unique(np.concatenate([[0.0], np.asarray(protocol.jump_times, dtype=float), [duration]]))
    knots = knots_s / duration
    check_s = np.asarray(protocol.sample_times(400), dtype=float)
    if protocol.controls == "voltage":
        phi0 = _initial_potential(protocol)
        values = np.asarray(protocol.electrode_potential(knots_s), dtype=float) - phi0
        expected = np.asarray(protocol.electrode_potential(check_s), dtype=float) - phi0
        got = np.interp(check_s / duration, knots, values)
        inside = check_s > 0  # a step without ramp jumps at t = 0 by design
        scale = max(np.max(np.abs(values)), 1e-300)
        if np.max(np.abs(got - expected)[inside], initial=0.0) > 1e-9 * scale:
            raise ValueError(f"{type(protocol).__name__}: waveform is not piecewise linear between its jump times")
        swing = float(np.max(np.abs(values)))
        if swing == 0.0:
            raise ValueError("protocol never moves the electrode potential: nothing to simulate")
    elif protocol.controls == "current":
        phi0 = 0.0
        mids = 0.5 * (knots_s[1:] + knots_s[:-1])
        values = np.asarray(protocol.current_density(mids), dtype=float)
        expected = np.asarray(protocol.current_density(check_s), dtype=float)
        seg = np.clip(np.searchsorted(knots_s, check_s, side="right") - 1, 0, len(values) - 1)
        if np.max(np.abs(values[seg] - expected)) > 1e-9 * np.max(np.abs(values)):
            # sample times that land exactly on a jump may read either side: only flag interior mismatch
            off_knot = np.min(np.abs(check_s[:, None] - knots_s[None, :]), axis=1) > 1e-12 * duration
            if np.max(np.abs(values[seg] - expected)[off_knot], initial=0.0) > 1e-9 * np.max(np.abs(values)):
                raise ValueError(f"{type(protocol).__name__}: current is not piecewise constant between its jump times")
        swing = float(np.max(np.abs(np.cumsum(values * np.diff(knots_s)))))
    else:
        raise ValueError(f"unknown protocol control {protocol.controls!r}")
    return Drive(knots=np.asarray(knots), values=np.asarray(values), duration_s=np.asarray(duration),
                 swing=np.asarray(swing), phi_initial=np.asarray(phi0), controls=protocol.controls)


def output_times(protocol, drive: Drive, points_per_cycle: int, times) -> np.ndarray:
    """The output times (s): ``times`` checked, or the protocol's own ``points_per_cycle`` samples."""
    if times is None:
        times = np.asarray(protocol.sample_times(points_per_cycle), dtype=float)
    times = np.asarray(times, dtype=float)
    duration = float(drive.duration_s)
    if times.ndim != 1 or times.size < 2 or np.any(np.diff(times) <= 0):
        raise ValueError("times must be a strictly increasing 1-D array with at least two entries")
    if times[0] < 0 or times[-1] > duration * (1 + 1e-12):
        raise ValueError(f"times must lie in [0, {duration}] s")
    return times
