"""discovery: equation discovery of trans-slit current-voltage laws by symbolic regression.

Engines (scikit-learn style, each ``fit(X, y, names)`` -> ``.law_``, a :class:`Law`):
``OperonEngine`` (default, pip-only), ``PySREngine`` (optional extra ``jaxpnp[pysr]``;
see :mod:`discovery.engines.pysr` to enable), ``SparseEngine`` (STLSQ cross-check).
Pipeline: :func:`prepare` (Dataset -> normalised integrals per link),
:func:`trans_slit_law` (law per link, R(t), R_c, gamma), :func:`sweep` (Figure 2c/S9 table).

Importing this package is cheap: submodules load on first attribute access.
"""

import importlib

_EXPORTS = {
    "Law": "._law",
    "JaxLaw": "._law",
    "Parsimony": "._selection",
    "discover": "._discover",
    "make_engine": "._discover",
    "AbstractEngine": ".engines",
    "EngineUnavailableError": ".engines",
    "OperonEngine": ".engines",
    "PySREngine": ".engines",
    "SparseEngine": ".engines",
    "prepare": "._prepare",
    "charging_window": "._prepare",
    "PreparedLinks": "._prepare",
    "trans_slit_law": "._trans_slit",
    "TransSlitResult": "._trans_slit",
    "LinkLaw": "._trans_slit",
    "integral_to_differential": "._trans_slit",
    "paper_form": "._trans_slit",
    "paper_gamma": "._trans_slit",
    "paper_form_projection": "._trans_slit",
    "paper_form_resistance": "._trans_slit",
    "paper_parameters": "._trans_slit",
    "quadratic_integral_fit": "._trans_slit",
    "same_structure": "._structure",
    "sweep": "._sweep",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'discovery' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
