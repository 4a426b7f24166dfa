"""Classification as retrieval: zero-shot / fine-tuned accuracy from class-prompt features.

Inputs are tensors, never models: image features (n, d) and text features of every class and
prompt template (C, T, d) — or (C, d) for one template.  The class prototype is CLIP's
zero-shot recipe: L2-normalise each template embedding, average over templates, L2-normalise
again.  Logits = ``logit_scale`` · cos(image, prototype) (CLIP: 100).

* Top-k accuracy with the pessimistic tie rule used everywhere in :mod:`vlmkit.metrics`: the
  true class's rank is 1 + #{other classes with logit ≥ its logit}, so a tie with a wrong class
  counts as a miss.  (``torchmetrics.functional.multiclass_accuracy`` takes the first argmax on
  ties; the tests compare with it on tie-free inputs — it is the authority there.)
* Per-class accuracy and its mean (NaN for classes without test images, left out of the mean).
* Base/novel split (CoCoOp protocol): base accuracy is measured on base-class images classified
  among base classes only, novel accuracy on novel-class images among novel classes only;
  H = 2·base·novel / (base + novel).
* Classification ECE: max softmax probability vs top-1 correct, bins as in
  :mod:`vlmkit.metrics.calibration` (torchmetrics' ``multiclass_calibration_error`` is the
  reference on tie-free inputs).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from ..utils import VlmkitError, as_tensor
from .calibration import expected_calibration_error
from .scores import check_finite, l2_normalize


def class_prototypes(text_feats: Any, *, normalize: bool = True) -> torch.Tensor:
    """(C, d) class prototypes from (C, T, d) per-class-per-template text features (or (C, d))."""
    t = as_tensor(text_feats, "text_feats")
    if t.ndim == 2:
        t = t[:, None, :]
    if t.ndim != 3 or t.shape[0] == 0 or t.shape[1] == 0:
        raise VlmkitError(f"text_feats: expected (classes, templates, d) or (classes, d), got shape {tuple(t.shape)}")
    t = t.to(torch.float64 if t.dtype == torch.float64 else torch.float32)
    check_finite(t.reshape(-1, t.shape[-1]), "text_feats")
    if normalize:
        return l2_normalize(l2_normalize(t).mean(1))
    return t.mean(1)


def classification_logits(img_feats: Any, text_feats: Any, *, logit_scale: float = 100.0,
                          normalize: bool = True) -> torch.Tensor:
    """(n, C) logits = logit_scale · image features · class prototypes (cosine when normalised)."""
    x = as_tensor(img_feats, "img_feats")
    if x.ndim != 2:
        raise VlmkitError(f"img_feats: expected (n, d), got shape {tuple(x.shape)}")
    x = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    check_finite(x, "img_feats")
    p = class_prototypes(text_feats, normalize=normalize).to(x.device, x.dtype)
    if p.shape[1] != x.shape[1]:
        raise VlmkitError(f"img_feats have d={x.shape[1]} but text_feats d={p.shape[1]}")
    if normalize:
        x = l2_normalize(x)
    return logit_scale * (x @ p.T)


def _labels(labels: Any, n: int, n_classes: int) -> torch.Tensor:
    y = as_tensor(labels, "labels").reshape(-1)
    if y.is_floating_point() or y.dtype == torch.bool:
        raise VlmkitError(f"labels: expected integer class indices, got dtype {y.dtype}")
    if len(y) != n:
        raise VlmkitError(f"labels has {len(y)} entries for {n} images")
    if n and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        bad = int(((y < 0) | (y >= n_classes)).nonzero()[0])
        raise VlmkitError(f"labels: image {bad} has class {int(y[bad])}, expected [0, {n_classes})")
    return y.long()


def true_class_rank(logits: Any, labels: Any) -> np.ndarray:
    """Pessimistic rank of the true class: 1 + #{other classes with logit ≥ the true logit}."""
    z = as_tensor(logits, "logits")
    if z.ndim != 2:
        raise VlmkitError(f"logits: expected (n, classes), got shape {tuple(z.shape)}")
    z = z.to(torch.float64 if z.dtype == torch.float64 else torch.float32)
    check_finite(z, "logits")
    y = _labels(labels, z.shape[0], z.shape[1]).to(z.device)
    true = z.gather(1, y[:, None])
    return (z >= true).sum(1).cpu().numpy().astype(np.int64)  # counts the true class itself once


