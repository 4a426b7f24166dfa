"""Similarity scores, queries × gallery, read in row blocks.

Every metric of :mod:`vlmkit.metrics` consumes a :class:`Scores`: a queries × gallery
score matrix (optionally with an uncertainty matrix of the same shape) that is only ever
read ``chunk_size`` rows at a time.  It is backed either by a matrix (torch tensor on any
device, NumPy array, or a NumPy memmap — blocks are sliced before they are converted, so a
memmap larger than memory works) or by two feature matrices, in which case each block is
one matrix product ``queries[a:b] @ gallery.T`` and the full matrix never exists.

Convention: ``sims[i, j]`` = image ``i`` vs caption ``j`` (N × M).  Text→image retrieval uses
``scores.T`` (M × N), a view: nothing is copied or recomputed beyond the block being read.

Scores must be finite: a block with NaN or ±inf raises :class:`~vlmkit.utils.VlmkitError`
naming the row and column (NaN cannot be ranked and ±inf would silently tie).
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch

from ..utils import VlmkitError, as_tensor, resolve_device

#: Default block budget: a block holds at most this many scores (16 MiB in float32).
BLOCK_ELEMENTS = 1 << 22

ArrayLike = Any  # torch.Tensor | np.ndarray | nested sequence


def float_dtype(t: torch.Tensor) -> torch.dtype:
    """float64 stays float64; every other dtype is computed in float32."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def check_finite(t: torch.Tensor, name: str, row_offset: int = 0) -> None:
    """Raise a :class:`VlmkitError` naming the first non-finite entry of ``t``."""
    if not t.is_floating_point() or t.numel() == 0:
        return
    lo, hi = t.aminmax()  # NaN propagates through min/max: two reductions, no temporary
    if not (bool(torch.isfinite(lo)) and bool(torch.isfinite(hi))):
        bad = (~torch.isfinite(t)).nonzero()[0].tolist()
        where = f"row {bad[0] + row_offset}" + (f", column {bad[1]}" if len(bad) > 1 else "")
        raise VlmkitError(f"{name}: non-finite value {t[tuple(bad)].item()} at {where}; "
                          "scores must be finite (NaN/inf cannot be ranked)")


def l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


