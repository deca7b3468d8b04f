"""jaxpnp: differentiable mPNP simulation of ion transport in nanoslit electrodes."""

from ._analysis import flux_relations, nrmse, sign_agreement
from ._electrolyte import Electrolyte
from ._equilibrium import EquilibriumError, equilibrium
from ._geometry import Electrode
from ._io import load, read_config, save
from ._precision import float64
from ._protocol import CV, AbstractProtocol, Galvanostatic, PotentialStep
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
    "build_model",
    "differentiable_run",
    "equilibrium",
    "float64",
    "flux_relations",
    "nrmse",
    "sign_agreement",
    "load",
    "protocol_attrs",
    "protocol_from_attrs",
    "read_config",
    "save",
    "simulate",
    "validate",
]
__version__ = "0.1.0"
