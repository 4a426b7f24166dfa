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
* :func:`pair_type_quantiles` — per pair type n, mean and exact quantiles (``np.quantile``'s
  rule) by counting cells and partially sorting only the cells that hold the wanted ranks.
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
            raise VlmkitError(f"select({rows.start}:{rows.stop}) returned shape {mask.shape}, "
                              f"expected {(rows.stop - rows.start, m)}")
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


def _order_statistics(values: Any, types: Callable[[slice], np.ndarray], ranks: list[np.ndarray], n_types: int,
                      lo: np.ndarray, hi: np.ndarray, block_rows: int | None,
                      grid: int = 1 << 16) -> list[dict[int, float]]:
    """Exact order statistics per type: ``ranks[t]`` are 0-based ranks into type ``t``'s sorted
    values.  One pass counts the values per type over ``grid`` equal-width cells of [lo_t, hi_t];
    a second pass keeps only the values in the cells that hold a wanted rank and partially sorts
    them.  Memory: one block plus those cells' values."""
    s = _matrix(values, "values")
    span = np.where(hi > lo, hi - lo, 1.0)

    def cell(v: np.ndarray, t: np.ndarray) -> np.ndarray:
        v = np.where(np.isfinite(v), v, lo[t])  # non-finite values are a type of their own, never wanted
        return np.clip(((v - lo[t]) / span[t] * grid).astype(np.int64), 0, grid - 1)

    counts = np.zeros((n_types, grid), np.int64)
    for rows in row_blocks(s.shape[0], s.shape[1], block_rows):
        v, t = np.asarray(s[rows], np.float64).ravel(), types(rows).ravel()
        counts += np.bincount(t * grid + cell(v, t), minlength=n_types * grid).reshape(n_types, grid)
    below = np.cumsum(counts, axis=1) - counts  # values of the type in lower cells
    want = [{int(r): int(np.searchsorted(np.cumsum(counts[k]), r, side="right")) for r in ranks[k]}
            for k in range(n_types)]
    keep = [sorted(set(w.values())) for w in want]
    got: list[list[np.ndarray]] = [[] for _ in range(n_types)]
    for rows in row_blocks(s.shape[0], s.shape[1], block_rows):
        v, t = np.asarray(s[rows], np.float64).ravel(), types(rows).ravel()
        c = cell(v, t)
        for k in range(n_types):
            if keep[k]:
                sel = (t == k) & np.isin(c, keep[k])
                got[k].append(np.stack([c[sel].astype(np.float64), v[sel]]))
    out = []
    for k in range(n_types):
        res = {}
        cv = np.concatenate(got[k], axis=1) if got[k] else np.zeros((2, 0))
        for r, c in want[k].items():
            vals = np.sort(cv[1][cv[0] == c])
            res[r] = float(vals[r - below[k, c]])
        out.append(res)
    return out


def pair_type_quantiles(values: Any, ds: Any | None = None, *, codes: np.ndarray | None = None,
                        quantiles: tuple[float, ...] = (0.0, 0.05, 0.5, 0.95, 1.0), block_rows: int | None = None,
                        name: str = "values") -> dict[str, np.ndarray]:
    """Per pair type (:data:`PAIR_TYPES`): ``n``, ``mean`` and the exact ``quantiles`` of the
    finite ``values`` (N × M), as ``np.quantile``'s default (linear) rule gives on each type's
    values — streamed over row blocks (counting cells, then partial sorts of the few cells that
    hold the wanted ranks), never a copy of all values.  Pair types from ``codes``
    (:func:`pair_code_matrix`) or, per block, from ``ds``.  Returns ``{"n": (3,), "mean": (3,),
    "quantiles": (3, len(quantiles))}`` (NaN for a type without values)."""
    s = _matrix(values, name)
    if codes is None and ds is None:
        raise VlmkitError("pair_type_quantiles: give ds or codes (the pair types)")
    if codes is not None:
        if tuple(np.shape(codes)) != tuple(s.shape):
            raise VlmkitError(f"codes: shape {tuple(np.shape(codes))}, expected {tuple(s.shape)} (the shape of {name})")
    else:
        _check(ds, s.shape, name)
    qs = np.asarray(quantiles, np.float64)
    if qs.size and (qs.min() < 0 or qs.max() > 1):
        raise VlmkitError(f"quantiles must lie in [0, 1], got {list(quantiles)}")

    def types(rows: slice) -> np.ndarray:
        t = CODE_TO_TYPE[_codes(ds, codes, rows)]
        b = np.asarray(s[rows])
        return np.where(np.isfinite(b), t, 3)  # 3: non-finite, left out

    n = np.zeros(4, np.int64)
    sums = np.zeros(4, np.float64)
    lo, hi = np.full(4, np.inf), np.full(4, -np.inf)
    for rows in row_blocks(s.shape[0], s.shape[1], block_rows):
        v, t = np.asarray(s[rows], np.float64).ravel(), types(rows).ravel()
        n += np.bincount(t, minlength=4)
        sums += np.bincount(t, weights=np.where(t < 3, v, 0.0), minlength=4)
        for k in range(3):
            vk = v[t == k]
            if vk.size:
                lo[k], hi[k] = min(lo[k], vk.min()), max(hi[k], vk.max())
    n, sums, lo, hi = n[:3], sums[:3], lo[:3], hi[:3]
    pos = [(qs * (n[k] - 1)) if n[k] else np.zeros(0) for k in range(3)]
    ranks = [np.unique(np.concatenate([np.floor(p), np.minimum(np.floor(p) + 1, max(n[k] - 1, 0))])).astype(np.int64)
             if n[k] else np.zeros(0, np.int64) for k, p in enumerate(pos)]
    stats = _order_statistics(s, types, ranks + [np.zeros(0, np.int64)], 4, np.append(lo, 0.0), np.append(hi, 1.0),
                              block_rows)
    out = np.full((3, qs.size), np.nan)
    for k in range(3):
        if not n[k]:
            continue
        for j, p in enumerate(pos[k]):
            f = int(np.floor(p))
            a, b = stats[k][f], stats[k][min(f + 1, int(n[k]) - 1)]
            out[k, j] = a + (p - f) * (b - a)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, sums / np.maximum(n, 1), np.nan)
    return {"n": n, "mean": mean, "quantiles": out}


