"""One call from features (or a score matrix) to a tidy results table that names its protocol.

Columns: ``method, protocol, direction, metric, value, unit, n_queries, note``.  Every row
says which protocol made it:

* ``"coco5k"`` → ``"COCO 5K"`` when there are exactly 5,000 images, otherwise
  ``"full NxM"``: R@1/5/10, RSUM, median rank, ECE (softmax at ``temperature``), and, with an
  uncertainty matrix, the uncertainty–R@1 correlations of VACSR Fig. 3.
* ``"coco1k"`` → ``"COCO 1K (5-fold mean)"`` when N = 5,000, otherwise ``"k-fold 1K mean"``:
  consecutive blocks of 1,000 images with their captions (Karpathy protocol); skipped with a
  warning when N is not a multiple of 1,000.
* ``"eccv"`` → mAP@R, R-Precision and R@1 over extended positives (``positives``: a bool
  N × M matrix, a :class:`Positives` such as ``Positives.from_json(...)``, or a
  ``PairDataset`` with truth); queries without extended positives are skipped and
  ``n_queries`` says how many were scored.  Without ``positives`` the same metrics are
  computed over the one-to-one labels and the protocol says so.

Values: R@K, mAP@R, R-P and ECE in percent; RSUM is a sum of six percentages.
"""

from __future__ import annotations

import warnings
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..utils import VlmkitError
from .calibration import expected_calibration_error
from .core import scan
from .positives import Positives, as_positives
from .retrieval import DEFAULT_KS, _caption_image, fold_indices, protocol_name, recall_from_ranks
from .scores import Scores, as_scores
from .uncertainty import uncertainty_correlation

PROTOCOLS = ("coco5k", "coco1k", "eccv")
DIRECTIONS = ("i2t", "t2i")


def _row(method, protocol, direction, metric, value, unit, n, note=""):
    return {"method": method, "protocol": protocol, "direction": direction, "metric": metric,
            "value": float(value), "unit": unit, "n_queries": int(n), "note": note}


def _resolve_positives(positives: Any, shape: tuple[int, int]) -> Positives:
    if hasattr(positives, "caption_image") and hasattr(positives, "truth"):  # a PairDataset
        positives = Positives.from_dataset(positives, extended=True)
    return as_positives(positives, shape)


