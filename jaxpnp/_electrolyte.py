"""Electrolyte parameters (SI at the boundary) and the derived natural scales."""

from __future__ import annotations

import math

import equinox as eqx

from ._checks import check_field_types

ELEMENTARY_CHARGE = 1.602176634e-19  # C
BOLTZMANN = 1.380649e-23  # J/K
AVOGADRO = 6.02214076e23  # 1/mol
VACUUM_PERMITTIVITY = 8.8541878128e-12  # F/m


def _positive(name, value):
    try:
        v = float(value)
    except TypeError:  # traced value inside jax.grad: checked by the caller's concrete run
        return
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"Electrolyte.{name} must be a positive finite number, got {value!r}")


class Electrolyte(eqx.Module):
    """Binary symmetric electrolyte (e.g. KCl) with Bikerman steric ions.

    ``concentration_M`` (mol/L), ``ion_diameter_nm`` (nm, the lattice size ``a``),
    ``diffusivity_m2_s`` (m^2/s, cations; anions too unless ``anion_diffusivity_m2_s``),
    ``relative_permittivity`` (-), ``temperature_K`` (K). Fields may be JAX scalars so
    that runs can be differentiated with respect to them.
    """

    concentration_M: float = 1.0
    ion_diameter_nm: float = 0.66
    diffusivity_m2_s: float = 2e-9
    relative_permittivity: float = 78.5
    temperature_K: float = 298.15
    anion_diffusivity_m2_s: float | None = None

    def __check_init__(self):
        check_field_types(self)
        for name in ("concentration_M", "ion_diameter_nm", "diffusivity_m2_s",
                     "relative_permittivity", "temperature_K"):
            _positive(name, getattr(self, name))
        if self.anion_diffusivity_m2_s is not None:
            _positive("anion_diffusivity_m2_s", self.anion_diffusivity_m2_s)
        try:
            nu = float(self.packing_parameter)
        except TypeError:
            return
        if nu >= 1.0:
            raise ValueError(
                f"bulk packing fraction a^3 (c+ + c-) = {nu:.3f} >= 1: ions of "
                f"{self.ion_diameter_nm} nm cannot fill {self.concentration_M} M; "
                "lower the concentration or the ion diameter")

    # ---- derived scales -------------------------------------------------
    @property
    def number_density_m3(self):
        """Bulk number concentration c0 of each ion species (1/m^3)."""
        return self.concentration_M * 1e3 * AVOGADRO

    @property
    def thermal_voltage_V(self):
        """kT/e (V)."""
        return BOLTZMANN * self.temperature_K / ELEMENTARY_CHARGE

    @property
    def permittivity_F_m(self):
        return self.relative_permittivity * VACUUM_PERMITTIVITY

    @property
    def debye_length_m(self):
        """lambda_D = sqrt(eps kT / (2 e^2 c0)) (m)."""
        return (self.permittivity_F_m * BOLTZMANN * self.temperature_K
                / (2.0 * ELEMENTARY_CHARGE ** 2 * self.number_density_m3)) ** 0.5

    @property
    def debye_time_s(self):
        """lambda_D^2 / D (s), D the cation diffusivity."""
        return self.debye_length_m ** 2 / self.diffusivity_m2_s

    @property
    def packing_parameter(self):
        """nu = 2 a^3 c0: the bulk packing fraction a^3 (c+ + c-)."""
        a = self.ion_diameter_nm * 1e-9
        return 2.0 * a ** 3 * self.number_density_m3

    @property
    def anion_to_cation_diffusivity(self):
        if self.anion_diffusivity_m2_s is None:
            return 1.0
        return self.anion_diffusivity_m2_s / self.diffusivity_m2_s

    @property
    def conductivity_S_m(self):
        """Bulk ionic conductivity kappa = e^2 c0 (D+ + D-) / kT (S/m), Nernst-Einstein."""
        d_minus = self.diffusivity_m2_s if self.anion_diffusivity_m2_s is None else self.anion_diffusivity_m2_s
        return ELEMENTARY_CHARGE ** 2 * self.number_density_m3 * (self.diffusivity_m2_s + d_minus) / (
            BOLTZMANN * self.temperature_K)

    @property
    def charge_scale_C_m2(self):
        """e c0 lambda_D (C/m^2): the unit of dimensionless surface charge."""
        return ELEMENTARY_CHARGE * self.number_density_m3 * self.debye_length_m

    def bikerman_charge_C_m2(self, electrode_potential_V):
        """Analytic diffuse-layer charge (C/m^2) of a flat electrode against the bulk (PHYSICS.md 1).

        This is the charge of the electrode; the ionic charge is its negative.
        """
        import numpy as np

        phi = np.asarray(electrode_potential_V) / self.thermal_voltage_V
        nu = self.packing_parameter
        ionic = -np.sign(phi) * 2.0 * np.sqrt(
            (2.0 / nu) * np.log1p(2.0 * nu * np.sinh(phi / 2.0) ** 2))
        return -ionic * self.charge_scale_C_m2
