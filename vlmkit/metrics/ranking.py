"""Ranking over extended positives: mAP@R, R-Precision and R@1 (ECCV Caption definitions).

For a query with R positives and the ranked gallery rel(1), rel(2), …:

* mAP@R = (1/R) · Σ_{r ≤ R} P@r · rel(r)   (Musgrave et al. 2020, adopted by ECCV Caption);
* R-Precision = P@R = (1/R) · Σ_{r ≤ R} rel(r);
* R@1 = rel(1).

Ranks follow the pessimistic tie rule of :mod:`vlmkit.metrics.core`.  Positives come from
the embedded dataset's exact truth (``Positives.from_dataset``), from a bool matrix, or from
an ECCV Caption / CxC JSON (``Positives.from_json``).

Authoritative references: R-Precision — ``torchmetrics.functional.retrieval_r_precision``
(tests assert equality on tie-free scores); mAP@R has no torchmetrics counterpart
(``retrieval_average_precision(top_k=R)`` divides by the number of positives *retrieved*, not
by R), so it is checked against a brute-force sort-based reference written from the formula.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..utils import VlmkitError
from .core import scan
from .positives import Positives, as_positives
from .scores import Scores, as_scores


def select_queries(n_pos: np.ndarray, queries: Iterable[int] | None, empty: str, what: str) -> np.ndarray:
    """Indices of the queries to average over, applying the ``empty`` rule.

    ``empty="error"``: a selected query without positives raises; ``"skip"``: it is left out
    (the count of evaluated queries is reported with the result).
    """
    if empty not in ("error", "skip"):
        raise VlmkitError(f"empty must be 'error' or 'skip', got {empty!r}")
    q = np.arange(len(n_pos)) if queries is None else np.asarray(list(queries), dtype=np.int64).reshape(-1)
    if q.size and (q.min() < 0 or q.max() >= len(n_pos)):
        raise VlmkitError(f"{what}: queries must be indices in [0, {len(n_pos)}), got min {q.min()} max {q.max()}")
    has = n_pos[q] > 0
    if not has.all():
        if empty == "error":
            first = int(q[~has][0])
            raise VlmkitError(f"{what}: {int((~has).sum())} queries have no positive (first: row {first}); "
                              "mAP@R/R-Precision are undefined for them — pass empty='skip' to leave them out")
        q = q[has]
    return q


def ranking_metrics(scores: Scores | Any, positives: Positives | Any, *, queries: Iterable[int] | None = None,
                    empty: str = "error", chunk_size: int | None = None) -> dict[str, float]:
    """``{"map_at_r", "r_precision", "r1", "n_queries"}`` averaged over the (selected) query rows.

    ``queries``: a subset of query rows (e.g. the ECCV Caption query set); default all.
    ``empty``: what to do with queries without any positive, see :func:`select_queries`.
    """
    s = as_scores(scores)
    p = as_positives(positives, s.shape)
    stats = scan(s, p, chunk_size=chunk_size, ranking=True)
    q = select_queries(stats.n_pos, queries, empty, "ranking_metrics")
    if q.size == 0:
        raise VlmkitError("ranking_metrics: no query with positives to evaluate")
    return {
        "map_at_r": float(np.mean(stats.ap_at_r[q])),
        "r_precision": float(np.mean(stats.r_precision[q])),
        "r1": float(np.mean(stats.first_rank[q] == 1)),
        "n_queries": int(q.size),
    }
