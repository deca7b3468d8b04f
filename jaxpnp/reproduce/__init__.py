"""The paper's chain, end to end, at each regime (the paper's 0.2 V window and the crowded
1 V case): mPNP runs -> flux split -> discovered law -> NCM built from the mPNP data
(``circuits.extract``) -> salt-aware model -> fit -> NCM vs TLM -> report.

    from jaxpnp.reproduce import reproduce, QUICK, FULL, tiny_config
    summary = reproduce("out/", config=QUICK)

The application layer: it imports ``jaxpnp``, ``circuits`` and ``discovery`` (at module
top); nothing in the core imports it.

Writes PNG figures, netCDF data, ``summary.json`` and ``REPORT.md`` into the output
directory; resumable (complete mPNP runs already on disk are reused).
"""

from .config import (CROWDED_REGIME, FULL, PAPER_REGIME, QUICK, Regime, ReproduceConfig, electrode_for,
                     electrolyte_for, protocol_for, tiny_config)
from .pipeline import reproduce, run_regime

__all__ = ["CROWDED_REGIME", "FULL", "PAPER_REGIME", "QUICK", "Regime", "ReproduceConfig", "electrode_for",
           "electrolyte_for", "protocol_for", "reproduce", "run_regime", "tiny_config"]
