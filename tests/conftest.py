"""Fixtures shared across the test tree (tests/jaxpnp, tests/circuits, tests/discovery,
tests/reproduce mirror the packages)."""
import pathlib

import matplotlib

matplotlib.use("Agg")  # headless: the figure helpers draw without a display

import cf_xarray.units  # noqa: E402  (pint registry that reads UDUNITS strings)
import numpy as np  # noqa: E402
import pint_xarray  # noqa: E402, F401  (the .pint accessor)
import pytest  # noqa: E402

import jaxpnp  # noqa: E402


# The files that take longest (process CPU seconds per file measured 2026-12-02 on 2 xdist
# workers, contended: mostly XLA compiles), run first: with the README's `-n 2` and pyproject's
# `--dist loadfile --no-loadscope-reorder` each worker takes whole files in this order, so a long
# one does not start last and leave one core idle at the end (both workers then ended within 5 s).
# Order only: a file not named here runs after these, in collection order.
LONGEST_FIRST = (
    "circuits/test_circuits.py",  # 312
    "jaxpnp/test_mpnp.py",  # 288
    "reproduce/test_reproduce.py",  # 153
    "jaxpnp/test_device_solver.py",  # 139
    "sweep/test_sweep_dask.py",  # 110 (+ its Dask workers)
    "jaxpnp/test_equilibrium.py",  # 70 (suite7 07:30, load 8-12; test_initial_equilibrium merged in)
    "discovery/test_discovery_engines.py",  # 63
    "discovery/test_discovery_mpnp.py",  # 45
    "jaxpnp/test_impedance.py",  # 44
)


def pytest_collection_modifyitems(config, items):
    here = pathlib.Path(__file__).resolve().parent
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}

    def key(item):
        try:
            name = pathlib.Path(item.path).resolve().relative_to(here).as_posix()
        except ValueError:  # a test outside tests/
            return len(rank)
        return rank.get(name, len(rank))

    items.sort(key=key)  # stable: the order within a file, and of the unnamed files, is kept


@pytest.fixture(scope="session")
def repo_root():
    """The source checkout's root (examples/, benchmarks/)."""
    return pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def small_electrode():
    """A small staggered 3-sheet network of 1.5 nm slits whose sizes are multiples of 0.3 nm
    (and of 0.15, 0.075): the grid-0.3 mPNP runs of the tests."""
    return jaxpnp.Electrode(n_sheets=3, slit_nm=1.5, sheet_length_nm=3.6, sheet_gap_nm=1.2,
                            sheet_thickness_nm=0.3, separator_nm=3.0)


@pytest.fixture(scope="session")
def tiny_electrode():
    """The smallest 3-sheet network (1.2 nm slits) for discretisation unit checks."""
    return jaxpnp.Electrode(n_sheets=3, slit_nm=1.2, sheet_length_nm=1.8, sheet_gap_nm=0.6,
                            sheet_thickness_nm=0.3, separator_nm=1.2)


@pytest.fixture(scope="session")
def assert_cf():
    """``check(ds)``: ds follows the CF conventions (Conventions attribute; every numeric
    variable and coordinate has a UDUNITS ``units`` and a ``long_name``) and pint-xarray's
    ``quantify()`` (cf_xarray's UDUNITS registry) reads every unit; returns the quantified ds."""
    def check(ds):
        assert ds.attrs["Conventions"].startswith("CF-")
        for name, var in ds.variables.items():
            if np.issubdtype(var.dtype, np.number):
                assert var.attrs.get("units"), f"{name} has no units"
                assert var.attrs.get("long_name"), f"{name} has no long_name"
        q = ds.pint.quantify(unit_registry=cf_xarray.units.units)
        for name in ds.data_vars:
            if np.issubdtype(ds[name].dtype, np.number):
                assert hasattr(q[name].data, "units"), f"{name} was not quantified"
        return q

    return check
