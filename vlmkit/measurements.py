"""The shared measurements of the workbook and the claims ledger, one function each.

Each function takes plain inputs — an N × M image × caption ``scores`` matrix, the VACSR
``uncertainty`` σ² of the same shape, ``caption_image`` (the image index of each caption: the
one-to-one labels), the truth ``positives`` (a bool N × M matrix, dense or SciPy sparse:
labelled pairs plus the false negatives) and a softmax ``tau`` — and returns a DataFrame with
named columns and a ``protocol`` column.  Matrices may be tensors, NumPy arrays or the
memory-mapped ``.npy`` files :func:`vlmkit.workbook.load_method` returns: every statistic reads
them in row blocks (no N × M float64 copy, no full sort).  Thin wrappers, so the numbers are
those of the library functions named below:

* :func:`fig3_summary` — VACSR Fig. 3: Pearson r of bin R@1 vs bin-mean top-1 σ²
  (:func:`vlmkit.vacsr.fig3.fig3_report`) with its bootstrap interval, beside the −score control,
  per direction; the full report goes to ``details["report"]`` when asked for.
* :func:`calibration` — ECE of top-1 retrieval, the m²-Mix authors' protocol first
  (:func:`vlmkit.metrics.authors_calibration`), then the 5-caption gallery view
  (:func:`vlmkit.metrics.retrieval_calibration`), per direction; bins to ``details["bins"]``.
* :func:`fn_auroc` — FN-vs-TN AUROC of σ² beside the AUROC of the score
  (:func:`vlmkit.metrics.false_negative_auroc_with_control`).
* :func:`sigma2_by_pair_type` — σ²'s n, mean and exact quantiles per pair type
  (:func:`vlmkit.metrics.streaming.pair_type_quantiles`).
* :func:`summary` — the one-row-per-method summary of a run's tables
  (:func:`vlmkit.workbook.method_summary` reads the tables and calls it).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from .metrics import AUTHORS_PROTOCOL, GALLERY_PROTOCOL, Positives, Scores, authors_calibration, retrieval_calibration
from .metrics.streaming import PairTruth, one_to_one_matrix, pair_type_quantiles, sparse_rows
from .metrics.uncertainty import PAIR_TYPES, false_negative_auroc_with_control
from .utils import VlmkitError
from .vacsr.fig3 import LABELS, TRUTH, fig3_report

DIRECTIONS = ("i2t", "t2i")


def _shape(x: Any, name: str) -> tuple[int, int]:
    shape = tuple(getattr(x, "shape", np.shape(x)))
    if len(shape) != 2:
        raise VlmkitError(f"{name}: expected an (images × captions) matrix, got shape {shape}")
    return shape


def _caption_image(caption_image: Any, n_captions: int) -> np.ndarray:
    ci = np.asarray(caption_image).reshape(-1)
    if ci.shape != (n_captions,) or (ci.size and not np.issubdtype(ci.dtype, np.integer)):
        raise VlmkitError(f"caption_image: expected {n_captions} integer image indices (one per score column), "
                          f"got shape {ci.shape}, dtype {ci.dtype}")
    return ci.astype(np.int64)


def fig3_summary(scores: Any, uncertainty: Any, caption_image: Any, positives: Any | None = None, *, n_bins: int = 10,
                 n_boot: int = 200, seed: int = 0, truth_name: str = "exact truth",
                 details: dict | None = None) -> pd.DataFrame:
    """VACSR Fig. 3 per direction (rows ``i2t``, ``t2i``): ``pearson`` — Pearson r of the R@1 of
    ``n_bins`` equal-width bins of the queries' top-1 σ² against the bins' mean σ², correct =
    the one-to-one labels (the paper's protocol); ``ci_low`` / ``ci_high`` its bootstrap 95 %
    interval (``n_boot`` query resamples; 0: none); ``pearson_control`` the same with σ² :=
    −score (the control); ``pearson_truth`` σ² with correct = ``positives`` (when given);
    ``r1``, ``n_queries``.  ``details`` (a dict, when given) receives ``"report"``: the whole
    :func:`fig3_report` (bins, summary, strata, ranking) for figures and tables."""
    n, m = _shape(scores, "scores")
    labels = one_to_one_matrix(_caption_image(caption_image, m), n)
    truth = None if positives is None else sparse_rows(positives)
    rep = fig3_report(scores, uncertainty, labels, truth, n_bins=n_bins, n_boot=n_boot, seed=seed)
    summ = rep["summary"]

    def pick(d: str, proto: str, source: str) -> pd.Series | None:
        r = summ[(summ.direction == d) & (summ.protocol == proto) & (summ.source == source) & (summ.binning == "width")]
        return r.iloc[0] if len(r) else None

    rows = []
    for d in DIRECTIONS:
        s, c = pick(d, LABELS, "sigma2"), pick(d, LABELS, "-score")
        if s is None:
            continue
        row = {"direction": d, "pearson": s.pearson_r, "ci_low": s.ci_low, "ci_high": s.ci_high,
               "pearson_control": c.pearson_r, "r1": s.r1, "n_queries": int(s.n_queries)}
        t = pick(d, TRUTH, "sigma2") if truth is not None else None
        if t is not None:
            row["pearson_truth"] = t.pearson_r
        rows.append(row)
    out = pd.DataFrame(rows)
    out.insert(0, "protocol", f"VACSR Fig. 3: Pearson r of bin R@1 vs bin-mean top-1 uncertainty, "
                              f"{n_bins} equal-width bins; "
                              f"pearson = σ², correct = one-to-one labels (the paper's); "
                              f"pearson_control = −score, same labels"
                              + (f"; pearson_truth = σ², correct = {truth_name}" if truth is not None else "")
                              + (f"; ci = bootstrap 95 % over {n_boot} query resamples" if n_boot else ""))
    if details is not None:
        details["report"] = rep
    return out


def calibration(scores: Any, caption_image: Any, positives: Any | None = None, *, tau: float = 0.01, n_bins: int = 15,
                confidence: str = "softmax", truth_name: str = "exact truth",
                details: dict | None = None) -> pd.DataFrame:
    """ECE (%) of top-1 retrieval per direction, the authors' protocol first: ``ece_authors``,
    ``confidence_authors``, ``accuracy_authors`` (first caption per image, N × N softmax(S/τ),
    correct = the diagonal); then the gallery view ``ece_labels`` (every caption, ``confidence``
    = softmax(S/τ) over the gallery or ``"sigmoid"`` of the score, correct = the labelled match)
    and ``ece_truth`` (correct = ``positives``, when given).  ``details`` (a dict, when given)
    receives ``"bins"``: ``{(view, direction): reliability bins}``, view ``authors`` / ``labels`` / ``truth``."""
    n, m = _shape(scores, "scores")
    ci = _caption_image(caption_image, m)
    square = authors_calibration(scores, ci, tau=tau, n_bins=n_bins)
    views = {"labels": Positives.from_caption_image(ci, n)}
    if positives is not None:
        views["truth"] = Positives.from_matrix(sparse_rows(positives))
    S = Scores(scores)
    rows, bins = [], {}
    for d in DIRECTIONS:
        c = square[d]
        bins[("authors", d)] = c.bins
        row = {"direction": d, "tau": float(tau), "ece_authors": 100 * c.ece, "confidence_authors": c.mean_confidence,
               "accuracy_authors": c.accuracy,
               "confidence": confidence if confidence != "softmax" else f"softmax τ={tau:.3g}"}
        for key, P in views.items():
            ece, b = retrieval_calibration(S if d == "i2t" else S.T, P if d == "i2t" else P.T, confidence=confidence,
                                           temperature=tau, n_bins=n_bins)
            row[f"ece_{key}"] = 100 * ece
            bins[(key, d)] = b
        rows.append(row)
    out = pd.DataFrame(rows)
    out.insert(0, "protocol", f"ECE (%) of top-1 retrieval, {n_bins} equal-width bins; "
                              f"ece_authors: {AUTHORS_PROTOCOL}; "
                              f"ece_labels{' / ece_truth' if positives is not None else ''}: {GALLERY_PROTOCOL}, "
                              f"correct = one-to-one labels"
                              + (f" / {truth_name}" if positives is not None else ""))
    if details is not None:
        details["bins"] = bins
    return out


def fn_auroc(uncertainty: Any, scores: Any, caption_image: Any, positives: Any, *,
             truth_name: str = "exact truth") -> pd.DataFrame:
    """One row: ``fn_auroc`` = P(σ²_FN > σ²_TN) + ½ P(tie) over every pair the one-to-one labels
    call negative (false negative = true under ``positives``), ``fn_auroc_control`` = the same
    AUROC of the score itself (σ² adds information about false negatives only above it),
    ``n_false_negatives``, ``n_true_negatives``."""
    n, m = _shape(scores, "scores")
    ci = _caption_image(caption_image, m)
    a = false_negative_auroc_with_control(uncertainty, scores, ci,
                                          Positives.from_matrix(sparse_rows(positives))).set_index("source")
    return pd.DataFrame([{"protocol": f"AUROC of σ² (fn_auroc) and of the score (fn_auroc_control) "
                                      f"for false vs true negatives "
                                      f"over all pairs the one-to-one labels call negative, true = {truth_name}",
                          "direction": "pairs", "fn_auroc": a.loc["sigma2", "auroc"],
                          "fn_auroc_control": a.loc["score", "auroc"],
                          "n_false_negatives": int(a.loc["sigma2", "n_false_negatives"]),
                          "n_true_negatives": int(a.loc["sigma2", "n_true_negatives"])}])


def sigma2_by_pair_type(uncertainty: Any, caption_image: Any, positives: Any, *, codes: np.ndarray | None = None,
                        truth_name: str = "exact truth") -> pd.DataFrame:
    """σ² over every pair by pair type — labelled positive (``caption_image``), false negative
    (true under ``positives``, unlabelled), true negative: ``pair_type, n, mean, min, q05, median,
    q95, max`` (exact, ``np.quantile``'s rule; NaN for an empty type).  ``codes``: the pairs'
    :func:`vlmkit.metrics.streaming.pair_code_matrix` when at hand (then ``positives`` is not read)."""
    n, m = _shape(uncertainty, "uncertainty")
    ds = None if codes is not None else PairTruth(_caption_image(caption_image, m), positives, n)
    r = pair_type_quantiles(uncertainty, ds, codes=codes, name="uncertainty")
    rows = [{"pair_type": name, "n": int(r["n"][k]), "mean": float(r["mean"][k]),
             **dict(zip(("min", "q05", "median", "q95", "max"), map(float, r["quantiles"][k])))}
            for k, name in enumerate(PAIR_TYPES)]
    out = pd.DataFrame(rows)
    out.insert(0, "protocol", f"σ² over all pairs by pair type: positive = one-to-one label, "
                              f"false negative = unlabelled "
                              f"but true ({truth_name}), true negative = neither")
    return out


SUMMARY_SOURCES: dict[str, dict[str, str]] = {
    "gap": {"gap": "gap ‖Δ‖"},
    "uncertainty": {"pearson": "unc–R@1 r [one-to-one labels]",
                    "pearson_control": "−score control r [one-to-one labels]",
                    "pearson_truth": "unc–R@1 r [truth]", "fn_auroc": "FN-vs-TN AUROC of σ²",
                    "fn_auroc_control": "FN-vs-TN AUROC of the score"},
}
"""Per input table of :func:`summary`: its column → the summary column it fills."""


def summary(retrieval: pd.DataFrame | None = None, calibration: pd.DataFrame | None = None,
            gap: pd.DataFrame | None = None, uncertainty: pd.DataFrame | None = None, *,
            metrics: Sequence[str] = ("R@1", "RSUM", "mAP@R")) -> pd.DataFrame:
    """One row per method from the run's tables (``tables/retrieval.csv`` long form; the
    ``calibration``, ``gap`` and ``uncertainty`` tables as notebooks 03, 05 and 07 write them):
    ``R@1 i2t [full NxM]`` … (``metrics`` per direction and retrieval protocol), the ECE per
    direction — ``[authors: N×N]`` first, then ``[one-to-one labels]`` and ``[<truth>]`` —, the
    gap and the uncertainty columns of :data:`SUMMARY_SOURCES` (per direction, or per method
    for the pair-level AUROCs).  Each column's name states its protocol (no ``protocol``
    column here: the summary's columns are numbers that a grid's report averages over seeds)."""
    out: dict[str, dict[str, Any]] = {}
    if retrieval is not None and not retrieval.empty:
        for rec in retrieval.to_dict("records"):
            if rec["metric"] in metrics:
                out.setdefault(rec["method"], {})[f"{rec['metric']} {rec['direction']} "
                                                  f"[{rec['protocol']}]"] = rec["value"]
    for rec in ([] if calibration is None else calibration.to_dict("records")):
        for src, proto in (("ece_authors", "authors: N×N"), ("ece_labels", "one-to-one labels"),
                           ("ece_truth", rec.get("truth", "exact truth"))):
            if src in rec and not pd.isna(rec[src]):
                out.setdefault(rec["method"], {})[f"ECE % {rec['direction']} [{proto}]"] = rec[src]
    for table, cols in (("gap", SUMMARY_SOURCES["gap"]), ("uncertainty", SUMMARY_SOURCES["uncertainty"])):
        t = gap if table == "gap" else uncertainty
        if t is None or t.empty:
            continue
        for rec in t.to_dict("records"):
            for src, label in cols.items():
                if src in rec and not pd.isna(rec[src]):
                    key = (label if rec.get("direction") in (None, "pairs") or pd.isna(rec.get("direction"))
                           else f"{label} {rec['direction']}")
                    out.setdefault(rec["method"], {})[key] = rec[src]
    return pd.DataFrame([{"method": m, **v} for m, v in out.items()])
