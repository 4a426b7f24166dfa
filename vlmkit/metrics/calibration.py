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


class SquareCalibration:
    """One direction of :func:`authors_calibration`: per-query ``confidence`` and ``correct``,
    their ``ece`` (a fraction, not percent), reliability ``bins``, mean ``confidence`` and ``accuracy``."""

    def __init__(self, confidence: np.ndarray, correct: np.ndarray, n_bins: int):
        self.confidence, self.correct, self.n_bins = confidence, correct, n_bins
        self.ece = expected_calibration_error(confidence, correct, n_bins)
        self.bins = reliability_bins(confidence, correct, n_bins)
        self.accuracy = float(np.mean(correct))
        self.mean_confidence = float(np.mean(confidence))

    def __repr__(self) -> str:
        return (f"SquareCalibration(ece={self.ece:.4f}, confidence={self.mean_confidence:.3f}, "
                f"accuracy={self.accuracy:.3f}, n={len(self.correct)})")


#: The name of the authors' protocol in tables and figures.
AUTHORS_PROTOCOL = "authors: first caption per image, N×N softmax(S/τ), top-1 = diagonal"
#: The name of the 5-caption gallery protocol (every caption in the gallery, extended truth optional).
GALLERY_PROTOCOL = "gallery: every caption, softmax(S/τ) over the whole gallery"


def authors_calibration(scores: Scores | Any, caption_image: Any, *, tau: float = 0.01,
                        n_bins: int = 15) -> dict[str, SquareCalibration]:
    """Calibration of top-1 retrieval under the m²-Mix authors' protocol (docs/design.md, Tab. 3).

    One caption per image (each image's first caption in ``caption_image`` order), so a square
    N × N block ``S`` of the image–caption ``scores`` (N × M cosine similarities) whose diagonal is
    the positive; per query the softmax of ``S / tau`` over the N candidates; confidence = the
    top-1 probability; correct = the top-1 is the diagonal item (pessimistic ties: a tie with
    another candidate counts as wrong); ``n_bins`` equal-width bins.  The authors' τ = 0.01 is
    CLIP's learned τ: pass the model's own.  Returns ``{"i2t": …, "t2i": …}``
    (:class:`SquareCalibration`).  Images without a caption are left out.
    """
    if not (isinstance(tau, (int, float)) and not isinstance(tau, bool) and tau > 0 and np.isfinite(tau)):
        raise VlmkitError(f"tau: expected a finite number > 0, got {tau!r}")
    sc = as_scores(scores)
    n, m = sc.shape
    cap = np.asarray(caption_image)
    if cap.shape != (m,) or not np.issubdtype(cap.dtype, np.integer) or (m and (cap.min() < 0 or cap.max() >= n)):
        raise VlmkitError(f"caption_image: expected {m} integer image indices in [0, {n}) (one per score column), "
                          f"got shape {cap.shape}")
    images, first = np.unique(cap.astype(np.int64), return_index=True)  # ascending image ids, the first caption of each
    if len(images) < 2:
        raise VlmkitError("authors_calibration: needs at least two images with a caption")
    sub = sc.subset(images, first)
    s = sub.block(0, len(images))[0].detach().cpu().to(torch.float64)
    out = {}
    eye = torch.eye(len(s), dtype=torch.bool)
    for name, mat in (("i2t", s), ("t2i", s.T)):
        p = torch.softmax(mat / tau, dim=1)
        others = mat.masked_fill(eye, float("-inf")).max(1).values
        out[name] = SquareCalibration(p.max(1).values.numpy(), (mat.diagonal() > others).numpy(), n_bins)
    return out
