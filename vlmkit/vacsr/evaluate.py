"""Uncertainty checks for VACSR (issue #5, item 4) and the small retrieval metrics that
training-time validation needs.

- :func:`uncertainty_accuracy`: paper Fig. 3 — per query, the uncertainty of its top-1 pair;
  10 equal-width bins over [min, max] of those uncertainties; R@1 per bin; Pearson r between
  the bins' mean uncertainty and their R@1 over non-empty bins (paper: −0.931 i→t, −0.903 t→i).
- :func:`false_negative_auroc`: how well σ² tells *false negatives* (binary label 0 but truly
  relevant under the extended ground truth) from *true negatives* (not relevant): the AUROC
  with FNs as the positive class (0.5 = no signal; > 0.5 = FNs get higher uncertainty).
- :func:`map_at_r`, :func:`recall_at_1`: ECCV-Caption-style mAP@R and R@1 on dense matrices
  (thin wrappers over ``vlmkit.metrics``, the project's reference implementation).
  :func:`false_negative_auroc` here adds ``restrict`` (e.g. a top-R shortlist) and skips
  NaN uncertainties (pairs the top-K mode did not score); without them it equals
  ``vlmkit.metrics.false_negative_auroc``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vlmkit.metrics.uncertainty import auroc  # noqa: F401  (re-exported: vlmkit.vacsr.auroc)
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


def _scores_pos(scores: Tensor, relevance: Tensor, direction: str, uncertainty: Tensor | None = None):
    from vlmkit.metrics import Positives, Scores

    _orient(scores, direction)  # validates direction
    s = Scores(scores.float(), None if uncertainty is None else uncertainty.float())
    p = Positives.from_matrix(relevance.bool())
    return (s, p) if direction == "i2t" else (s.T, p.T)


def map_at_r(scores: Tensor, relevance: Tensor, direction: str = "i2t") -> float:
    """ECCV-style mAP@R over queries with ≥ 1 relevant item (``vlmkit.metrics.ranking_metrics``,
    pessimistic tie rule)."""
    from vlmkit.metrics import ranking_metrics

    _check_same_shape(scores=scores, relevance=relevance)
    return ranking_metrics(*_scores_pos(scores, relevance, direction), empty="skip")["map_at_r"]


def recall_at_1(scores: Tensor, relevance: Tensor, direction: str = "i2t") -> float:
    """Fraction of queries (with ≥ 1 relevant item) whose top-1 item is relevant."""
    from vlmkit.metrics import ranking_metrics

    _check_same_shape(scores=scores, relevance=relevance)
    return ranking_metrics(*_scores_pos(scores, relevance, direction), empty="skip")["r1"]


def uncertainty_accuracy(scores: Tensor, uncertainty: Tensor, relevance: Tensor, direction: str = "i2t",
                         n_bins: int = 10) -> dict:
    """Uncertainty–accuracy binning of top-1 retrievals (paper Fig. 3) and its Pearson r, via
    ``vlmkit.metrics`` (top1_uncertainty, uncertainty_bins, uncertainty_correlation).

    Returns {edges, count, recall_at_1, mean_uncertainty (per bin; NaN when empty), pearson_r,
    spearman_r, direction}.
    """
    from vlmkit.metrics import top1_uncertainty, uncertainty_bins, uncertainty_correlation

    _check_same_shape(scores=scores, uncertainty=uncertainty, relevance=relevance)
    s, p = _scores_pos(scores, relevance, direction, uncertainty)
    u, correct = top1_uncertainty(s, p)
    if not bool(torch.isfinite(torch.as_tensor(u)).all()):
        raise VlmkitError("uncertainty: the top-1 pairs' uncertainties must be finite (score them exactly)")
    bins = uncertainty_bins(u, correct, n_bins, "width")
    corr = uncertainty_correlation(u, correct, n_bins, "width")
    edges = [*bins["lo"].tolist(), float(bins["hi"].iloc[-1])]
    return {"edges": edges, "count": bins["count"].astype(int).tolist(), "recall_at_1": bins["r1"].tolist(),
            "mean_uncertainty": bins["uncertainty"].tolist(), "pearson_r": corr["pearson"],
            "spearman_r": corr["spearman"], "direction": direction}


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
