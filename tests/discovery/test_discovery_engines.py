"""Engines, parsimony, Law/JAX form, PySR fallback: recovery of known laws from synthetic data."""

import math
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
import sympy

import discovery
from discovery.engines import pysr as pysr_module

FAST_OPERON = dict(population_size=300, generations=60)

# (name, sympy law in x0[, x1], number of variables): not the paper's law
LAWS = [
    ("rational", "2*x0/(0.5 + x0)", 1),
    ("cubic", "0.5 + x0 - 0.8*x0**3", 1),
    ("bilinear", "0.7*x0 + 1.2*x0*x1", 2),
]


def _data(law, k, n=200, noise=0.0, lo=0.0, hi=1.0, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(lo, hi, size=(n, k))
    syms = sympy.symbols(f"x0:{k}")
    f = sympy.lambdify(syms, sympy.sympify(law), "numpy")
    y = f(*X.T) * np.ones(n)
    if noise:
        y = y + noise * np.std(y) * rng.standard_normal(n)
    return X, y, f


def _check_recovery(law, truth, k, f, noisy):
    names = [f"x{j}" for j in range(k)]
    rtol = 0.03 if noisy else 1e-4
    assert discovery.same_structure(law.expression, truth, names, rtol=rtol), (
        f"{law.expression} does not have the structure of {truth}; front: {law.pareto_front}")
    Xe = np.random.default_rng(9).uniform(1.0, 2.0, size=(100, k))  # beyond training range
    ye = f(*Xe.T) * np.ones(100)
    rel = np.max(np.abs(law.predict(Xe) - ye)) / np.max(np.abs(ye))
    assert rel < (0.02 if noisy else 1e-4)
    assert law.r2 > (0.99 if noisy else 1 - 1e-9)


@pytest.mark.parametrize("noise", [0.0, 0.01])
@pytest.mark.parametrize("name,truth,k", LAWS)
def test_operon_recovers_known_laws(name, truth, k, noise):
    X, y, f = _data(truth, k, noise=noise)
    law = discovery.discover(X, y, [f"x{j}" for j in range(k)], engine="operon", seed=0,
                             **FAST_OPERON)
    assert law.engine == "operon"
    _check_recovery(law, truth, k, f, noise > 0)


@pytest.mark.parametrize("noise", [0.0, 0.01])
@pytest.mark.parametrize("name,truth,k", LAWS)
def test_sparse_recovers_known_laws(name, truth, k, noise):
    X, y, f = _data(truth, k, noise=noise)
    law = discovery.SparseEngine(seed=0).fit(X, y, [f"x{j}" for j in range(k)]).law_
    assert law.engine == "sparse"
    _check_recovery(law, truth, k, f, noise > 0)


def test_operon_with_log_in_search_space():
    X, y, f = _data("log(1 + 2*x0)", 1, lo=0.05)
    law = discovery.discover(X, y, ["x0"], engine="operon", functions=("exp", "log"), **FAST_OPERON)
    Xe = np.linspace(1, 3, 50)[:, None]
    assert discovery.same_structure(law.expression, "log(1 + 2*x0)", ["x0"], rtol=1e-4, X=Xe)


def test_discover_is_deterministic_and_uses_given_names():
    X, y, _ = _data("0.8*x0 - 0.3*x0**2", 1)
    a = discovery.discover(X, y, ["Q"], engine="operon", seed=3, population_size=100, generations=20)
    b = discovery.discover(X, y, ["Q"], engine="operon", seed=3, population_size=100, generations=20)
    assert a.expression == b.expression and a.pareto_front == b.pareto_front
    assert a.expression.free_symbols == {sympy.Symbol("Q")}  # not sympy's Q assumptions object


def test_pareto_front_and_parsimony_record():
    X, y, _ = _data("2*x0/(0.5 + x0)", 1)
    law = discovery.discover(X, y, engine="operon", **FAST_OPERON)
    sizes = [c for c, _, _ in law.pareto_front]
    errors = [e for _, e, _ in law.pareto_front]
    assert sizes == sorted(sizes) and errors == sorted(errors, reverse=True)
    assert law.selection["rule"] == "tolerance"
    assert law.selection["chosen_rmse"] <= law.selection["threshold_rmse"]
    assert law.complexity in sizes


def test_parsimony_rules_prefer_simple_members_within_error_floor():
    sizes, errors = [3, 9, 15, 40], [0.3, 1e-4, 2e-9, 1e-12]
    chosen, record = discovery.Parsimony().select(sizes, errors, y_std=1.0)
    assert sizes[chosen] == 9 and record["threshold_rmse"] == pytest.approx(1e-3)
    chosen, _ = discovery.Parsimony(relative_floor=0.0).select(sizes, errors, y_std=1.0)
    assert sizes[chosen] == 40  # with no floor, only round-off-exact counts
    chosen, _ = discovery.Parsimony(rule="knee").select(sizes, errors, y_std=1.0)
    assert sizes[chosen] == 9
    with pytest.raises(ValueError):
        discovery.Parsimony(rule="bic")


def test_to_jax_matches_and_constants_are_trainable():
    import equinox as eqx
    import jax.numpy as jnp
    import optax

    X, y, _ = _data("2*x0/(0.5 + x0)", 1)
    law = discovery.SparseEngine().fit(X, y, ["Q"]).law_
    model = law.to_jax()
    assert isinstance(model, discovery.JaxLaw)
    x = jnp.linspace(0.0, 1.0, 11)
    np.testing.assert_allclose(model(x), law.predict(np.asarray(x)[:, None]), rtol=1e-5)
    # perturb the constants, then train them back with optax
    factors = 1.0 + 0.3 * jnp.cos(jnp.arange(model.constants.size))  # not a common scale
    model = eqx.tree_at(lambda m: m.constants, model, model.constants * factors)
    xt, yt = jnp.asarray(X[:, 0]), jnp.asarray(y)

    def loss(m):
        return jnp.mean((m(xt) - yt) ** 2)

    opt = optax.adam(0.05)
    state = opt.init(model)
    start = loss(model)
    assert start > 1e-3
    for _ in range(300):
        grads = eqx.filter_grad(loss)(model)
        updates, state = opt.update(grads, state, model)
        model = eqx.apply_updates(model, updates)
    assert loss(model) < 1e-2 * start


@pytest.mark.parametrize("bad", ["few", "nan", "shape", "names", "constant"])
def test_bad_input_raises_value_error(bad):
    X, y, _ = _data("x0", 1, n=50)
    names = ["x0"]
    if bad == "few":
        X, y = X[:5], y[:5]
    elif bad == "nan":
        y[3] = np.nan
    elif bad == "shape":
        y = y[:-1]
    elif bad == "names":
        names = ["a", "b"]
    elif bad == "constant":
        y = np.ones_like(y)
    with pytest.raises(ValueError):
        discovery.discover(X, y, names, engine="sparse")


def test_unknown_engine():
    with pytest.raises(ValueError, match="unknown engine"):
        discovery.make_engine("eureqa")


# ---------------------------------------------------------------- PySR without Julia
@pytest.fixture
def fake_pysr(tmp_path, monkeypatch):
    """Put a stand-in `pysr` package first on sys.path; its body is the test's choice."""

    def make(body):
        pkg = tmp_path / "pysr"
        pkg.mkdir(exist_ok=True)
        (pkg / "__init__.py").write_text(textwrap.dedent(body))
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setattr(pysr_module, "_probe_result", {})
        sys.modules.pop("pysr", None)

    yield make
    sys.modules.pop("pysr", None)


def _pysr_installed():
    import importlib.util

    return importlib.util.find_spec("pysr") is not None


@pytest.mark.skipif(_pysr_installed(), reason="pysr is installed here")
def test_pysr_not_installed_fails_fast_with_instructions():
    start = time.perf_counter()
    with pytest.raises(discovery.EngineUnavailableError, match=r"jaxpnp\[pysr\]") as err:
        discovery.PySREngine().fit(np.arange(20.0)[:, None], np.arange(20.0) ** 2)
    assert isinstance(err.value, ImportError)
    assert time.perf_counter() - start < 5


def test_pysr_hanging_julia_download_is_cut_off(fake_pysr, monkeypatch):
    fake_pysr("import time\ntime.sleep(600)  # stands in for juliacall downloading Julia\n")
    monkeypatch.setenv("DISCOVERY_PYSR_TIMEOUT", "2")
    start = time.perf_counter()
    with pytest.raises(discovery.EngineUnavailableError, match="did not finish within 2 s"):
        discovery.PySREngine().check_available()
    assert time.perf_counter() - start < 20
    assert "pysr" not in sys.modules


def test_pysr_broken_julia_reports_the_error(fake_pysr):
    fake_pysr("raise RuntimeError('Julia executable not found')\n")
    with pytest.raises(discovery.EngineUnavailableError, match="Julia executable not found"):
        discovery.PySREngine().check_available()


def test_pysr_can_be_disabled(monkeypatch):
    monkeypatch.setenv("DISCOVERY_DISABLE_PYSR", "1")
    with pytest.raises(discovery.EngineUnavailableError, match="DISCOVERY_DISABLE_PYSR"):
        discovery.PySREngine().check_available()


def test_auto_falls_back_to_operon_and_says_so(fake_pysr, caplog):
    fake_pysr("raise ImportError('no Julia here')\n")
    X, y, _ = _data("0.8*x0 - 0.3*x0**2", 1)
    with pytest.warns(RuntimeWarning, match="PySR unavailable, using Operon"):
        law = discovery.discover(X, y, ["Q"], engine="auto", population_size=100, generations=20,
                                 niterations=5)  # niterations (PySR-only) is dropped for Operon
    assert law.engine == "operon"
    assert any("using Operon" in r.getMessage() for r in caplog.records)


def test_import_discovery_is_cheap_and_never_imports_pysr(repo_root):
    code = ("import sys, discovery; assert 'pysr' not in sys.modules; "
            "assert 'jax' not in sys.modules and 'sympy' not in sys.modules; "
            "discovery.discover; discovery.trans_slit_law; assert 'pysr' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=repo_root)
