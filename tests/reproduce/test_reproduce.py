"""End to end: the reproduction chain on a tiny geometry (issue #5)."""

import json
import math

import numpy as np
import pytest

from jaxpnp.reproduce import reproduce, tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("repro")
    summary = reproduce(out, config=tiny_config(), progress=False)
    return out, summary


def _finite(x):
    return x is not None and math.isfinite(float(x))


def test_artefacts_exist(run):
    out, summary = run
    assert (out / "summary.json").is_file() and (out / "REPORT.md").is_file()
    assert (out / "data" / "mpnp_d1.5nm.nc").is_file()
    for name in ("fig1cf_flux_split", "fig1dg_potential", "fig2a_discovery", "fig2b_resistance",
                 "fig2c_resistance_vs_d", "fig3c_ncm_vs_mpnp", "fit_route", "fig3d_ncm_vs_tlm",
                 "fig3ef_slit_charge", "fig3g_peak_map"):
        path = out / "figures" / f"{name}.png"
        assert path.is_file() and path.stat().st_size > 1000, name
    report = (out / "REPORT.md").read_text()
    assert "| # | paper | this run | reproduced |" in report


def test_summary_numbers_finite_and_consistent(run):
    out, summary = run
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["ncm_vs_mpnp_nrmse"] == pytest.approx(summary["ncm_vs_mpnp_nrmse"])
    assert not any(on_disk["errors"].values()), on_disk["errors"]
    assert _finite(on_disk["ncm_vs_mpnp_nrmse"]) and on_disk["ncm_vs_mpnp_nrmse"] >= 0
    for key in ("discovered", "fitted"):
        assert _finite(on_disk[key]["R_c"]) and on_disk[key]["R_c"] > 0
        assert _finite(on_disk[key]["gamma"])
    assert 0.0 <= on_disk["fitted"]["gamma"] <= 1.0
    fit = on_disk["results"]["fit"]
    assert fit["rel_diff_R_c"] == pytest.approx(
        (on_disk["fitted"]["R_c"] - on_disk["discovered"]["R_c"]) / on_disk["discovered"]["R_c"])
    for step, t in on_disk["timings_s"].items():
        assert _finite(t) and t >= 0, step
    assert on_disk["timings_s"]["total"] >= max(v for k, v in on_disk["timings_s"].items() if k != "total")
    for name, f in on_disk["findings"].items():
        assert f["reproduced"] in (True, False, None), name
        assert f["paper"] and f["ours"]
    # the extracted circuit holds the mPNP run's stored charge at the vertex
    circ = on_disk["results"]["ncm"]["circuit"]
    assert circ["C_total"] == pytest.approx(circ["C_open"] + sum(circ["C_slit"]))
    assert all(c > 0 for c in circ["C_slit"]) and circ["C_open"] > 0


@pytest.mark.slow  # reruns the whole chain (minus mPNP): ~50 s
def test_resume_reuses_complete_runs(run, tmp_path):
    out, _ = run
    import shutil

    (tmp_path / "data").mkdir()
    shutil.copy(out / "data" / "mpnp_d1.5nm.nc", tmp_path / "data" / "mpnp_d1.5nm.nc")
    cfg = tiny_config(fit_steps=2, peak_grid=2)
    summary = reproduce(tmp_path, config=cfg, progress=False)
    assert summary["results"]["mpnp"]["runs"]["1.5"]["reused"] is True
    assert summary["timings_s"]["mpnp"] < 5.0


def test_failing_step_is_reported_and_rest_runs(tmp_path, monkeypatch):
    """No mPNP data (every size fails validation): later steps report errors, files still written."""
    cfg = tiny_config(slits_nm=(0.5,))  # below the mPNP validity limit: simulate raises
    summary = reproduce(tmp_path, config=cfg, progress=False)
    assert summary["errors"]["mpnp"]
    assert summary["errors"]["ncm"]
    assert (tmp_path / "summary.json").is_file() and (tmp_path / "REPORT.md").is_file()
    assert "Failed steps" in (tmp_path / "REPORT.md").read_text()
