"""Rank a dataset's likely label errors with several scorers, in bounded memory.

Two tasks, each a ranked table of (image ``i``, caption ``j``) pairs:

- ``"false_negative"``: pairs the one-to-one labels call negative (``caption_image[j] != i``)
  that are most likely *true* — captions true of another image;
- ``"mismatch"``: labelled pairs (``caption_image[j] == i``) most likely *false* — a caption
  attached to the wrong image (noisy correspondence).

**Scorers.** A :class:`Scorer` scores any pair: the cosine of unit features (the zero-shot model,
a fine-tuned method of a run directory), a stored score matrix (a run's VACSR method, with its
σ²), or a VACSR adapter on features (:func:`vlmkit.vacsr.score_all`: score μ and σ²).  Each
scorer gives the columns ``score:<name>``, ``sigma2:<name>`` (when it has an uncertainty) and
``loss:<name>``, the pair's symmetric InfoNCE loss as if it were the positive,
−½[log p(j|i) + log p(i|j)] with p a softmax over the whole gallery at temperature τ (0.05 for
cosine scores, 1 for logits) — the per-pair loss that small-loss noisy-correspondence methods
rank by.  Consistency evidence (in the reference scorer's feature space, by default the first
scorer with features): ``caption_consistency`` = cosine of caption ``j`` to the mean of image
``i``'s *other* captions; ``image_consistency`` = cosine of image ``i`` to caption ``j``'s own
image (false-negative task only: for a labelled pair it is the image itself).

**Candidates.** False negatives: for every scorer, each image's ``top_k`` highest-scoring
unlabelled captions and each caption's ``top_k`` highest-scoring unlabelled images (streamed
over blocks of images with ``torch.topk``; the running per-caption top-k is merged block by
block), united over scorers; ``found_by`` names the scorers whose shortlist held the pair.
Every scorer is then evaluated on every candidate.  Mismatches: every labelled pair.  Memory is
one (block × M) float32 matrix per step plus the top-k buffers: never an N×M copy (a stored
score matrix of a run directory is, of course, as large as it was stored).

**Combined rank (the documented rule).** Per task, every evidence column is turned into a
*suspicion* (higher = the label is more likely wrong) by the sign of :data:`DIRECTIONS`, then
into its percentile rank among the task's candidates (average ranks for ties); ``combined`` is
the mean of those percentiles over the columns in ``combine`` (default: every ``score:*``, every
``sigma2:*`` and both consistency columns; the ``loss:*`` columns are baselines and left out, as
they re-use the scores).  Rows are sorted by ``combined`` (ties: the first scorer's suspicion);
``rank`` is 1-based.  Each ``pct:<column>`` is kept, so a reader sees which scorer put a pair
high.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..utils import VlmkitError, progress

TASKS = ("false_negative", "mismatch")
#: sign that turns an evidence column into a suspicion (higher = label more likely wrong), per task
DIRECTIONS = {
    "false_negative": {"score": 1.0, "sigma2": 1.0, "loss": -1.0, "caption_consistency": 1.0, "image_consistency": 1.0},
    "mismatch": {"score": -1.0, "sigma2": 1.0, "loss": 1.0, "caption_consistency": -1.0},
}
RULE = ("combined = mean over the combined columns of the percentile rank (average ties) of each column's suspicion "
        "among the task's candidates; suspicion = +value for score/σ²/consistency in the false-negative task, "
        "−score, +σ², +loss, −caption_consistency in the mismatch task, −loss for false negatives")
BLOCK_BYTES = 1 << 26  # one (block × M) float32 score block: 64 MiB


def _kind(col: str) -> str:
    return col.split(":", 1)[0]


@dataclass
class Scorer:
    """One way to score (image, caption) pairs; build with :meth:`from_features`,
    :meth:`from_matrix` or :meth:`from_adapter`."""

    name: str
    kind: str = "cosine"  # "cosine" or "logit": sets the loss temperature
    img: Tensor | None = None
    txt: Tensor | None = None
    scores: Tensor | None = None
    uncertainty: Tensor | None = None
    adapter: Any = None
    temperature: float | None = None

    # -- constructors
    @classmethod
    def from_features(cls, name: str, img: Any, txt: Any, temperature: float | None = None) -> "Scorer":
        img, txt = torch.as_tensor(img).float(), torch.as_tensor(txt).float()
        if img.dim() != 2 or txt.dim() != 2 or img.shape[1] != txt.shape[1]:
            raise VlmkitError(f"scorer {name!r}: expected image (N, d) and text (M, d) features, got "
                              f"{tuple(img.shape)} and {tuple(txt.shape)}")
        return cls(name, "cosine", img=torch.nn.functional.normalize(img, dim=1),
                   txt=torch.nn.functional.normalize(txt, dim=1), temperature=temperature)

    @classmethod
    def from_matrix(cls, name: str, scores: Any, uncertainty: Any = None, kind: str = "logit",
                    temperature: float | None = None) -> "Scorer":
        s = torch.as_tensor(scores).float()
        u = None if uncertainty is None else torch.as_tensor(uncertainty).float()
        if s.dim() != 2 or (u is not None and u.shape != s.shape):
            raise VlmkitError(f"scorer {name!r}: expected an (N, M) score matrix and an uncertainty of the same shape, "
                              f"got {tuple(s.shape)} and {None if u is None else tuple(u.shape)}")
        return cls(name, kind, scores=s, uncertainty=u, temperature=temperature)

    @classmethod
    def from_adapter(cls, name: str, adapter: Any, img: Any, txt: Any, temperature: float | None = None) -> "Scorer":
        """A VACSR adapter on the features it was trained on (scored by :func:`vlmkit.vacsr.score_all`)."""
        return cls(name, "logit", img=torch.as_tensor(img).float(), txt=torch.as_tensor(txt).float(), adapter=adapter,
                   temperature=temperature)

    # -- properties
    @property
    def shape(self) -> tuple[int, int]:
        if self.scores is not None:
            return tuple(self.scores.shape)  # type: ignore[return-value]
        return (int(self.img.shape[0]), int(self.txt.shape[0]))  # type: ignore[union-attr]

    @property
    def has_uncertainty(self) -> bool:
        return self.uncertainty is not None or self.adapter is not None

    @property
    def has_features(self) -> bool:
        return self.img is not None and self.adapter is None

    @property
    def tau(self) -> float:
        if self.temperature is not None:
            return float(self.temperature)
        return 0.05 if self.kind == "cosine" else 1.0

    # -- scoring
    def block(self, i0: int, i1: int) -> Tensor:
        """Scores of images ``i0:i1`` against every caption, float32 (b, M)."""
        if self.scores is not None:
            return self.scores[i0:i1].float()
        if self.adapter is not None:
            from ..vacsr import score_all

            return score_all(self.adapter, self.img[i0:i1], self.txt, show_progress=False,
                             device="cpu")[0].float().clone()
        return self.img[i0:i1] @ self.txt.T

    def pairs(self, ii: np.ndarray, jj: np.ndarray, chunk: int = 1 << 14) -> tuple[np.ndarray, np.ndarray | None]:
        """Score (and uncertainty, or None) of the pairs (ii[k], jj[k])."""
        ii, jj = np.asarray(ii, np.int64), np.asarray(jj, np.int64)
        s = np.empty(len(ii), np.float32)
        u = np.empty(len(ii), np.float32) if self.has_uncertainty else None
        if self.scores is not None:
            ti, tj = torch.from_numpy(ii), torch.from_numpy(jj)
            s[:] = self.scores[ti, tj].numpy()
            if u is not None:
                u[:] = self.uncertainty[ti, tj].numpy()
            return s, u
        if self.adapter is None:
            for a in range(0, len(ii), chunk):
                ti, tj = torch.from_numpy(ii[a:a + chunk]), torch.from_numpy(jj[a:a + chunk])
                s[a:a + chunk] = (self.img[ti] * self.txt[tj]).sum(1).numpy()
            return s, None
        from ..vacsr import score_all

        n = self.shape[0]
        b = 256
        for i0 in range(0, n, b):
            sel = np.flatnonzero((ii >= i0) & (ii < i0 + b))
            if not sel.size:
                continue
            caps = np.unique(jj[sel])
            S, U = score_all(self.adapter, self.img[i0:i0 + b], self.txt[torch.from_numpy(caps)], show_progress=False,
                             device="cpu")
            r, c = ii[sel] - i0, np.searchsorted(caps, jj[sel])
            s[sel] = S.numpy()[r, c]
            u[sel] = U.numpy()[r, c]  # type: ignore[index]
        return s, u


@dataclass
class AuditResult:
    """The ranked tables of one audit (see the module docstring)."""

    tables: dict[str, pd.DataFrame]
    scorers: list[str]
    combine: dict[str, list[str]]
    info: dict = field(default_factory=dict)

    @property
    def false_negatives(self) -> pd.DataFrame:
        return self.tables["false_negative"]

    @property
    def mismatches(self) -> pd.DataFrame:
        return self.tables["mismatch"]

    def top(self, task: str, n: int) -> pd.DataFrame:
        if task not in self.tables:
            raise VlmkitError(f"task={task!r}: expected one of {list(self.tables)}")
        return self.tables[task].head(int(n))

    def candidates(self) -> pd.DataFrame:
        """Both tasks in one table (``task`` column first): what the CSV / parquet export holds."""
        return pd.concat([self.tables[t] for t in TASKS if t in self.tables], ignore_index=True)


def _labelled_mask_(S: Tensor, caption_image: Tensor, i0: int, i1: int) -> None:
    """Set the labelled pairs of images i0:i1 to −inf in the block S (in place)."""
    cols = torch.nonzero((caption_image >= i0) & (caption_image < i1)).flatten()
    S[caption_image[cols] - i0, cols] = -math.inf


def shortlist(scorer: Scorer, caption_image: Any, top_k: int, block: int | None = None,
              desc: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stream the scorer over image blocks: the unlabelled pairs in each image's and each
    caption's top-``top_k`` (codes ``i * M + j``, sorted, unique), and the row / column
    log-sum-exp of score/τ over *all* captions / images (for the per-pair loss)."""
    n, m = scorer.shape
    ci = torch.as_tensor(np.asarray(caption_image), dtype=torch.long)
    if top_k < 1:
        raise VlmkitError(f"top_k={top_k}: expected a positive number of candidates per query")
    b = block or max(1, min(n, BLOCK_BYTES // (4 * max(m, 1))))
    kr, kc = min(top_k, m), min(top_k, n)
    row_lse = torch.empty(n)
    col_lse = torch.full((m,), -math.inf)
    best_v = torch.full((0, m), -math.inf)
    best_i = torch.zeros((0, m), dtype=torch.long)
    codes = []
    tau = scorer.tau
    for i0 in progress(range(0, n, b), desc=desc or f"audit: shortlist by {scorer.name}", total=math.ceil(n / b)):
        i1 = min(n, i0 + b)
        S = scorer.block(i0, i1).float()
        if S.is_inference() or scorer.scores is not None:
            S = S.clone()  # masked in place below: never the stored matrix, never an inference tensor
        if not torch.isfinite(S).all():
            raise VlmkitError(f"scorer {scorer.name!r}: non-finite scores in images {i0}:{i1}")
        row_lse[i0:i1] = torch.logsumexp(S / tau, dim=1)
        col_lse = torch.logaddexp(col_lse, torch.logsumexp(S / tau, dim=0))
        _labelled_mask_(S, ci, i0, i1)
        v, j = S.topk(kr, dim=1)
        rows = torch.arange(i0, i1).unsqueeze(1).expand_as(j)
        ok = torch.isfinite(v)
        codes.append((rows[ok] * m + j[ok]).numpy())
        allv = torch.cat([best_v, S])
        alli = torch.cat([best_i, torch.arange(i0, i1).unsqueeze(1).expand(i1 - i0, m)])
        top = allv.topk(min(kc, allv.shape[0]), dim=0)
        best_v, best_i = top.values, alli.gather(0, top.indices)
        del S, allv, alli
    ok = torch.isfinite(best_v)
    codes.append((best_i[ok] * m + torch.arange(m).unsqueeze(0).expand_as(best_i)[ok]).numpy())
    return np.unique(np.concatenate(codes)), row_lse.numpy(), col_lse.numpy()


def _caption_centroids(txt: Tensor, caption_image: np.ndarray, n: int) -> tuple[Tensor, np.ndarray]:
    sums = torch.zeros(n, txt.shape[1])
    sums.index_add_(0, torch.as_tensor(caption_image, dtype=torch.long), txt)
    return sums, np.bincount(caption_image, minlength=n)


def consistency(ref: Scorer, caption_image: np.ndarray, ii: np.ndarray, jj: np.ndarray,
                chunk: int = 1 << 14) -> tuple[np.ndarray, np.ndarray]:
    """``caption_consistency`` (cosine of caption j to the mean of image i's other captions; NaN
    when i has none) and ``image_consistency`` (cosine of image i to caption j's own image)."""
    n = ref.shape[0]
    sums, counts = _caption_centroids(ref.txt, caption_image, n)
    cc = np.full(len(ii), np.nan, np.float32)
    ic = np.empty(len(ii), np.float32)
    for a in range(0, len(ii), chunk):
        i = torch.from_numpy(ii[a:a + chunk])
        j = torch.from_numpy(jj[a:a + chunk])
        own = torch.from_numpy(caption_image[jj[a:a + chunk]] == ii[a:a + chunk])
        t = ref.txt[j]
        other = sums[i] - own.float().unsqueeze(1) * t
        k = torch.from_numpy(counts[ii[a:a + chunk]]) - own.long()
        cos = (torch.nn.functional.normalize(other, dim=1) * t).sum(1)
        cc[a:a + chunk] = torch.where(k > 0, cos, torch.tensor(float("nan"))).numpy()
        ic[a:a + chunk] = (ref.img[i] * ref.img[torch.from_numpy(caption_image[jj[a:a + chunk]])]).sum(1).numpy()
    return cc, ic


def _percentile(x: pd.Series) -> pd.Series:
    return x.rank(method="average", pct=True)


def combine_table(df: pd.DataFrame, task: str, columns: Sequence[str], tie: str | None = None) -> pd.DataFrame:
    """Add ``pct:<col>`` (percentile of the suspicion), ``combined`` and ``rank``; sort (module docstring)."""
    signs = DIRECTIONS[task]
    used = []
    for col in columns:
        if col not in df or df[col].isna().all():
            continue
        df[f"pct:{col}"] = _percentile(signs[_kind(col)] * df[col])
        used.append(f"pct:{col}")
    if not used:
        raise VlmkitError(f"audit {task}: no evidence column to combine (asked for {list(columns)})")
    df["combined"] = df[used].mean(axis=1, skipna=True)
    keys, asc = ["combined"], [False]
    if tie is not None and tie in df:
        df["_tie"] = signs[_kind(tie)] * df[tie]
        keys, asc = ["combined", "_tie"], [False, False]
    df = (df.sort_values(keys, ascending=asc, kind="stable").drop(columns=["_tie"], errors="ignore")
          .reset_index(drop=True))
    df.insert(1, "rank", np.arange(1, len(df) + 1))
    return df


def default_combine(columns: Sequence[str], task: str) -> list[str]:
    return [c for c in columns if _kind(c) in ("score", "sigma2", "caption_consistency", "image_consistency")
            and _kind(c) in DIRECTIONS[task]]


def audit_scores(ds: Any, scorers: Sequence[Scorer], *, top_k: int = 10, reference: str | None = None,
                 combine: Sequence[str] | None = None, block: int | None = None) -> AuditResult:
    """Rank likely false negatives and mismatched pairs of ``ds`` with ``scorers`` (module docstring).

    ``reference``: the scorer whose features give the consistency evidence (default: the first
    with features; none → no consistency columns).  ``combine``: the evidence columns of the
    combined rank (default :func:`default_combine`).
    """
    t0 = time.time()
    if not scorers:
        raise VlmkitError("audit: no scorer given (features of a model, a run's methods, or a VACSR adapter)")
    names = [s.name for s in scorers]
    if len(set(names)) != len(names):
        raise VlmkitError(f"audit: scorer names must be unique, got {names}")
    n, m = ds.num_images, ds.num_captions
    for s in scorers:
        if s.shape != (n, m):
            raise VlmkitError(f"scorer {s.name!r} scores {s.shape[0]}×{s.shape[1]} pairs but {ds.name} has {n} images "
                              f"× {m} captions "
                              "(a run directory of another dataset?)")
    ci = np.asarray(ds.caption_image, np.int64)
    ref = None
    if reference is not None:
        ref = next((s for s in scorers if s.name == reference), None)
        if ref is None or not ref.has_features:
            raise VlmkitError(f"reference={reference!r}: expected the name of a scorer with features, one of "
                              f"{[s.name for s in scorers if s.has_features]}")
    else:
        ref = next((s for s in scorers if s.has_features), None)

    found: dict[str, np.ndarray] = {}
    lse: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for s in scorers:
        codes, rl, cl = shortlist(s, ci, top_k, block)
        found[s.name], lse[s.name] = codes, (rl, cl)
    fn_codes = np.unique(np.concatenate(list(found.values())))
    fn_i, fn_j = fn_codes // m, fn_codes % m
    mm_j = np.arange(m)
    mm_i = ci.copy()
    all_i, all_j = np.concatenate([fn_i, mm_i]), np.concatenate([fn_j, mm_j])
    nf = len(fn_i)

    cols: dict[str, np.ndarray] = {}
    for s in scorers:
        v, u = s.pairs(all_i, all_j)
        cols[f"score:{s.name}"] = v
        if u is not None:
            cols[f"sigma2:{s.name}"] = u
        rl, cl = lse[s.name]
        cols[f"loss:{s.name}"] = (0.5 * (rl[all_i] + cl[all_j]) - v / s.tau).astype(np.float32)
    if ref is not None:
        cc, ic = consistency(ref, ci, all_i, all_j)
        cols["caption_consistency"], cols["image_consistency"] = cc, ic

    def base(i: np.ndarray, j: np.ndarray, task: str) -> pd.DataFrame:
        ids = np.asarray(ds.image_ids, dtype=object)
        return pd.DataFrame({"task": task, "image": i, "image_id": ids[i], "caption": j,
                             "caption_text": [ds.captions[k] for k in j], "caption_image": ci[j],
                             "caption_image_id": ids[ci[j]]})

    tables, used = {}, {}
    first = f"score:{scorers[0].name}"
    for task, sl in (("false_negative", slice(0, nf)), ("mismatch", slice(nf, None))):
        i, j = all_i[sl], all_j[sl]
        df = base(i, j, task)
        if task == "false_negative":
            df["found_by"] = (["+".join(nm for nm in names if hit)
                               for hit in zip(*(np.isin(fn_codes, found[nm]) for nm in names))] if nf else [])
        for col, v in cols.items():
            if task == "mismatch" and col == "image_consistency":
                continue
            df[col] = v[sl]
        evidence = [c for c in df.columns if ":" in c or c.endswith("_consistency")]
        if combine is not None:
            unknown = sorted(set(combine) - set(cols))
            if unknown:
                raise VlmkitError(f"combine: unknown evidence column(s) {unknown}; this audit has {sorted(cols)}")
        chosen = [c for c in (list(combine) if combine is not None else default_combine(evidence, task)) if c in df]
        tables[task] = combine_table(df, task, chosen, tie=first)
        used[task] = chosen
    info = {"dataset": ds.name, "images": n, "captions": m, "top_k": int(top_k), "scorers": names,
            "reference": None if ref is None else ref.name, "rule": RULE,
            "candidates": {t: int(len(d)) for t, d in tables.items()}, "seconds": round(time.time() - t0, 2),
            "protocol": (f"candidates: each scorer's top-{top_k} unlabelled captions per image and images per caption "
                         f"(false negatives), every labelled pair (mismatches); {n}x{m} pairs of {ds.name}")}
    return AuditResult(tables, names, used, info)
