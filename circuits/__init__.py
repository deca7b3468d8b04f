"""circuits: nano-circuitry (NCM) and transmission-line (TLM) models of nanoslit electrodes.

SI at every public boundary (ohm m^2, F/m^2, C/m^2, A/m^2 per projected electrode area).
"""

from ._ncm import (
    NCM,
    TLM,
    AbstractLadder,
    AbstractTransSlitLaw,
    ConstantResistance,
    DynamicResistance,
    ResistanceLaw,
)
from ._fit import FitResult, fit, infer_protocol
from ._impedance import equilibrium_resistances, impedance
from ._simulate import Solution, simulate, solve, to_dataset

__all__ = [
    "AbstractLadder",
    "AbstractTransSlitLaw",
    "ConstantResistance",
    "FitResult",
    "DynamicResistance",
    "NCM",
    "ResistanceLaw",
    "Solution",
    "TLM",
    "equilibrium_resistances",
    "fit",
    "infer_protocol",
    "impedance",
    "simulate",
    "solve",
    "to_dataset",
]
