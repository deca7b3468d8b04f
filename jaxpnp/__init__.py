"""jaxpnp: differentiable mPNP simulation of ion transport in nanoslit electrodes."""

from ._electrolyte import Electrolyte
from ._precision import float64
from ._protocol import CV, AbstractProtocol, Galvanostatic, PotentialStep

__all__ = [
    "AbstractProtocol",
    "CV",
    "Electrolyte",
    "Galvanostatic",
    "PotentialStep",
    "float64",
]
__version__ = "0.1.0"
