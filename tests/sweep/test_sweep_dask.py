"""jaxpnp.sweep on a Dask LocalCluster of 2 worker processes (tiny geometry, short CV).

Compiling the solver costs far more than these runs, so each worker process compiles
once: a list sweep with a bad point runs first (on the fresh workers), then the same
four grid points are run one by one with plain ``jaxpnp.simulate`` tasks, then the grid
sweep (2 x 2 points) with one worker killed in the middle of a point; the tests check it
against the one-by-one runs, that a rerun computes nothing, and the combined Dataset.
"""

import dataclasses
import os
import signal
import threading
import time

import numpy as np
import pytest
from distributed import Client, LocalCluster

import jaxpnp
from jaxpnp.cli import main

TAU = jaxpnp.Electrolyte().debye_time_s
OPTIONS = dict(grid_nm=0.3, points_per_cycle=24, segments_per_sweep=3, rtol=1e-3, atol=1e-5)
OVER = {"v_max": [0.4, 0.6], "scan_rate_V_s": [1.0 / (100 * TAU), 1.0 / (150 * TAU)]}


@pytest.fixture(scope="module")
def base(tiny_electrode):
    """(electrolyte, electrode, protocol, simulate options): the base case of every sweep here."""
    return (jaxpnp.Electrolyte(), tiny_electrode, jaxpnp.CV(v_max=0.5, scan_rate_V_s=1.0 / (100 * TAU)), OPTIONS)


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def list_sweep(client, base, tmp_path_factory):
    """Four points given as a list, one of them invalid, with the law discovered per point."""
    outdir = tmp_path_factory.mktemp("list")
    points = [{"v_max": 0.45}, {"v_max": 0.5, "concentration_M": -1.0}, {"v_max": 0.55}, {"v_max": 0.65}]
    result = jaxpnp.sweep(base, points=points, outdir=outdir, client=client, progress=False, discover=True)
    return outdir, result


@pytest.fixture(scope="module")
def reference(client, base, list_sweep):
    """The four grid points, each run on its own by plain ``jaxpnp.simulate`` (as Dask
    tasks, so on the workers that have compiled the solver already)."""
    el, e, _, kw = base
    keys = [(v, r) for v in OVER["v_max"] for r in OVER["scan_rate_V_s"]]
    futures = [client.submit(jaxpnp.simulate, el, e, jaxpnp.CV(v_max=v, scan_rate_V_s=r), **kw,
                             progress=False, pure=False) for v, r in keys]
    return dict(zip(keys, client.gather(futures)))


def _results(outdir):
    return {f.name: (f.stat().st_mtime_ns, f.stat().st_size) for f in outdir.glob("*.nc")
            if not f.name.endswith(".partial.nc")}


@pytest.fixture(scope="module")
def grid_sweep(client, base, reference, tmp_path_factory):
    """The 2 x 2 sweep; once two points are complete and another is past its first
    checkpoint, the worker computing the latter is killed (SIGKILL). (Late, so that its
    rerun goes to the warm worker rather than waiting for the new one to compile.)"""
    outdir = tmp_path_factory.mktemp("grid")
    pids = client.run(os.getpid)  # worker address -> process id
    killed = {}

    def kill_one_worker_mid_point():
        deadline = time.time() + 600
        while time.time() < deadline:
            done = _results(outdir)
            for state in outdir.glob("*.partial.nc.state.npz"):
                pid = state.name.split(".")[0]
                if len(done) >= 2 and f"{pid}.nc" not in done:
                    key = f"jaxpnp-point-{pid}"
                    for addr, keys in client.processing().items():
                        if key in keys:
                            os.kill(pids[addr], signal.SIGKILL)
                            killed.update(point=pid, before=done, pid=pids[addr],
                                          finished=(outdir / f"{pid}.nc").exists())
                            return
            time.sleep(0.01)

    thread = threading.Thread(target=kill_one_worker_mid_point, daemon=True)
    thread.start()
    result = jaxpnp.sweep(base, over=OVER, outdir=outdir, client=client, progress=False)
    thread.join(timeout=5)
    return outdir, result, killed


def test_bad_point_is_reported_and_the_others_complete(list_sweep):
    outdir, result = list_sweep
    assert result.computed == 3 and len(result.failed) == 1
    (pid, message), = result.failed.items()
    assert "concentration_M" in message
    assert (outdir / f"{pid}.error.json").is_file()
    ds = jaxpnp.open_sweep(outdir)
    np.testing.assert_array_equal(ds.point_status.values, [1, 0, 1, 1])
    np.testing.assert_array_equal(ds.v_max.values, [0.45, 0.5, 0.55, 0.65])
    assert np.isnan(ds.current_density.isel(point=1)).all()
    assert np.isfinite(ds.current_density.isel(point=[0, 2, 3])).all()
    # the discovered law per point (the inner link), fitted well wherever the run exists
    assert ds.law_r2.dims == ("point", "link") and list(ds.link.values) == [1]
    assert (ds.law_r2.isel(point=[0, 2, 3]) > 0.99).all() and np.isnan(ds.law_r2.isel(point=1)).all()


