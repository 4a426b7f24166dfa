"""Encode a dataset with a model into L2-normalised features, cached on disk.

:func:`encode_dataset` returns :class:`Features` (``images`` N×d, ``texts`` M×d, float32,
unit norm).  With a ``cache_dir`` the result is stored as one safetensors file whose name
and metadata carry a fingerprint of the model weights and config, the preprocessing, the
dataset contents and the feature format.  A valid file is reused; anything that changed
gives a new fingerprint and a fresh encode.  Files are written atomically, so an
interrupted run leaves nothing that a later run would trust; an unreadable or mismatched
file is ignored and rewritten.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .data.base import PairDataset
from .data.loading import ImageTensors, iter_image_batches, tokenize_all
from .models.factory import LoadedModel
from .utils import VlmkitError, atomic_path, fingerprint, progress

FORMAT_VERSION = 1


@dataclass
class Features:
    """Unit-norm image and text features of one dataset under one model."""

    images: torch.Tensor
    texts: torch.Tensor
    key: str
    meta: dict = field(default_factory=dict)
    from_cache: bool = False

    def to(self, device: str | torch.device) -> "Features":
        return Features(self.images.to(device), self.texts.to(device), self.key, self.meta, self.from_cache)


def model_fingerprint(loaded: LoadedModel) -> str:
    """Hash of every parameter and buffer plus the config: changes when any weight does."""
    state = loaded.model.state_dict()
    return fingerprint(loaded.model_cfg, loaded.preprocess_cfg, [(k, state[k]) for k in sorted(state)])


def feature_key(loaded: LoadedModel, dataset: PairDataset) -> str:
    return fingerprint(FORMAT_VERSION, model_fingerprint(loaded), dataset.fingerprint())


def cache_path(cache_dir: str | os.PathLike, dataset: PairDataset, key: str) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in dataset.name)
    return Path(cache_dir) / f"{safe}-{key}.safetensors"


def _autocast(device: torch.device, amp: str | bool):
    use = device.type == "cuda" if amp == "auto" else bool(amp)
    if use and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, enabled=False)


@torch.no_grad()
def encode_dataset(
    loaded: LoadedModel,
    dataset: PairDataset,
    *,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 256,
    num_workers: int = 0,
    amp: str | bool = "auto",
    refresh: bool = False,
) -> Features:
    """Features of every image and caption of ``dataset`` (see module docstring).

    Runs on the model's device; on CUDA under bf16/fp16 autocast (``amp="auto"``).
    """
    if batch_size < 1:
        raise VlmkitError(f"batch_size must be ≥ 1, got {batch_size}")
    key = feature_key(loaded, dataset)
    path = cache_path(cache_dir, dataset, key) if cache_dir is not None else None
    if path is not None and path.is_file() and not refresh:
        cached = _read(path, key, dataset)
        if cached is not None:
            return cached

    model = loaded.model
    was_training = model.training
    model.eval()
    device = loaded.device
    tensors = ImageTensors(dataset, loaded.preprocess, loaded.preprocess_cfg)
    img_chunks = []
    with _autocast(device, amp):
        for _, x in iter_image_batches(tensors, batch_size, num_workers, desc=f"encode images ({dataset.name})"):
            img_chunks.append(F.normalize(model.encode_image(x.to(device)).float(), dim=-1).cpu())
        tokens = tokenize_all(loaded.tokenizer, dataset.captions)
        txt_chunks = []
        bar = progress(total=len(tokens), desc=f"encode captions ({dataset.name})", unit="cap")
        for s in range(0, len(tokens), batch_size):
            t = tokens[s : s + batch_size].to(device)
            txt_chunks.append(F.normalize(model.encode_text(t).float(), dim=-1).cpu())
            bar.update(len(t))
        bar.close()
    model.train(was_training)
    meta = {"model": loaded.name, "pretrained": str(loaded.pretrained), "dataset": dataset.name, "format": str(FORMAT_VERSION)}
    feats = Features(torch.cat(img_chunks), torch.cat(txt_chunks), key, meta)
    if not (torch.isfinite(feats.images).all() and torch.isfinite(feats.texts).all()):
        raise VlmkitError(f"encoding {dataset.name} with {loaded.name} produced NaN/inf features (diverged weights or fp16 overflow?)")
    if path is not None:
        _write(path, feats)
    return feats


def _write(path: Path, feats: Features) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({"images": feats.images.contiguous(), "texts": feats.texts.contiguous()}, str(tmp), metadata={**feats.meta, "key": feats.key})


def _read(path: Path, key: str, dataset: PairDataset) -> Features | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            images, texts = fh.get_tensor("images"), fh.get_tensor("texts")
    except Exception as exc:  # unreadable, truncated, foreign: recompute
        warnings.warn(f"ignoring unreadable feature cache {path}: {exc}")
        return None
    if meta.get("key") != key or len(images) != dataset.num_images or len(texts) != dataset.num_captions:
        warnings.warn(f"ignoring feature cache {path}: it does not match this model and dataset")
        return None
    meta.pop("key")
    return Features(images, texts, key, meta, from_cache=True)
