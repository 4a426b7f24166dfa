"""Noisy correspondence for any :class:`~vlmkit.data.base.PairDataset`: :func:`inject_noise`
permutes a seeded share of captions, the "mismatched pair" noise of the noisy-correspondence
literature.  It serves every dataset (embedded or loaded), so it lives beside the dataset
interface; ``vlmkit.data.inject_noise`` and, for older code, ``vlmkit.data.shapes.inject_noise``
are this function.
"""

from __future__ import annotations

import zlib

import numpy as np

from ..utils import VlmkitError
from .base import PairDataset


def inject_noise(ds: PairDataset, ratio: float, seed: int = 0) -> PairDataset:
    """Noisy correspondence: permute a seeded ``ratio`` of captions among themselves.

    The chosen captions are shuffled by a random derangement of their positions, so each
    moves to another caption's slot (and, almost always, another image).  The one-to-one
    labels (``caption_image``) stay, the texts move: exactly the "mismatched pair" noise
    of the noisy-correspondence literature.  ``caption_meta["moved"]`` marks the moved
    captions; ``caption_meta["noisy"]`` marks the captions whose text is *not true* of their
    labelled image (a moved caption can still be true of it, e.g. "two shapes on a dark
    background" moved to another such image; without extended truth, noisy = moved).
    Extended truth follows the texts, so it stays exact.
    """
    if not 0.0 <= ratio <= 1.0:
        raise VlmkitError(f"noise ratio must be in [0, 1], got {ratio}")
    m = ds.num_captions
    k = int(round(ratio * m))
    rng = np.random.default_rng([seed, zlib.crc32(ds.name.encode()), 7])
    perm = np.arange(m)
    if k >= 2:
        chosen = np.sort(rng.choice(m, size=k, replace=False))
        shift = rng.permutation(k)
        # A derangement: rotate a random order by one, so no caption stays in place.
        order = chosen[shift]
        perm[order] = np.roll(order, 1)
    all_img = np.arange(ds.num_images)
    meta = {key: np.asarray(v)[perm] for key, v in ds.caption_meta.items()}
    moved = (perm != np.arange(m)) | np.asarray(
        ds.caption_meta.get("moved", ds.caption_meta.get("noisy", np.zeros(m, bool))), bool)
    meta["moved"] = moved
    noisy = PairDataset(
        name=f"{ds.name}-noise{ratio:g}",
        images=ds.images,
        captions=[ds.captions[j] for j in perm],
        caption_image=ds.caption_image.copy(),
        image_ids=list(ds.image_ids),
        truth=None if ds.truth is None else ds.truth.subset(all_img, perm),
        caption_meta=meta,
        image_meta=dict(ds.image_meta),
        skipped=list(ds.skipped),
    )
    noisy.caption_meta["noisy"] = moved & ~noisy.labelled_pairs_true(moved) if noisy.truth is not None else moved.copy()
    return noisy
