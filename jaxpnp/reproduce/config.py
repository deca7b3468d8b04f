"""What the reproduction chooses: the configuration, its regimes, and the runs it implies."""

from __future__ import annotations

import dataclasses

import jaxpnp


@dataclasses.dataclass(frozen=True)
class Regime:
    """One cell-voltage window the chain runs at: CV ``0 -> v_max -> 0`` (V).

    ``slits_nm``: the slit sizes of its mPNP runs (None: the config's); the first is the
    paper case, the one the circuits are built from. ``figures``: also the NCM-vs-TLM and
    peak-map steps (Figures 3d-g). ``impedance``: also the small-signal impedance step (the
    mPNP beside the extracted NCM and its TLM at 0 V). ``slower_scans``: slow-down factors k
    of extra paper-case runs at 1/k the scan rate (5.0: a 5x slower CV); the NCM extracted
    from the reproduce-rate run predicts each, and the fit fits them jointly with it.
    """

    name: str
    v_max: float
    slits_nm: tuple | None = None
    figures: bool = True
    impedance: bool = False
    slower_scans: tuple = ()

    def __post_init__(self):
        if any(not (float(k) > 1.0) for k in self.slower_scans):
            raise ValueError(f"slower_scans must be slow-down factors > 1, got {self.slower_scans!r}")


# weakly crowded: C_slit ~ constant. The 5x slower run: issue 10's targets are stated at the
# reproduce rate and a 5x slower one, and only the two together pin gamma (benchmarks/ncm_fit.py)
PAPER_REGIME = Regime("paper_0.2V", 0.2, slits_nm=(1.5,), figures=False, impedance=True, slower_scans=(5.0,))
CROWDED_REGIME = Regime("crowded_1V", 1.0)  # the paper's 1 V case


FIT_LINKS = ("inner", "all")


@dataclasses.dataclass(frozen=True)
class ReproduceConfig:
    """Everything the pipeline chooses (SI unless the name says nm/Debye)."""

    name: str = "full"
    electrolyte: dict = dataclasses.field(default_factory=dict)  # jaxpnp.Electrolyte kwargs
    n_sheets: int = 6
    sheet_length_nm: float = 10.0
    sheet_gap_nm: float = 1.0
    sheet_thickness_nm: float = 0.335
    separator_nm: float = 10.0
    slits_nm: tuple = (1.5, 2.0, 3.0, 5.0)  # the first is the paper case
    grid_nm: float = 0.125
    # the open space is held at bulk: a closed half cell with a 10 nm separator runs out
    # of salt near 1 V (mid-plane at ~1% of c0), which a real cell's electrolyte does not
    boundary: str = "reservoir"
    regimes: tuple = (PAPER_REGIME, CROWDED_REGIME)
    half_period_debye: float = 1000.0  # 0 -> v_max sweep duration in Debye times (every regime)
    points_per_cycle: int = 200
    snapshot_fractions: tuple = (0.02, 0.25, 0.5, 0.75)  # of the CV period
    engine: str = "operon"
    discovery_options: dict = dataclasses.field(
        default_factory=lambda: dict(population_size=500, generations=100))
    fit_steps: int = 150  # Adam steps of the calibration fit (the fit route is Levenberg-Marquardt only)
    fit_polish_steps: int = 50  # Levenberg-Marquardt steps of both
    # the fit route's links: "inner" scales the inner links' laws and holds link 0 (open space ->
    # slit 1, beside the separately extracted open-space branch) as extracted, so the fitted
    # factors are those of the inner-link means they are compared with; "all" scales every link
    fit_links: str = "inner"
    tlm_layers: int = 20
    ncm_points_per_cycle: int = 400
    peak_grid: int = 11
    asymmetry_layers: tuple = (6, 20)
    asymmetry_rate_factors: tuple = (1.0, 4.0)
    asymmetry_cycles: int | None = None  # None: until periodic (circuits.cv_asymmetry's default)
    calibrate: bool = True  # also fit C and R_open of the NCM (diagnostic beside the extracted ones)
    # the nodes' capacitor curves: jaxpnp.equilibrium at this many electrode potentials
    # 0..v_max/2 (0: linear chord capacitors of the run itself, the paper's NCM only)
    equilibrium_points: int = 41
    # the impedance step (regimes with impedance=True): this many frequencies, log-spaced
    # over impedance_range_Hz (0: the step is skipped)
    impedance_points: int = 57
    impedance_range_Hz: tuple = (1e5, 1e12)
    salt: bool = True  # also the salt-aware model step (circuits.from_mpnp(kind="salt"))

    @property
    def paper_slit_nm(self) -> float:
        return float(self.slits_nm[0])

    def slits_for(self, regime: Regime) -> tuple:
        return tuple(regime.slits_nm) if regime.slits_nm is not None else tuple(self.slits_nm)

    def __post_init__(self):
        if self.fit_links not in FIT_LINKS:
            raise ValueError(f"fit_links must be one of {FIT_LINKS}, got {self.fit_links!r}")

    def to_dict(self):
        return dataclasses.asdict(self)