def one_to_one_matrix(caption_image: Any, n_images: int | None = None):
    """The one-to-one labels as a SciPy CSR bool matrix (N × M; caption ``j`` is labelled with
    image ``caption_image[j]``): M entries, not N × M — row- and column-sliceable in blocks."""
    import scipy.sparse as sp

    ci = np.asarray(caption_image).reshape(-1)
    if ci.size and (not np.issubdtype(ci.dtype, np.integer) or ci.min() < 0):
        raise VlmkitError(f"caption_image: expected non-negative integer image indices, got dtype {ci.dtype}")
    n = int(ci.max()) + 1 if n_images is None and ci.size else int(n_images or 0)
    if ci.size and ci.max() >= n:
        raise VlmkitError(f"caption_image: caption {int(np.argmax(ci >= n))} points at image {int(ci.max())}, "
                          f"but there are {n} images")
    return sp.csr_matrix((np.ones(ci.size, bool), (ci.astype(np.int64), np.arange(ci.size))), shape=(n, ci.size),
                         dtype=bool)


def sparse_rows(matrix: Any, *, block_rows: int | None = None):
    """A bool N × M matrix (dense, memmap, tensor, CSR) as SciPy CSR, converted in row blocks
    (the truth of a data set is sparse: its positives, not N × M booleans)."""
    import scipy.sparse as sp

    if sp.issparse(matrix):
        return sp.csr_matrix(matrix, dtype=bool)
    m = _matrix(matrix, "truth")
    parts = [sp.csr_matrix(np.asarray(m[rows]) != 0) for rows in row_blocks(m.shape[0], m.shape[1], block_rows)]
    return sp.vstack(parts, format="csr", dtype=bool) if parts else sp.csr_matrix(m.shape, dtype=bool)


def truth_from_codes(codes: Any, *, block_rows: int | None = None):
    """The truth (pair codes 0 and 1: true, labelled or not) of a :func:`pair_code_matrix` as CSR."""
    import scipy.sparse as sp

    c = _matrix(codes, "codes")
    parts = [sp.csr_matrix(np.asarray(c[rows]) <= 1) for rows in row_blocks(c.shape[0], c.shape[1], block_rows)]
    return sp.vstack(parts, format="csr", dtype=bool) if parts else sp.csr_matrix(c.shape, dtype=bool)


class PairTruth:
    """The two relations a pair type needs — one-to-one labels (``caption_image``) and the truth
    (``positives``: CSR or any bool N × M matrix) — behind the ``ds.labels(rows)`` /
    ``ds.positives(rows)`` interface :func:`block_pair_codes` reads, so the streamed statistics
    take plain arrays as well as a data set."""

    def __init__(self, caption_image: Any, positives: Any, n_images: int | None = None):
        self._labels = one_to_one_matrix(caption_image, n_images)
        self._truth = sparse_rows(positives)
        self.num_images, self.num_captions = self._labels.shape
        self.name = "the given pairs"
        if self._truth.shape != self._labels.shape:
            raise VlmkitError(f"positives: shape {self._truth.shape}, expected {self._labels.shape} "
                              "(images × captions of caption_image)")

    def labels(self, idx: Any) -> np.ndarray:
        return self._labels[np.asarray(idx)].toarray()

    def positives(self, idx: Any) -> np.ndarray:
        return self._truth[np.asarray(idx)].toarray()
