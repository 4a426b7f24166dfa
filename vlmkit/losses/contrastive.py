"""Symmetric InfoNCE (the CLIP loss) over L2-normalised features, with optional soft targets.

``L = ½ · [ mean_i CE(s · v_i Tᵀ, y_i) + mean_j CE(s · t_j Vᵀ, yᵀ_j) ]`` with ``s`` the
logit scale (``1/τ``), ``y = I`` (one-hot on the diagonal), the given soft targets
(Radford et al. 2021, Eq. in Fig. 3; soft form as in the m²-Mix authors' ``clip_loss``) or
a multi-positive mask spread evenly over each query's positives (the stand-in pretraining,
where two captions of one image can share a batch). Takes features or a logit matrix.
See :mod:`vlmkit.losses._common` for the global / local-loss (DDP) conventions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vlmkit.losses._common import check_pair, local_rows, resolve_scale, soft_cross_entropy, unit
from vlmkit.utils import VlmkitError

DEFAULT_TEMPERATURE = 0.01  # the fixed τ of the m²-Mix authors' runs (docs/design.md, "m²-Mix and its family")


def contrastive_loss(
    img_feats: torch.Tensor | None = None,
    txt_feats: torch.Tensor | None = None,
    *,
    logits: torch.Tensor | None = None,
    temperature: float | None = None,
    logit_scale: torch.Tensor | float | None = None,
    targets: torch.Tensor | None = None,
    positives: torch.Tensor | None = None,
    local_offset: int | None = None,
    local_size: int | None = None,
    normalize: bool = True,
) -> torch.Tensor:
    """Symmetric InfoNCE of paired features ``(N, D)`` or of a logit matrix; returns a scalar.

    The one InfoNCE of vlmkit (fine-tuning, pretraining of the stand-in, the workbook's
    analyses all call it).

    Args:
        img_feats, txt_feats: row-paired features (row ``i`` of one is the positive of row
            ``i`` of the other); logits = scale · cos.
        logits: instead of features, the ``(N, N)`` image × text logit matrix itself (already
            scaled); text→image uses ``logits.T``. Excludes features, ``temperature``,
            ``logit_scale`` and local-loss mode.
        temperature: fixed τ (logits = cos/τ). Default 0.01 when ``logit_scale`` is absent.
        logit_scale: the multiplier itself, e.g. ``model.logit_scale.exp()`` (learnable; the
            gradient flows into it). Mutually exclusive with ``temperature``.
        targets: optional ``(N, N)`` soft targets, ``targets[i, j]`` = weight of text ``j``
            for image ``i``; the text→image direction uses ``targets.T``. Rows need not sum
            to 1 (the cross-entropy is ``-Σ_j y_ij log p_ij``). Default: the identity.
        positives: optional ``(N, N)`` multi-positive mask (bool or 0/1), ``positives[i, j]``
            = text ``j`` is a positive of image ``i`` (e.g. two captions of one image in a
            batch). Each direction spreads its target evenly over the query's positives:
            image→text ``P / P.sum(1)``, text→image ``Pᵀ / Pᵀ.sum(1)``. Every row and column
            needs a positive. Mutually exclusive with ``targets``.
        local_offset, local_size: local-loss mode (queries = these rows of the gathered
            batch, gallery = all rows); see :mod:`vlmkit.losses._common`.
        normalize: L2-normalise the features first (idempotent for unit features).
    """
    if targets is not None and positives is not None:
        raise VlmkitError("positives: pass either soft targets or a positives mask, not both")
    if logits is not None:
        if img_feats is not None or txt_feats is not None:
            raise VlmkitError("logits: pass either a logit matrix or (img_feats, txt_feats), not both")
        if temperature is not None or logit_scale is not None:
            raise VlmkitError("logits: already scaled; temperature / logit_scale apply to features only")
        if local_offset is not None or local_size is not None:
            raise VlmkitError("logits: local-loss mode needs features (local_offset/local_size)")
        if logits.dim() != 2 or logits.shape[0] != logits.shape[1] or logits.shape[0] < 2:
            raise VlmkitError(f"logits: expected a square (N, N) matrix with N >= 2, got shape {tuple(logits.shape)}")
        n, off, size = logits.shape[0], 0, logits.shape[0]
        logits_i2t, logits_t2i = logits, logits.T
    else:
        if img_feats is None or txt_feats is None:
            raise VlmkitError("img_feats: pass (img_feats, txt_feats) or logits=")
        n = check_pair(img_feats, txt_feats)
        off, size = local_rows(n, local_offset, local_size)
        scale = resolve_scale(temperature, logit_scale, DEFAULT_TEMPERATURE)
        v, t = unit(img_feats, normalize), unit(txt_feats, normalize)
        rows = slice(off, off + size)
        logits_i2t = scale * (v[rows] @ t.T)
        logits_t2i = scale * (t[rows] @ v.T)
    rows = slice(off, off + size)
    if targets is None and positives is None:
        labels = torch.arange(off, off + size, device=logits_i2t.device)
        return 0.5 * (F.cross_entropy(logits_i2t, labels) + F.cross_entropy(logits_t2i, labels))
    if positives is not None:
        y_i2t, y_t2i = _positive_targets(positives, n, logits_i2t)
    else:
        if targets.shape != (n, n):
            raise VlmkitError(f"targets: expected shape ({n}, {n}) (gathered batch squared), got "
                              f"{tuple(targets.shape)}")
        y_i2t = targets.to(device=logits_i2t.device, dtype=logits_i2t.dtype)
        y_t2i = y_i2t.T
    loss_i2t = soft_cross_entropy(logits_i2t, y_i2t[rows]).mean()
    loss_t2i = soft_cross_entropy(logits_t2i, y_t2i[rows]).mean()
    return 0.5 * (loss_i2t + loss_t2i)


def _positive_targets(positives: torch.Tensor, n: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-normalised targets of both directions from an ``(n, n)`` positives mask."""
    if not isinstance(positives, torch.Tensor) or tuple(positives.shape) != (n, n):
        shape = tuple(positives.shape) if isinstance(positives, torch.Tensor) else type(positives).__name__
        raise VlmkitError(f"positives: expected an ({n}, {n}) bool tensor (gathered batch squared), got {shape}")
    p = positives.to(device=like.device, dtype=like.dtype)
    if bool(((p != 0) & (p != 1)).any()):
        raise VlmkitError("positives: expected a bool or 0/1 mask")
    for name, m in (("row", p), ("column", p.T)):
        empty = (m.sum(1) == 0).nonzero()
        if len(empty):
            raise VlmkitError(f"positives: {name} {int(empty[0])} has no positive (every image and text needs one)")
    return p / p.sum(1, keepdim=True), p.T / p.T.sum(1, keepdim=True)
