"""The replica split: how many of T replicas run on spot, given P percent and an on-demand floor M.

spot = clamp(floor(T*P/100), 0, max(T-M, 0)); on_demand = T - spot. Integers only: upstream's webhook
used floats and, with M > T, went negative. Floor rounding is the upstream contract (some of its docs
say ceil; the code and tests floor).
"""

from __future__ import annotations

from typing import NamedTuple

MAX_PERCENTAGE = 100


class Split(NamedTuple):
    spot: int
    on_demand: int


def desired_split(total: int, spot_percentage: int, min_on_demand: int) -> Split:
    """The target (spot, on-demand) for `total` replicas; raises ValueError naming a bad argument."""
    if total < 0:
        raise ValueError(f"replicas: must be >= 0, got {total}")
    if not 0 <= spot_percentage <= MAX_PERCENTAGE:
        raise ValueError(f"spot-percentage: must be within 0..100, got {spot_percentage}")
    if min_on_demand < 0:
        raise ValueError(f"min-on-demand: must be >= 0, got {min_on_demand}")
    spot = min(total * spot_percentage // MAX_PERCENTAGE, max(total - min_on_demand, 0))
    return Split(spot=spot, on_demand=total - spot)
