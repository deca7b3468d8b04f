"""Electrode layouts and their uniform node grid (box-method finite volumes).

Coordinates: ``x`` is depth (from the cell mid-plane at x = 0 towards the current
collector), ``y`` runs along the sheets. Nodes sit at ``x_i = (i + 1/2) h`` and
``y_j = j h``; primal cells lie between four nodes and are either electrolyte or
solid (sheet). Conductor surfaces pass through nodes, so a surface node holds a
Dirichlet potential for Poisson and a partial control volume of ions.

The y-extent is half a period of the sheet pattern, with mirror planes at both ends.
In the ``staggered`` layout odd sheets (1, 3, ...) have their gap at y = 0 and even
sheets at y = L_y, so ions reach slit i+1 only through slit i.
"""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import numpy as np

from ._checks import check_field_types

LAYOUTS = ("staggered", "aligned", "planar")


class Electrode(eqx.Module):
    """A stack of conducting sheets (nm) in front of a current collector.

    ``n_sheets`` sheets of ``sheet_thickness_nm`` separated by slits of ``slit_nm``;
    each sheet is ``sheet_length_nm`` long with ``sheet_gap_nm`` between sheet ends.
    ``separator_nm`` is the open space between the cell mid-plane and the first sheet.
    ``layout="planar"`` is a flat electrode (the collector) facing the open space.

    ``stern_capacitance_F_m2``: optional Stern layer on every conductor surface, its
    capacitance per unit area C_S (F/m^2); the surface potential is then
    ``psi_s = phi_m - (eps / C_S) E_n`` (Robin condition, E_n the normal field on the
    electrolyte side). ``None`` (default) or ``inf``: no Stern layer, psi_s = phi_m.
    """

    layout: str = eqx.field(static=True, default="staggered")
    n_sheets: int = eqx.field(static=True, default=6)
    slit_nm: float = 1.5
    sheet_length_nm: float = 10.0
    sheet_gap_nm: float = 1.0
    sheet_thickness_nm: float = 0.335
    separator_nm: float = 10.0
    stern_capacitance_F_m2: float | None = None

    def __check_init__(self):
        check_field_types(self)
        if self.layout not in LAYOUTS:
            raise ValueError(f"Electrode.layout must be one of {LAYOUTS}, got {self.layout!r}")
        for name in ("slit_nm", "sheet_length_nm", "sheet_gap_nm", "sheet_thickness_nm", "separator_nm"):
            v = getattr(self, name)
            if not (math.isfinite(float(v)) and float(v) > 0):
                raise ValueError(f"Electrode.{name} must be a positive finite length in nm, got {v!r}")
        if self.layout != "planar" and int(self.n_sheets) < 2:
            raise ValueError(f"Electrode.n_sheets must be >= 2 (one slit at least), got {self.n_sheets}")
        check_stern_capacitance(self.stern_capacitance_F_m2)

    @property
    def has_stern_layer(self) -> bool:
        """True when a finite Stern capacitance is set (a JAX tracer counts as finite)."""
        c = self.stern_capacitance_F_m2
        if c is None:
            return False
        try:
            return math.isfinite(float(c))
        except TypeError:  # traced value inside jax.grad
            return True

    @property
    def n_slits(self) -> int:
        return 0 if self.layout == "planar" else int(self.n_sheets) - 1


def check_stern_capacitance(value):
    """None, inf, or a positive finite capacitance per area (F/m^2); ValueError otherwise."""
    if value is None:
        return
    if isinstance(value, (bool, str, bytes)):
        raise ValueError("Electrode.stern_capacitance_F_m2 must be a number of F/m^2 (None or inf: "
                         f"no Stern layer), got {value!r}")
    try:
        v = float(value)
    except TypeError:  # traced value inside jax.grad: checked by the caller's concrete run
        return
    if math.isnan(v) or v <= 0:
        raise ValueError("Electrode.stern_capacitance_F_m2 must be a positive capacitance per area in "
                         f"F/m^2 (e.g. 0.2; None or inf: no Stern layer), got {value!r}")


