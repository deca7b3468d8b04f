"""The paper's chain, end to end (issue #5): mPNP runs -> flux split -> discovered law ->
NCM built from the mPNP data -> fit -> NCM vs TLM -> report.

    from jaxpnp.reproduce import reproduce, QUICK, FULL, tiny_config
    summary = reproduce("out/", config=QUICK)

Writes PNG figures, netCDF data, ``summary.json`` and ``REPORT.md`` into the output
directory; resumable (complete mPNP runs already on disk are reused).
"""

from .pipeline import FULL, QUICK, ReproduceConfig, reproduce, tiny_config

__all__ = ["FULL", "QUICK", "ReproduceConfig", "reproduce", "tiny_config"]
