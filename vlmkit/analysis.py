"""Analyses the workbook notebooks run (all tested in ``tests/test_analysis.py``).

* :func:`embedding_shift` — the "Mind the Gap" experiment (Liang et al. 2022): move image and
  text embeddings towards each other along the gap direction Δ = c_img − c_txt, renormalise,
  and report the gap, R@1 and the contrastive loss at each shift.
* :func:`slerp_neighbours` — the nearest gallery items of slerp(v, t; λ) along λ (DESIGN §4:
  λ weights the image v).
* :func:`mixed_negative_hardness` — anchor-negative cosine for original negatives v_i·t_j vs
  m²-Mix negatives v_i·slerp(v_j, t_j; λ).
* Primer helpers: :func:`cone_stats` (the "cone effect" of random-weight encoders),
  :func:`random_init_features`, :func:`temperature_gap` (free embeddings trained with a
  contrastive loss at several temperatures).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .losses import contrastive_loss as info_nce
from .losses.mixup import slerp
from .metrics import bidirectional_recall
from .utils import VlmkitError, as_numpy, as_tensor, first_captions


def _t(x: Any, name: str = "features") -> torch.Tensor:
    t = as_tensor(x, name).cpu()
    if t.ndim != 2:
        raise VlmkitError(f"{name}: expected a 2-D (n, d) feature matrix, got shape {tuple(t.shape)}")
    return t.double()


def _unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


def first_caption(caption_image: np.ndarray, n_images: int) -> np.ndarray:
    """Index of the first caption written for each image (raises if an image has none)."""
    ci = as_numpy(caption_image, "caption_image").reshape(-1)
    sel = first_captions(ci, n_images, 1)
    first = np.full(n_images, -1, dtype=np.int64)
    first[ci[sel]] = sel
    if (first < 0).any():
        raise VlmkitError(f"image {int(np.flatnonzero(first < 0)[0])} has no caption")
    return first


def retrieval_r1(img: torch.Tensor, txt: torch.Tensor, caption_image: np.ndarray) -> tuple[float, float]:
    """R@1 (%) image→text (hit: a caption written for the image ranks first) and text→image,
    one-to-one labels, by :func:`vlmkit.metrics.bidirectional_recall` — so under the metrics'
    one tie rule (pessimistic: a negative tied with the positive ranks above it). Every image
    needs a caption."""
    rec = bidirectional_recall(img @ txt.T, as_numpy(caption_image, "caption_image").reshape(-1), ks=(1,))
    return 100 * rec[("i2t", 1)], 100 * rec[("t2i", 1)]


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, temperature: float = 0.01) -> float:
    """Symmetric InfoNCE of row-paired unit features (CLIP loss with fixed τ), by
    :func:`vlmkit.losses.contrastive_loss` (features used as given, not renormalised)."""
    return info_nce(img, txt, temperature=temperature, normalize=False).item()


def shift_embeddings(img: Any, txt: Any, amount: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Move images by −amount/2·Δ and texts by +amount/2·Δ (Δ = c_img − c_txt), then renormalise.

    ``amount = 1`` makes the centroids coincide before renormalising; negative amounts widen
    the gap.
    """
    x, y = _unit(_t(img)), _unit(_t(txt))
    delta = x.mean(0) - y.mean(0)
    return _unit(x - amount / 2 * delta), _unit(y + amount / 2 * delta)


def embedding_shift(img: Any, txt: Any, caption_image: Any, shifts: Sequence[float] = (-0.5, -0.25, 0, 0.25, 0.5, 0.75, 1.0),
                    temperature: float = 0.01) -> pd.DataFrame:
    """Gap, R@1 (one-to-one labels, %) and contrastive loss (first caption per image) at each shift."""
    x, y = _t(img), _t(txt)
    ci = np.asarray(caption_image).reshape(-1)
    if len(ci) != len(y):
        raise VlmkitError(f"caption_image has {len(ci)} entries for {len(y)} captions")
    first = first_caption(ci, len(x))
    rows = []
    for a in shifts:
        xs, ys = shift_embeddings(x, y, float(a))
        gap = float((xs.mean(0) - ys.mean(0)).norm())
        r_i2t, r_t2i = retrieval_r1(xs, ys, ci)
        rows.append({"shift": float(a), "gap": gap, "r1_i2t": r_i2t, "r1_t2i": r_t2i,
                     "loss": contrastive_loss(xs, ys[first], temperature), "temperature": temperature})
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
            rows.append({"lam": float(lam), "rank": r, "modality": mods[j], "index": int(idx_all[j]), "similarity": float(sim[j])})
    return pd.DataFrame(rows)


