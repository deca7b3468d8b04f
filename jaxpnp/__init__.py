"""jaxpnp: differentiable mPNP simulation of ion transport in nanoslit electrodes."""

from ._electrolyte import Electrolyte
from ._equilibrium import EquilibriumError, equilibrium
from ._geometry import Electrode
from ._impedance import blocking_cell_impedance, impedance
from ._io import load, read_config, save
from ._precision import float64
from ._protocol import CV, AbstractProtocol, Galvanostatic, PotentialStep, Sine
from ._protocol_attrs import protocol_attrs, protocol_from_attrs
from ._simulate import SimulationError, build_model, differentiable_run, simulate, validate

__all__ = [
    "AbstractProtocol",
    "CV",
    "Electrode",
    "Electrolyte",
    "EquilibriumError",
    "Galvanostatic",
    "PotentialStep",
    "SimulationError",
    "Sine",
    "build_model",
    "differentiable_run",
    "equilibrium",
    "blocking_cell_impedance",
    "float64",
    "impedance",
    "load",
    "protocol_attrs",
    "protocol_from_attrs",
    "read_config",
    "save",
    "simulate",
    "validate",
]
__version__ = "0.1.0"
