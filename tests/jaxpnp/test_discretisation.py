"""Unit checks of the discretisation: geometry, Poisson, preconditioner exactness."""

import dataclasses

import jax
import numpy as np
import pytest
import scipy.sparse as sp

import jaxpnp
from jaxpnp._geometry import build_grid
from jaxpnp._poisson import FastPoisson, _second_difference_x, _second_difference_y


@pytest.mark.parametrize("layout", ["staggered", "aligned"])
def test_sheet_gaps_alternate_only_in_the_staggered_layout(layout):
    e = jaxpnp.Electrode(layout=layout, n_sheets=3, slit_nm=1.2, sheet_length_nm=1.8,
                         sheet_gap_nm=0.6, sheet_thickness_nm=0.3, separator_nm=1.2)
    g = build_grid(e, 0.3)
    # the x-face at each sheet's centre carries electrolyte only in that sheet's gap
    rows = [np.flatnonzero(g.area_x[f] > 0) for f in g.link_face]
    assert all(r.size > 0 for r in rows)
    first_at_start = rows[0].max() < g.ny // 2
    second_at_start = rows[1].max() < g.ny // 2
    assert first_at_start
    assert second_at_start == (layout == "aligned")
    # control areas add up to the electrolyte area (cells of h^2)
    assert g.volume.sum() == pytest.approx(g.fluid_cell.sum() + 0.5 * (g.ny - 1))  # + the half cell at x = 0


def test_poisson_is_exact_and_pins_the_conductors(tiny_electrode):
    g = build_grid(tiny_electrode, 0.3)
    with jaxpnp.float64():
        poisson = FastPoisson.build(g)
        rho = np.random.default_rng(0).normal(size=(g.nx, g.ny))
        psi = np.asarray(poisson(rho, 0.7, 0.3))
    a0 = np.kron(_second_difference_x(g.nx), np.eye(g.ny)) + np.kron(np.eye(g.nx), _second_difference_y(g.ny))
    residual = (a0 @ psi.ravel()).reshape(g.nx, g.ny) - 0.5 * 0.3 * rho
    assert np.abs(residual[g.free_node]).max() < 1e-10
    assert np.abs(psi[g.surface_node] - 0.7).max() < 1e-12


@pytest.mark.parametrize("stern_F_m2", [None, 0.2])
@pytest.mark.parametrize("boundary", ["symmetric", "reservoir"])
def test_sparse_preconditioner_is_the_exact_stage_matrix(boundary, stern_F_m2, tiny_electrode):
    el = jaxpnp.Electrolyte(anion_diffusivity_m2_s=2.6e-9)
    electrode = dataclasses.replace(tiny_electrode, stern_capacitance_F_m2=stern_F_m2)  # with a Stern layer: Robin rows
    with jaxpnp.float64():
        model, pre = jaxpnp.build_model(el, electrode, jaxpnp.CV(), 0.3, boundary)
        g = model.grid
        rng = np.random.default_rng(1)
        c = model.initial_state() * (1 + 0.3 * rng.random((2, g.nx, g.ny)))
        t, hgamma = 3.0, 2.5
        psi = model.potential(c, model.electrode_potential(t))
        values = np.asarray(pre.assemble(model, c, psi, hgamma))
        f = lambda y: model.vector_field(t, y.reshape(2, g.nx, g.ny)).ravel()
        jac = np.asarray(jax.jacfwd(f)(c.ravel()))
        key = pre.build(model, c, t, hgamma)
        r = rng.normal(size=(2, g.nx, g.ny))
        x = np.asarray(pre.apply(key, r)).ravel()
    p = pre.pattern
    a = sp.csc_matrix((np.bincount(p.slot, weights=values, minlength=p.nnz), p.indices, p.indptr),
                      shape=p.shape).toarray()
    n = p.n
    schur = a[:2 * n, :2 * n] - a[:2 * n, 2 * n:] @ np.linalg.solve(a[2 * n:, 2 * n:], a[2 * n:, :2 * n])
    stage = np.eye(2 * n) - hgamma * jac
    assert np.abs(schur - stage).max() < 1e-9 * np.abs(stage).max()
    assert np.abs(stage @ x - r.ravel()).max() < 1e-9 * np.abs(r).max()
    if boundary == "symmetric":  # closed cell: the solve preserves the ion count
        w = np.concatenate([g.volume.ravel()] * 2)
        assert abs(w @ x - w @ r.ravel()) < 1e-10 * np.abs(w @ np.abs(r.ravel()))
