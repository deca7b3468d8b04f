"""Every public constructor checks its argument types, naming the argument."""

import jax
import numpy as np
import pytest

import jaxpnp


@pytest.mark.parametrize("build, name", [
    (lambda: jaxpnp.Electrode(n_sheets=2.5), "Electrode.n_sheets must be an integer"),
    (lambda: jaxpnp.Electrode(layout=3), "Electrode.layout must be a string"),
    (lambda: jaxpnp.Electrode(slit_nm="1.5"), "Electrode.slit_nm must be a real number"),
    (lambda: jaxpnp.Electrode(stern_capacitance_F_m2="0.2"), "Electrode.stern_capacitance_F_m2 must be a real number or None"),
    (lambda: jaxpnp.Electrolyte(concentration_M="1"), "Electrolyte.concentration_M must be a real number"),
    (lambda: jaxpnp.Electrolyte(temperature_K=None), "Electrolyte.temperature_K must be a real number"),
    (lambda: jaxpnp.Electrolyte(anion_diffusivity_m2_s=[1e-9]), "Electrolyte.anion_diffusivity_m2_s"),
    (lambda: jaxpnp.CV(v_max=True), "CV.v_max must be a real number"),
    (lambda: jaxpnp.CV(cycles=1.5), "CV.cycles must be an integer"),
    (lambda: jaxpnp.PotentialStep(v_step="0.5"), "PotentialStep.v_step"),
    (lambda: jaxpnp.Galvanostatic(cycles="2"), "Galvanostatic.cycles must be an integer"),
    (lambda: jaxpnp.Sine(frequency_Hz="1e8"), "Sine.frequency_Hz must be a real number"),
])
def test_wrong_type_is_refused_naming_the_argument(build, name):
    with pytest.raises(TypeError, match=name):
        build()
    with pytest.raises(ValueError, match=name):  # bad input is a ValueError throughout jaxpnp
        build()


def test_numbers_numpy_scalars_and_tracers_are_accepted():
    assert jaxpnp.Electrode(n_sheets=3, slit_nm=2).slit_nm == 2
    assert jaxpnp.Electrolyte(concentration_M=np.float32(0.5), ion_diameter_nm=1).concentration_M == 0.5
    assert jaxpnp.CV(v_max=np.asarray(0.8)).v_max == 0.8
    # traced fields (jax.grad through a run) pass; their values are checked on the concrete run
    grad = jax.grad(lambda c: jaxpnp.Electrolyte(concentration_M=c).debye_length_m)(1.0)
    assert float(grad) < 0  # the Debye length shrinks as the concentration rises