@dataclasses.dataclass(frozen=True, eq=False)
class Grid:
    """Static description of the discretised geometry (numpy, lengths in units of h)."""

    h_nm: float
    nx: int
    ny: int
    fluid_cell: np.ndarray  # (nx, ny-1) bool; cell (i, j) spans nodes i..i+1, j..j+1 (i = nx-1: none)
    ion_node: np.ndarray  # (nx, ny) bool: a node with electrolyte in its control volume
    surface_node: np.ndarray  # (nx, ny) bool: conductor node touching electrolyte (Dirichlet)
    free_node: np.ndarray  # (nx, ny) bool: electrolyte node whose potential is solved for
    volume: np.ndarray  # (nx, ny) control area / h^2
    area_x: np.ndarray  # (nx-1, ny) dual-face length / h between (i, j) and (i+1, j)
    area_y: np.ndarray  # (nx, ny-1) dual-face length / h between (i, j) and (i, j+1)
    area_mid: np.ndarray  # (ny,) dual-face length / h at the mid-plane x = 0
    region: np.ndarray  # (nx, ny) int: slit index of each node (0 = open space)
    link_face: np.ndarray  # (n_slits,) x-face column carrying the current of link k (slit k -> k+1)
    probe_weights: np.ndarray  # (n_regions, 4) weights for nodes (i0,j0),(i1,j0),(i0,j1),(i1,j1)
    probe_nodes: np.ndarray  # (n_regions, 4, 2) int node indices
    surface_face: int  # x-face column of the open-space flux plane
    n_regions: int
    snapped: dict  # effective geometry (nm) after snapping to the grid

    @property
    def length_y(self) -> float:
        """L_y / h."""
        return float(self.ny - 1)


def _cells(length_nm: float, h_nm: float, what: str, minimum: int = 1) -> int:
    n = int(round(length_nm / h_nm))
    if n < minimum:
        raise ValueError(
            f"grid_nm={h_nm} is too coarse for the {what} ({length_nm} nm): "
            f"it needs at least {minimum} cell(s); use grid_nm <= {length_nm / minimum:.3g}")
    return n


