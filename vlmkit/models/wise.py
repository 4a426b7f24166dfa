"""WiSE-FT (Wortsman et al., 2022): weight-space ensembling of a zero-shot and a fine-tuned model."""

from __future__ import annotations

import copy

import torch

from ..utils import VlmkitError
from .factory import LoadedModel


def wise_ft(pretrained: LoadedModel, finetuned: LoadedModel, alpha: float) -> LoadedModel:
    """``θ = (1 − α)·θ_pretrained + α·θ_finetuned`` for every floating-point tensor of the state
    dict (integer buffers are taken from the fine-tuned model); returns a new :class:`LoadedModel`
    (a copy of ``finetuned`` with the mixed weights; the inputs are not modified).

    ``alpha`` = 0 gives the pretrained weights, 1 the fine-tuned ones (the WiSE-FT paper's α).
    Both models must share an architecture (same state-dict keys and shapes).
    """
    if not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
        raise VlmkitError(f"wise_ft: alpha={alpha!r}; expected a number in [0, 1] (0 = pretrained, 1 = fine-tuned)")
    sa, sb = pretrained.model.state_dict(), finetuned.model.state_dict()
    if sa.keys() != sb.keys():
        missing = sorted(set(sa) ^ set(sb))[:3]
        raise VlmkitError(f"wise_ft: the models have different architectures (keys differ, e.g. {missing})")
    mixed = {}
    for k, b in sb.items():
        a = sa[k].to(b.device)
        if a.shape != b.shape:
            raise VlmkitError(f"wise_ft: parameter {k} has shape {tuple(a.shape)} vs {tuple(b.shape)}")
        mixed[k] = torch.lerp(a.float(), b.float(), float(alpha)).to(b.dtype) if b.is_floating_point() else b.clone()
    model = copy.deepcopy(finetuned.model)
    model.load_state_dict(mixed)
    out = copy.copy(finetuned)
    out.model = model
    out.pretrained = f"wise-ft(alpha={float(alpha):g}; {pretrained.pretrained} -> {finetuned.pretrained})"
    return out
