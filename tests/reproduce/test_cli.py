"""The `jaxpnp` command line."""

import pytest

import jaxpnp
from jaxpnp.cli import _load_config, build_parser, main

TINY = """
[electrolyte]
concentration_M = 1.0
[electrode]
n_sheets = 3
slit_nm = 1.5
sheet_length_nm = 3.6
sheet_gap_nm = 1.2
sheet_thickness_nm = 0.3
separator_nm = 3.0
[protocol]
type = "cv"
v_max = 1.0
scan_rate_V_s = {rate}
[simulation]
grid_nm = 0.3
points_per_cycle = 100
"""


def _write(tmp_path, text, name="c.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize("text, message", [
    ("[electrolyte\nx=1", "not valid TOML"),
    ("[electrode]\nslit_nm = -1.0\n", "slit_nm"),
    ("[electrode]\nbogus = 1\n", "bad key"),
    ("[protocol]\ntype = 'sawtooth'\n", "protocol.type"),
    ("[simulation]\ngrid_nm = 0.5\n", "Debye"),
    ("[simulation]\nfoo = 1\n", "unknown key"),
    ("[nonsense]\n", "unknown table"),
])
def test_bad_config_exits_2_with_one_line(tmp_path, capsys, text, message):
    code = main(["simulate", _write(tmp_path, text), "-o", str(tmp_path / "o.nc"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and message in err[0] and err[0].startswith("jaxpnp: error:")


def test_missing_config(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "nope.toml")]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.slow  # compiles and runs the mPNP solver (~40-80 s on 2 cores)
def test_simulate_writes_complete_netcdf(tmp_path, capsys):
    import jaxpnp

    tau = jaxpnp.Electrolyte().debye_time_s
    cfg = _write(tmp_path, TINY.format(rate=1.0 / (2000 * tau)))
    out = tmp_path / "run.nc"
    assert main(["simulate", cfg, "-o", str(out), "--no-progress"]) == 0
    ds = jaxpnp.load(out)
    assert int(ds.attrs["solver_complete"]) == 1
    assert "peak current" in capsys.readouterr().out


def test_example_config_is_valid(repo_root):
    path = repo_root / "examples" / "paper_case.toml"
    electrolyte, electrode, protocol, kwargs = _load_config(str(path))
    assert electrode.n_sheets == 6 and float(electrode.slit_nm) == 1.5
    assert protocol.scan_rate_V_s > 0
    jaxpnp.validate(electrolyte, electrode, protocol, kwargs["grid_nm"], kwargs.get("boundary", "symmetric"))


def test_parser_has_commands():
    p = build_parser()
    assert p.parse_args(["reproduce", "--quick", "-o", "x"]).quick
    # benchmarks are checkout scripts (python benchmarks/run_all.py), not a subcommand
    with pytest.raises(SystemExit):
        p.parse_args(["bench"])
