"""Shared plumbing of the loss functions: input checks, the local-loss row slice, soft CE.

Every loss in :mod:`vlmkit.losses` takes the features of the *whole* (possibly all-gathered)
batch, ``img_feats`` and ``txt_feats`` of shape ``(N, D)``, where row ``i`` of one is the
positive of row ``i`` of the other. By default it computes the loss over all ``N`` queries.

**Local-loss mode** (like open_clip's ``--local-loss``): on a DDP rank that holds rows
``[local_offset, local_offset + local_size)`` of the gathered batch, pass those two
integers. The loss then uses only the local rows as *queries* (in both directions) against
the global gallery, so the logit matrices are ``local_size × N`` instead of ``N × N``
(memory grows linearly with the number of ranks), and positives/soft targets are taken at
the global column ``local_offset + i``. Every loss is a mean over query rows, so the mean of
the per-rank local losses equals the global loss exactly when the local batches have equal
size (the usual DDP case), and DDP's gradient averaging then yields the global gradient,
provided the gather keeps the gradient of remote rows (``torch.distributed.nn.all_gather``,
open_clip's ``--gather-with-grad``; see :func:`vlmkit.losses.distributed.gather_features`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vlmkit.utils import VlmkitError


def check_pair(img_feats: torch.Tensor, txt_feats: torch.Tensor) -> int:
    """Validate a batch of paired features and return its size ``N`` (at least 2)."""
    for name, x in (("img_feats", img_feats), ("txt_feats", txt_feats)):
        if not isinstance(x, torch.Tensor):
            raise VlmkitError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 2:
            raise VlmkitError(f"{name}: expected a 2-D (batch, dim) tensor, got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise VlmkitError(f"{name}: expected a floating-point tensor, got {x.dtype}")
    if img_feats.shape != txt_feats.shape:
        raise VlmkitError(
            f"txt_feats: expected the same shape as img_feats {tuple(img_feats.shape)}, "
            f"got {tuple(txt_feats.shape)}"
        )
    n = img_feats.shape[0]
    if n < 2:
        raise VlmkitError(
            f"img_feats: a contrastive loss needs a batch of at least 2 pairs (in-batch negatives), got {n}"
        )
    return n


def local_rows(n: int, local_offset: int | None, local_size: int | None) -> tuple[int, int]:
    """Return ``(offset, size)`` of the query rows: all ``n`` rows unless local-loss mode is on."""
    if local_offset is None and local_size is None:
        return 0, n
    if local_offset is None or local_size is None:
        missing = "local_offset" if local_offset is None else "local_size"
        raise VlmkitError(f"{missing}: local-loss mode needs both local_offset and local_size")
    if int(local_size) < 1:
        raise VlmkitError(f"local_size: expected a positive number of local rows, got {local_size}")
    if int(local_offset) < 0 or int(local_offset) + int(local_size) > n:
        raise VlmkitError(
            f"local_offset: rows [{local_offset}, {local_offset + local_size}) do not fit in the "
            f"gathered batch of {n} rows (expected 0 <= local_offset and local_offset + local_size <= {n})"
        )
    return int(local_offset), int(local_size)


def unit(x: torch.Tensor, normalize: bool) -> torch.Tensor:
    """Features as fp32 (or fp64), L2-normalised along the last dim when ``normalize``."""
    x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    return F.normalize(x, dim=-1) if normalize else x


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-row ``-sum_j targets[i, j] * log_softmax(logits[i])_j`` (targets need not sum to 1)."""
    return -(targets * torch.log_softmax(logits, dim=-1)).sum(dim=-1)


def resolve_scale(
    temperature: float | None, logit_scale: torch.Tensor | float | None, default_temperature: float
) -> torch.Tensor | float:
    """The multiplier of the cosine similarities: ``logit_scale`` if given, else ``1/temperature``."""
    if temperature is not None and logit_scale is not None:
        raise VlmkitError("temperature: pass either a fixed temperature or a logit_scale, not both")
    if logit_scale is not None:
        if isinstance(logit_scale, torch.Tensor) and logit_scale.numel() != 1:
            raise VlmkitError(f"logit_scale: expected a scalar, got shape {tuple(logit_scale.shape)}")
        return logit_scale
    t = default_temperature if temperature is None else float(temperature)
    if not t > 0:
        raise VlmkitError(f"temperature: expected a positive number, got {temperature}")
    return 1.0 / t
