"""Losses for fine-tuning CLIP-style models: InfoNCE, SigLIP, and geodesic (m²-)mixup.

All losses take ``(img_feats, txt_feats)`` of the whole, possibly all-gathered, batch and
accept ``local_offset``/``local_size`` for DDP local-loss mode (see
:mod:`vlmkit.losses._common` and :mod:`vlmkit.losses.distributed`).
"""

from vlmkit.losses.contrastive import contrastive_loss
from vlmkit.losses.distributed import gather_features
from vlmkit.losses.mixup import (
    GeodesicMixupLoss,
    LossOutput,
    l_mix_loss,
    lerp_normalized,
    m2mix_loss,
    mix,
    sample_beta,
    slerp,
    v_mix_loss,
    vl_mix_loss,
)
from vlmkit.losses.registry import LOSS_PRESETS, available_losses, make_loss
from vlmkit.losses.sigmoid import sigmoid_loss

__all__ = [
    "GeodesicMixupLoss",
    "LOSS_PRESETS",
    "LossOutput",
    "available_losses",
    "contrastive_loss",
    "gather_features",
    "l_mix_loss",
    "lerp_normalized",
    "m2mix_loss",
    "mix",
    "make_loss",
    "sample_beta",
    "sigmoid_loss",
    "slerp",
    "v_mix_loss",
    "vl_mix_loss",
]
