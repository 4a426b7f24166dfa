"""Recall@K with multi-caption ground truth, the COCO 5K / 1K protocols, and RSUM.

Definitions (the COCO Karpathy protocol of VSE++, PCME++, CLIP papers):

* image→text R@K: the fraction of images for which *any* of their captions is among the top K;
* text→image R@K: the fraction of captions whose image is among the top K;
* COCO 5K: the 5,000 test images × their captions; COCO 1K: the mean over 5 folds of 1,000
  consecutive images and the captions written for them;
* RSUM: the sum of R@1/5/10 in both directions *under one protocol* (PCME++ reports the 1K sum).

Ranks follow the pessimistic tie rule of :mod:`vlmkit.metrics.core`.  Authoritative reference:
``torchmetrics.functional.retrieval_hit_rate`` (the "any positive in top K" definition);
the tests assert equality with it on tie-free random scores.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from ..utils import VlmkitError, as_tensor
from .core import QueryStats, scan
from .positives import Positives, as_positives
from .scores import Scores, as_scores

DEFAULT_KS = (1, 5, 10)


def recall_from_ranks(first_rank: np.ndarray, ks: Iterable[int] = DEFAULT_KS) -> dict[int, float]:
    """R@K = mean over queries of [rank of best positive ≤ K], for each K, as a fraction in [0, 1]."""
    fr = np.asarray(first_rank)
    out = {}
    for k in ks:
        if int(k) < 1:
            raise VlmkitError(f"ks: recall cut-offs must be >= 1, got {k}")
        out[int(k)] = float(np.mean(fr <= int(k))) if fr.size else float("nan")
    return out


def _check_no_empty(stats: QueryStats, what: str) -> None:
    empty = np.flatnonzero(stats.n_pos == 0)
    if empty.size:
        raise VlmkitError(f"{what}: {empty.size} quer{'y' if empty.size == 1 else 'ies'} without any positive "
                          f"(first: row {int(empty[0])}); every query needs a positive for Recall@K "
                          "(e.g. an image without captions) — drop it or use ranking_metrics(..., empty='skip')")


def recall_at_k(scores: Scores | Any, positives: Positives | Any, ks: Iterable[int] = DEFAULT_KS, *,
                chunk_size: int | None = None) -> dict[int, float]:
    """R@K of each query row of ``scores`` (fractions in [0, 1]); a hit = any positive in the top K.

    A query without any positive raises :class:`VlmkitError`.
    """
    s = as_scores(scores)
    p = as_positives(positives, s.shape)
    stats = scan(s, p, chunk_size=chunk_size)
    _check_no_empty(stats, "recall_at_k")
    return recall_from_ranks(stats.first_rank, ks)


def _caption_image(caption_image: Any, n_images: int, n_captions: int) -> np.ndarray:
    ci = as_tensor(caption_image, "caption_image").reshape(-1).cpu().numpy()
    if len(ci) != n_captions:
        raise VlmkitError(f"caption_image has {len(ci)} entries but the scores have {n_captions} captions (columns)")
    if not np.issubdtype(ci.dtype, np.integer):
        raise VlmkitError(f"caption_image: expected integer image indices, got dtype {ci.dtype}")
    return ci.astype(np.int64)


def bidirectional_recall(sims: Scores | Any, caption_image: Any, ks: Iterable[int] = DEFAULT_KS, *,
                         chunk_size: int | None = None) -> dict[tuple[str, int], float]:
    """``{("i2t", K): R@K, ("t2i", K): R@K}`` of an N × M image–caption score matrix, one-to-one labels."""
    s = as_scores(sims)
    n, m = s.shape
    pos = Positives.from_caption_image(_caption_image(caption_image, n, m), n)
    out: dict[tuple[str, int], float] = {}
    for direction, sc, ps in (("i2t", s, pos), ("t2i", s.T, pos.T)):
        stats = scan(sc, ps, chunk_size=chunk_size)
        _check_no_empty(stats, f"{direction} recall")
        for k, v in recall_from_ranks(stats.first_rank, ks).items():
            out[(direction, k)] = v
    return out


def fold_indices(caption_image: Any, n_images: int, fold_size: int = 1000) -> list[tuple[np.ndarray, np.ndarray]]:
    """COCO 1K folds: consecutive blocks of ``fold_size`` images and the captions written for them.

    ``n_images`` must be a multiple of ``fold_size`` (the Karpathy 5K test split → 5 folds).
    """
    ci = np.asarray(caption_image, dtype=np.int64)
    if n_images < fold_size or n_images % fold_size:
        raise VlmkitError(f"1K folds need a multiple of {fold_size} images, got {n_images}")
    folds = []
    for f in range(n_images // fold_size):
        img = np.arange(f * fold_size, (f + 1) * fold_size)
        cap = np.flatnonzero((ci >= img[0]) & (ci <= img[-1]))
        folds.append((img, cap))
    return folds


def protocol_name(protocol: str, n_images: int, n_captions: int, fold_size: int = 1000) -> str:
    """The honest name of what a protocol request computes on a gallery of this size."""
    if protocol == "coco5k":
        return "COCO 5K" if n_images == 5000 else f"full {n_images}x{n_captions}"
    if protocol == "coco1k":
        k = n_images // fold_size
        return "COCO 1K (5-fold mean)" if n_images == 5000 else f"{k}-fold 1K mean ({n_images} images)"
    if protocol == "full":
        return f"full {n_images}x{n_captions}"
    raise VlmkitError(f"protocol must be 'coco5k', 'coco1k' or 'full', got {protocol!r}")


def coco_recall(sims: Scores | Any, caption_image: Any, protocol: str = "coco5k", ks: Iterable[int] = DEFAULT_KS, *,
                chunk_size: int | None = None, fold_size: int = 1000) -> dict[tuple[str, int], float]:
    """R@K both directions under ``protocol``: ``"coco5k"``/``"full"`` (the whole matrix) or
    ``"coco1k"`` (mean over consecutive ``fold_size``-image folds of the per-fold R@K)."""
    s = as_scores(sims)
    n, m = s.shape
    protocol_name(protocol, n, m, fold_size)  # validates the name
    ks = tuple(ks)
    if protocol != "coco1k":
        return bidirectional_recall(s, caption_image, ks, chunk_size=chunk_size)
    ci = _caption_image(caption_image, n, m)
    per_fold = []
    for img, cap in fold_indices(ci, n, fold_size):
        per_fold.append(bidirectional_recall(s.subset(img, cap), ci[cap] - img[0], ks, chunk_size=chunk_size))
    return {key: float(np.mean([r[key] for r in per_fold])) for key in per_fold[0]}


def rsum(recalls: dict[tuple[str, int], float], ks: Sequence[int] = DEFAULT_KS) -> float:
    """RSUM = Σ over both directions of R@1/5/10, *in percent* (max 600), from :func:`coco_recall`."""
    missing = [(d, k) for d in ("i2t", "t2i") for k in ks if (d, k) not in recalls]
    if missing:
        raise VlmkitError(f"rsum: recalls lack {missing}; compute R@{list(ks)} in both directions first")
    return float(sum(100.0 * recalls[(d, k)] for d in ("i2t", "t2i") for k in ks))
