"""Uncertainty vs accuracy, VACSR paper Fig. 3 and Appendix H, with the views that make it honest.

:func:`fig3_report` takes an (N images × M captions) score matrix, the uncertainty matrix σ²,
the one-to-one labels and optionally the exact truth, and returns tidy DataFrames, each with a
``protocol`` column (``"labels"``: one-to-one labels, the paper's Fig. 3 protocol — COCO's
binary labels; ``"exact truth"``: every caption true of the image counts):

- ``bins`` — per direction (``i2t``: image queries; ``t2i``: caption queries), protocol,
  uncertainty source and binning: the top-1 pair's uncertainty of every query binned into 10
  **equal-width** bins over [min, max] (the paper's) or 10 **equal-count** bins; per bin
  ``count``, ``hits`` (top-1 correct) and ``r1`` = hits / count.
  Source ``"sigma2"`` is the adapter's σ²; ``"-score"`` is the **control**, uncertainty :=
  −(top-1 score): σ² is informative beyond the score only if it beats the control.
- ``summary`` — per (direction, protocol, source, binning): Pearson r between the non-empty
  bins' mean uncertainty and their R@1 (paper: −0.931 i→t, −0.903 t→i), and a bootstrap 95 %
  interval (queries resampled with replacement, bins recomputed on each resample; percentile
  interval of the finite r's).
- ``strata`` — the AUROC of σ² for top-1 *errors* (P(σ²_wrong > σ²_right), ties ½) within
  ``n_strata`` equal-count strata of the top-1 score, plus an ``all`` row: does σ² tell wrong
  from right among queries whose scores are alike?
- ``ranking`` — Appendix H: per query the mean σ² over its top-k retrieved items
  (k ∈ ``ks``) against its AP@R (ECCV-Caption style: (1/R) Σ_{r ≤ R} P@r·rel(r), R = the
  query's number of positives under the protocol); Pearson r per query and over 10 equal-width
  bins of the mean σ².

Ranking and the top-1 use the pessimistic tie rule of :mod:`vlmkit.metrics` (a negative tied
with a positive ranks above it). Queries without any positive under a protocol are left out of
that protocol (``n_queries`` says how many remain). Matrices are read in row blocks (``t2i``:
column blocks) and ranked by exact partial sorts, so a memory-mapped COCO-5K matrix (5,000 ×
25,000) never exists as a float64 copy.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import Tensor

from vlmkit.metrics.scores import BLOCK_ELEMENTS, _tensor_columns, read_columns
from vlmkit.metrics.uncertainty import auroc, bin_index
from vlmkit.utils import VlmkitError

DIRECTIONS = ("i2t", "t2i")
LABELS, TRUTH = "labels", "exact truth"  # the two values of the ``protocol`` column


def pessimistic_order(scores: Tensor, relevant: Tensor) -> Tensor:
    """Per row, item indices by descending score; among tied scores non-relevant items first."""
    idx1 = torch.sort(relevant.to(torch.int8), dim=1, stable=True).indices  # negatives first
    s2 = scores.gather(1, idx1)
    idx2 = torch.sort(s2, dim=1, descending=True, stable=True).indices
    return idx1.gather(1, idx2)


def ap_at_r(order: Tensor, relevant: Tensor) -> Tensor:
    """Per row AP@R = (1/R) Σ_{r ≤ R} P@r · rel(r) for rows ranked by ``order`` (NaN when R = 0)."""
    rel = relevant.gather(1, order).double()
    R = relevant.sum(1)
    cum = rel.cumsum(1)
    ranks = torch.arange(1, rel.shape[1] + 1, dtype=torch.float64)
    within = ranks.unsqueeze(0) <= R.unsqueeze(1)
    ap = (cum / ranks * rel * within).sum(1) / R.clamp_min(1)
    return torch.where(R > 0, ap, torch.full_like(ap, float("nan")))


def _bin_stats(u: np.ndarray, y: np.ndarray, n_bins: int, binning: str) -> pd.DataFrame:
    idx, lo, hi = bin_index(u, n_bins, binning)
    count = np.bincount(idx, minlength=n_bins)
    hits = np.bincount(idx, weights=y.astype(np.float64), minlength=n_bins).astype(np.int64)
    su = np.bincount(idx, weights=u, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_u = np.where(count > 0, su / count, np.nan)
        r1 = np.where(count > 0, hits / count, np.nan)
    return pd.DataFrame({"bin": np.arange(n_bins), "lo": lo, "hi": hi, "count": count, "hits": hits,
                         "mean_uncertainty": mean_u, "r1": r1})


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def binned_pearson(u: np.ndarray, y: np.ndarray, n_bins: int = 10, binning: str = "width") -> float:
    """Pearson r of the non-empty bins' mean uncertainty vs their R@1 (NaN if < 3 bins)."""
    b = _bin_stats(u, y, n_bins, binning)
    b = b[b["count"] > 0]
    return _pearson(b["mean_uncertainty"].to_numpy(), b["r1"].to_numpy())


