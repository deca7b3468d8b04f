"""circuits: nano-circuitry (NCM) and transmission-line (TLM) models of nanoslit electrodes.

SI at every public boundary (ohm m^2, F/m^2, C/m^2, A/m^2 per projected electrode area).
"""

from ._ncm import (
    NCM,
    TLM,
    AbstractCapacitor,
    AbstractLadder,
    AbstractTransSlitLaw,
    BikermanCapacitor,
    ConstantResistance,
    DynamicResistance,
    LinearCapacitor,
    ResistanceLaw,
    TabulatedCapacitor,
)
from ._extract import (FROM_MPNP_KINDS, Extraction, OpenSpaceLaw, at_depth, equilibrium_capacitor, equilibrium_curves, extract,
                       from_mpnp, node_potentials, open_space_law, separator_resistance)
from ._fit import SCALED_LAW_PARAMS, FitResult, Identifiability, ScaledLaw, fit, identifiability, infer_protocol, scaled_laws
from ._salt import (AbstractSaltLinks, AbstractSaltStorage, CapacitorStorage, ChargeLawLinks, DonnanStorage,
                    IonContentLinks, PlanarStorage, SaltNCM, SplitStorage, SaltSolution, salt_to_dataset, simulate_salt, solve_salt)
from ._salt_ladder import SaltLadder, SaltLadderSolution, salt_ladder_to_dataset, simulate_salt_ladder, solve_salt_ladder
from ._salt_extract import (node_potential_links, region_volumes, salt_ladder_from_mpnp, species_potential_links,
                            uptake_tables)
from ._impedance import equilibrium_resistances, impedance
from ._simulate import Solution, simulate, solve, step_grid, to_dataset
from ._sharding import sharded_vmap
from ._sweeps import cv_asymmetry, passed_q_max, peak_map
from . import plot

__all__ = [
    "SaltLadder",
    "SaltLadderSolution",
    "salt_ladder_to_dataset",
    "simulate_salt_ladder",
    "solve_salt_ladder",
    "node_potential_links",
    "salt_ladder_from_mpnp",
    "species_potential_links",
    "uptake_tables",
    "region_volumes",
    "AbstractSaltLinks",
    "AbstractSaltStorage",
    "CapacitorStorage",
    "ChargeLawLinks",
    "DonnanStorage",
    "IonContentLinks",
    "PlanarStorage",
    "SaltNCM",
    "SplitStorage",
    "SaltSolution",
    "salt_to_dataset",
    "simulate_salt",
    "solve_salt",
    "Extraction",
    "at_depth",
    "FROM_MPNP_KINDS",
    "OpenSpaceLaw",
    "equilibrium_capacitor",
    "equilibrium_curves",
    "extract",
    "from_mpnp",
    "node_potentials",
    "open_space_law",
    "separator_resistance",
    "AbstractCapacitor",
    "BikermanCapacitor",
    "LinearCapacitor",
    "TabulatedCapacitor",
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
    "cv_asymmetry",
    "fit",
    "identifiability",
    "scaled_laws",
    "ScaledLaw",
    "SCALED_LAW_PARAMS",
    "Identifiability",
    "infer_protocol",
    "impedance",
    "passed_q_max",
    "peak_map",
    "sharded_vmap",
    "plot",
    "simulate",
    "solve",
    "step_grid",
    "to_dataset",
]
