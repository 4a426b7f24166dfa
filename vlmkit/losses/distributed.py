"""Gathering features across DDP ranks for the losses' local-loss mode.

Typical training step on every rank (equal local batch sizes)::

    img, txt = model.encode_image(x), model.encode_text(tok)          # (n, D) local
    all_img, all_txt, off, size = gather_features(img, txt)           # (R·n, D) global
    out = loss_fn(all_img, all_txt, generator=g, epoch=ep,
                  local_offset=off, local_size=size)                  # local queries × global gallery
    out.total.backward()                                              # DDP averages over ranks

The mean over ranks of the local losses is the global loss, and with the gradient-carrying
gather below DDP's averaged gradient is the gradient of the global loss. The λ generator must
be seeded identically on every rank so that all ranks mix with the same λ.
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist


def gather_features(
    img_feats: torch.Tensor, txt_feats: torch.Tensor, *, with_grad: bool = True
) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """All-gather ``(n, D)`` features of every rank into ``(R·n, D)`` (rank order) and return
    ``(all_img, all_txt, local_offset, local_size)`` with ``local_offset = rank · n``.

    ``with_grad=True`` uses ``torch.distributed.nn.functional.all_gather``, whose backward
    sends every rank the gradient of its rows from all ranks (open_clip's
    ``--gather-with-grad``); ``with_grad=False`` gathers without grad and puts the local
    tensors back in their slot, so only local-row gradients flow (cheaper, but the gradient
    is then not that of the global loss). Without an initialised process group this is the
    identity with offset 0.
    """
    n = img_feats.shape[0]
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return img_feats, txt_feats, 0, n
    rank = dist.get_rank()
    if with_grad:
        from torch.distributed.nn.functional import all_gather

        # public autograd-aware gather; deprecated in favour of a private API, hence the filter
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.cat(all_gather(img_feats)), torch.cat(all_gather(txt_feats)), rank * n, n
    outs = []
    for x in (img_feats, txt_feats):
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.detach().contiguous())
        parts[rank] = x
        outs.append(torch.cat(parts))
    return outs[0], outs[1], rank * n, n
