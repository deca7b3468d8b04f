"""Electrical protocols shared by the mPNP solver and the circuit models.

All protocols speak SI: seconds, volts, amperes per square metre of projected
electrode area. The symmetric two-electrode cell sees the cell voltage
``V_m(t)``; each electrode sits at ``phi_m = V_m / 2`` against the mid-plane.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_field_types


def _traced(value) -> bool:
    """A JAX tracer (inside jit/vmap/grad): checked by the caller's concrete run, not here."""
    return isinstance(value, jax.core.Tracer)


def _require_finite(name: str, value: float) -> None:
    if not _traced(value) and not math.isfinite(float(value)):
        raise ValueError(f"{name} must be finite, got {value!r}")


class AbstractProtocol(eqx.Module):
    """A voltage or current programme over ``[0, duration]`` seconds."""

    controls: str = eqx.field(static=True, default="voltage", init=False)

    @property
    def duration(self) -> float:
        raise NotImplementedError

    @property
    def initial_cell_voltage(self) -> float:
        """Cell voltage (V) of the equilibrium the run starts from."""
        return 0.0

    @property
    def jump_times(self) -> np.ndarray:
        """Times (s) where the waveform's derivative jumps; steppers stop on them."""
        return np.zeros((0,))

    def sample_times(self, points_per_cycle: int = 200) -> np.ndarray:
        """Evenly spaced output times (s) covering the whole protocol, vertices included."""
        raise NotImplementedError


class _Cyclic(AbstractProtocol):
    """A programme of ``cycles`` periods, each a charging half then a discharging half of
    ``half_period`` seconds: the period, the jump times, the charging half-cycle and the
    sample times, written once for every cyclic protocol."""

    @property
    def half_period(self) -> float:
        raise NotImplementedError

    @property
    def period(self) -> float:
        return 2.0 * self.half_period

    @property
    def duration(self) -> float:
        return self.cycles * self.period

    @property
    def jump_times(self) -> np.ndarray:
        return self.half_period * np.arange(1, 2 * self.cycles)

    def charging(self, t):
        """True on the charging halves (the first half of every period)."""
        phase = jnp.mod(jnp.asarray(t) / self.period, 1.0)
        return phase < 0.5

    def sample_times(self, points_per_cycle: int = 200) -> np.ndarray:
        n = max(2, int(points_per_cycle)) * self.cycles
        return np.linspace(0.0, self.duration, n + 1)


class CV(_Cyclic):
    """Triangular cyclic voltammetry of the cell voltage.

    ``v_min -> v_max -> v_min`` (V), repeated ``cycles`` times at ``scan_rate_V_s``
    (V/s). The cell starts at ``v_min`` in equilibrium.
    """

    v_min: float = 0.0
    v_max: float = 1.0
    scan_rate_V_s: float = 1e8
    cycles: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        check_field_types(self)
        for name in ("v_min", "v_max", "scan_rate_V_s"):
            _require_finite(name, getattr(self, name))
        # a traced number (e.g. a scan rate under jax.vmap) is checked by its concrete run
        if not (_traced(self.v_max) or _traced(self.v_min)) and not self.v_max > self.v_min:
            raise ValueError(f"CV needs v_max > v_min, got v_min={self.v_min}, v_max={self.v_max}")
        if not _traced(self.scan_rate_V_s) and not self.scan_rate_V_s > 0:
            raise ValueError(f"CV scan_rate_V_s must be positive, got {self.scan_rate_V_s}")
        if int(self.cycles) < 1:
            raise ValueError(f"CV cycles must be >= 1, got {self.cycles}")

    @property
    def initial_cell_voltage(self) -> float:
        return float(self.v_min)

    @property
    def half_period(self) -> float:
        """Seconds for one sweep from v_min to v_max."""
        return (self.v_max - self.v_min) / self.scan_rate_V_s

    def cell_voltage(self, t):
        """Cell voltage V_m(t) in volts (t in seconds; array or tracer)."""
        phase = jnp.mod(jnp.asarray(t) / self.period, 1.0)
        tri = 1.0 - jnp.abs(2.0 * phase - 1.0)
        return self.v_min + (self.v_max - self.v_min) * tri

    def electrode_potential(self, t):
        """Electrode potential phi_m(t) = V_m(t) / 2 in volts."""
        return 0.5 * self.cell_voltage(t)


