"""The shipped stand-in CLIP: :func:`stand_in` loads it, offline, in any fresh clone.

vlmkit cannot download CLIP weights, so it ships a small CLIP (``vlmkit-base``: ViT 4×128,
patch 8 on 64 px; text transformer 3×128, context 48) trained by
:func:`vlmkit.pretrain.pretrain_tiny` in two stages (:data:`vlmkit.pretrain.STAGES`) on the embedded
*web domain* (``preset="web"``: alt-text captions of scenes, backgrounds and image statistics unlike
the coco test split — data/README.md), so that it stands to the test data as CLIP stands to COCO:
``stand-in-base`` (2,400 steps from random weights, τ learned) and ``stand-in`` (400 more at τ = 0.02
on the same images, half of them densely re-captioned; the default :class:`~vlmkit.pretrain.PretrainConfig`).
Both are stored as fp16 safetensors in ``vlmkit/models/weights/<tag>/`` (open_clip's ``local-dir``
layout), with their training configuration and loss history in the config JSON.

``load_model(pretrained="stand-in")`` is the same model (the form ``TrainConfig`` and the
notebooks take).  Retrain it with ``python -m vlmkit.pretrain --out DIR`` (the second stage, from the
shipped base; ``--stage stand-in-base`` the first) and load the result with
``load_model(pretrained=DIR)``; :func:`export_stand_in` writes a trained directory into the
shipped fp16 form.  Zero-shot figures: data/README.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..utils import VlmkitError, atomic_dir
from .factory import CONFIG_NAME, SHIPPED_TAGS, STAND_IN, STAND_IN_DIR, WEIGHTS_NAME, LoadedModel, load_model

SHIPPED_DIR = STAND_IN_DIR


def stand_in(device: str | torch.device | None = "auto") -> LoadedModel:
    """The shipped stand-in CLIP, loaded (eval mode, fp32)."""
    if not (SHIPPED_DIR / WEIGHTS_NAME).is_file():
        raise VlmkitError(f"the shipped stand-in checkpoint is missing from {SHIPPED_DIR} (a broken install?); "
                          "retrain it with `python -m vlmkit.pretrain --out DIR` and pass pretrained=DIR")
    loaded = load_model(pretrained=SHIPPED_DIR, device=device)
    loaded.model.float().eval()
    return loaded


def learned_temperature(model: LoadedModel | torch.nn.Module) -> float:
    """The model's own learned τ = 1 / exp(logit_scale) (CLIP ViT-B/32: 0.01; the τ the m²-Mix
    authors fine-tune and evaluate at).  Raises when the model has no ``logit_scale``."""
    m = getattr(model, "model", model)
    scale = getattr(m, "logit_scale", None)
    if scale is None:
        raise VlmkitError(f"{type(m).__name__} has no logit_scale: no learned temperature to take; pass one")
    return float(1.0 / torch.as_tensor(scale).detach().float().exp())


def stand_in_record(tag: str = STAND_IN) -> dict:
    """What a shipped checkpoint (``"stand-in"`` or its first stage ``"stand-in-base"``) records of its
    training: ``pretrain_config``, ``loss_history``, ``seconds`` …"""
    if tag not in SHIPPED_TAGS:
        raise VlmkitError(f"no shipped checkpoint is tagged {tag!r}; shipped: {sorted(SHIPPED_TAGS)}")
    meta = json.loads((SHIPPED_TAGS[tag] / CONFIG_NAME).read_text())
    return dict(meta.get("vlmkit", {}))


def export_stand_in(trained_dir: str | os.PathLike, out_dir: str | os.PathLike = SHIPPED_DIR) -> Path:
    """Write a :func:`~vlmkit.pretrain.pretrain_tiny` directory as the shipped fp16 checkpoint (atomically)."""
    from safetensors.torch import load_file, save_file

    src = Path(trained_dir)
    meta = json.loads((src / CONFIG_NAME).read_text())
    state = {k: v.half() if v.is_floating_point() else v for k, v in load_file(str(src / WEIGHTS_NAME)).items()}
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        save_file(state, str(tmp / WEIGHTS_NAME))
        meta["vlmkit"]["stored_dtype"] = "float16"
        (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=1))
    return out_dir