def build_grid(electrode: Electrode, h_nm: float, debye_length_nm: float | None = None) -> Grid:
    """Snap ``electrode`` to a uniform grid of spacing ``h_nm`` (nm)."""
    if not (math.isfinite(h_nm) and h_nm > 0):
        raise ValueError(f"grid_nm must be positive, got {h_nm}")
    if debye_length_nm is not None and h_nm > debye_length_nm:
        raise ValueError(
            f"grid_nm={h_nm} is coarser than the Debye length ({debye_length_nm:.3g} nm): "
            "the double layer would not be resolved; refine the grid")
    e = electrode
    n_sep = _cells(float(e.separator_nm), h_nm, "separator", minimum=4)
    if e.layout == "planar":
        nx = n_sep + 1
        ny = 2
        solid = np.zeros((nx, ny - 1), bool)
        sheet_cols = []
        ly_cells = 1
    else:
        n_t = _cells(float(e.sheet_thickness_nm), h_nm, "sheet thickness", minimum=1)
        n_d = _cells(float(e.slit_nm), h_nm, "slit", minimum=4)
        ly_cells = _cells(0.5 * (float(e.sheet_length_nm) + float(e.sheet_gap_nm)), h_nm,
                          "half period of the sheets", minimum=4)
        n_g = _cells(0.5 * float(e.sheet_gap_nm), h_nm, "half sheet gap", minimum=1)
        if n_g >= ly_cells:
            raise ValueError("sheet_gap_nm must be smaller than sheet_length_nm + sheet_gap_nm")
        ns = int(e.n_sheets)
        fronts = [n_sep + k * (n_t + n_d) for k in range(ns)]
        nx = fronts[-1] + n_t + 1
        ny = ly_cells + 1
        solid = np.zeros((nx, ny - 1), bool)
        sheet_cols = []
        for k, f in enumerate(fronts):
            gap_at_start = (k % 2 == 0) or e.layout == "aligned"
            rows = np.arange(ny - 1)
            in_sheet = rows >= n_g if gap_at_start else rows < ly_cells - n_g
            solid[f:f + n_t, :] = in_sheet[None, :]
            sheet_cols.append((f, f + n_t))
    fluid = ~solid
    fluid[nx - 1, :] = False  # no cell beyond the collector column

    # adjacency of nodes to cells: node (i, j) touches cells (i-1|i, j-1|j)
    def cell(i, j, arr, outside_x_left):
        out = np.zeros((nx, ny), bool)
        ii, jj = np.meshgrid(np.arange(nx) + i, np.arange(ny) + j, indexing="ij")
        ok = (jj >= 0) & (jj < ny - 1) & (ii < nx)
        left = ii < 0
        inside = ok & ~left
        out[inside] = arr[ii[inside], jj[inside]]
        out[ok & left] = outside_x_left
        return out

    touches_fluid = [cell(di, dj, fluid, True) for di in (-1, 0) for dj in (-1, 0)]
    touches_solid = [cell(di, dj, solid, False) for di in (-1, 0) for dj in (-1, 0)]
    n_fluid = sum(t.astype(int) for t in touches_fluid)
    ion_node = n_fluid > 0
    conductor = np.any(touches_solid, axis=0)
    conductor[nx - 1, :] = True  # current collector
    surface_node = conductor & ion_node
    free_node = ion_node & ~conductor
    volume = 0.25 * n_fluid.astype(float)

    area_x = 0.5 * (cell(0, -1, fluid, True)[:-1] .astype(float) + cell(0, 0, fluid, True)[:-1].astype(float))
    area_y = 0.5 * (cell(-1, 0, fluid, True)[:, :-1].astype(float) + cell(0, 0, fluid, True)[:, :-1].astype(float))
    area_mid = np.full(ny, 1.0)
    area_mid[0] = area_mid[-1] = 0.5

    # regions: split at the centre face of each sheet
    region = np.zeros((nx, ny), int)
    link_face = []
    if sheet_cols:
        centre_faces = [(a + b - 1) // 2 for a, b in sheet_cols]  # face c lies between columns c, c+1
        for k, c in enumerate(centre_faces):
            region[c + 1:, :] = k + 1
        region[region > len(sheet_cols) - 1] = len(sheet_cols) - 1  # collector pocket -> last slit
        # link k (slit k -> k+1) crosses sheet k+1 (index k in 0-based list)
        link_face = [centre_faces[k] for k in range(len(sheet_cols) - 1)]
    n_regions = (len(sheet_cols) if sheet_cols else 1)

    # probes: slit k mid-point (x mid between sheets, y = L_y/2); open space: d/2 in front of sheet 1
    ymid = 0.5 * (ny - 1)
    probes_x = []
    if sheet_cols:
        d_cells = sheet_cols[1][0] - sheet_cols[0][1] if len(sheet_cols) > 1 else 4
        probes_x.append(sheet_cols[0][0] - 0.5 * d_cells)
        for k in range(len(sheet_cols) - 1):
            probes_x.append(0.5 * (sheet_cols[k][1] + sheet_cols[k + 1][0]))
        surface_face = int(np.floor(sheet_cols[0][0] - 0.5 * d_cells))
    else:
        probes_x.append(nx - 1 - 0.5 * min(n_sep, 4))
        surface_face = int(np.floor(nx - 1 - 0.5 * min(n_sep, 4)))
    probe_nodes = np.zeros((n_regions, 4, 2), int)
    probe_weights = np.zeros((n_regions, 4))
    for k, px in enumerate(probes_x):
        i0 = int(np.floor(px)); fx = px - i0
        j0 = int(np.floor(ymid)); fy = ymid - j0
        i1 = min(i0 + 1, nx - 1); j1 = min(j0 + 1, ny - 1)
        probe_nodes[k] = [(i0, j0), (i1, j0), (i0, j1), (i1, j1)]
        probe_weights[k] = [(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy]

    snapped = dict(grid_nm=h_nm, separator_nm=(n_sep + 0.5) * h_nm if sheet_cols else (nx - 0.5) * h_nm,
                   length_y_nm=(ny - 1) * h_nm)
    if sheet_cols:
        snapped.update(slit_nm=n_d * h_nm, sheet_thickness_nm=n_t * h_nm,
                       sheet_gap_nm=2 * n_g * h_nm, sheet_length_nm=2 * (ly_cells - n_g) * h_nm)
    return Grid(h_nm=h_nm, nx=nx, ny=ny, fluid_cell=fluid, ion_node=ion_node,
                surface_node=surface_node, free_node=free_node, volume=volume,
                area_x=area_x, area_y=area_y, area_mid=area_mid, region=region,
                link_face=np.asarray(link_face, int), probe_weights=probe_weights,
                probe_nodes=probe_nodes, surface_face=surface_face, n_regions=n_regions, snapped=snapped)


def snap_to_grid(electrode: Electrode, grid_nm: float) -> Electrode:
    """The electrode as a grid of spacing ``grid_nm`` (nm) represents it: slit, sheet thickness,
    gap and length rounded to whole cells. Holding this geometry fixed across a grid sequence
    separates discretisation error from the geometry change that snapping causes."""
    snapped = build_grid(electrode, grid_nm).snapped
    keys = ("slit_nm", "sheet_thickness_nm", "sheet_gap_nm", "sheet_length_nm")
    return dataclasses.replace(electrode, **{k: snapped[k] for k in keys if k in snapped})
