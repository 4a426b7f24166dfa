"""Uncertainty vs accuracy (VACSR Fig. 3) and false-negative detection by uncertainty.

* :func:`top1_uncertainty` — per query, the uncertainty of its top-1 pair (pessimistic tie
  rule of :mod:`vlmkit.metrics.core`) and whether that pair is a positive (R@1 hit).
* :func:`uncertainty_bins` — 10 equal-width bins over [min, max] of the uncertainties
  (``strategy="width"``, the paper's; left-closed, last bin closed) or equal-count bins
  (``"count"``: queries sorted by uncertainty, ties by query index, split into ``n_bins``
  groups whose sizes differ by at most one); R@1 per bin.
* :func:`uncertainty_correlation` — Pearson and Spearman correlation between the bins' mean
  uncertainty and their R@1 over non-empty bins (the paper's r = −0.931 i→t, −0.903 t→i),
  plus the same correlations per query (uncertainty vs 0/1 hit).  scipy.stats is the
  authority for both coefficients (used directly).
* :func:`false_negative_auroc` — among pairs the one-to-one labels call negative, how well
  the uncertainty separates true false negatives (caption true of the image) from true
  negatives: AUROC = P(u_FN > u_TN) + ½ P(u_FN = u_TN), exact, in blocks.  Checked against
  ``sklearn.metrics.roc_auc_score`` in the tests.
* :func:`false_negative_auroc_with_control` — that AUROC for σ² beside the AUROC of the score
  itself on the same pairs (the control: σ² "finds false negatives" only where it beats the
  score, which already ranks false negatives above true negatives).
* :func:`uncertainty_by_pair_type` — σ²'s range per pair type (labelled positive, false
  negative, true negative): n, mean, min, 5 %, median, 95 %, max — so a narrow σ² is visible.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats as sstats

from ..utils import VlmkitError, as_tensor
from .core import scan
from .positives import Positives, as_positives
from .scores import Scores, as_scores, per_query


def top1_uncertainty(scores: Scores | Any, positives: Positives | Any, uncertainty: Any | None = None, *,
                     chunk_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(uncertainty of each query's top-1 pair, top-1 is a positive)`` for the rows of ``scores``."""
    s = as_scores(scores, uncertainty)
    p = as_positives(positives, s.shape)
    st = scan(s, p, chunk_size=chunk_size, uncertainty=True)
    return st.top1_uncertainty, st.top1_correct


def _uc(uncertainty: Any, correct: Any) -> tuple[np.ndarray, np.ndarray]:
    u, y = per_query(uncertainty, "uncertainty", correct, "uncertainty: no queries")
    if not np.isfinite(u).all():
        raise VlmkitError(f"uncertainty: non-finite value at query {int(np.flatnonzero(~np.isfinite(u))[0])}")
    return u, y


def uncertainty_bins(uncertainty: Any, correct: Any, n_bins: int = 10, strategy: str = "width") -> pd.DataFrame:
    """Rows ``bin, lo, hi, count, uncertainty (mean), r1`` (NaN for empty bins)."""
    u, y = _uc(uncertainty, correct)
    idx, los, his = bin_index(u, n_bins, strategy)
    count, mu, r1 = bin_means(idx, n_bins, u, y)
    return pd.DataFrame({"bin": np.arange(n_bins), "lo": los, "hi": his, "count": count,
                         "uncertainty": mu, "r1": r1})