class PotentialStep(AbstractProtocol):
    """Cell voltage held at ``v_step`` (V) for ``duration_s`` after starting in equilibrium at ``v_initial``.

    ``rise_time_s > 0`` replaces the jump by a linear ramp (smoother for stiff solvers).
    """

    v_step: float = 0.5
    duration_s: float = 1e-9
    v_initial: float = 0.0
    rise_time_s: float = 0.0

    def __check_init__(self):
        check_field_types(self)
        for name in ("v_step", "duration_s", "v_initial", "rise_time_s"):
            _require_finite(name, getattr(self, name))
        if not self.duration_s > 0:
            raise ValueError(f"PotentialStep duration_s must be positive, got {self.duration_s}")
        if self.rise_time_s < 0 or self.rise_time_s >= self.duration_s:
            raise ValueError("PotentialStep rise_time_s must lie in [0, duration_s)")

    @property
    def initial_cell_voltage(self) -> float:
        return float(self.v_initial)

    @property
    def duration(self) -> float:
        return float(self.duration_s)

    @property
    def jump_times(self) -> np.ndarray:
        return np.array([self.rise_time_s]) if self.rise_time_s > 0 else np.zeros((0,))

    def cell_voltage(self, t):
        t = jnp.asarray(t)
        ramp = jnp.clip(t / jnp.where(self.rise_time_s > 0, self.rise_time_s, 1.0), 0.0, 1.0)
        frac = jnp.where(self.rise_time_s > 0, ramp, jnp.where(t >= 0.0, 1.0, 0.0))
        return self.v_initial + (self.v_step - self.v_initial) * frac

    def electrode_potential(self, t):
        return 0.5 * self.cell_voltage(t)

    def charging(self, t):
        return jnp.full(jnp.shape(t), self.v_step >= self.v_initial)

    def sample_times(self, points_per_cycle: int = 200) -> np.ndarray:
        return np.linspace(0.0, self.duration, max(2, int(points_per_cycle)) + 1)


class Sine(_Cyclic):
    """Cell voltage ``v_bias + amplitude_V sin(2 pi frequency_Hz t)`` (V) for ``cycles`` periods.

    Starts in equilibrium at ``v_bias`` (V); for small-signal (impedance) checks against
    ``jaxpnp.impedance`` keep ``amplitude_V`` well below kT/e.
    """

    v_bias: float = 0.0
    amplitude_V: float = 0.01
    frequency_Hz: float = 1e8
    cycles: int = eqx.field(static=True, default=3)

    def __check_init__(self):
        check_field_types(self)
        for name in ("v_bias", "amplitude_V", "frequency_Hz"):
            _require_finite(name, getattr(self, name))
        if not self.amplitude_V > 0:
            raise ValueError(f"Sine amplitude_V must be positive, got {self.amplitude_V}")
        if not self.frequency_Hz > 0:
            raise ValueError(f"Sine frequency_Hz must be positive, got {self.frequency_Hz}")
        if int(self.cycles) < 1:
            raise ValueError(f"Sine cycles must be >= 1, got {self.cycles}")

    @property
    def initial_cell_voltage(self) -> float:
        return float(self.v_bias)

    @property
    def half_period(self) -> float:
        # no derivative jumps; the half periods (jump_times) line the solver's segments up with the cycles
        return 0.5 / self.frequency_Hz

    def cell_voltage(self, t):
        return self.v_bias + self.amplitude_V * jnp.sin(2.0 * jnp.pi * self.frequency_Hz * jnp.asarray(t))

    def electrode_potential(self, t):
        return 0.5 * self.cell_voltage(t)

    def charging(self, t):
        return jnp.cos(2.0 * jnp.pi * self.frequency_Hz * jnp.asarray(t)) > 0


class Galvanostatic(_Cyclic):
    """Constant-current charge then discharge: ``+current`` for ``charge_time_s``, then ``-current``.

    ``current_density_A_m2`` is per projected electrode area; repeated ``cycles`` times.
    Only current-driven models (``circuits``) accept it.
    """

    controls: str = eqx.field(static=True, default="current", init=False)
    current_density_A_m2: float = 1.0
    charge_time_s: float = 1e-3
    cycles: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        check_field_types(self)
        for name in ("current_density_A_m2", "charge_time_s"):
            _require_finite(name, getattr(self, name))
        if not self.current_density_A_m2 > 0:
            raise ValueError("Galvanostatic current_density_A_m2 must be positive")
        if not self.charge_time_s > 0:
            raise ValueError("Galvanostatic charge_time_s must be positive")
        if int(self.cycles) < 1:
            raise ValueError(f"Galvanostatic cycles must be >= 1, got {self.cycles}")

    @property
    def half_period(self) -> float:
        return self.charge_time_s

    def current_density(self, t):
        """Applied current density (A/m^2) at time t (s)."""
        phase = jnp.mod(jnp.asarray(t) / self.period, 1.0)
        return jnp.where(phase < 0.5, 1.0, -1.0) * self.current_density_A_m2
