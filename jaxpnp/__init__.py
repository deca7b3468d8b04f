"""jaxpnp: differentiable mPNP simulation of ion transport in nanoslit electrodes."""

from ._checks import ParameterTypeError
from ._analysis import flux_relations, nrmse, sign_agreement
from ._electrolyte import Electrolyte
from ._equilibrium import EquilibriumError, equilibrium
from ._geometry import Electrode, snap_to_grid
from ._impedance import blocking_cell_impedance, impedance
from ._io import load, named_configs, read_config, save, write_config
from ._precision import float64
from ._protocol import CV, AbstractProtocol, Galvanostatic, PotentialStep, Sine
from ._protocol_attrs import protocol_attrs, protocol_from_attrs
from ._simulate import SimulationError, build_model, differentiable_run, simulate, validate
from ._units import to_cf
from ._version import __version__

__all__ = [
    "AbstractProtocol",
    "CV",
    "Electrode",
    "Electrolyte",
    "EquilibriumError",
    "Galvanostatic",
    "ParameterTypeError",
    "PotentialStep",
    "SimulationError",
    "Sine",
    "blocking_cell_impedance",
    "build_model",
    "differentiable_run",
    "equilibrium",
    "float64",
    "flux_relations",
    "impedance",
    "nrmse",
    "sign_agreement",
    "load",
    "named_configs",
    "protocol_attrs",
    "protocol_from_attrs",
    "read_config",
    "save",
    "simulate",
    "snap_to_grid",
    "to_cf",
    "validate",
    "write_config",
    # application layer (jaxpnp.sweeps, loaded on first use: it imports Dask and discovery)
    "open_sweep",
    "read_sweep",
    "sweep",
]

_SWEEPS = ("open_sweep", "read_sweep", "sweep")


def __getattr__(name):
    if name in _SWEEPS:
        from . import sweeps

        return getattr(sweeps, name)
    raise AttributeError(f"module 'jaxpnp' has no attribute {name!r}")
