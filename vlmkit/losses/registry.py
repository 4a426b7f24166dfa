"""Named presets of :class:`~vlmkit.losses.mixup.GeodesicMixupLoss` (the authors' runs, docs/design.md).

=============  =====================================================================
name           configuration (base: symmetric InfoNCE with fixed τ = 0.01, weight 1)
=============  =====================================================================
contrastive    base only (the authors' "FT" baseline)
m2mix          + m²-Mix, weight 0.01, α = 0.5 (τ₂ = 0.07)
m2mix-linear   m2mix with linear mixup + re-normalisation instead of slerp (m²-Mix Tab. 6)
vmix           + V-Mix, weight 0.05, α = 0.5
lmix           + L-Mix, weight 0.05, α = 0.5
vlmix          + VL-Mix, weight 0.1, α = 0.5
all            V = L = 0.05, VL = 0.1, m² = 0.01; αV = αL = αVL = 0.5, α_m² = 0.2
=============  =====================================================================

All mix terms are scaled by ``1/(epoch+1)``. The single-term V/L/VL weights are the
weights those terms have in the authors' "all four" sweep (``scripts/m3mix.sh``); the
authors publish no single-term uni-modal run.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from vlmkit.losses.mixup import GeodesicMixupLoss
from vlmkit.utils import VlmkitError

LOSS_PRESETS: dict[str, dict[str, Any]] = {
    "contrastive": {},
    "m2mix": {"weight_m2mix": 0.01, "alpha_m2mix": 0.5},
    "m2mix-linear": {"weight_m2mix": 0.01, "alpha_m2mix": 0.5, "interp": "linear"},
    "vmix": {"weight_vmix": 0.05, "alpha_vmix": 0.5},
    "lmix": {"weight_lmix": 0.05, "alpha_lmix": 0.5},
    "vlmix": {"weight_vlmix": 0.1, "alpha_vlmix": 0.5},
    "all": {
        "weight_vmix": 0.05,
        "weight_lmix": 0.05,
        "weight_vlmix": 0.1,
        "weight_m2mix": 0.01,
        "alpha_vmix": 0.5,
        "alpha_lmix": 0.5,
        "alpha_vlmix": 0.5,
        "alpha_m2mix": 0.2,
    },
}


def available_losses() -> list[str]:
    """Names accepted by :func:`make_loss`."""
    return list(LOSS_PRESETS)


def make_loss(method: str, **overrides: Any) -> GeodesicMixupLoss:
    """The preset ``method`` with ``overrides`` (any :class:`GeodesicMixupLoss` field, e.g.
    ``make_loss("all", weight_vlmix=0.2)``). Unknown names and bad values raise ``VlmkitError``."""
    if method not in LOSS_PRESETS:
        raise VlmkitError(f"method: unknown loss {method!r}; expected one of {available_losses()}")
    fields = {f.name for f in dataclasses.fields(GeodesicMixupLoss)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise VlmkitError(f"{unknown[0]}: not a GeodesicMixupLoss parameter; expected one of {sorted(fields)}")
    return GeodesicMixupLoss(**{**LOSS_PRESETS[method], **overrides})