def harmonic_mean(base: float, novel: float) -> float:
    """H = 2·b·n / (b + n) (0 when both are 0)."""
    return 0.0 if base + novel == 0 else 2.0 * base * novel / (base + novel)


def classification_metrics_from_logits(logits: Any, labels: Any, *, base_classes: Sequence[int] | None = None,
                                       n_bins: int = 15, class_names: Sequence[str] | None = None,
                                       ks: Sequence[int] = (1, 5)) -> dict[str, Any]:
    """Accuracy metrics of (n, C) logits; see the module docstring for definitions.

    Returns ``top1`` (and ``top{k}`` for k ≤ C), ``mean_per_class``, ``ece``, ``per_class``
    (a DataFrame), and with ``base_classes``: ``base``, ``novel``, ``H``.
    """
    z = as_tensor(logits, "logits")
    if z.ndim != 2:
        raise VlmkitError(f"logits: expected (n, classes), got shape {tuple(z.shape)}")
    n, C = z.shape
    if n == 0:
        raise VlmkitError("logits: no images")
    y = _labels(labels, n, C).cpu().numpy()
    rank = true_class_rank(z, y)
    correct = rank == 1
    out: dict[str, Any] = {}
    for k in ks:
        if k <= C:
            out[f"top{k}"] = float(np.mean(rank <= k))
    zf = z.to(torch.float64 if z.dtype == torch.float64 else torch.float32)
    conf = torch.softmax(zf, 1).amax(1).cpu().numpy()
    out["ece"] = expected_calibration_error(np.clip(conf, 0, 1), correct, n_bins)
    cnt = np.bincount(y, minlength=C)
    hit = np.bincount(y, weights=correct.astype(np.float64), minlength=C)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(cnt > 0, hit / cnt, np.nan)
    out["mean_per_class"] = float(np.nanmean(acc)) if (cnt > 0).any() else float("nan")
    names = list(class_names) if class_names is not None else [str(c) for c in range(C)]
    if len(names) != C:
        raise VlmkitError(f"class_names has {len(names)} names for {C} classes")
    out["per_class"] = pd.DataFrame({"class": np.arange(C), "name": names, "n": cnt, "accuracy": acc})
    if base_classes is not None:
        base = np.unique(np.asarray(list(base_classes), dtype=np.int64))
        if base.size == 0 or base.min() < 0 or base.max() >= C or base.size == C:
            raise VlmkitError(f"base_classes must be a non-empty proper subset of [0, {C}), got {list(base_classes)}")
        novel = np.setdiff1d(np.arange(C), base)
        for name, cls in (("base", base), ("novel", novel)):
            sel = np.isin(y, cls)
            if not sel.any():
                raise VlmkitError(f"no test image belongs to a {name} class")
            remap = np.full(C, -1)
            remap[cls] = np.arange(len(cls))
            r = true_class_rank(zf[torch.from_numpy(sel).to(zf.device)][:, torch.from_numpy(cls).to(zf.device)],
                                remap[y[sel]])
            out[name] = float(np.mean(r == 1))
        out["H"] = harmonic_mean(out["base"], out["novel"])
    return out


def classification_metrics(img_feats: Any, text_feats: Any, labels: Any, *, logit_scale: float = 100.0,
                           base_classes: Sequence[int] | None = None, n_bins: int = 15,
                           class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Zero-shot (or fine-tuned) classification metrics from image and class-prompt features."""
    logits = classification_logits(img_feats, text_feats, logit_scale=logit_scale)
    return classification_metrics_from_logits(logits, labels, base_classes=base_classes, n_bins=n_bins,
                                              class_names=class_names)