def mixed_negative_hardness(img: Any, txt: Any, lam: float = 0.5, max_pairs: int | None = None, seed: int = 0) -> pd.DataFrame:
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


def random_init_features(dataset: Any, model: str = "vlmkit-tiny", seed: int = 0, device: str = "cpu"):
    """Features of ``dataset`` under a *randomly initialised* model (seeded): the cone effect."""
    from .features import encode_dataset
    from .models.factory import load_model
    from .utils import seed_everything

    seed_everything(seed)
    loaded = load_model(model, pretrained=None, device=device)
    return encode_dataset(loaded, dataset)


def two_cones(n: int = 200, d: int = 32, spread: float = 0.6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Free unit embeddings for a toy: images around one random direction, texts around another (two cones)."""
    g = torch.Generator().manual_seed(seed)
    ci, ct = _unit(torch.randn(d, generator=g, dtype=torch.float64)), _unit(torch.randn(d, generator=g, dtype=torch.float64))
    x = _unit(ci + spread * torch.randn(n, d, generator=g, dtype=torch.float64) / np.sqrt(d) * 3)
    y = _unit(ct + spread * torch.randn(n, d, generator=g, dtype=torch.float64) / np.sqrt(d) * 3)
    return x, y


def _train_free(x0: torch.Tensor, y0: torch.Tensor, tau: float, steps: int, lr: float, every: int = 10):
    """Adam on free row-paired embeddings with the symmetric InfoNCE at τ; yields
    ``(step, unit x, unit y, loss, logits)`` at step 0, every ``every`` steps and at the end."""
    if not tau > 0:
        raise VlmkitError(f"temperature must be > 0, got {tau}")
    x = x0.clone().float().requires_grad_(True)
    y = y0.clone().float().requires_grad_(True)
    opt = torch.optim.Adam([x, y], lr=lr)
    for step in range(steps + 1):
        xu, yu = _unit(x), _unit(y)
        logits = xu @ yu.T / tau
        loss = info_nce(logits=logits)
        if step % every == 0 or step == steps:
            yield step, xu.detach(), yu.detach(), float(loss.detach()), logits.detach()
        if step < steps:
            opt.zero_grad()
            loss.backward()
            opt.step()


def temperature_gap(temperatures: Sequence[float] = (0.01, 0.05, 0.1, 1.0), n: int = 200, d: int = 32, steps: int = 200,
                    lr: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """Train free embeddings (two cones, row-paired) with the symmetric contrastive loss at each τ.

    Rows: ``temperature, step, gap, loss, r1`` every 10 steps (step 0 = the initial cones).
    Each τ starts from the same cones, so the curves differ only by τ.
    """
    x0, y0 = two_cones(n, d, seed=seed)
    rows = []
    for tau in temperatures:
        for step, xu, yu, loss, logits in _train_free(x0, y0, tau, steps, lr):
            rows.append({"temperature": float(tau), "step": step, "gap": float((xu.mean(0) - yu.mean(0)).norm()),
                         "loss": loss, "r1": retrieval_r1(xu, yu, np.arange(n))[0]})
    return pd.DataFrame(rows)


def free_embeddings(temperature: float = 0.01, n: int = 200, d: int = 32, steps: int = 200, lr: float = 0.05,
                    seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The unit image/text embeddings :func:`temperature_gap` ends with at one τ (row-paired:
    caption i belongs to image i) — a gap kept by training, for the primer's shift experiment."""
    *_, (step, xu, yu, loss, logits) = _train_free(*two_cones(n, d, seed=seed), temperature, steps, lr, every=max(1, steps))
    return xu.double(), yu.double()


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
