"""Spread over seeds, written once: the claims ledger (:mod:`vlmkit.claims.verdicts`) and the
batch aggregation (:mod:`vlmkit.batch`) both use :func:`t_interval`.

Over ``n`` per-seed values: the mean, the sample sd (ddof 1) and the 95 % Student-t interval of
the mean, ``mean ± t(0.975, n−1) · sd / √n``.  Non-finite values (NaN, ±inf, None) are left
out; with fewer than 2 finite values the sd and the interval are NaN (one seed says nothing
about the spread).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

INTERVAL_RULE = ("mean ± sd (sample sd, n − 1) over the seeds and the 95 % Student-t interval of the mean, "
                 "mean ± t(0.975, n − 1) · sd / √n; with one seed no sd and no interval")


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """``(mean, sd, lo, hi)`` of ``values``: sample sd (ddof 1) and the Student-t interval of the
    mean at ``level``; sd and the interval are NaN with fewer than 2 finite values."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return (math.nan,) * 4
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan, math.nan
    from scipy.stats import t

    sd = float(x.std(ddof=1))
    half = float(t.ppf(0.5 + level / 2, x.size - 1)) * sd / math.sqrt(x.size)
    return mean, sd, mean - half, mean + half