def auto_chunk(n_cols: int, chunk_size: int | None) -> int:
    """Rows per block: ``chunk_size`` if given, else as many as fit in :data:`BLOCK_ELEMENTS`."""
    if chunk_size is None:
        return max(1, BLOCK_ELEMENTS // max(1, n_cols))
    if int(chunk_size) < 1:
        raise VlmkitError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    return int(chunk_size)


def _features(x: ArrayLike, name: str) -> torch.Tensor:
    t = as_tensor(x, name)
    if t.ndim != 2:
        raise VlmkitError(f"{name}: expected a 2-D (n, d) feature matrix, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.float()
    check_finite(t, name)
    return t


class Scores:
    """A queries × gallery score matrix (+ optional uncertainty) read in row blocks.

    Build it with ``Scores(sims, uncertainty=None)`` from a matrix or with
    :meth:`from_features`.  ``device`` is where blocks are computed (default: the device of
    the tensor given, CPU for NumPy).
    """

    def __init__(self, sims: ArrayLike | None, uncertainty: ArrayLike | None = None, *,
                 device: str | torch.device | None = None, _feats: tuple | None = None,
                 _transposed: bool = False):
        self._transposed = _transposed
        self._feats = _feats
        if _feats is None:
            self._sims = _as_matrix(sims, "scores")
            shape = tuple(self._sims.shape)
            default_dev = self._sims.device if isinstance(self._sims, torch.Tensor) else torch.device("cpu")
        else:
            self._sims = None
            shape = (len(_feats[0]), len(_feats[1]))
            default_dev = _feats[0].device
        if _transposed:
            shape = shape[::-1]
        self._unc = None if uncertainty is None else _as_matrix(uncertainty, "uncertainty")
        if self._unc is not None:
            ushape = tuple(self._unc.shape)[::-1] if _transposed else tuple(self._unc.shape)
            if ushape != shape:
                raise VlmkitError(f"uncertainty: shape {tuple(self._unc.shape)} does not match the scores' "
                                  f"shape {shape[::-1] if _transposed else shape}")
        self.shape: tuple[int, int] = shape  # (queries, gallery) in this view
        self.device = torch.device(device) if device is not None else default_dev

    # -- construction
    @classmethod
    def from_features(cls, queries: ArrayLike, gallery: ArrayLike, *, normalize: bool = True,
                      uncertainty: ArrayLike | None = None,
                      device: str | torch.device | None = "auto") -> "Scores":
        """Cosine (``normalize=True``) or dot-product scores ``queries @ gallery.T``, lazily.

        Features are moved to ``device`` once; each block is one matrix product there.
        """
        q, g = _features(queries, "queries"), _features(gallery, "gallery")
        if q.shape[1] != g.shape[1]:
            raise VlmkitError(f"feature dimensions differ: queries have d={q.shape[1]}, gallery d={g.shape[1]}")
        dev = resolve_device(device) if device is None or device == "auto" else torch.device(device)
        dt = torch.float64 if torch.float64 in (q.dtype, g.dtype) else torch.float32
        q, g = q.to(dev, dt), g.to(dev, dt)
        if normalize:
            q, g = l2_normalize(q), l2_normalize(g)
        return cls(None, uncertainty, device=dev, _feats=(q, g))

    @property
    def T(self) -> "Scores":  # noqa: N802 - matches torch/numpy naming
        """The gallery × queries view (text→image when ``self`` is image→text)."""
        out = Scores.__new__(Scores)
        out.__dict__.update(self.__dict__)
        out._transposed = not self._transposed
        out.shape = self.shape[::-1]
        return out

    @property
    def has_uncertainty(self) -> bool:
        return self._unc is not None

    # -- reading
    def block(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Rows ``[start, stop)`` of this view as float tensors on ``self.device``, checked finite."""
        if self._feats is not None:
            q, g = self._feats
            if self._transposed:
                q, g = g, q
            sims = q[start:stop] @ g.T
        else:
            sims = _rows(self._sims, start, stop, self._transposed, self.device)
            sims = sims.to(float_dtype(sims))
        check_finite(sims, "scores", start)
        unc = None
        if self._unc is not None:
            unc = _rows(self._unc, start, stop, self._transposed, self.device)
            unc = unc.to(float_dtype(unc))
            check_finite(unc, "uncertainty", start)
        return sims, unc

    def blocks(self, chunk_size: int | None = None) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor | None]]:
        """Yield ``(start, stop, sims, uncertainty)`` over all rows, ``chunk_size`` rows at a time."""
        step = auto_chunk(self.shape[1], chunk_size)
        for a in range(0, self.shape[0], step):
            b = min(a + step, self.shape[0])
            sims, unc = self.block(a, b)
            yield a, b, sims, unc

    def materialize(self, chunk_size: int | None = None) -> "Scores":
        """A matrix-backed copy (computed block by block), e.g. to reuse one 5K×25K matrix."""
        if self._feats is None:
            return self
        out = None
        for a, b, sims, _ in self.blocks(chunk_size):
            if out is None:
                out = torch.empty(self.shape, dtype=sims.dtype, device=sims.device)
            out[a:b] = sims
        if out is None:
            out = torch.empty(self.shape, device=self.device)
        unc = self._unc.T if (self._unc is not None and self._transposed) else self._unc
        return Scores(out, unc, device=self.device)

    def subset(self, rows: ArrayLike, cols: ArrayLike) -> "Scores":
        """The scores of query ``rows`` × gallery ``cols`` of this view (indices into it)."""
        r = as_tensor(rows, "rows").long().cpu()
        c = as_tensor(cols, "cols").long().cpu()
        if self._transposed:
            return self.T.subset(c, r).T
        unc = None if self._unc is None else _take(self._unc, r, c)
        if self._feats is not None:
            q, g = self._feats
            out = Scores(None, unc, device=self.device, _feats=(q[r.to(q.device)], g[c.to(g.device)]))
            return out
        return Scores(_take(self._sims, r, c), unc, device=self.device)


def as_scores(x: "Scores | ArrayLike", uncertainty: ArrayLike | None = None) -> Scores:
    """Accept a :class:`Scores` or a score matrix (then ``uncertainty`` may ride along)."""
    if isinstance(x, Scores):
        if uncertainty is not None:
            raise VlmkitError("uncertainty: pass it inside the Scores object, not separately")
        return x
    return Scores(x, uncertainty)


def similarity_matrix(queries: ArrayLike, gallery: ArrayLike, *, normalize: bool = True,
                      chunk_size: int | None = None, device: str | torch.device | None = "auto") -> torch.Tensor:
    """The full ``queries @ gallery.T`` score matrix, computed block by block (cosine by default)."""
    return Scores.from_features(queries, gallery, normalize=normalize, device=device).materialize(chunk_size)._sims


# --------------------------------------------------------------------------- helpers


def per_query(values: ArrayLike, name: str, correct: ArrayLike, empty: str) -> tuple[np.ndarray, np.ndarray]:
    """``(values as float64, correct as bool)``, flat, one entry per query: equal sizes, at
    least one entry (else ``empty`` is the error), ``correct`` booleans or 0/1."""
    v = as_tensor(values, name).reshape(-1).double().cpu().numpy()
    y = as_tensor(correct, "correct").reshape(-1).cpu().numpy()
    if v.shape != y.shape:
        raise VlmkitError(f"{name} has {v.size} entries but correct has {y.size}")
    if v.size == 0:
        raise VlmkitError(empty)
    if y.dtype != bool:
        if not np.isin(y, (0, 1)).all():
            raise VlmkitError("correct: expected booleans or 0/1")
        y = y.astype(bool)
    return v, y


def _as_matrix(x: ArrayLike, name: str):
    if isinstance(x, np.ndarray):  # kept as NumPy (memmap-friendly): blocks are sliced first
        m = x
    else:
        m = as_tensor(x, name)
    if m.ndim != 2:
        raise VlmkitError(f"{name}: expected a 2-D (queries, gallery) matrix, got shape {tuple(m.shape)}")
    if isinstance(m, np.ndarray):
        if not (np.issubdtype(m.dtype, np.floating) or np.issubdtype(m.dtype, np.integer)):
            raise VlmkitError(f"{name}: expected numbers, got dtype {m.dtype}")
    elif m.dtype == torch.bool or m.is_complex():
        raise VlmkitError(f"{name}: expected real numbers, got dtype {m.dtype}")
    return m


COLUMN_READ_ELEMENTS = 1 << 21
"""Elements of the matrix's rows read at a time when a block of *columns* is taken from a NumPy
(memory-mapped) matrix: :func:`read_columns`."""


def read_columns(m: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Columns ``[start, stop)`` of a NumPy N × M matrix as a C-contiguous (stop − start) × N
    array, read in slabs of whole rows (:data:`COLUMN_READ_ELEMENTS`): from a memory map each
    slab is its own read, so the pages a column block touches — one or more per row, with the
    kernel's fault-around often the whole file — are given back slab by slab (a
    :class:`vlmkit.utils.ReleasingMemmap` drops them on the next read) instead of all at once."""
    out = np.empty((stop - start, m.shape[0]), dtype=m.dtype)
    step = max(1, COLUMN_READ_ELEMENTS // max(1, m.shape[1]))
    for r in range(0, m.shape[0], step):
        out[:, r:r + step] = m[r:r + step, start:stop].T
    return out


def _tensor_columns(m: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """:func:`read_columns` of a CPU tensor: the transposing copy slab by slab stays in cache
    (8× faster than ``m[:, start:stop].T.contiguous()`` on a 5,000 × 25,000 matrix)."""
    out = torch.empty((stop - start, m.shape[0]), dtype=m.dtype)
    step = max(1, COLUMN_READ_ELEMENTS // max(1, m.shape[1]))
    for r in range(0, m.shape[0], step):
        out[:, r:r + step] = m[r:r + step, start:stop].T
    return out


def _rows(m, start: int, stop: int, transposed: bool, device: torch.device) -> torch.Tensor:
    if isinstance(m, np.ndarray):
        if transposed:
            return torch.from_numpy(read_columns(m, start, stop)).to(device)
        blk = m[start:stop]
        blk = np.ascontiguousarray(blk) if blk.flags.writeable else np.array(blk, order="C")
        return torch.from_numpy(blk).to(device)
    if transposed and m.device.type == "cpu":
        return _tensor_columns(m, start, stop).to(device)
    blk = m[:, start:stop].T if transposed else m[start:stop]
    return blk.to(device).contiguous()


def _take(m, r: torch.Tensor, c: torch.Tensor):
    if isinstance(m, np.ndarray):
        return m[np.ix_(r.numpy(), c.numpy())]
    return m[r.to(m.device)][:, c.to(m.device)]
