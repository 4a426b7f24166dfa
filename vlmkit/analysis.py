"""Analyses the workbook notebooks run (all tested in ``tests/test_analysis.py``).

* :func:`embedding_shift` — the "Mind the Gap" experiment (Liang et al. 2022): move image and
  text embeddings towards each other along the gap direction Δ = c_img − c_txt, renormalise,
  and report the gap, R@1 and the contrastive loss at each shift.
* :func:`slerp_neighbours` — the nearest gallery items of slerp(v, t; λ) along λ
  (docs/design.md, "Geodesic mixing": λ weights the image v).
* :func:`mixed_negative_hardness` — anchor-negative cosine for original negatives v_i·t_j vs
  m²-Mix negatives v_i·slerp(v_j, t_j; λ).
* :func:`cone_stats` — within- and across-modality cosines and the centroid gap (the "cone
  effect"); :func:`retrieval_r1`; :func:`query_topk`, the workbook's query picker.

The primer's toy experiments (random-weight cones, free embeddings trained at several
temperatures) are :mod:`vlmkit.primer`.  The contrastive loss is :func:`vlmkit.losses.contrastive_loss`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .losses import contrastive_loss as info_nce
from .losses.mixup import slerp
from .metrics.scores import BLOCK_ELEMENTS
from .utils import VlmkitError, as_numpy, as_tensor, first_captions


def _t(x: Any, name: str = "features") -> torch.Tensor:
    t = as_tensor(x, name).cpu()
    if t.ndim != 2:
        raise VlmkitError(f"{name}: expected a 2-D (n, d) feature matrix, got shape {tuple(t.shape)}")
    return t.double()


def _unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


def retrieval_r1(img: torch.Tensor, txt: torch.Tensor, caption_image: np.ndarray, *,
                 block_rows: int | None = None) -> tuple[float, float]:
    """R@1 (%) image→text (hit: a caption written for the image ranks first) and text→image,
    one-to-one labels, under the metrics' one tie rule (pessimistic: a negative tied with the
    positive ranks above it) — what :func:`vlmkit.metrics.bidirectional_recall` gives on
    ``img @ txt.T``, computed from the features in blocks of image rows (both directions from the
    same block: each caption keeps its positive's score and its best negative's), so neither
    the N × M matrix nor its transpose is ever held (COCO 5K: 1 GB in float64).  Every image
    needs a caption."""
    ci = torch.from_numpy(as_numpy(caption_image, "caption_image").reshape(-1).astype(np.int64))
    n, m = img.shape[0], txt.shape[0]
    if ci.numel() != m:
        raise VlmkitError(f"caption_image has {ci.numel()} entries but there are {m} captions")
    no_caption = np.setdiff1d(np.arange(n), ci.numpy())
    if no_caption.size:
        raise VlmkitError(f"i2t recall: {no_caption.size} image(s) without any caption "
                          f"(first: row {int(no_caption[0])}); "
                          "every query needs a positive for Recall@K")
    rows = block_rows or max(1, BLOCK_ELEMENTS // max(1, m))
    neg_inf = float("-inf")
    hits_i2t = 0
    pos_t = torch.full((m,), float("nan"), dtype=torch.float64)  # each caption's score with its image
    neg_t = torch.full((m,), neg_inf, dtype=torch.float64)  # and its best score with any other image
    cols = torch.arange(m)
    for a in range(0, n, rows):
        b = min(n, a + rows)
        s = img[a:b] @ txt.T
        lab = ci[None, :] == torch.arange(a, b)[:, None]
        best_pos = s.masked_fill(~lab, neg_inf).amax(1)
        negs = s.masked_fill(lab, neg_inf)
        hits_i2t += int((best_pos > negs.amax(1)).sum()) if m else 0
        if m:
            neg_t = torch.maximum(neg_t, negs.amax(0).double())
        here = (ci >= a) & (ci < b)
        pos_t[here] = s[ci[here] - a, cols[here]].double()
    # as recall_from_ranks: the mean of the hits as a fraction, then in %
    r_i2t = hits_i2t / n if n else float("nan")
    r_t2i = float(np.mean((pos_t > neg_t).numpy())) if m else float("nan")
    return 100 * r_i2t, 100 * r_t2i


def shift_embeddings(img: Any, txt: Any, amount: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Move images by −amount/2·Δ and texts by +amount/2·Δ (Δ = c_img − c_txt), then renormalise.

    ``amount = 1`` makes the centroids coincide before renormalising; negative amounts widen
    the gap.
    """
    x, y = _unit(_t(img)), _unit(_t(txt))
    delta = x.mean(0) - y.mean(0)
    return _unit(x - amount / 2 * delta), _unit(y + amount / 2 * delta)


def embedding_shift(img: Any, txt: Any, caption_image: Any,
                    shifts: Sequence[float] = (-0.5, -0.25, 0, 0.25, 0.5, 0.75, 1.0),
                    temperature: float = 0.01) -> pd.DataFrame:
    """Gap, R@1 (one-to-one labels, %) and contrastive loss (first caption per image) at each shift."""
    x, y = _t(img), _t(txt)
    ci = np.asarray(caption_image).reshape(-1)
    if len(ci) != len(y):
        raise VlmkitError(f"caption_image has {len(ci)} entries for {len(y)} captions")
    first = first_captions(ci, len(x), by_image=True)
    rows = []
    for a in shifts:
        xs, ys = shift_embeddings(x, y, float(a))
        gap = float((xs.mean(0) - ys.mean(0)).norm())
        r_i2t, r_t2i = retrieval_r1(xs, ys, ci)
        rows.append({"shift": float(a), "gap": gap, "r1_i2t": r_i2t, "r1_t2i": r_t2i,
                     "loss": info_nce(xs, ys[first], temperature=temperature, normalize=False).item(),
                     "temperature": temperature})
    return pd.DataFrame(rows)