def evaluate_similarity(sims: Scores | Any, caption_image: Any, positives: Any = None,
                        protocols: Iterable[str] = PROTOCOLS, uncertainty: Any = None, *, method: str = "model",
                        ks: Sequence[int] = DEFAULT_KS, temperature: float = 0.01, n_bins: int = 15,
                        chunk_size: int | None = None) -> pd.DataFrame:
    """Evaluate an N × M image–caption score matrix (or :class:`Scores`) under ``protocols``."""
    s = as_scores(sims, uncertainty)
    n, m = s.shape
    ci = _caption_image(caption_image, n, m)
    protocols = tuple(protocols)
    unknown = set(protocols) - set(PROTOCOLS)
    if unknown:
        raise VlmkitError(f"protocols: unknown {sorted(unknown)}; choose from {PROTOCOLS}")
    lab = Positives.from_caption_image(ci, n)
    ks = tuple(int(k) for k in ks)
    rows: list[dict] = []
    rank_on_labels = "eccv" in protocols and positives is None

    if "coco5k" in protocols or rank_on_labels:
        name = protocol_name("coco5k", n, m)
        recalls = {}
        for d, sc, ps in (("i2t", s, lab), ("t2i", s.T, lab.T)):
            st = scan(sc, ps, chunk_size=chunk_size, ranking=rank_on_labels, confidence="softmax",
                      temperature=temperature, uncertainty=s.has_uncertainty)
            ok = st.n_pos > 0
            if not ok.all():
                raise VlmkitError(f"{d}: {int((~ok).sum())} queries have no labelled positive "
                                  f"(first: {'image' if d == 'i2t' else 'caption'} {int(np.flatnonzero(~ok)[0])})")
            if "coco5k" in protocols:
                for k, v in recall_from_ranks(st.first_rank, ks).items():
                    recalls[(d, k)] = v
                    rows.append(_row(method, name, d, f"R@{k}", 100 * v, "%", len(ok)))
                rows.append(_row(method, name, d, "MedR", np.median(st.first_rank), "rank", len(ok)))
                ece = expected_calibration_error(np.clip(st.top1_confidence, 0, 1), st.top1_correct, n_bins)
                rows.append(_row(method, name, d, "ECE", 100 * ece, "%", len(ok),
                                 f"softmax over gallery, T={temperature:g}, {n_bins} bins"))
                if s.has_uncertainty:
                    c = uncertainty_correlation(st.top1_uncertainty, st.top1_correct, 10, "width")
                    for key in ("pearson", "spearman"):
                        rows.append(_row(method, name, d, f"unc-R@1 {key}", c[key], "", len(ok),
                                         "10 equal-width uncertainty bins of the top-1 pair (VACSR Fig. 3)"))
            if rank_on_labels:
                lname = f"one-to-one labels, {name}"
                rows.append(_row(method, lname, d, "mAP@R", 100 * np.mean(st.ap_at_r), "%", len(ok)))
                rows.append(_row(method, lname, d, "R-P", 100 * np.mean(st.r_precision), "%", len(ok)))
                rows.append(_row(method, lname, d, "R@1", 100 * np.mean(st.top1_correct), "%", len(ok)))
        if "coco5k" in protocols and all(k in ks for k in DEFAULT_KS):
            rows.append(_row(method, name, "both", "RSUM",
                             sum(100 * recalls[(d, k)] for d in DIRECTIONS for k in DEFAULT_KS), "% (sum of 6)", n + m))

    if "coco1k" in protocols:
        if n < 1000 or n % 1000:
            warnings.warn(f"coco1k skipped: {n} images is not a multiple of 1,000", stacklevel=2)
        else:
            name = protocol_name("coco1k", n, m)
            per_fold = []
            for img, cap in fold_indices(ci, n):
                fs = s.subset(img, cap)
                fl = Positives.from_caption_image(ci[cap] - img[0], len(img))
                r = {}
                for d, sc, ps in (("i2t", fs, fl), ("t2i", fs.T, fl.T)):
                    st = scan(sc, ps, chunk_size=chunk_size)
                    for k, v in recall_from_ranks(st.first_rank, ks).items():
                        r[(d, k)] = v
                per_fold.append(r)
            mean = {key: float(np.mean([r[key] for r in per_fold])) for key in per_fold[0]}
            for (d, k), v in mean.items():
                rows.append(_row(method, name, d, f"R@{k}", 100 * v, "%", n if d == "i2t" else m,
                                 f"mean of {len(per_fold)} folds"))
            if all(k in ks for k in DEFAULT_KS):
                rows.append(_row(method, name, "both", "RSUM",
                                 sum(100 * mean[(d, k)] for d in DIRECTIONS for k in DEFAULT_KS),
                                 "% (sum of 6)", n + m, f"mean of {len(per_fold)} folds"))

    if "eccv" in protocols and positives is not None:
        p = _resolve_positives(positives, (n, m))
        name = f"extended positives ({p.kind}), {protocol_name('coco5k', n, m)}"
        for d, sc, ps in (("i2t", s, p), ("t2i", s.T, p.T)):
            st = scan(sc, ps, chunk_size=chunk_size, ranking=True)
            q = st.n_pos > 0
            if not q.any():
                raise VlmkitError(f"eccv: no {d} query has an extended positive")
            note = f"{int((~q).sum())} queries without positives skipped" if not q.all() else ""
            rows.append(_row(method, name, d, "mAP@R", 100 * np.mean(st.ap_at_r[q]), "%", q.sum(), note))
            rows.append(_row(method, name, d, "R-P", 100 * np.mean(st.r_precision[q]), "%", q.sum(), note))
            rows.append(_row(method, name, d, "R@1", 100 * np.mean(st.top1_correct[q]), "%", q.sum(), note))

    return pd.DataFrame(rows, columns=["method", "protocol", "direction", "metric", "value", "unit", "n_queries",
                                       "note"])


def evaluate_retrieval(img_feats: Any, txt_feats: Any, caption_image: Any, positives: Any = None,
                       protocols: Iterable[str] = PROTOCOLS, uncertainty: Any = None, *, method: str = "model",
                       ks: Sequence[int] = DEFAULT_KS, temperature: float = 0.01, n_bins: int = 15,
                       chunk_size: int | None = None, normalize: bool = True, device: Any = "auto",
                       materialize: bool = True) -> pd.DataFrame:
    """Cosine similarities of image (N, d) and text (M, d) features, then :func:`evaluate_similarity`.

    ``materialize=True`` computes the N × M matrix once (block by block) and reuses it for every
    protocol; ``False`` recomputes each block from the features (memory = one block).
    """
    s = Scores.from_features(img_feats, txt_feats, normalize=normalize, uncertainty=uncertainty, device=device)
    if materialize:
        s = s.materialize(chunk_size)
    return evaluate_similarity(s, caption_image, positives, protocols, method=method, ks=ks,
                               temperature=temperature, n_bins=n_bins, chunk_size=chunk_size)


def results_wide(df: pd.DataFrame) -> pd.DataFrame:
    """Pivot a results table to one row per (method, protocol) and one column per (direction, metric)."""
    return df.pivot_table(index=["method", "protocol"], columns=["direction", "metric"], values="value",
                          aggfunc="first", sort=False)
