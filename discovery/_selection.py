"""Explicit parsimony rules: which member of a Pareto front becomes *the* law.

On noise-free data the most accurate member of a front is usually a long expression
that fits round-off (NUMERICS.md: BIC preferred long rational forms). The rules here
therefore compare errors against an explicit error floor, and each returns a record of
what it did so that the choice is reported next to the law.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class Parsimony:
    """How to pick one law from a front of (complexity, held-out RMSE) pairs.

    ``rule="tolerance"`` (default): the simplest member whose held-out RMSE is at most
    ``max((1 + slack) * best_rmse, relative_floor * std(y))``: anything within ``slack``
    of the best achievable error, or below ``relative_floor`` of the signal's spread
    (the accuracy we ask of a law on round-off-free data), counts as equally good.
    ``rule="knee"``: the member farthest below the straight line joining the simplest
    and the most complex members in the (complexity, log10 RMSE) plane, with RMSE
    floored at ``relative_floor * std(y)``.
    """

    rule: str = "tolerance"
    slack: float = 0.1
    relative_floor: float = 1e-3

    def __post_init__(self):
        if self.rule not in ("tolerance", "knee"):
            raise ValueError(f"unknown parsimony rule {self.rule!r}; use 'tolerance' or 'knee'")
        if not (self.slack >= 0 and self.relative_floor >= 0):
            raise ValueError("Parsimony.slack and relative_floor must be >= 0")

    def threshold(self, best_rmse, y_std):
        """RMSE below which a law counts as 'as good as the data allow' (units of y)."""
        return max((1.0 + self.slack) * best_rmse, self.relative_floor * y_std)

    def select(self, complexities, errors, y_std):
        """Index of the chosen member and a dict describing the choice."""
        complexities = np.asarray(complexities, dtype=float)
        errors = np.asarray(errors, dtype=float)
        finite = np.isfinite(errors)
        if not finite.any():
            raise ValueError("no candidate law evaluates to finite values on the held-out data")
        best = float(np.min(errors[finite]))
        threshold = self.threshold(best, y_std)
        order = sorted(np.flatnonzero(finite), key=lambda k: (complexities[k], errors[k]))
        if self.rule == "tolerance":
            chosen = next(k for k in order if errors[k] <= threshold)
        else:
            floor = max(self.relative_floor * y_std, 1e-300)
            logs = np.log10(np.maximum(errors, floor))
            first = order[0]
            last = order[-1]
            if complexities[last] <= complexities[first]:
                chosen = first
            else:
                slope = (logs[last] - logs[first]) / (complexities[last] - complexities[first])
                below = [logs[first] + slope * (complexities[k] - complexities[first]) - logs[k]
                         for k in order]
                chosen = order[int(np.argmax(below))]
        record = {
            "rule": self.rule,
            "slack": self.slack,
            "relative_floor": self.relative_floor,
            "best_rmse": best,
            "threshold_rmse": threshold if self.rule == "tolerance" else math.nan,
            "chosen_complexity": int(complexities[chosen]),
            "chosen_rmse": float(errors[chosen]),
        }
        return int(chosen), record
