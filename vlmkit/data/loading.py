"""From a :class:`PairDataset` to model-ready tensors: image batches, tokens, pair batches.

In-memory images whose size already equals the model's input size (the embedded data)
take a fast path that normalises uint8 arrays in torch; it gives the same tensors as the
model's PIL preprocessing (Resize/CenterCrop are identities there), without decoding.
Everything else goes through the model's own ``preprocess`` transform.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..utils import VlmkitError, progress
from .base import PairDataset


class ImageTensors:
    """Index → normalised image tensor (3, S, S), by the fast path or the PIL transform."""

    def __init__(self, dataset: PairDataset, preprocess: Callable, preprocess_cfg: dict):
        self.dataset = dataset
        self.preprocess = preprocess
        size = preprocess_cfg.get("size", 224)
        self.size = int(size[0] if isinstance(size, (list, tuple)) else size)
        self.mean = torch.tensor(preprocess_cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))).view(3, 1, 1)
        self.std = torch.tensor(preprocess_cfg.get("std", (0.26862954, 0.26130258, 0.27577711))).view(3, 1, 1)
        arr = dataset.images.as_array()
        self.array = arr if arr is not None and arr.shape[1] == arr.shape[2] == self.size else None

    @property
    def fast(self) -> bool:
        return self.array is not None

    def __len__(self) -> int:
        return self.dataset.num_images

    def __call__(self, i: int) -> torch.Tensor:
        if self.array is not None:
            return self.batch(np.array([i]))[0]
        return self.preprocess(self.dataset.load_image(i))

    def batch(self, idx: np.ndarray) -> torch.Tensor:
        """A (B, 3, S, S) float batch; vectorised on the fast path."""
        if self.array is None:
            return torch.stack([self(int(i)) for i in idx])
        x = torch.from_numpy(self.array[idx]).permute(0, 3, 1, 2).float().div_(255.0)
        return (x - self.mean) / self.std


class _ImageItems(Dataset):
    def __init__(self, tensors: ImageTensors, idx: np.ndarray):
        self.tensors, self.idx = tensors, idx

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, k: int) -> tuple[int, torch.Tensor]:
        return int(self.idx[k]), self.tensors(int(self.idx[k]))


def iter_image_batches(tensors: ImageTensors, batch_size: int, num_workers: int = 0, desc: str = "images",
                       indices: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Yield ``(indices, batch)`` over all images (or over ``indices``, in order), with a progress bar."""
    order = np.arange(len(tensors)) if indices is None else np.asarray(indices, dtype=np.int64)
    n = len(order)
    bar = progress(total=n, desc=desc, unit="img")
    if tensors.fast:
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            yield idx, tensors.batch(idx)
            bar.update(len(idx))
    else:
        loader = DataLoader(_ImageItems(tensors, order), batch_size=batch_size, num_workers=num_workers, shuffle=False)
        for idx, x in loader:
            yield idx.numpy(), x
            bar.update(len(idx))
    bar.close()


def tokenize_all(tokenizer: Callable, captions: Sequence[str], batch_size: int = 4096) -> torch.Tensor:
    """Tokenise every caption once: LongTensor (M, context_length)."""
    if not len(captions):
        raise VlmkitError("cannot tokenise an empty caption list")
    return torch.cat([tokenizer(list(captions[s : s + batch_size])) for s in range(0, len(captions), batch_size)])


class CaptionPairs(Dataset):
    """One item per caption: (image tensor of its labelled image, tokens, caption index, image index).

    This is how COCO-style fine-tuning iterates: every caption once per epoch, paired with
    the image it was written for.
    """

    def __init__(self, dataset: PairDataset, tensors: ImageTensors, tokens: torch.Tensor):
        if len(tokens) != dataset.num_captions:
            raise VlmkitError(f"{len(tokens)} token rows for {dataset.num_captions} captions")
        self.dataset, self.tensors, self.tokens = dataset, tensors, tokens

    def __len__(self) -> int:
        return self.dataset.num_captions

    def __getitem__(self, j: int):
        i = int(self.dataset.caption_image[j])
        return self.tensors(i), self.tokens[j], j, i

    def collate_fast(self, js: Sequence[int]):
        """Vectorised batch for in-memory images (used by the trainer's batch sampler)."""
        js = np.asarray(js)
        ii = self.dataset.caption_image[js]
        return self.tensors.batch(ii), self.tokens[js], torch.from_numpy(js), torch.from_numpy(ii)
