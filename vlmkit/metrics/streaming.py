"""Statistics of an N × M score matrix read in row blocks: no N × M float64 copy, no dense
N × M label / truth matrix, no full sort.

At COCO-5K size (5,000 × 25,000 = 125 M pairs) a float64 copy of a score matrix is 1 GB, a
dense pair-type matrix as int64 another 1 GB, and an argsort of every pair 1 GB of indices
plus minutes of CPU.  The functions here read ``scores`` (a torch tensor or NumPy array, any
float dtype, also a ``np.memmap``) ``block_rows`` rows at a time (default: blocks of
:data:`vlmkit.metrics.scores.BLOCK_ELEMENTS` scores), ask the dataset for the labels and
truth of those rows only (``ds.labels(rows)``, ``ds.positives(rows)``) and keep O(bins) or
O(k) state, so memory is one block whatever N × M.

* :func:`score_range` — finite min / max over all pairs.
* :func:`pair_type_histogram` — exact per-pair-type histogram, counts and means (labelled
  positive / false negative / true negative: :func:`vlmkit.viz.pair_types`' codes 0, 1, 2).
* :func:`pair_code_matrix` — the pair codes of every pair as int8, computed once (the data's
  truth is the expensive part) and shared by every method's statistics.
* :func:`top_pairs` — the k pairs with the highest key among those a mask selects, ties by
  pair order, exactly as a stable argsort of every selected pair would give.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from ..utils import VlmkitError
from .scores import BLOCK_ELEMENTS

PAIR_TYPES = ("positive", "false negative", "true negative")


def _matrix(x: Any, name: str):
    """A row-sliceable 2-D view of ``x`` without copying it (CPU tensors → their NumPy view)."""
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().cpu()
            x = x.float() if x.dtype == torch.bfloat16 else x
            x = x.numpy()
    except ImportError:  # pragma: no cover
        pass
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.ndim != 2:
        raise VlmkitError(f"{name}: expected an N × M matrix, got shape {x.shape}")
    return x


def row_blocks(n_rows: int, n_cols: int, block_rows: int | None = None) -> Iterator[slice]:
    """Consecutive row slices of at most ``block_rows`` rows (default: ``BLOCK_ELEMENTS`` scores)."""
    if block_rows is None:
        block_rows = max(1, BLOCK_ELEMENTS // max(1, n_cols))
    if int(block_rows) < 1:
        raise VlmkitError(f"block_rows must be ≥ 1, got {block_rows!r}")
    for lo in range(0, n_rows, int(block_rows)):
        yield slice(lo, min(n_rows, lo + int(block_rows)))


def score_range(scores: Any, *, block_rows: int | None = None, name: str = "scores") -> tuple[float, float]:
    """(min, max) of the finite entries of ``scores``, read in row blocks; (nan, nan) if none."""
    s = _matrix(scores, name)
    lo, hi = np.inf, -np.inf
    for rows in row_blocks(s.shape[0], s.shape[1], block_rows):
        b = np.asarray(s[rows], dtype=np.float64)
        b = b[np.isfinite(b)]
        if b.size:
            lo, hi = min(lo, float(b.min())), max(hi, float(b.max()))
    return (lo, hi) if lo <= hi else (float("nan"), float("nan"))


def _check(ds: Any, shape: tuple[int, ...], name: str) -> None:
    if tuple(shape) != (ds.num_images, ds.num_captions):
        raise VlmkitError(f"{name}: shape {tuple(shape)}, expected {(ds.num_images, ds.num_captions)} "
                          f"(images × captions of {getattr(ds, 'name', 'the dataset')})")


CODE_TO_TYPE = np.array([0, 1, 2, 0], np.int64)
"""Pair code → pair type: codes 0 and 3 (labelled, true or not) are both "positive"."""


def block_pair_codes(ds: Any, rows: slice) -> np.ndarray:
    """int8 pair codes of image rows ``rows`` against every caption: 0 labelled and true,
    1 false negative (true by ``ds.positives`` but unlabelled), 2 true negative (neither),
    3 labelled but not true (a mismatched label under exact truth)."""
    idx = np.arange(rows.start, rows.stop)
    lab, pos = np.asarray(ds.labels(idx), bool), np.asarray(ds.positives(idx), bool)
    return np.where(lab, np.where(pos, 0, 3), np.where(pos, 1, 2)).astype(np.int8)


def pair_code_matrix(ds: Any, *, block_rows: int | None = None) -> np.ndarray:
    """:func:`block_pair_codes` of every pair: an N × M int8 matrix (125 MB at COCO 5K, an
    eighth of one float64 score matrix), built in row blocks.  The data's truth is the slow
    part of every pair-type statistic (≈ 1 µs a pair on the embedded data), so compute this
    once and pass it as ``codes=`` to every method's statistics."""
    out = np.empty((ds.num_images, ds.num_captions), np.int8)
    for rows in row_blocks(ds.num_images, ds.num_captions, block_rows):
        out[rows] = block_pair_codes(ds, rows)
    return out


