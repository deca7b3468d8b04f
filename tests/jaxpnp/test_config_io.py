"""Named parameter sets shipped with the package, and the TOML writer's round trip."""

import equinox as eqx
import pytest

import jaxpnp


def _same(a, b):
    assert len(a) == len(b) == 4
    for x, y in zip(a[:3], b[:3]):
        assert type(x) is type(y) and eqx.tree_equal(x, y), (x, y)
    assert a[3] == b[3]


def test_paper_case_is_shipped_and_is_the_example(repo_root):
    assert "paper_case" in jaxpnp.named_configs()
    shipped = jaxpnp.read_config("paper_case")
    electrolyte, electrode, protocol, kwargs = shipped
    assert electrode.n_sheets == 6 and electrode.slit_nm == 1.5 and electrolyte.concentration_M == 1.0
    assert isinstance(protocol, jaxpnp.CV) and kwargs["boundary"] == "reservoir"
    _same(shipped, jaxpnp.read_config(repo_root / "examples" / "paper_case.toml"))


@pytest.mark.parametrize("case", [
    "paper_case",
    (jaxpnp.Electrolyte(concentration_M=0.5, anion_diffusivity_m2_s=1e-9),
     jaxpnp.Electrode(n_sheets=3, slit_nm=2.0, stern_capacitance_F_m2=0.2),
     jaxpnp.PotentialStep(v_step=0.3, duration_s=2e-9, rise_time_s=1e-11),
     {"grid_nm": 0.2, "boundary": "symmetric", "snapshot_times_s": [1e-9, 2e-9]}),
    (jaxpnp.Electrolyte(), jaxpnp.Electrode(), jaxpnp.Sine(v_bias=0.2, amplitude_V=0.005, frequency_Hz=1e9, cycles=2), {}),
])
def test_write_config_round_trip(case, tmp_path):
    run = jaxpnp.read_config(case) if isinstance(case, str) else case
    path = tmp_path / "run.toml"
    jaxpnp.write_config(path, *run)
    back = jaxpnp.read_config(path)
    _same(back, run)
    jaxpnp.write_config(tmp_path / "again.toml", *back)  # and the text is stable
    assert (tmp_path / "again.toml").read_text() == path.read_text()


def test_unknown_name_lists_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match="paper_case"):
        jaxpnp.read_config("no_such_case")
