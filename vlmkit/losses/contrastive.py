"""Symmetric InfoNCE (the CLIP loss) over L2-normalised features, with optional soft targets.

``L = ½ · [ mean_i CE(s · v_i Tᵀ, y_i) + mean_j CE(s · t_j Vᵀ, yᵀ_j) ]`` with ``s`` the
logit scale (``1/τ``), ``y = I`` (one-hot on the diagonal) or the given soft targets
(Radford et al. 2021, Eq. in Fig. 3; soft form as in the m²-Mix authors' ``clip_loss``).
See :mod:`vlmkit.losses._common` for the global / local-loss (DDP) conventions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vlmkit.losses._common import check_pair, local_rows, resolve_scale, soft_cross_entropy, unit
from vlmkit.utils import VlmkitError

DEFAULT_TEMPERATURE = 0.01  # the fixed τ of the m²-Mix authors' runs (DESIGN §4)


def contrastive_loss(
    img_feats: torch.Tensor,
    txt_feats: torch.Tensor,
    *,
    temperature: float | None = None,
    logit_scale: torch.Tensor | float | None = None,
    targets: torch.Tensor | None = None,
    local_offset: int | None = None,
    local_size: int | None = None,
    normalize: bool = True,
) -> torch.Tensor:
    """Symmetric InfoNCE of paired features ``(N, D)``; returns a scalar.

    Args:
        temperature: fixed τ (logits = cos/τ). Default 0.01 when ``logit_scale`` is absent.
        logit_scale: the multiplier itself, e.g. ``model.logit_scale.exp()`` (learnable; the
            gradient flows into it). Mutually exclusive with ``temperature``.
        targets: optional ``(N, N)`` soft targets, ``targets[i, j]`` = weight of text ``j``
            for image ``i``; the text→image direction uses ``targets.T``. Rows need not sum
            to 1 (the cross-entropy is ``-Σ_j y_ij log p_ij``). Default: the identity.
        local_offset, local_size: local-loss mode (queries = these rows of the gathered
            batch, gallery = all rows); see :mod:`vlmkit.losses._common`.
        normalize: L2-normalise the features first (idempotent for unit features).
    """
    n = check_pair(img_feats, txt_feats)
    off, size = local_rows(n, local_offset, local_size)
    scale = resolve_scale(temperature, logit_scale, DEFAULT_TEMPERATURE)
    v, t = unit(img_feats, normalize), unit(txt_feats, normalize)
    rows = slice(off, off + size)
    logits_i2t = scale * (v[rows] @ t.T)
    logits_t2i = scale * (t[rows] @ v.T)
    if targets is None:
        labels = torch.arange(off, off + size, device=v.device)
        return 0.5 * (F.cross_entropy(logits_i2t, labels) + F.cross_entropy(logits_t2i, labels))
    if targets.shape != (n, n):
        raise VlmkitError(f"targets: expected shape ({n}, {n}) (gathered batch squared), got {tuple(targets.shape)}")
    y = targets.to(device=v.device, dtype=logits_i2t.dtype)
    loss_i2t = soft_cross_entropy(logits_i2t, y[rows]).mean()
    loss_t2i = soft_cross_entropy(logits_t2i, y[:, rows].T).mean()
    return 0.5 * (loss_i2t + loss_t2i)
