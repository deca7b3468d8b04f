"""PySR (optional extra ``jaxpnp[pysr]``): symbolic regression on the Julia backend.

Enable it with ``pip install 'jaxpnp[pysr]'`` and then, once, with internet access,
``python -c "import pysr"`` (juliacall downloads and installs Julia and the
SymbolicRegression.jl package on first import). Nothing imports pysr until this engine
is used. To stop a first import from hanging on a machine without internet, the import is
first tried in a subprocess with a time limit, ``DISCOVERY_PYSR_TIMEOUT`` seconds
(default 120); ``DISCOVERY_DISABLE_PYSR=1`` turns the engine off outright. Failures raise
:class:`discovery.EngineUnavailableError` (an ImportError) saying what went wrong.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

from .._expression import parse
from ._base import AbstractEngine, EngineUnavailableError

HOW_TO_ENABLE = ("install it with `pip install 'jaxpnp[pysr]'`, then run `python -c \"import pysr\"` "
                 "once with internet access so that juliacall can install Julia")

_probe_result = {}


def load_pysr():
    """Import and return the ``pysr`` module, or raise EngineUnavailableError."""
    if os.environ.get("DISCOVERY_DISABLE_PYSR", "").strip() not in ("", "0"):
        raise EngineUnavailableError("PySR engine disabled by DISCOVERY_DISABLE_PYSR")
    if importlib.util.find_spec("pysr") is None:
        raise EngineUnavailableError(f"pysr is not installed: {HOW_TO_ENABLE}")
    if "pysr" not in sys.modules:
        timeout = float(os.environ.get("DISCOVERY_PYSR_TIMEOUT", "120"))
        key = (sys.executable, tuple(sys.path), timeout)
        if key not in _probe_result:
            _probe_result[key] = _probe(timeout)
        problem = _probe_result[key]
        if problem:
            raise EngineUnavailableError(problem)
    try:
        import pysr
    except Exception as err:  # juliacall raises assorted errors when Julia is missing
        raise EngineUnavailableError(f"importing pysr failed ({type(err).__name__}: {err}); "
                                     f"{HOW_TO_ENABLE}") from err
    return pysr


def _probe(timeout):
    """Try ``import pysr`` in a subprocess; None when it works, else the reason."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    try:
        done = subprocess.run([sys.executable, "-c", "import pysr"], env=env, timeout=timeout,
                              capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        return (f"importing pysr did not finish within {timeout:g} s (DISCOVERY_PYSR_TIMEOUT); "
                f"it is probably trying to download Julia: {HOW_TO_ENABLE}")
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"importing pysr failed ({tail[0]}): {HOW_TO_ENABLE}"
    return None


class PySREngine(AbstractEngine):
    """PySRRegressor with ``+ - * /`` and optional ``functions`` (e.g. ``("exp", "log")``),
    serial and deterministic for a fixed seed; its hall of fame is the candidate set."""

    name = "pysr"

    def __init__(self, seed=0, niterations=40, populations=8, population_size=50, maxsize=25,
                 functions=(), timeout_in_seconds=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.niterations = niterations
        self.populations = populations
        self.population_size = population_size
        self.maxsize = maxsize
        self.functions = tuple(functions)
        self.timeout_in_seconds = timeout_in_seconds

    def check_available(self):
        """Raise EngineUnavailableError unless pysr (and Julia) can be used here."""
        load_pysr()

    def _search(self, X, y):
        pysr = load_pysr()
        model = pysr.PySRRegressor(
            niterations=self.niterations,
            populations=self.populations,
            population_size=self.population_size,
            maxsize=self.maxsize,
            binary_operators=["+", "-", "*", "/"],
            unary_operators=list(self.functions),
            random_state=self.seed,
            deterministic=True,
            parallelism="serial",
            progress=False,
            verbosity=0,
            temp_equation_file=True,
            timeout_in_seconds=self.timeout_in_seconds,
        )
        model.fit(X, y, variable_names=[f"x{j}" for j in range(X.shape[1])])
        return [parse(str(eq), X.shape[1]) for eq in model.equations_["equation"]]
