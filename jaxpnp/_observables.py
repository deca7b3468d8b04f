"""Dimensionless solver output -> xarray Dataset in SI units, with units in attrs."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import xarray as xr

from ._electrolyte import ELEMENTARY_CHARGE
from ._precision import float64
from ._protocol_attrs import protocol_attrs
from ._units import to_cf
from ._version import __version__


def _attrs(units, long_name):
    return dict(units=units, long_name=long_name)


def _cat(collected, key):
    return np.concatenate([o[key] for o in collected["obs"]]) if collected["obs"] else np.zeros((0,))


def to_dataset(model, electrolyte, electrode, protocol, grid_nm, boundary, collected, snap_t, info):
    """Package the collected segments (see ``_simulate``) as an ``xarray.Dataset``."""
    tau = float(electrolyte.debye_time_s)
    vt = float(electrolyte.thermal_voltage_V)
    q_scale = float(electrolyte.charge_scale_C_m2)  # C/m^2
    i_scale = q_scale / tau  # A/m^2
    c0_mol_m3 = float(electrolyte.concentration_M) * 1e3
    lam = float(electrolyte.debye_length_m)
    grid = model.grid
    n_reg = grid.n_regions
    if collected["ts"]:
        t = np.concatenate(collected["ts"]) * tau
    else:
        t = np.zeros((0,))
    nt = t.size
    g = lambda k: _cat(collected, k) if nt else np.zeros((0,) + ((n_reg,) if k in (
        "slit_charge", "slit_potential", "link_current") else ()))
    slit = np.arange(n_reg)
    link = g("link_current").reshape(nt, n_reg) * i_scale
    ions = (_cat(collected, "slit_ions") if nt else np.zeros((0, 2, n_reg))).reshape(nt, 2, n_reg) * c0_mol_m3 * lam
    split = (_cat(collected, "link_split") if nt else np.zeros((0, 3, n_reg))).reshape(nt, 3, n_reg) * i_scale
    ssplit = (_cat(collected, "surface_split") if nt else np.zeros((0, 3))).reshape(nt, 3) * i_scale
    data = {
        "cell_voltage": (("time",), 2.0 * g("electrode_potential") * vt,
                         _attrs("V", "cell voltage V_m = 2 phi_m")),
        "electrode_potential": (("time",), g("electrode_potential") * vt,
                                _attrs("V", "electrode potential phi_m against the mid-plane")),
        "current_density": (("time",), g("current") * i_scale,
                            _attrs("A/m^2", "current density per projected electrode area (dQ_e/dt)")),
        "electrode_charge": (("time",), g("electrode_charge") * q_scale,
                             _attrs("C/m^2", "electronic charge of the electrode per projected area")),
        "ionic_charge": (("time",), g("ionic_charge") * q_scale,
                         _attrs("C/m^2", "net ionic charge in the half cell per projected area")),
        "total_salt": (("time",), g("total_ions") * c0_mol_m3 * lam,
                       _attrs("mol/m^2", "total ions (cations + anions) per projected area")),
        "slit_potential": (("time", "slit"), g("slit_potential").reshape(nt, n_reg) * vt,
                           _attrs("V", "potential at the slit mid-point (slit 0: d/2 in front of sheet 1)")),
        "slit_charge": (("time", "slit"), g("slit_charge").reshape(nt, n_reg) * q_scale,
                        _attrs("C/m^2", "net ionic charge in the slit region per projected area")),
        "slit_cation_content": (("time", "slit"), ions[:, 0],
                                _attrs("mol/m^2", "cations in the slit region per projected area")),
        "slit_anion_content": (("time", "slit"), ions[:, 1],
                               _attrs("mol/m^2", "anions in the slit region per projected area")),
        "trans_slit_current": (("time", "slit"), link,
                               _attrs("A/m^2", "net ionic current from slit i into slit i+1 (0 at the last slit)")),
        "flux_migration": (("time", "slit"), split[:, 0],
                           _attrs("A/m^2", "migration part of the net-ion flux from slit i into slit i+1")),
        "flux_diffusion": (("time", "slit"), split[:, 1],
                           _attrs("A/m^2", "diffusion part of the net-ion flux from slit i into slit i+1")),
        "flux_steric": (("time", "slit"), split[:, 2],
                        _attrs("A/m^2", "steric part of the net-ion flux from slit i into slit i+1")),
        "surface_current": (("time",), g("surface_current") * i_scale,
                            _attrs("A/m^2", "net ionic current towards the electrode through the open-space plane")),
        "surface_flux_migration": (("time",), ssplit[:, 0], _attrs("A/m^2", "migration part at the open-space plane")),
        "surface_flux_diffusion": (("time",), ssplit[:, 1], _attrs("A/m^2", "diffusion part at the open-space plane")),
        "surface_flux_steric": (("time",), ssplit[:, 2], _attrs("A/m^2", "steric part at the open-space plane")),
        "min_concentration": (("time",), g("min_concentration") * float(electrolyte.concentration_M),
                              _attrs("M", "smallest ion concentration anywhere")),
        "max_packing_fraction": (("time",), g("max_packing"),
                                 _attrs("1", "largest local packing a^3 (c+ + c-)")),
    }
    coords = {"time": ("time", t, _attrs("s", "time")), "slit": ("slit", slit, _attrs("1", "slit index (0 = open space)"))}
    if snap_t is not None and nt and collected["ys"] and collected["ys"][0] is not None:
        ys = np.concatenate(collected["ys"])
        idx = np.unique([int(np.argmin(np.abs(t - s))) for s in snap_t])
        fields = ys[idx]
        with float64():
            pots = np.stack([np.asarray(model.potential(jnp.asarray(fields[k]),
                                                        model.electrode_potential(t[i] / tau)))
                             for k, i in enumerate(idx)])
        mask = grid.ion_node
        c_m = float(electrolyte.concentration_M)
        nan = np.where(mask, 1.0, np.nan)
        coords.update(snapshot_time=("snapshot_time", t[idx], _attrs("s", "snapshot time")),
                      x=("x", (np.arange(grid.nx) + 0.5) * grid_nm, _attrs("nm", "depth from the mid-plane")),
                      y=("y", np.arange(grid.ny) * grid_nm, _attrs("nm", "position along the sheets")))
        data["c_plus"] = (("snapshot_time", "x", "y"), fields[:, 0] * c_m * nan, _attrs("M", "cation concentration"))
        data["c_minus"] = (("snapshot_time", "x", "y"), fields[:, 1] * c_m * nan, _attrs("M", "anion concentration"))
        data["potential"] = (("snapshot_time", "x", "y"), pots * vt, _attrs("V", "electric potential"))
        data["electrolyte_mask"] = (("x", "y"), mask.astype(np.int8), _attrs("1", "1 where ions live"))
    attrs = dict(
        title="jaxpnp mPNP half-cell simulation", jaxpnp_version=__version__,
        concentration_M=float(electrolyte.concentration_M), ion_diameter_nm=float(electrolyte.ion_diameter_nm),
        diffusivity_m2_s=float(electrolyte.diffusivity_m2_s),
        anion_diffusivity_m2_s=float(electrolyte.anion_diffusivity_m2_s
                                     if electrolyte.anion_diffusivity_m2_s is not None else electrolyte.diffusivity_m2_s),
        relative_permittivity=float(electrolyte.relative_permittivity), temperature_K=float(electrolyte.temperature_K),
        debye_length_m=lam, debye_time_s=tau, thermal_voltage_V=vt, packing_parameter=float(electrolyte.packing_parameter),
        layout=electrode.layout, n_sheets=int(electrode.n_sheets), n_slits=int(electrode.n_slits),
        slit_nm=float(electrode.slit_nm), sheet_length_nm=float(electrode.sheet_length_nm),
        sheet_gap_nm=float(electrode.sheet_gap_nm), sheet_thickness_nm=float(electrode.sheet_thickness_nm),
        separator_nm=float(electrode.separator_nm), grid_nm=float(grid_nm), boundary=boundary,
        stern_capacitance_F_m2=(float(electrode.stern_capacitance_F_m2) if electrode.has_stern_layer
                                else float("inf")),  # F/m^2; inf: no Stern layer
        nx=int(grid.nx), ny=int(grid.ny), unknowns=int(2 * grid.ion_node.sum()),
    )
    attrs.update(protocol_attrs(protocol))
    attrs.update({f"snapped_{k}": float(v) for k, v in grid.snapped.items()})
    for k, v in info.items():
        attrs[f"solver_{k}" if not k.startswith("solver") else k] = v if isinstance(v, str) else float(v)
    return to_cf(xr.Dataset({k: (d, v, a) for k, (d, v, a) in data.items()},
                            coords={k: (d, v, a) for k, (d, v, a) in coords.items()}, attrs=attrs))
