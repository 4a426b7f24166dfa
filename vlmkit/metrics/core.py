"""One pass over a score matrix that yields every per-query quantity the metrics need.

**Tie rule (all retrieval, ranking, calibration and uncertainty metrics): pessimistic.**
A gallery item whose score equals a positive's score is ranked *above* that positive when it
is a negative.  Among tied positives (or tied negatives) the order changes no metric.  So
the rank of a query's k-th best positive (scores t_1 ≥ t_2 ≥ …) is exactly

    rank_k = k + #{negatives j : s_j ≥ t_k},

a model that outputs constant scores gets R@1 = 0, and no metric depends on gallery order
or on the (unspecified) tie order of ``torch.topk``.  The "top-1 item" of a query (for its
uncertainty and confidence) is the first-ranked item under the same rule: among the items
with the maximal score, a negative if there is one, and then the lowest gallery index.

Costs per block of B queries × G gallery items: R@K needs one masked max and one count
(no sort); mAP@R / R-Precision need two ``topk`` with k = max #positives in the block and a
batched ``searchsorted``.  No Python loop over queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..utils import VlmkitError
from .positives import Positives
from .scores import Scores


@dataclass
class QueryStats:
    """Per-query results of :func:`scan` (NumPy arrays, one entry per query row).

    ``first_rank``: pessimistic rank of the best positive (G + 1 when the query has none).
    ``ap_at_r`` / ``r_precision``: ECCV Caption mAP@R and R-Precision terms (NaN without positives).
    ``top1_index`` / ``top1_score``: the first-ranked gallery item and its score.
    ``top1_confidence``: softmax (over the gallery, temperature T) or sigmoid probability of it.
    ``top1_uncertainty``: the uncertainty matrix entry of the top-1 pair.
    """

    n_pos: np.ndarray
    first_rank: np.ndarray
    top1_index: np.ndarray
    top1_score: np.ndarray
    ap_at_r: np.ndarray | None = None
    r_precision: np.ndarray | None = None
    top1_confidence: np.ndarray | None = None
    top1_uncertainty: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def top1_correct(self) -> np.ndarray:
        return self.first_rank == 1


def scan(scores: Scores, positives: Positives, *, chunk_size: int | None = None, ranking: bool = False,
         confidence: str | None = None, temperature: float = 0.01, logit_scale: float = 1.0,
         logit_bias: float = 0.0, uncertainty: bool = False) -> QueryStats:
    """Compute :class:`QueryStats` for every query of ``scores`` (rows) against ``positives``.

    ``confidence``: ``None``; ``"softmax"`` — p(top-1) = softmax(s / temperature) over the
    gallery; ``"sigmoid"`` — sigmoid(logit_scale · s + logit_bias) of the top-1 score;
    ``"score"`` — the top-1 score itself, which must lie in [0, 1].
    """
    if tuple(positives.shape) != tuple(scores.shape):
        raise VlmkitError(f"positives: shape {tuple(positives.shape)} does not match the scores' shape "
                          f"{tuple(scores.shape)}")
    if confidence not in (None, "softmax", "sigmoid", "score"):
        raise VlmkitError(f"confidence must be None, 'softmax', 'sigmoid' or 'score', got {confidence!r}")
    if confidence == "softmax" and not (np.isfinite(temperature) and temperature > 0):
        raise VlmkitError(f"temperature must be a positive number, got {temperature!r}")
    if uncertainty and not scores.has_uncertainty:
        raise VlmkitError("uncertainty: these scores carry no uncertainty matrix (pass uncertainty=...)")
    Q, G = scores.shape
    out: dict[str, list] = {k: [] for k in ("n_pos", "first_rank", "top1_index", "top1_score", "ap", "rp",
                                            "conf", "unc")}
    for a, b, sims, unc in scores.blocks(chunk_size):
        pos = positives.block(a, b, sims.device)
        neg = ~pos
        n_pos = pos.sum(1)
        # R@K: rank of the best positive = 1 + #negatives scoring >= it (pessimistic ties).
        best_pos = sims.masked_fill(neg, float("-inf")).amax(1)
        first_rank = 1 + ((sims >= best_pos[:, None]) & neg).sum(1)
        first_rank = torch.where(n_pos > 0, first_rank, torch.full_like(first_rank, G + 1))
        # Top-1 item under the same rule: among maximal scores, a negative first, then lowest index.
        top = sims.amax(1)
        cand = sims == top[:, None]
        cand_neg = cand & neg
        choose = torch.where(cand_neg.any(1, keepdim=True), cand_neg, cand)
        top1 = choose.to(torch.uint8).argmax(1)
        out["n_pos"].append(n_pos)
        out["first_rank"].append(first_rank)
        out["top1_index"].append(top1)
        out["top1_score"].append(top)
        if ranking:
            ap, rp = _ranking_block(sims, pos, n_pos)
            out["ap"].append(ap)
            out["rp"].append(rp)
        if confidence == "softmax":
            z = sims / temperature
            out["conf"].append(torch.exp(top / temperature - torch.logsumexp(z, 1)))
        elif confidence == "sigmoid":
            out["conf"].append(torch.sigmoid(top * logit_scale + logit_bias))
        elif confidence == "score":
            if bool((top < 0).any() | (top > 1).any()):
                raise VlmkitError("confidence='score' needs scores in [0, 1] (probabilities); "
                                  f"block rows {a}..{b - 1} have top-1 scores outside it")
            out["conf"].append(top)
        if uncertainty:
            out["unc"].append(unc.gather(1, top1[:, None])[:, 0])

    def cat(key: str, dtype=None) -> np.ndarray | None:
        if not out[key]:
            return None if key in ("ap", "rp", "conf", "unc") else np.zeros(0, dtype=dtype or np.float64)
        return torch.cat(out[key]).cpu().numpy()

    return QueryStats(
        n_pos=cat("n_pos", np.int64).astype(np.int64),
        first_rank=cat("first_rank", np.int64).astype(np.int64),
        top1_index=cat("top1_index", np.int64).astype(np.int64),
        top1_score=cat("top1_score"),
        ap_at_r=cat("ap"),
        r_precision=cat("rp"),
        top1_confidence=cat("conf"),
        top1_uncertainty=cat("unc"),
        meta={"queries": Q, "gallery": G, "confidence": confidence, "temperature": temperature},
    )


def _ranking_block(sims: torch.Tensor, pos: torch.Tensor, n_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """mAP@R and R-Precision of each row (NaN for rows without positives), pessimistic ties.

    With positive scores sorted t_1 ≥ … ≥ t_R, rank_k = k + #{neg ≥ t_k}; only ranks ≤ R
    count, so the top-k (k = max R of the block) positives and negatives are enough.
    """
    G = sims.shape[1]
    k = int(n_pos.max()) if len(n_pos) else 0
    B = sims.shape[0]
    if k == 0:
        nan = torch.full((B,), float("nan"), dtype=torch.float64, device=sims.device)
        return nan, nan.clone()
    ninf = float("-inf")
    pos_top = sims.masked_fill(~pos, ninf).topk(k, dim=1).values           # (B, k) desc
    kn = min(k, G)
    neg_top = sims.masked_fill(pos, ninf).topk(kn, dim=1).values            # (B, kn) desc
    neg_asc = neg_top.flip(1).contiguous()
    n_ge = kn - torch.searchsorted(neg_asc, pos_top.contiguous(), right=False)  # #neg >= t_k (capped at kn)
    kk = torch.arange(1, k + 1, device=sims.device)
    ranks = kk[None, :] + n_ge                                               # (B, k)
    R = n_pos[:, None]
    hit = (kk[None, :] <= R) & (ranks <= R)
    Rf = n_pos.to(torch.float64)
    ap = (hit.to(torch.float64) * (kk[None, :].to(torch.float64) / ranks.to(torch.float64))).sum(1) / Rf
    rp = hit.sum(1).to(torch.float64) / Rf
    nan = torch.full_like(ap, float("nan"))
    return torch.where(n_pos > 0, ap, nan), torch.where(n_pos > 0, rp, nan)