def _codes(ds: Any, codes: np.ndarray | None, rows: slice) -> np.ndarray:
    return np.asarray(codes[rows]) if codes is not None else block_pair_codes(ds, rows)


@dataclass
class PairTypeHistogram:
    """Exact histogram of scores per pair type over every pair (see :func:`pair_type_histogram`)."""

    edges: np.ndarray  # (bins + 1,) shared equal-width edges over the finite score range
    counts: np.ndarray  # (3, bins) int64: pairs per type (PAIR_TYPES order) and bin
    n: np.ndarray  # (3,) int64: pairs per type (all, finite or not)
    sums: np.ndarray  # (3,) float64: sum of the finite scores per type

    @property
    def means(self) -> np.ndarray:
        """Mean score per type (nan for a type without pairs)."""
        finite = self.counts.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(finite > 0, self.sums / np.maximum(finite, 1), np.nan)

    def density(self, k: int) -> np.ndarray:
        """Type ``k``'s counts as a density over the bins (integrates to 1; zeros when empty)."""
        c = self.counts[k]
        width = float(self.edges[1] - self.edges[0])
        return c / (c.sum() * width) if c.sum() else np.zeros(len(c))


def pair_type_histogram(scores: Any, ds: Any, *, bins: int = 80, block_rows: int | None = None,
                        codes: np.ndarray | None = None, name: str = "scores") -> PairTypeHistogram:
    """Per-pair-type histogram of ``scores`` (images × captions of ``ds``) over ``bins`` shared
    equal-width bins spanning the finite scores (as ``np.histogram``: the last bin is closed),
    with counts and means — two passes over row blocks, memory one block.  ``codes``: the
    :func:`pair_code_matrix` of ``ds`` when already computed (else asked per block)."""
    s = _matrix(scores, name)
    _check(ds, s.shape, name)
    if codes is not None:
        _check(ds, np.shape(codes), "codes")
    if int(bins) < 1:
        raise VlmkitError(f"bins must be ≥ 1, got {bins!r}")
    lo, hi = score_range(s, block_rows=block_rows, name=name)
    if not np.isfinite(lo):
        lo, hi = 0.0, 1.0
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-6, int(bins) + 1)
    counts = np.zeros((3, int(bins)), np.int64)
    n = np.zeros(3, np.int64)
    sums = np.zeros(3, np.float64)
    for rows in row_blocks(s.shape[0], s.shape[1], block_rows):
        b = np.asarray(s[rows], dtype=np.float64).ravel()
        t = CODE_TO_TYPE[_codes(ds, codes, rows).ravel()]
        n += np.bincount(t, minlength=3)[:3]
        ok = np.isfinite(b)
        b, t = b[ok], t[ok]
        # np.histogram's rule: bins [e_i, e_i+1), the last one closed
        k = np.clip(np.searchsorted(edges, b, side="right") - 1, 0, int(bins) - 1)
        counts += np.bincount(t * int(bins) + k, minlength=3 * int(bins)).reshape(3, int(bins))
        sums += np.bincount(t, weights=b, minlength=3)[:3]
    return PairTypeHistogram(edges, counts, n, sums)


def top_pairs(key: Any, select: Callable[[slice], np.ndarray], k: int, *, block_rows: int | None = None,
              name: str = "key") -> tuple[np.ndarray, int]:
    """The flat indices (row-major, ``i * M + j``) of the ``k`` selected pairs with the highest
    ``key``, highest first, ties in pair order — what ``idx[np.argsort(-key.ravel()[idx],
    kind="stable")][:k]`` gives for ``idx`` = every selected pair — and how many pairs are
    selected.  ``select(rows)`` returns the boolean selection of a block of rows
    (``rows.stop - rows.start`` × M).  NaN keys rank as −∞.  Memory: one block plus k."""
    s = _matrix(key, name)
    k = max(0, int(k))
    m = s.shape[1]
    best_idx = np.empty(0, np.int64)
    best_val = np.empty(0, np.float64)
    total = 0
    for rows in row_blocks(s.shape[0], m, block_rows):
        mask = np.asarray(select(rows), bool)
        if mask.shape != (rows.stop - rows.start, m):
            raise VlmkitError(f"select({rows.start}:{rows.stop}) returned shape {mask.shape}, expected {(rows.stop - rows.start, m)}")
        local = np.flatnonzero(mask.ravel())
        total += len(local)
        if k == 0 or not len(local):
            continue
        vals = np.asarray(s[rows], dtype=np.float64).ravel()[local]
        vals = np.where(np.isnan(vals), -np.inf, vals)  # NaN last (argsort of -key puts NaN last too)
        idx = local + rows.start * m
        if len(vals) > k:  # keep the k largest and everything tied with the k-th
            kth = np.partition(vals, len(vals) - k)[len(vals) - k]
            keep = vals >= kth
            idx, vals = idx[keep], vals[keep]
        idx, vals = np.concatenate([best_idx, idx]), np.concatenate([best_val, vals])
        order = np.lexsort((idx, -vals))[:k]  # by value descending, then pair order
        best_idx, best_val = idx[order], vals[order]
    return best_idx, total
