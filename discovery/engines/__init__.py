"""Equation-discovery engines: one estimator interface (``fit``, ``predict``, ``law_``)."""

from ._base import AbstractEngine, EngineUnavailableError
from .operon import OperonEngine
from .pysr import PySREngine
from .sparse import SparseEngine

ENGINES = {"operon": OperonEngine, "pysr": PySREngine, "sparse": SparseEngine}

__all__ = ["AbstractEngine", "ENGINES", "EngineUnavailableError", "OperonEngine", "PySREngine",
           "SparseEngine"]