FULL = ReproduceConfig()
QUICK = dataclasses.replace(
    FULL, name="quick", slits_nm=(1.5, 3.0), grid_nm=0.25,
    discovery_options=dict(population_size=300, generations=60), fit_steps=80, fit_polish_steps=20,
    ncm_points_per_cycle=200, peak_grid=7, equilibrium_points=21)


def tiny_config(**overrides) -> ReproduceConfig:
    """A geometry small enough for a test (3 sheets, 3.6 nm sheets, grid 0.3 nm), one regime (1 V).

    Its regime also runs the impedance step (6 frequencies). ``salt=False`` skips the salt
    step (e.g. when the salt model's compile is not wanted).
    """
    base = dataclasses.replace(
        FULL, name="tiny", n_sheets=3, sheet_length_nm=3.6, sheet_gap_nm=1.2, sheet_thickness_nm=0.3,
        separator_nm=3.0, slits_nm=(1.5,), grid_nm=0.3, half_period_debye=2000.0, points_per_cycle=100,
        regimes=(dataclasses.replace(CROWDED_REGIME, impedance=True),), impedance_points=6,
        engine="sparse", discovery_options={}, fit_steps=0, fit_polish_steps=10, tlm_layers=6,
        ncm_points_per_cycle=100, peak_grid=3, asymmetry_layers=(3,), asymmetry_rate_factors=(1.0,),
        asymmetry_cycles=3, calibrate=False, snapshot_fractions=(0.25, 0.5), equilibrium_points=11,
        # 2 links: "inner" would scale link 1 alone, whose law this CV barely sees; LM then stalls
        # short of the discovered point (measured: factor 0.79-0.82 in two of three identical runs)
        fit_links="all")
    return dataclasses.replace(base, **overrides)


def electrolyte_for(config: ReproduceConfig) -> jaxpnp.Electrolyte:
    return jaxpnp.Electrolyte(**config.electrolyte)


def electrode_for(config: ReproduceConfig, slit_nm: float) -> jaxpnp.Electrode:
    return jaxpnp.Electrode(n_sheets=config.n_sheets, slit_nm=float(slit_nm),
                            sheet_length_nm=config.sheet_length_nm, sheet_gap_nm=config.sheet_gap_nm,
                            sheet_thickness_nm=config.sheet_thickness_nm, separator_nm=config.separator_nm)


def protocol_for(config: ReproduceConfig, regime: Regime, cycles: int = 1, rate_factor: float = 1.0) -> jaxpnp.CV:
    """The regime's CV: 0 -> v_max in ``half_period_debye`` Debye times (times ``1 / rate_factor``)."""
    tau = float(electrolyte_for(config).debye_time_s)
    rate = regime.v_max / (config.half_period_debye * tau) * rate_factor
    return jaxpnp.CV(v_min=0.0, v_max=regime.v_max, scan_rate_V_s=rate, cycles=cycles)
