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
that protocol (``n_queries`` says how many remain). Dense matrices in memory: meant for the
workbook's test split (1,000 × 5,000) up to COCO 5K.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from vlmkit.metrics.uncertainty import auroc, bin_index
from vlmkit.utils import VlmkitError

DIRECTIONS = ("i2t", "t2i")
LABELS, TRUTH = "labels", "exact truth"  # the two values of the ``protocol`` column


def _dense(x: Any, name: str, dtype=torch.float64) -> Tensor:
    t = torch.as_tensor(x)
    if t.dim() != 2:
        raise VlmkitError(f"{name}: expected an (images × captions) matrix, got shape {tuple(t.shape)}")
    return t.to(dtype) if dtype is not None else t


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


def _query_view(scores: Tensor, unc: Tensor, rel: Tensor) -> dict[str, np.ndarray | Tensor]:
    """Top-1 score, σ², correctness and the ranking of the queries (rows) that have positives."""
    keep = rel.any(1)
    s, u, r = scores[keep], unc[keep], rel[keep]
    order = pessimistic_order(s, r)
    top = order[:, 0:1]
    return {"keep": keep, "order": order, "unc": u, "rel": r, "top_score": s.gather(1, top)[:, 0].numpy(),
            "top_unc": u.gather(1, top)[:, 0].numpy(), "correct": r.gather(1, top)[:, 0].numpy().astype(bool)}


def fig3_report(scores: Any, uncertainty: Any, labels: Any, truth: Any | None = None, *, n_bins: int = 10,
                n_boot: int = 1000, seed: int = 0, n_strata: int = 5, ks: Sequence[int] = (1, 5, 10, 50),
                directions: Sequence[str] = DIRECTIONS) -> dict[str, pd.DataFrame]:
    """The Fig. 3 / Appendix H analysis (module docstring): ``{"bins", "summary", "strata", "ranking"}``.

    scores, uncertainty: (N, M) image × caption; labels: (N, M) bool one-to-one labels (the
    paper's protocol); truth: optional (N, M) bool exact truth (adds the ``"exact truth"``
    protocol). n_boot = 0 skips the bootstrap.
    """
    s = _dense(scores, "scores")
    u = _dense(uncertainty, "uncertainty")
    protos = {LABELS: _dense(labels, "labels", None).bool()}
    if truth is not None:
        protos[TRUTH] = _dense(truth, "truth", None).bool()
    for name, m in {"uncertainty": u, **protos}.items():
        if m.shape != s.shape:
            raise VlmkitError(f"{name}: shape {tuple(m.shape)} differs from scores {tuple(s.shape)}")
    if not bool(torch.isfinite(s).all()) or not bool(torch.isfinite(u).all()):
        raise VlmkitError("scores / uncertainty: expected finite values for every pair (score them exactly, not top-K)")
    if n_bins < 1 or n_strata < 1:
        raise VlmkitError(f"n_bins={n_bins}, n_strata={n_strata}: expected positive integers")
    bins, summary, strata, ranking = [], [], [], []
    for d in directions:
        if d not in DIRECTIONS:
            raise VlmkitError(f"direction {d!r}: expected 'i2t' or 't2i'")
        tr = (lambda x: x) if d == "i2t" else (lambda x: x.t().contiguous())
        for proto, rel in protos.items():
            q = _query_view(tr(s), tr(u), tr(rel))
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
            ap = ap_at_r(q["order"], q["rel"]).numpy()
            ranked_unc = q["unc"].gather(1, q["order"])
            for k in ks:
                mk = ranked_unc[:, :k].mean(1).numpy()
                ranking.append({**key, "k": int(k), "pearson_query": _pearson(mk, ap),
                                "pearson_bins": _binned_mean_corr(mk, ap, n_bins), "map_at_r": float(np.nanmean(ap)),
                                "mean_unc_topk": float(mk.mean()), "n_queries": int(mk.size)})
    cols = ["direction", "protocol"]
    b = pd.concat(bins, ignore_index=True) if bins else pd.DataFrame()
    if len(b):
        b = b[cols + ["source", "binning"] + [c for c in b.columns if c not in cols + ["source", "binning"]]]
    return {"bins": b, "summary": pd.DataFrame(summary), "strata": pd.DataFrame(strata), "ranking": pd.DataFrame(ranking)}


def _binned_mean_corr(x: np.ndarray, v: np.ndarray, n_bins: int) -> float:
    """Pearson r of the equal-width bins' mean x vs their mean v (non-empty bins)."""
    idx, _, _ = bin_index(x, n_bins, "width")
    count = np.bincount(idx, minlength=n_bins)
    ok = count > 0
    mx = np.bincount(idx, weights=x, minlength=n_bins)[ok] / count[ok]
    mv = np.bincount(idx, weights=v, minlength=n_bins)[ok] / count[ok]
    return _pearson(mx, mv)
