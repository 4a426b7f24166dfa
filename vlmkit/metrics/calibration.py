"""Calibration: expected calibration error (ECE) and reliability-diagram bins.

Binning: ``n_bins`` equal-width bins over [0, 1], each left-closed ``[lo, hi)`` except the last,
``[lo, 1]``.  ECE (``norm="l1"``) = Σ_b (n_b / n) · |acc_b − conf_b|; ``"l2"`` = sqrt of the
weighted squared gaps; ``"max"`` = the largest gap over non-empty bins (MCE).

Authoritative reference: ``torchmetrics.functional.classification.binary_calibration_error``
(Guo et al. 2017 definition).  The tests assert equality with it; the one documented
difference is a confidence of exactly 1.0, which torchmetrics puts into an extra bin of its
own while we count it in the last bin ``[1 − 1/n_bins, 1]``.

Retrieval calibration (:func:`retrieval_calibration`): the confidence of a query's top-1
gallery item — a softmax over the whole gallery at ``temperature`` (CLIP: 0.01), or a sigmoid
of the score (SigLIP: ``sigmoid(logit_scale · s + logit_bias)``), or the score itself when it is
already a probability — against whether that top-1 item is a positive (pessimistic ties).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from ..utils import VlmkitError, as_tensor
from .core import scan
from .positives import Positives, as_positives
from .scores import Scores, as_scores, per_query
from .uncertainty import bin_means


def _conf_correct(confidence: Any, correct: Any) -> tuple[np.ndarray, np.ndarray]:
    c, y = per_query(confidence, "confidence", correct, "calibration: no predictions given (empty confidence)")
    if not np.isfinite(c).all() or c.min() < 0 or c.max() > 1:
        raise VlmkitError("confidence: expected probabilities in [0, 1] (finite); "
                          f"got min {np.nanmin(c)} max {np.nanmax(c)}")
    return c, y


def _bin_index(c: np.ndarray, n_bins: int) -> np.ndarray:
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise VlmkitError(f"n_bins must be a positive integer, got {n_bins!r}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.clip(np.searchsorted(edges, c, side="right") - 1, 0, n_bins - 1)


def reliability_bins(confidence: Any, correct: Any, n_bins: int = 15) -> pd.DataFrame:
    """One row per bin: ``bin, lo, hi, count, confidence (mean), accuracy, gap`` (NaN when empty)."""
    c, y = _conf_correct(confidence, correct)
    idx = _bin_index(c, n_bins)
    count, conf, acc = bin_means(idx, n_bins, c, y)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame({"bin": np.arange(n_bins), "lo": edges[:-1], "hi": edges[1:], "count": count,
                         "confidence": conf, "accuracy": acc, "gap": acc - conf})


def expected_calibration_error(confidence: Any, correct: Any, n_bins: int = 15, norm: str = "l1") -> float:
    """ECE (``l1``), RMS calibration error (``l2``) or MCE (``max``) over equal-width bins."""
    if norm not in ("l1", "l2", "max"):
        raise VlmkitError(f"norm must be 'l1', 'l2' or 'max', got {norm!r}")
    bins = reliability_bins(confidence, correct, n_bins)
    full = bins[bins["count"] > 0]
    w = full["count"].to_numpy() / full["count"].sum()
    gap = np.abs(full["gap"].to_numpy())
    if norm == "l1":
        return float(np.sum(w * gap))
    if norm == "l2":
        return float(np.sqrt(np.sum(w * gap**2)))
    return float(gap.max())


def retrieval_calibration(scores: Scores | Any, positives: Positives | Any, *, confidence: str = "softmax",
                          temperature: float = 0.01, logit_scale: float = 1.0, logit_bias: float = 0.0,
                          n_bins: int = 15, chunk_size: int | None = None) -> tuple[float, pd.DataFrame]:
    """``(ECE, reliability bins)`` of top-1 retrieval for the query rows of ``scores``.

    Queries without positives count as top-1 wrong (their top-1 cannot be right).
    """
    s = as_scores(scores)
    p = as_positives(positives, s.shape)
    stats = scan(s, p, chunk_size=chunk_size, confidence=confidence, temperature=temperature,
                 logit_scale=logit_scale, logit_bias=logit_bias)
    conf = np.clip(stats.top1_confidence, 0.0, 1.0)
    return (expected_calibration_error(conf, stats.top1_correct, n_bins),
            reliability_bins(conf, stats.top1_correct, n_bins))


def softmax_confidence(logits: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(max softmax probability, argmax)`` per row of a (n, C) logit matrix."""
    z = as_tensor(logits, "logits")
    z = z.to(torch.float64 if z.dtype == torch.float64 else torch.float32)
    p = torch.softmax(z, dim=1)
    conf, arg = p.max(1)
    return conf, arg
