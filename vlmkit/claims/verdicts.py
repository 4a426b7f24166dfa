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
* a claim is read only under its *preconditions* (:class:`Precondition`, made by the three
  functions below and nothing else): a claim whose method did not train (:func:`did_train`: its
  R@1 within :data:`CHANCE_FACTOR` × chance), a fine-tuning comparison whose compared methods do
  not beat zero-shot (:func:`beats_zero_shot`), a calibration claim where fine-tuning is not
  over-confident as in the paper (:func:`over_confident`) is **inconclusive** whatever its
  comparisons say, with the failed precondition as the reason; the document lists, per claim,
  every precondition and whether it held.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from ..stats import t_interval  # noqa: F401 (the one interval rule; re-exported here)

VERDICTS = ("holds", "partly holds", "does not hold", "inconclusive")
RULE = ("Each claim is tested through one or more comparisons, each one number per seed: a paired difference (method "
        "A − method B trained with the same seed) or a value minus a reference (Pearson r − 0, AUROC − 0.5). Over the "
        "seeds we report mean ± sd and the 95 % Student-t interval of the mean (mean ± t(0.975, n−1)·sd/√n). A "
        "comparison **holds** when its interval excludes 0 on the claimed side, **does not hold** when it excludes 0 "
        "on the other side, and is **inconclusive** otherwise (or with fewer than 2 seeds). A claim **holds** when "
        "all its comparisons hold, **partly holds** when some but not all do, **does not hold** when none holds and "
        "at least one does not hold, and is **inconclusive** otherwise. A claim about a method that did not train "
        "(its mean R@1 within 5× the chance rate) is **inconclusive** whatever its comparisons say — they would "
        "measure the budget, not the method. So is a fine-tuning comparison whose compared methods do not beat "
        "zero-shot on R@1 (each method − zero-shot must hold by the rule above: in a regime where fine-tuning hurts, "
        "a method wins by doing less damage), and a calibration claim where plain fine-tuning is not over-confident "
        "as in the paper (its mean top-1 confidence − accuracy must hold > 0 by the rule, in both directions, under "
        "the authors' protocol). A claim whose experiments have not all run yet (a ledger stopped by its time "
        "budget, --max-minutes) is **inconclusive** and names them. The document lists every claim's "
        "preconditions and whether each held.")
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


@dataclass
class Precondition:
    """A condition a claim's comparisons are read under: ``name`` (what is required), ``held``,
    ``detail`` (the numbers, and when it failed, why the claim cannot be read) and ``kind``
    (``"trained"``, ``"beats zero-shot"`` or ``"over-confident"``: the function that made it)."""

    name: str
    held: bool
    detail: str
    kind: str = ""

    def describe(self) -> str:
        return f"{self.name}: {'held' if self.held else 'did not hold'} ({self.detail})"


def _mean(values: Sequence[float]) -> float:
    v = [float(x) for x in values if math.isfinite(float(x))]
    return sum(v) / len(v) if v else math.nan


def did_train(label: str, r1: Sequence[float], n_candidates: int) -> Precondition:
    """``label`` trained: its mean R@1 (%, over seeds) above :data:`CHANCE_FACTOR` × the chance
    rate 100 / ``n_candidates`` (one right item among ``n_candidates``)."""
    chance = 100.0 / n_candidates
    mean = _mean(r1)
    held = mean > CHANCE_FACTOR * chance
    detail = f"R@1 {mean:.3g} %, chance {chance:.2g} %"
    if not held:
        detail = (f"{label} did not train ({detail}; at most {CHANCE_FACTOR:g}× chance), "
                  "so its comparisons measure the budget, not the method")
    return Precondition(f"{label} trained", held, detail, "trained")


def beats_zero_shot(methods: dict[str, Sequence[float]], zero_shot: float, what: str = "R@1") -> Precondition:
    """Every compared fine-tuning method beats zero-shot: per method, ``values − zero_shot``
    (one per seed) holds > 0 by the rule (:class:`Comparison`)."""
    comps = {m: Comparison(f"{m} − zero-shot", [v - zero_shot for v in vals]) for m, vals in methods.items()}
    failed = [m for m, c in comps.items() if c.outcome != "holds"]
    detail = f"{what} %: zero-shot {zero_shot:.3g}, " + ", ".join(f"{m} {_mean(v):.3g}" for m, v in methods.items())
    if failed:
        detail = (f"{', '.join(failed)} did not beat zero-shot by the rule's interval ({detail}), "
                  "so the comparison would reward the method that does least damage, not the better fine-tuning")
    return Precondition("compared methods beat zero-shot", not failed, detail, "beats zero-shot")


def over_confident(label: str, confidence: dict[str, Sequence[float]],
                   accuracy: dict[str, Sequence[float]]) -> Precondition:
    """``label`` (plain fine-tuning) is over-confident as in the paper: in every direction (the
    keys), its mean top-1 confidence − accuracy (one per seed) holds > 0 by the rule."""
    comps = {d: Comparison(f"confidence − accuracy {d}", [c - a for c, a in zip(confidence[d], accuracy[d])])
             for d in confidence}
    failed = [d for d, c in comps.items() if c.outcome != "holds"]
    detail = "; ".join(f"{d}: confidence {_mean(confidence[d]):.3g} vs accuracy {_mean(accuracy[d]):.3g}"
                       for d in confidence)
    if failed:
        detail = (f"{label} is not over-confident (by the rule's interval) in {', '.join(failed)} ({detail}), "
                  "so there is no over-confidence for a method to correct as in the paper")
    return Precondition(f"{label} over-confident", not failed, detail, "over-confident")


def ran(missing: Sequence[str]) -> Precondition:
    """Every experiment the claim reads has run: ``missing`` names the cached results it asked for
    and did not find (a ledger stopped by ``--max-minutes``)."""
    shown = ", ".join(list(missing)[:4]) + (f", … ({len(missing)} in all)" if len(missing) > 4 else "")
    detail = (f"{len(missing)} of its experiments have not run yet ({shown}), so it cannot be read; rerun the "
              "ledger's command (the cache resumes) to complete them" if missing else "every experiment it reads ran")
    return Precondition("its experiments ran", not missing, detail, "ran")


def verdict(comparisons: Sequence[Comparison], preconditions: Sequence[Precondition] = ()) -> str:
    """The claim's verdict from its comparisons' outcomes, read only when every precondition
    held (module docstring)."""
    if any(not p.held for p in preconditions):
        return "inconclusive"
    outcomes = [c.outcome for c in comparisons]
    if outcomes and all(o == "holds" for o in outcomes):
        return "holds"
    if any(o == "holds" for o in outcomes):
        return "partly holds"
    if any(o == "does not hold" for o in outcomes):
        return "does not hold"
    return "inconclusive"
