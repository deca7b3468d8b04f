"""`discover`: pick an engine (``"auto"``: PySR when usable, else Operon) and fit a law."""

from __future__ import annotations

import inspect
import logging
import warnings

from .engines import ENGINES, AbstractEngine, EngineUnavailableError, OperonEngine, PySREngine

logger = logging.getLogger("discovery")


def make_engine(engine="auto", seed=0, parsimony=None, **options):
    """An engine instance from a name (``"auto"``, ``"operon"``, ``"pysr"``, ``"sparse"``)
    or an instance (returned unchanged). ``options`` go to the engine's constructor."""
    if isinstance(engine, AbstractEngine):
        return engine
    if engine == "auto":
        try:
            PySREngine().check_available()
        except EngineUnavailableError as err:
            _fallback(err)
            return OperonEngine(seed=seed, parsimony=parsimony, **_accepted(OperonEngine, options))
        return PySREngine(seed=seed, parsimony=parsimony, **_accepted(PySREngine, options))
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose from 'auto', {', '.join(map(repr, ENGINES))}")
    return ENGINES[engine](seed=seed, parsimony=parsimony, **options)


def _accepted(cls, options):
    """The options ``cls`` takes (``engine="auto"`` may get options meant for either)."""
    names = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            names |= set(inspect.signature(klass.__init__).parameters)
    dropped = sorted(set(options) - names)
    if dropped:
        logger.info("%s ignores options %s", cls.__name__, dropped)
    return {k: v for k, v in options.items() if k in names}


def _fallback(reason):
    message = f"engine='auto': PySR unavailable, using Operon ({reason})"
    logger.warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def discover(X, y, names=None, engine="auto", seed=0, parsimony=None, **options):
    """Discover ``y = f(X)``; returns a :class:`discovery.Law` (``law.engine`` names the
    engine used). ``X`` (n, k), ``y`` (n,), ``names`` one per column. Deterministic for a
    fixed ``seed`` (and ``n_threads`` for Operon). With ``engine="auto"`` a PySR run that
    fails at fit time also falls back to Operon, with a warning."""
    return fitted_engine(X, y, names, engine=engine, seed=seed, parsimony=parsimony, **options).law_


def fitted_engine(X, y, names=None, engine="auto", seed=0, parsimony=None, **options) -> AbstractEngine:
    """:func:`discover`, returning the fitted engine: its ``law_``, and its forms for
    ``refit_forms`` on other data (the same search, the constants refit)."""
    chosen = make_engine(engine, seed=seed, parsimony=parsimony, **options)
    try:
        return chosen.fit(X, y, names=names)
    except Exception as err:  # noqa: BLE001 - Julia raises its own error types
        if engine != "auto" or not isinstance(chosen, PySREngine) or isinstance(err, ValueError):
            raise
        _fallback(err)
        operon = OperonEngine(seed=seed, parsimony=parsimony, **_accepted(OperonEngine, options))
        return operon.fit(X, y, names=names)