def bootstrap_pearson(u: np.ndarray, y: np.ndarray, n_bins: int = 10, binning: str = "width", n_boot: int = 1000,
                      seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of :func:`binned_pearson` over query resamples (NaN if none finite)."""
    if n_boot < 1:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    rs = np.array([binned_pearson(u[i], y[i], n_bins, binning)
                   for i in (rng.integers(0, u.size, u.size) for _ in range(n_boot))])
    rs = rs[np.isfinite(rs)]
    if not rs.size:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(rs, a)), float(np.quantile(rs, 1 - a))


def _rows_of(m: Any, start: int, stop: int, transposed: bool, dtype=torch.float64) -> Tensor:
    """Rows ``[start, stop)`` of ``m`` (or of ``m.T`` when ``transposed``) as a tensor: only
    that block is read (a NumPy memmap stays on disk) and converted."""
    if isinstance(m, Tensor):
        if transposed and m.device.type == "cpu":  # slab by slab: the transposing copy stays in cache
            t = _tensor_columns(m, start, stop)
            return t.to(dtype) if dtype is not None else t
        blk = m[:, start:stop].t() if transposed else m[start:stop]
        return blk.to(dtype).contiguous() if dtype is not None else blk.contiguous()
    if transposed and isinstance(m, np.ndarray):  # a memmap: read in row slabs, its pages given back slab by slab
        t = torch.from_numpy(read_columns(m, start, stop))
        return t.to(dtype) if dtype is not None else t
    blk = m[:, start:stop].T if transposed else m[start:stop]
    t = torch.from_numpy(blk.toarray() if sp.issparse(blk) else np.array(blk, order="C"))
    return t.to(dtype) if dtype is not None else t


def _block_view(s: Tensor, u: Tensor, r: Tensor, k_rank: int) -> dict[str, np.ndarray]:
    """Per query row of one block with positives: top-1 score / σ² / correctness, AP@R and the
    σ² of its first ``k_rank`` ranked items — the pessimistic order (score descending, then
    non-relevant first, then item index) found by an exact partial sort: every item scoring at
    least the row's ``k``-th best score (``k`` = max(k_rank, positives)) is a candidate, and only
    candidates are ordered, so the first ``k`` positions equal a full sort's."""
    keep = r.any(1)
    s, u, r = s[keep], u[keep], r[keep]
    n, g = s.shape
    R = r.sum(1)
    k = int(min(g, max(k_rank, int(R.max()) if n else 0, 1)))
    if n == 0:
        return {"keep": keep.numpy(), "top_score": np.zeros(0), "top_unc": np.zeros(0), "correct": np.zeros(0, bool),
                "ap": np.zeros(0), "ranked_unc": np.zeros((0, k))}
    kth = torch.topk(s, k, dim=1).values[:, -1:]
    width = int((s >= kth).sum(1).max())  # candidates per row: everything tied with the k-th too
    cand = torch.sort(torch.topk(s, width, dim=1).indices, dim=1).values  # candidate items in index order
    rel = r.gather(1, cand)
    o1 = torch.sort(rel.to(torch.int8), dim=1, stable=True).indices  # negatives first, index order kept
    cand, rel = cand.gather(1, o1), rel.gather(1, o1)
    o2 = torch.sort(s.gather(1, cand), dim=1, descending=True, stable=True).indices
    order, rel = cand.gather(1, o2)[:, :k], rel.gather(1, o2)[:, :k]
    top = order[:, 0:1]
    cum = rel.double().cumsum(1)
    ranks = torch.arange(1, k + 1, dtype=torch.float64)
    within = ranks.unsqueeze(0) <= R.unsqueeze(1)
    ap = (cum / ranks * rel.double() * within).sum(1) / R.clamp_min(1)
    return {"keep": keep.numpy(), "top_score": s.gather(1, top)[:, 0].numpy(),
            "top_unc": u.gather(1, top)[:, 0].numpy(),
            "correct": rel[:, 0].numpy().astype(bool), "ap": ap.numpy(), "ranked_unc": u.gather(1, order).numpy()}


def _query_view(scores: Any, unc: Any, rel: Any, transposed: bool, k_rank: int,
                block_rows: int | None) -> dict[str, np.ndarray]:
    """:func:`_block_view` over row blocks of ``scores`` (``.T`` when ``transposed``): memory is
    one block (float64) plus O(queries × k_rank), never the N × M matrix."""
    n_rows, n_cols = (scores.shape[1], scores.shape[0]) if transposed else (scores.shape[0], scores.shape[1])
    step = int(block_rows) if block_rows else max(1, BLOCK_ELEMENTS // max(1, n_cols))
    parts = []
    for a in range(0, n_rows, step):
        b = min(n_rows, a + step)
        s = _rows_of(scores, a, b, transposed)
        u = _rows_of(unc, a, b, transposed)
        r = _rows_of(rel, a, b, transposed, None).bool()
        if not bool(torch.isfinite(s).all()) or not bool(torch.isfinite(u).all()):
            raise VlmkitError(f"scores / uncertainty: non-finite value in {'columns' if transposed else 'rows'} "
                              f"{a}:{b}; "
                              "expected finite values for every pair (score them exactly, not top-K)")
        parts.append(_block_view(s, u, r, k_rank))
    k = min(k_rank, n_cols)  # every block ranked at least this many items
    out = {key: np.concatenate([p[key] for p in parts]) for key in ("keep", "top_score", "top_unc", "correct", "ap")}
    out["ranked_unc"] = np.concatenate([p["ranked_unc"][:, :k] for p in parts]) if parts else np.zeros((0, k))
    return out


def _shape(x: Any, name: str) -> tuple[int, int]:
    shape = tuple(x.shape) if hasattr(x, "shape") else tuple(np.shape(x))
    if len(shape) != 2:
        raise VlmkitError(f"{name}: expected an (images × captions) matrix, got shape {shape}")
    return shape


def _matrix(x: Any) -> Any:
    """A tensor, a NumPy array (memmaps kept as they are: read block by block) or a SciPy
    sparse matrix (labels and truth: converted to CSR, densified one block at a time)."""
    if sp.issparse(x):
        return sp.csr_matrix(x)
    return x if isinstance(x, (Tensor, np.ndarray)) else torch.as_tensor(x)


def fig3_report(scores: Any, uncertainty: Any, labels: Any, truth: Any | None = None, *, n_bins: int = 10,
                n_boot: int = 1000, seed: int = 0, n_strata: int = 5, ks: Sequence[int] = (1, 5, 10, 50),
                directions: Sequence[str] = DIRECTIONS, block_rows: int | None = None) -> dict[str, pd.DataFrame]:
    """The Fig. 3 / Appendix H analysis (module docstring): ``{"bins", "summary", "strata", "ranking"}``.

    scores, uncertainty: (N, M) image × caption; labels: (N, M) bool one-to-one labels (the
    paper's protocol); truth: optional (N, M) bool exact truth (dense or SciPy sparse) (adds the ``"exact truth"``
    protocol). n_boot = 0 skips the bootstrap.  Each matrix may be a tensor or a NumPy array /
    memmap: it is read ``block_rows`` rows (``t2i``: columns) at a time (default: blocks of
    :data:`vlmkit.metrics.scores.BLOCK_ELEMENTS` pairs), so memory is one float64 block plus
    O(queries × max(ks)) — no N × M copy, no full sort (exact partial sorts per block).
    """
    s, u = _matrix(scores), _matrix(uncertainty)
    shape = _shape(s, "scores")
    protos = {LABELS: _matrix(labels)}
    if truth is not None:
        protos[TRUTH] = _matrix(truth)
    for name, m in {"uncertainty": u, **protos}.items():
        if _shape(m, name) != shape:
            raise VlmkitError(f"{name}: shape {_shape(m, name)} differs from scores {shape}")
    if n_bins < 1 or n_strata < 1:
        raise VlmkitError(f"n_bins={n_bins}, n_strata={n_strata}: expected positive integers")
    for d in directions:
        if d not in DIRECTIONS:
            raise VlmkitError(f"direction {d!r}: expected 'i2t' or 't2i'")
    k_rank = max([int(k) for k in ks] + [1])
    bins, summary, strata, ranking = [], [], [], []
    for d in directions:
        for proto, rel in protos.items():
            q = _query_view(s, u, rel, d == "t2i", k_rank, block_rows)
            y = q["correct"]
            key = {"direction": d, "protocol": proto}
            if not y.size:
                continue
            for source, unc in (("sigma2", q["top_unc"]), ("-score", -q["top_score"])):
                for binning in ("width", "count"):
                    b = _bin_stats(unc, y, n_bins, binning)
                    bins.append(b.assign(**key, source=source, binning=binning))
                    lo, hi = bootstrap_pearson(unc, y, n_bins, binning, n_boot, seed)
                    summary.append({**key, "source": source, "binning": binning,
                                    "pearson_r": binned_pearson(unc, y, n_bins, binning), "ci_low": lo, "ci_high": hi,
                                    "r1": float(y.mean()), "n_queries": int(y.size),
                                    "n_bins_used": int((b["count"] > 0).sum())})
            sidx, slo, shi = bin_index(q["top_score"], n_strata, "count")
            for k in range(n_strata):
                m = sidx == k
                strata.append({**key, "stratum": k, "score_lo": slo[k], "score_hi": shi[k], "n": int(m.sum()),
                               "n_correct": int(y[m].sum()), "auroc": auroc(q["top_unc"][m & ~y], q["top_unc"][m & y])})
            strata.append({**key, "stratum": "all", "score_lo": float(q["top_score"].min()),
                           "score_hi": float(q["top_score"].max()), "n": int(y.size), "n_correct": int(y.sum()),
                           "auroc": auroc(q["top_unc"][~y], q["top_unc"][y])})
            ap = q["ap"]
            ranked_unc = q["ranked_unc"]
            for k in ks:
                mk = ranked_unc[:, :k].mean(1)
                ranking.append({**key, "k": int(k), "pearson_query": _pearson(mk, ap),
                                "pearson_bins": _binned_mean_corr(mk, ap, n_bins), "map_at_r": float(np.nanmean(ap)),
                                "mean_unc_topk": float(mk.mean()), "n_queries": int(mk.size)})
    cols = ["direction", "protocol"]
    b = pd.concat(bins, ignore_index=True) if bins else pd.DataFrame()
    if len(b):
        b = b[cols + ["source", "binning"] + [c for c in b.columns if c not in cols + ["source", "binning"]]]
    return {"bins": b, "summary": pd.DataFrame(summary), "strata": pd.DataFrame(strata),
            "ranking": pd.DataFrame(ranking)}


def _binned_mean_corr(x: np.ndarray, v: np.ndarray, n_bins: int) -> float:
    """Pearson r of the equal-width bins' mean x vs their mean v (non-empty bins)."""
    idx, _, _ = bin_index(x, n_bins, "width")
    count = np.bincount(idx, minlength=n_bins)
    ok = count > 0
    mx = np.bincount(idx, weights=x, minlength=n_bins)[ok] / count[ok]
    mv = np.bincount(idx, weights=v, minlength=n_bins)[ok] / count[ok]
    return _pearson(mx, mv)
