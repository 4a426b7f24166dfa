"""The verdict rule of the claims ledger, written once.

Every claim is tested through one or more *comparisons*. A comparison holds one number per seed:
a paired difference (method A − method B, both trained with the same seed) or a value minus a
reference (e.g. Pearson r − 0, AUROC − 0.5). Over the seeds: mean ± sd (n − 1) and the 95 %
Student-t interval of the mean, mean ± t₀.₉₇₅,ₙ₋₁ · sd / √n (:func:`vlmkit.stats.t_interval`, shared with
the batch aggregation of ``vlmkit run --grid``).

* a comparison **holds** when its interval excludes 0 on the claimed side, **does not hold** when
  it excludes 0 on the other side, and is **inconclusive** otherwise (or with fewer than 2 seeds);
* a claim **holds** when all its comparisons hold; **partly holds** when some but not all hold;
  **does not hold** when none holds and at least one does not hold; **inconclusive** otherwise;
* a claim about a method that did not train (its R@1 within :data:`CHANCE_FACTOR` × chance) is
  **inconclusive** whatever its comparisons say: they would measure the budget, not the method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from ..stats import t_interval  # noqa: F401 (the one interval rule; re-exported here)

VERDICTS = ("holds", "partly holds", "does not hold", "inconclusive")
RULE = ("Each claim is tested through one or more comparisons, each one number per seed: a paired difference "
        "(method A − method B trained with the same seed) or a value minus a reference (Pearson r − 0, AUROC − 0.5). "
        "Over the seeds we report mean ± sd and the 95 % Student-t interval of the mean (mean ± t(0.975, n−1)·sd/√n). "
        "A comparison **holds** when its interval excludes 0 on the claimed side, **does not hold** when it excludes 0 "
        "on the other side, and is **inconclusive** otherwise (or with fewer than 2 seeds). A claim **holds** when all its "
        "comparisons hold, **partly holds** when some but not all do, **does not hold** when none holds and at least one "
        "does not hold, and is **inconclusive** otherwise. A claim about a method that did not train (its mean R@1 within "
        "5× the chance rate) is **inconclusive** whatever its comparisons say — they would measure the budget, not the "
        "method — and the document says so.")
CHANCE_FACTOR = 5.0
"""R@1 at or below this multiple of the chance rate counts as "did not train"."""


@dataclass
class Comparison:
    """One tested statement: ``values`` per seed (a difference or value − reference) whose mean is
    claimed ``> 0`` (``direction=+1``) or ``< 0`` (``-1``)."""

    label: str
    values: list[float]
    direction: int = 1
    stats: tuple[float, float, float, float] = field(init=False)

    def __post_init__(self) -> None:
        if self.direction not in (1, -1):
            raise ValueError(f"Comparison.direction={self.direction}: expected +1 or -1")
        self.values = [float(v) for v in self.values]
        self.stats = t_interval(self.values)

    @property
    def outcome(self) -> str:
        """``holds`` / ``does not hold`` / ``inconclusive`` by the interval (module docstring)."""
        _, _, lo, hi = self.stats
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return "inconclusive"
        if (self.direction > 0 and lo > 0) or (self.direction < 0 and hi < 0):
            return "holds"
        if (self.direction > 0 and hi < 0) or (self.direction < 0 and lo > 0):
            return "does not hold"
        return "inconclusive"

    def describe(self, digits: int = 3) -> str:
        """``label: Δ = mean [lo, hi] (outcome)``."""
        mean, _, lo, hi = self.stats
        f = lambda v: "n/a" if not math.isfinite(v) else f"{v:+.{digits}g}"  # noqa: E731
        side = ">" if self.direction > 0 else "<"
        return f"{self.label} {side} 0: {f(mean)} [{f(lo)}, {f(hi)}] ({self.outcome})"


def verdict(comparisons: Sequence[Comparison]) -> str:
    """The claim's verdict from its comparisons' outcomes (module docstring)."""
    outcomes = [c.outcome for c in comparisons]
    if outcomes and all(o == "holds" for o in outcomes):
        return "holds"
    if any(o == "holds" for o in outcomes):
        return "partly holds"
    if any(o == "does not hold" for o in outcomes):
        return "does not hold"
    return "inconclusive"
