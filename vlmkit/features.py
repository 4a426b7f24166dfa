"""Encode a dataset with a model into L2-normalised features, cached on disk.

:func:`encode_dataset` returns :class:`Features` (``images`` N×d, ``texts`` M×d, float32,
unit norm).  With a ``cache_dir`` the result is stored as one safetensors file whose name
and metadata carry a fingerprint of the model weights and config, the preprocessing, the
dataset contents and the feature format.  A valid file is reused; anything that changed
gives a new fingerprint and a fresh encode.  Files are written atomically, so an
interrupted run leaves nothing that a later run would trust; an unreadable or mismatched
file is ignored and rewritten.

Under ``torchrun`` (a ``torch.distributed`` process group initialised, world size > 1) every
rank encodes a contiguous block of the images and of the captions and the blocks are gathered
in order, so each rank returns the same :class:`Features` as one process would.  The cache key
does not depend on the world size: a cache written by 4 ranks serves a single process and vice
versa.  Every rank reads the cache; the ranks encode unless all of them found it valid, and
rank 0 alone writes it.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
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
    distributed: bool | None = None,
) -> Features:
    """Features of every image and caption of ``dataset`` (see module docstring).

    Runs on the model's device; on CUDA under bf16/fp16 autocast (``amp="auto"``).
    ``distributed``: shard across the ranks of the initialised process group (``None``: when
    there is one with more than one rank; ``False``: every rank encodes everything).
    """
    if batch_size < 1:
        raise VlmkitError(f"batch_size must be ≥ 1, got {batch_size}")
    rank, world = _group(distributed)
    key = feature_key(loaded, dataset)
    path = cache_path(cache_dir, dataset, key) if cache_dir is not None else None
    cached = _read(path, key, dataset) if path is not None and path.is_file() and not refresh else None
    if world > 1 and not _all_ranks(cached is not None, loaded.device):
        cached = None  # a rank without a valid cache: all of them encode (they gather together)
    if cached is not None:
        return cached

    model = loaded.model
    was_training = model.training
    model.eval()
    device = loaded.device
    tensors = ImageTensors(dataset, loaded.preprocess, loaded.preprocess_cfg)
    img_lo, img_hi = shard(dataset.num_images, rank, world)
    txt_lo, txt_hi = shard(dataset.num_captions, rank, world)
    img_chunks, txt_chunks = [], []
    with _autocast(device, amp):
        for _, x in iter_image_batches(tensors, batch_size, num_workers, desc=f"encode images ({dataset.name})",
                                       indices=np.arange(img_lo, img_hi)):
            img_chunks.append(F.normalize(model.encode_image(x.to(device)).float(), dim=-1).cpu())
        tokens = tokenize_all(loaded.tokenizer, dataset.captions[txt_lo:txt_hi]) if txt_hi > txt_lo else None
        bar = progress(total=txt_hi - txt_lo, desc=f"encode captions ({dataset.name})", unit="cap")
        for s in range(0, 0 if tokens is None else len(tokens), batch_size):
            t = tokens[s : s + batch_size].to(device)
            txt_chunks.append(F.normalize(model.encode_text(t).float(), dim=-1).cpu())
            bar.update(len(t))
        bar.close()
    model.train(was_training)
    images, texts = _cat(img_chunks), _cat(txt_chunks)
    if world > 1:
        images = _gather_rows(images, dataset.num_images, world, device)
        texts = _gather_rows(texts, dataset.num_captions, world, device)
    meta = {"model": loaded.name, "pretrained": str(loaded.pretrained), "dataset": dataset.name,
            "format": str(FORMAT_VERSION)}
    feats = Features(images, texts, key, meta)
    if not (torch.isfinite(feats.images).all() and torch.isfinite(feats.texts).all()):
        raise VlmkitError(f"encoding {dataset.name} with {loaded.name} produced NaN/inf features (diverged weights or "
                          "fp16 overflow?)")
    if path is not None and rank == 0:
        _write(path, feats)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()  # the cache file exists for every rank once encode_dataset returns
    return feats


def shard(n: int, rank: int, world: int) -> tuple[int, int]:
    """``[lo, hi)``: the contiguous block of ``n`` rows rank ``rank`` of ``world`` encodes
    (blocks of ``ceil(n / world)``; the last ranks' blocks may be short or empty)."""
    per = -(-n // world)
    return min(n, rank * per), min(n, (rank + 1) * per)


def _group(distributed: bool | None) -> tuple[int, int]:
    """(rank, world size) to shard over: (0, 1) unless a process group is initialised and
    ``distributed`` is not False."""
    import torch.distributed as dist

    if distributed is False or not (dist.is_available() and dist.is_initialized()):
        if distributed:
            raise VlmkitError("encode_dataset(distributed=True) needs an initialised torch.distributed process group "
                              "(launch with torchrun and call vlmkit.train.distributed.setup())")
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def _comm_device(device: torch.device) -> torch.device:
    import torch.distributed as dist

    return device if dist.get_backend() == "nccl" else torch.device("cpu")


def _all_ranks(flag: bool, device: torch.device) -> bool:
    import torch.distributed as dist

    t = torch.tensor([0 if flag else 1], device=_comm_device(device))
    dist.all_reduce(t)  # SUM of "missing" flags
    return int(t.item()) == 0


def _cat(chunks: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(chunks) if chunks else torch.empty(0, 0)


def _gather_rows(local: torch.Tensor, n: int, world: int, device: torch.device) -> torch.Tensor:
    """Every rank's block of rows (``shard``), concatenated in rank order: the n × d whole."""
    import torch.distributed as dist

    comm = _comm_device(device)
    d = torch.tensor([local.shape[1] if len(local) else 0], device=comm)
    dist.all_reduce(d, op=dist.ReduceOp.MAX)  # a rank with an empty block learns the width
    per = -(-n // world)
    padded = torch.zeros(per, int(d.item()), dtype=torch.float32, device=comm)
    if len(local):
        padded[: len(local)] = local.to(comm)
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: hi - lo] for p, (lo, hi) in zip(parts, (shard(n, r, world) for r in range(world)))]).cpu()


def _write(path: Path, feats: Features) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({"images": feats.images.contiguous(), "texts": feats.texts.contiguous()}, str(tmp),
                  metadata={**feats.meta, "key": feats.key})


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