def test_sweep_with_a_killed_worker_equals_one_by_one_runs(grid_sweep, reference, client):
    outdir, result, killed = grid_sweep
    assert killed and not killed["finished"], "the worker was not killed in the middle of a point"
    assert killed["pid"] not in client.run(os.getpid).values()  # replaced by a new process
    assert result.computed == 4 and not result.failed
    # what was written before the kill is untouched; no temporary or checkpoint file is left
    after = _results(outdir)
    assert all(after[name] == stamp for name, stamp in killed["before"].items())
    assert not list(outdir.glob("*.partial.nc*")) and not list(outdir.glob("*.tmp*"))
    ds = jaxpnp.open_sweep(outdir)
    for (v, r), ref in reference.items():
        point = ds.sel(v_max=v, scan_rate_V_s=r)
        np.testing.assert_allclose(point.current_density.values, ref.current_density.values, rtol=1e-10, atol=0)
        np.testing.assert_allclose(point.slit_charge.values, ref.slit_charge.values, rtol=1e-10, atol=0)
    # the killed point continued from its checkpoint (and still equals the uninterrupted run)
    resumed = ds.solver_resumed_from_s.where(ds.point_id == killed["point"], drop=True)
    assert resumed.size == 1 and float(resumed.squeeze()) > 0


def test_rerun_computes_nothing(grid_sweep, base, client):
    outdir, _, _ = grid_sweep
    before = _results(outdir)
    again = jaxpnp.sweep(base, over=OVER, outdir=outdir, client=client, progress=False)
    assert again.computed == 0 and again.skipped == 4
    assert _results(outdir) == before


def test_combined_dataset_has_the_sweep_axes(grid_sweep, reference, assert_cf):
    outdir, _, _ = grid_sweep
    ds = jaxpnp.open_sweep(outdir)
    assert ds.current_density.dims[:2] == ("v_max", "scan_rate_V_s")
    np.testing.assert_array_equal(ds.v_max.values, OVER["v_max"])
    np.testing.assert_array_equal(ds.scan_rate_V_s.values, OVER["scan_rate_V_s"])
    assert int(ds.point_status.sum()) == 4
    assert_cf(ds)
    # each point's own time axis: one CV (0 -> v_max -> 0) lasts 2 v_max / scan rate
    end = ds.time.isel(sample=-1)
    expected = 2 * ds.v_max / ds.scan_rate_V_s
    np.testing.assert_allclose(end.transpose("v_max", "scan_rate_V_s").values,
                               expected.transpose("v_max", "scan_rate_V_s").values, rtol=1e-12)
    # each file names its full parameter set in its attributes
    one = jaxpnp.load(outdir / f"{str(ds.point_id.values[0, 0])}.nc")
    assert float(one.attrs["v_max"]) == OVER["v_max"][0]
    assert "grid_nm" in one.attrs["sweep_parameters"]


def test_cli_sweep_on_a_running_scheduler_resumes(grid_sweep, tiny_electrode, client, tmp_path, capsys):
    outdir, _, _ = grid_sweep
    run = tmp_path / "tiny.toml"
    e = {f.name: getattr(tiny_electrode, f.name) for f in dataclasses.fields(tiny_electrode)
         if getattr(tiny_electrode, f.name) is not None}
    run.write_text("[electrode]\n" + "".join(f"{k} = {v!r}\n" for k, v in e.items()).replace("'", '"')
                   + f"[protocol]\ntype = \"cv\"\nv_max = 0.5\nscan_rate_V_s = {1.0 / (100 * TAU)!r}\n"
                   + "[simulation]\n" + "".join(f"{k} = {v!r}\n" for k, v in OPTIONS.items()))
    spec = tmp_path / "sweep.toml"
    spec.write_text('base = "tiny.toml"\n[over]\n'
                    + "".join(f"{k} = [{', '.join(repr(x) for x in v)}]\n" for k, v in OVER.items()))
    code = main(["sweep", str(spec), "-o", str(outdir), "--scheduler", client.scheduler.address, "--no-progress"])
    assert code == 0
    assert "0 computed, 4 already complete, 0 failed" in capsys.readouterr().out


def test_bad_sweep_file_exits_2(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text('base = "missing.toml"\n[over]\nslit_nm = [1.0, 2.0]\n')
    assert main(["sweep", str(spec), "-o", str(tmp_path / "o")]) == 2
    assert "no configuration file 'missing.toml'" in capsys.readouterr().err
    spec.write_text('[base.electrode]\nn_sheets = 3\n[over]\nnot_a_parameter = [1.0]\n')
    assert main(["sweep", str(spec), "-o", str(tmp_path / "o")]) == 2
    assert "unknown sweep parameter" in capsys.readouterr().err
