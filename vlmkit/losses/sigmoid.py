"""SigLIP pairwise sigmoid loss (Zhai et al. 2023, "Sigmoid Loss for Language Image Pre-Training").

``L = -(1/|B|) Σ_i Σ_j log σ(z_ij · (s · v_i·t_j + b))`` with ``z_ij = +1`` on the diagonal
(positives) and ``-1`` elsewhere, ``s`` the logit scale (``exp(t')``, initialised to 10 in the
paper) and ``b`` the logit bias (initialised to −10). The sum runs over every pair once, so
there is no separate text→image direction. Normalised by the batch size as in the paper's
pseudo-code (Algorithm 1).

Local-loss mode (DDP): rows ``[local_offset, local_offset + local_size)`` are the local
images, scored against all ``N`` gathered texts and normalised by ``local_size``; the mean
over ranks of the local losses equals the global loss (see :mod:`vlmkit.losses._common`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vlmkit.losses._common import check_pair, local_rows, unit
from vlmkit.utils import VlmkitError

SIGLIP_INIT_LOGIT_SCALE = 10.0  # exp(t') with t' = log 10
SIGLIP_INIT_LOGIT_BIAS = -10.0


def sigmoid_loss(
    img_feats: torch.Tensor,
    txt_feats: torch.Tensor,
    logit_scale: torch.Tensor | float = SIGLIP_INIT_LOGIT_SCALE,
    logit_bias: torch.Tensor | float = SIGLIP_INIT_LOGIT_BIAS,
    *,
    local_offset: int | None = None,
    local_size: int | None = None,
    normalize: bool = True,
) -> torch.Tensor:
    """SigLIP loss of paired features ``(N, D)``; returns a scalar.

    ``logit_scale`` is the multiplier itself (pass ``model.logit_scale.exp()`` for a
    learnable ``t'``) and ``logit_bias`` the additive bias; both may be tensors with grad.
    """
    n = check_pair(img_feats, txt_feats)
    off, size = local_rows(n, local_offset, local_size)
    for name, val in (("logit_scale", logit_scale), ("logit_bias", logit_bias)):
        if isinstance(val, torch.Tensor) and val.numel() != 1:
            raise VlmkitError(f"{name}: expected a scalar, got shape {tuple(val.shape)}")
        if not isinstance(val, torch.Tensor) and not math.isfinite(float(val)):
            raise VlmkitError(f"{name}: expected a finite number, got {val}")
    v, t = unit(img_feats, normalize), unit(txt_feats, normalize)
    logits = logit_scale * (v[off : off + size] @ t.T) + logit_bias
    signs = -torch.ones_like(logits)
    local = torch.arange(size, device=logits.device)
    signs[local, local + off] = 1.0
    return -F.logsigmoid(signs * logits).sum() / size
