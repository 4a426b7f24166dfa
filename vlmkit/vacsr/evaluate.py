"""Uncertainty checks for VACSR (issue #5, item 4) and the small retrieval metrics that
training-time validation needs.

- :func:`uncertainty_accuracy`: paper Fig. 3 — per query, the uncertainty of its top-1 pair;
  10 equal-width bins over [min, max] of those uncertainties; R@1 per bin; Pearson r between
  the bins' mean uncertainty and their R@1 over non-empty bins (paper: −0.931 i→t, −0.903 t→i).
- :func:`false_negative_auroc`: how well σ² tells *false negatives* (binary label 0 but truly
  relevant under the extended ground truth) from *true negatives* (not relevant): the AUROC
  with FNs as the positive class (0.5 = no signal; > 0.5 = FNs get higher uncertainty).
- :func:`map_at_r`, :func:`recall_at_1`: ECCV-Caption-style mAP@R and R@1 (DESIGN.md,
  evaluation protocol), vectorised. ``vlmkit.metrics`` is the project's reference
  implementation; these exist so that ``vlmkit.vacsr`` validates without it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vlmkit.utils import VlmkitError


def _orient(x: Tensor, direction: str) -> Tensor:
    if direction == "i2t":
        return x
    if direction == "t2i":
        return x.t()
    raise VlmkitError(f"direction={direction!r}: expected 'i2t' (image queries) or 't2i' (caption queries)")


def _check_same_shape(**named: Tensor) -> None:
    shapes = {k: tuple(v.shape) for k, v in named.items()}
    if len(set(shapes.values())) != 1:
        raise VlmkitError(f"expected matrices of one shape (images × captions), got {shapes}")


def map_at_r(scores: Tensor, relevance: Tensor, direction: str = "i2t") -> float:
    """Mean over queries of (1/R) Σ_{r ≤ R} P@r · rel(r), R = the query's number of relevant items.

    Queries without relevant items are skipped. Ties are broken by index order (stable sort).
    """
    _check_same_shape(scores=scores, relevance=relevance)
    s, rel = _orient(scores, direction), _orient(relevance, direction).bool()
    R = rel.sum(1)
    keep = R > 0
    s, rel, R = s[keep], rel[keep], R[keep]
    if s.shape[0] == 0:
        return float("nan")
    Rmax = int(R.max())
    order = torch.sort(s.float(), dim=1, descending=True, stable=True).indices[:, :Rmax]
    hit = torch.gather(rel, 1, order).float()
    ranks = torch.arange(1, Rmax + 1, dtype=torch.float32)
    prec = hit.cumsum(1) / ranks
    within = ranks.unsqueeze(0) <= R.unsqueeze(1)
    return float(((prec * hit * within).sum(1) / R).mean())


def recall_at_1(scores: Tensor, relevance: Tensor, direction: str = "i2t") -> float:
    """Fraction of queries whose top-1 item is relevant."""
    _check_same_shape(scores=scores, relevance=relevance)
    s, rel = _orient(scores, direction), _orient(relevance, direction).bool()
    top = s.float().argmax(1)
    return float(rel[torch.arange(s.shape[0]), top].float().mean())


def uncertainty_accuracy(scores: Tensor, uncertainty: Tensor, relevance: Tensor, direction: str = "i2t",
                         n_bins: int = 10) -> dict:
    """Uncertainty–accuracy binning of top-1 retrievals (paper Fig. 3) and its Pearson r.

    Returns {edges, count, recall_at_1, mean_uncertainty (per bin; NaN when empty), pearson_r}.
    """
    _check_same_shape(scores=scores, uncertainty=uncertainty, relevance=relevance)
    s, u, rel = _orient(scores, direction), _orient(uncertainty, direction), _orient(relevance, direction).bool()
    q = torch.arange(s.shape[0])
    top = s.float().argmax(1)
    unc = u[q, top].double()
    hit = rel[q, top].double()
    if not bool(torch.isfinite(unc).all()):
        raise VlmkitError("uncertainty: the top-1 pairs' uncertainties must be finite (score them exactly)")
    lo, hi = float(unc.min()), float(unc.max())
    edges = torch.linspace(lo, hi if hi > lo else lo + 1e-12, n_bins + 1, dtype=torch.float64)
    b = torch.bucketize(unc, edges[1:-1], right=True)
    count = torch.bincount(b, minlength=n_bins).double()
    r1 = torch.bincount(b, weights=hit, minlength=n_bins) / count
    mu = torch.bincount(b, weights=unc, minlength=n_bins) / count
    ok = count > 0
    r = float("nan")
    if int(ok.sum()) >= 2:
        x, y = mu[ok] - mu[ok].mean(), r1[ok] - r1[ok].mean()
        den = math.sqrt(float((x * x).sum() * (y * y).sum()))
        r = float((x * y).sum()) / den if den > 0 else float("nan")
    return {"edges": edges.tolist(), "count": count.long().tolist(), "recall_at_1": r1.tolist(),
            "mean_uncertainty": mu.tolist(), "pearson_r": r, "direction": direction}


def auroc(pos: Tensor, neg: Tensor) -> float:
    """P(score of a random positive > that of a random negative) + ½ P(tie) (Mann–Whitney U)."""
    pos, neg = pos.double().flatten(), neg.double().flatten()
    if pos.numel() == 0 or neg.numel() == 0:
        return float("nan")
    allv = torch.cat([pos, neg])
    sv, order = torch.sort(allv)
    # average ranks over ties
    uniq, inv, counts = torch.unique_consecutive(sv, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    avg_rank = ends - (counts.double() - 1) / 2
    ranks = torch.empty_like(allv)
    ranks[order] = avg_rank[inv]
    n1, n0 = pos.numel(), neg.numel()
    u = float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2
    return u / (n1 * n0)


def false_negative_auroc(uncertainty: Tensor, labels: Tensor, relevance: Tensor,
                         restrict: Tensor | None = None) -> dict:
    """AUROC of σ² for false negatives (label 0, relevant) vs true negatives (label 0, not relevant).

    labels: the binary training-style labels (N, M); relevance: the extended ground truth.
    restrict: optional bool mask of pairs to consider (e.g. each query's top-R shortlist).
    Returns {auroc, n_false_negatives, n_true_negatives, mean_unc_fn, mean_unc_tn}.
    """
    _check_same_shape(uncertainty=uncertainty, labels=labels, relevance=relevance)
    lab, rel = labels.bool(), relevance.bool()
    keep = torch.isfinite(uncertainty)
    if restrict is not None:
        keep &= restrict.bool()
    fn = keep & ~lab & rel
    tn = keep & ~lab & ~rel
    a, b = uncertainty[fn], uncertainty[tn]
    return {"auroc": auroc(a, b), "n_false_negatives": int(fn.sum()), "n_true_negatives": int(tn.sum()),
            "mean_unc_fn": float(a.double().mean()) if a.numel() else float("nan"),
            "mean_unc_tn": float(b.double().mean()) if b.numel() else float("nan")}