def bin_means(idx: np.ndarray, n_bins: int, value: np.ndarray,
              hit: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(count, mean value, mean hit)`` per bin of ``idx`` (NaN means for empty bins): the
    per-bin sums that reliability diagrams and uncertainty bins both report."""
    count = np.bincount(idx, minlength=n_bins)
    sv = np.bincount(idx, weights=np.asarray(value, np.float64), minlength=n_bins)
    sh = np.bincount(idx, weights=np.asarray(hit, np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return count, np.where(count > 0, sv / count, np.nan), np.where(count > 0, sh / count, np.nan)


def bin_index(u: np.ndarray, n_bins: int = 10, strategy: str = "width") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(bin of each value, lo edges, hi edges)`` of the binning :func:`uncertainty_bins` uses."""
    u = np.asarray(u, dtype=np.float64)
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise VlmkitError(f"n_bins must be a positive integer, got {n_bins!r}")
    if strategy == "width":
        lo, hi = float(u.min()), float(u.max())
        edges = np.linspace(lo, hi, n_bins + 1)
        idx = np.clip(np.searchsorted(edges, u, side="right") - 1, 0, n_bins - 1) if hi > lo else np.zeros(u.size, int)
        los, his = edges[:-1], edges[1:]
    elif strategy == "count":
        order = np.argsort(u, kind="stable")
        idx = np.empty(u.size, dtype=np.int64)
        groups = np.array_split(order, n_bins)
        for b, g in enumerate(groups):
            idx[g] = b
        los = np.array([u[g].min() if g.size else np.nan for g in groups])
        his = np.array([u[g].max() if g.size else np.nan for g in groups])
    else:
        raise VlmkitError(f"strategy must be 'width' or 'count', got {strategy!r}")
    return idx, los, his


def _corr(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(sstats.pearsonr(a, b)[0]), float(sstats.spearmanr(a, b)[0])


def uncertainty_correlation(uncertainty: Any, correct: Any, n_bins: int = 10,
                            strategy: str = "width") -> dict[str, float]:
    """Pearson / Spearman of bin mean uncertainty vs bin R@1 (and per query); NaN when undefined
    (fewer than 3 non-empty bins, or a constant side)."""
    u, y = _uc(uncertainty, correct)
    bins = uncertainty_bins(u, y, n_bins, strategy)
    full = bins[bins["count"] > 0]
    pb, sb = _corr(full["uncertainty"].to_numpy(), full["r1"].to_numpy())
    pq, sq = _corr(u, y.astype(np.float64))
    return {"pearson": pb, "spearman": sb, "pearson_query": pq, "spearman_query": sq,
            "n_bins_used": int(len(full)), "n_queries": int(u.size)}


def _pairs_above(pos_sorted: torch.Tensor, neg: torch.Tensor) -> tuple[float, float]:
    """(#pairs with positive > negative, #tied pairs) for ascending ``pos_sorted``."""
    if not len(pos_sorted) or not len(neg):
        return 0.0, 0.0
    ps = pos_sorted.to(neg.device)
    if ps.dtype != neg.dtype:  # compare in the wider dtype (exact for both)
        wide = torch.promote_types(ps.dtype, neg.dtype)
        ps, neg = ps.to(wide), neg.to(wide)
    le = torch.searchsorted(ps, neg, right=True)
    # ties: only a negative equal to the positive just below its insertion point has any; the
    # second search (for the left end of the run of equal positives) runs on those alone
    below = ps[(le - 1).clamp_(min=0)]
    tied = (le > 0) & (below == neg)
    ties = 0
    if bool(tied.any()):
        ties = int((le[tied] - torch.searchsorted(ps, neg[tied], right=False)).sum().item())
    return float((len(ps) - le).sum().item()), float(ties)


def auroc(pos: Any, neg: Any) -> float:
    """P(random positive > random negative) + ½ P(tie) (Mann–Whitney U); NaN when either is empty.
    The one AUROC of vlmkit (``false_negative_auroc`` streams the same count over blocks)."""
    pos = torch.as_tensor(pos).double().flatten()
    neg = torch.as_tensor(neg).double().flatten()
    if pos.numel() == 0 or neg.numel() == 0:
        return float("nan")
    greater, ties = _pairs_above(torch.sort(pos).values, neg)
    return (greater + 0.5 * ties) / (pos.numel() * neg.numel())


def false_negative_auroc(uncertainty: Any, caption_image: Any, positives: Positives | Any, *,
                         chunk_size: int | None = None) -> dict[str, float]:
    """AUROC of ``uncertainty`` (N × M, image × caption) for false negatives vs true negatives.

    Pairs with ``caption_image[c] == i`` (labelled positive) are left out; among the rest,
    ``positives`` (the exact truth, e.g. ``PairDataset.positives()``) marks false negatives.
    Returns ``{"auroc", "n_false_negatives", "n_true_negatives"}``; raises when either is 0.
    """
    u = as_scores(uncertainty)
    n, m = u.shape
    p = as_positives(positives, u.shape)
    lab = Positives.from_caption_image(as_tensor(caption_image, "caption_image").reshape(-1), n)
    if lab.shape != (n, m):
        raise VlmkitError(f"caption_image has {lab.shape[1]} entries for {m} captions (columns)")
    # values compared in the matrix's own dtype (float32 for a run's stored σ² and scores: the
    # same comparisons as in float64, half the memory traffic of the searches)
    fn_vals = []
    for a, b, blk, _ in u.blocks(chunk_size):
        fn = p.block(a, b, blk.device) & ~lab.block(a, b, blk.device)
        fn_vals.append(blk[fn])
    fn_sorted = torch.sort(torch.cat(fn_vals)).values if fn_vals else torch.zeros(0, dtype=torch.float64)
    F = len(fn_sorted)
    greater, ties, T = 0.0, 0.0, 0
    for a, b, blk, _ in u.blocks(chunk_size):
        tn = ~p.block(a, b, blk.device) & ~lab.block(a, b, blk.device)
        v = blk[tn]
        T += len(v)
        g, t = _pairs_above(fn_sorted, v)
        greater, ties = greater + g, ties + t
    if F == 0 or T == 0:
        raise VlmkitError(f"false_negative_auroc: needs both false negatives and true negatives, "
                          f"got {F} and {T}")
    return {"auroc": (greater + 0.5 * ties) / (F * T), "n_false_negatives": F, "n_true_negatives": T}


PAIR_TYPES = ("positive (labelled)", "false negative (true, unlabelled)", "true negative")


def false_negative_auroc_with_control(uncertainty: Any, scores: Any, caption_image: Any, positives: Positives | Any, *,
                                      chunk_size: int | None = None) -> pd.DataFrame:
    """FN-vs-TN AUROC of ``uncertainty`` and, on the same pairs, of ``scores`` (the control).

    One row per source: ``source`` ("sigma2" or "score"), ``auroc`` (P(x_FN > x_TN) + ½ P(tie),
    pairs labelled positive left out, exact truth from ``positives``), ``n_false_negatives``,
    ``n_true_negatives``. The score's AUROC is what ranking alone already gives: σ² adds
    information about false negatives only where its AUROC is higher.
    """
    rows = []
    for source, x in (("sigma2", uncertainty), ("score", scores)):
        rows.append({"source": source, **false_negative_auroc(x, caption_image, positives, chunk_size=chunk_size)})
    return pd.DataFrame(rows)


def uncertainty_by_pair_type(uncertainty: Any, caption_image: Any, positives: Positives | Any) -> pd.DataFrame:
    """Range of ``uncertainty`` (N × M) per pair type over all pairs: labelled positives
    (``caption_image[c] == i``), false negatives (true under ``positives``, unlabelled) and true
    negatives. Columns: pair_type, n, mean, min, q05, median, q95, max (NaN for an empty type)."""
    u = torch.as_tensor(np.asarray(uncertainty) if not isinstance(uncertainty, torch.Tensor) else uncertainty)
    u = u.detach().double().cpu().numpy()
    if u.ndim != 2:
        raise VlmkitError(f"uncertainty: expected an (images × captions) matrix, got shape {u.shape}")
    n, m = u.shape
    ci = np.asarray(as_tensor(caption_image, "caption_image")).reshape(-1)
    if ci.shape[0] != m:
        raise VlmkitError(f"caption_image has {ci.shape[0]} entries for {m} captions (columns)")
    lab = ci[None, :] == np.arange(n)[:, None]
    truth = as_positives(positives, (n, m)).dense().cpu().numpy().astype(bool)
    types = np.where(lab, 0, np.where(truth, 1, 2))
    rows = []
    for k, name in enumerate(PAIR_TYPES):
        v = u[types == k]
        q = np.quantile(v, [0.0, 0.05, 0.5, 0.95, 1.0]) if v.size else [np.nan] * 5
        rows.append({"pair_type": name, "n": int(v.size), "mean": float(v.mean()) if v.size else np.nan,
                     "min": q[0], "q05": q[1], "median": q[2], "q95": q[3], "max": q[4]})
    return pd.DataFrame(rows)
