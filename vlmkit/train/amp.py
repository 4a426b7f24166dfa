"""Mixed precision of the fine-tuning loop: which autocast, whether a gradient scaler."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch


def autocast_setup(cfg: Any, dev: torch.device):
    """(autocast context factory, GradScaler or None, amp argument for encode_dataset) of
    ``cfg.amp`` on ``dev``: autocast on CUDA only (bf16 when supported under ``"auto"``, else
    fp16 with a scaler); CPU and ``amp="off"`` run in fp32."""
    if dev.type != "cuda" or cfg.amp == "off":
        return (lambda: nullcontext()), None, False
    dtype = torch.float16 if cfg.amp == "fp16" else torch.bfloat16
    if cfg.amp == "auto" and not torch.cuda.is_bf16_supported():
        dtype = torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return (lambda: torch.autocast("cuda", dtype=dtype)), scaler, True