def slerp_neighbours(v: Any, t: Any, gallery_images: Any | None, gallery_texts: Any | None,
                     lambdas: Sequence[float] = tuple(np.linspace(0, 1, 11)), k: int = 5) -> pd.DataFrame:
    """For each λ, the top-``k`` gallery items (images and texts pooled) by cosine to slerp(v, t; λ).

    Rows: ``lam, rank (1-based), modality ("image"/"text"), index, similarity``.
    """
    v = _unit(as_tensor(v, "v").cpu().double().reshape(1, -1))
    t = _unit(as_tensor(t, "t").cpu().double().reshape(1, -1))
    parts, mods, idx = [], [], []
    for name, g in (("image", gallery_images), ("text", gallery_texts)):
        if g is not None:
            g = _unit(_t(g))
            parts.append(g)
            mods += [name] * len(g)
            idx.append(np.arange(len(g)))
    if not parts:
        raise VlmkitError("slerp_neighbours: give gallery_images and/or gallery_texts")
    gal = torch.cat(parts)
    idx_all = np.concatenate(idx)
    rows = []
    for lam in lambdas:
        m = _unit(slerp(v, t, float(lam)).double())
        sim = (gal @ m.reshape(-1)).numpy()
        top = np.argsort(-sim, kind="stable")[: min(k, len(sim))]
        for r, j in enumerate(top, 1):
            rows.append({"lam": float(lam), "rank": r, "modality": mods[j], "index": int(idx_all[j]),
                         "similarity": float(sim[j])})
    return pd.DataFrame(rows)


def mixed_negative_hardness(img: Any, txt: Any, lam: float = 0.5, max_pairs: int | None = None,
                            seed: int = 0) -> pd.DataFrame:
    """Cosine of each anchor image v_i to its negatives: original t_j and m²-Mix m_j = slerp(v_j, t_j; λ), j ≠ i.

    ``img``/``txt`` are row-paired (N, d). Rows: ``kind ("original"/"mixed λ=…"), anchor, similarity``;
    also see :func:`hardness_summary`.
    """
    x, y = _unit(_t(img)), _unit(_t(txt))
    if x.shape != y.shape:
        raise VlmkitError(f"mixed_negative_hardness: img {tuple(x.shape)} and txt {tuple(y.shape)} must be row-paired")
    if max_pairs is not None and len(x) > max_pairs:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), max_pairs, replace=False))
        x, y = x[keep], y[keep]
    n = len(x)
    m = _unit(slerp(x, y, float(lam)).double())
    off = ~torch.eye(n, dtype=torch.bool)
    anchor = torch.arange(n)[:, None].expand(n, n)[off].numpy()
    orig = (x @ y.T)[off].numpy()
    mixed = (x @ m.T)[off].numpy()
    return pd.DataFrame({"kind": ["original"] * len(orig) + [f"mixed λ={lam:g}"] * len(mixed),
                         "anchor": np.concatenate([anchor, anchor]), "similarity": np.concatenate([orig, mixed])})


def hardness_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per kind: mean similarity, mean of each anchor's hardest negative, and count."""
    g = table.groupby("kind")
    return pd.DataFrame({"mean_similarity": g["similarity"].mean(),
                         "mean_hardest": table.groupby(["kind", "anchor"])["similarity"].max().groupby("kind").mean(),
                         "n": g.size()}).reset_index()


def cone_stats(img: Any, txt: Any) -> dict[str, float]:
    """Mean pairwise cosine within images, within texts, across modalities, and the centroid gap."""
    x, y = _unit(_t(img)), _unit(_t(txt))

    def within(z: torch.Tensor) -> float:
        n = len(z)
        if n < 2:
            return float("nan")
        s = z @ z.T
        return float((s.sum() - s.diagonal().sum()) / (n * (n - 1)))

    return {"cos_within_images": within(x), "cos_within_texts": within(y), "cos_across": float((x @ y.T).mean()),
            "gap": float((x.mean(0) - y.mean(0)).norm())}


def query_topk(scores: Any, query: int, k: int = 10, uncertainty: Any = None, labels: Any = None,
               truth: Any = None) -> pd.DataFrame:
    """The ``k`` best gallery items of one query row of ``scores`` (queries × gallery):
    ``rank, index, score`` and, when given, ``uncertainty``, ``labelled`` (one-to-one
    label) and ``true`` (exact truth) — the workbook's query picker. Ties keep index order."""
    s = _t(scores)
    n, m = s.shape
    if not 0 <= int(query) < n:
        raise VlmkitError(f"query {query} is out of range: the score matrix has {n} query rows")
    if int(k) < 1:
        raise VlmkitError(f"k={k}: expected at least 1")
    row = s[int(query)]
    order = torch.sort(row, descending=True, stable=True).indices[: min(int(k), m)]
    out = pd.DataFrame({"rank": np.arange(1, len(order) + 1), "index": order.numpy(), "score": row[order].numpy()})
    for name, mat in (("uncertainty", uncertainty), ("labelled", labels), ("true", truth)):
        if mat is None:
            continue
        arr = as_numpy(mat, name)
        if arr.shape != (n, m):
            raise VlmkitError(f"{name}: shape {arr.shape} does not match the scores' {(n, m)}")
        vals = arr[int(query), order.numpy()]
        out[name] = vals.astype(bool) if name != "uncertainty" else vals.astype(float)
    return out
