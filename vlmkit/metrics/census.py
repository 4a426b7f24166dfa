"""False-negative census: how many "negative" pairs are in fact true captions of the image.

Under the one-to-one labels of the field, every (image i, caption c) with
``caption_image[c] != i`` is a negative.  With the extended truth of a
:class:`~vlmkit.data.base.PairDataset` (exact on the embedded data), a false negative is such a
pair whose caption is nevertheless true of the image (``PairDataset.false_negatives``).  The
census counts them per split and per caption specificity (``caption_meta["specificity"]``,
0 = count only … 4 = full description; −1 = web alt-text), in blocks of captions.

With partial truth (ECCV Caption / CxC positives) the counts are lower bounds; the ``truth``
column says which.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..utils import VlmkitError


def false_negative_counts(dataset: Any, chunk_size: int = 2048, *, codes: Any | None = None) -> np.ndarray:
    """Number of false negatives of every caption (int64, length M): images it is true of,
    other than the one it was written for.  ``codes``: the data's
    :func:`vlmkit.metrics.streaming.pair_code_matrix` when at hand (code 1 = false negative; read
    in row blocks) instead of asking the truth again — the same counts, without recomputing
    the truth of every pair."""
    if dataset.truth is None:
        raise VlmkitError(f"{dataset.name}: the census needs extended truth (exact on the embedded data, "
                          "or attach positives with PairDataset.with_extended_positives)")
    m = dataset.num_captions
    if codes is not None:
        from .streaming import row_blocks

        if tuple(np.shape(codes)) != (dataset.num_images, m):
            raise VlmkitError(f"codes: shape {tuple(np.shape(codes))}, expected {(dataset.num_images, m)} "
                              f"(images × captions of {dataset.name})")
        out = np.zeros(m, dtype=np.int64)
        for rows in row_blocks(dataset.num_images, m):
            out += (np.asarray(codes[rows]) == 1).sum(axis=0)
        return out
    out = np.zeros(m, dtype=np.int64)
    for a in range(0, m, max(1, int(chunk_size))):
        b = min(a + chunk_size, m)
        out[a:b] = dataset.false_negatives(None, np.arange(a, b)).sum(axis=0)
    return out


def false_negative_census(datasets: Any | Mapping[str, Any], *, by: str | None = "specificity",
                          chunk_size: int = 2048, codes: Any | None = None) -> pd.DataFrame:
    """A tidy table of false-negative counts, one row per (split, ``by`` value) plus an ``"all"`` row per split.

    ``datasets``: one :class:`PairDataset` or a mapping split name → dataset.  ``by``: a
    ``caption_meta`` column to group captions by (``None``: only the ``"all"`` rows).
    ``fn_rate`` = false negatives / labelled negatives; ``captions_with_fn`` = fraction of
    captions with at least one false negative.  ``codes``: one data set's pair codes
    (:func:`false_negative_counts`).
    """
    if not isinstance(datasets, Mapping):
        datasets = {getattr(datasets, "name", "data"): datasets}
    if codes is not None and len(datasets) != 1:
        raise VlmkitError("codes: give the pair codes of one data set, not of several")
    rows = []
    for split, ds in datasets.items():
        fn = false_negative_counts(ds, chunk_size, codes=codes)
        n = ds.num_images
        truth = "exact" if ds.has_exact_truth else "partial"
        groups: list[tuple[Any, np.ndarray]] = [("all", np.ones(len(fn), bool))]
        if by is not None:
            if by not in ds.caption_meta:
                raise VlmkitError(f"{ds.name}: caption_meta has no column {by!r} (has {sorted(ds.caption_meta)})")
            col = np.asarray(ds.caption_meta[by])
            groups += [(v.item() if hasattr(v, "item") else v, col == v) for v in np.unique(col)]
        for value, mask in groups:
            k = int(mask.sum())
            neg = k * (n - 1)
            f = int(fn[mask].sum())
            rows.append({"split": split, "specificity" if by == "specificity" else (by or "group"): value,
                         "truth": truth, "n_images": n, "n_captions": k, "labelled_negatives": neg,
                         "false_negatives": f, "fn_rate": f / neg if neg else float("nan"),
                         "fn_per_caption": f / k if k else float("nan"),
                         "captions_with_fn": float((fn[mask] > 0).mean()) if k else float("nan")})
    return pd.DataFrame(rows)


def caption_census(dataset: Any, *, by: str | None = "specificity", chunk_size: int = 2048) -> pd.DataFrame:
    """How specific the captions are: one row per ``by`` value plus ``"all"``.

    Columns: ``n_captions``; ``duplicate_share`` = 1 − distinct strings / captions;
    ``positives_mean`` / ``positives_median`` = images each caption is true of (its own one
    included; ECCV Caption found ×8.5 on COCO); ``moved`` / ``mismatched`` = captions that
    noise injection moved / whose text is not true of their labelled image
    (``caption_meta["moved"]`` / ``["noisy"]``, 0 without noise).
    """
    per_caption = false_negative_counts(dataset, chunk_size) + dataset.labelled_pairs_true()
    texts = np.asarray(dataset.captions, dtype=object)
    meta = dataset.caption_meta
    m = len(texts)
    moved, noisy = _noise_flags(dataset)
    groups: list[tuple[Any, np.ndarray]] = [("all", np.ones(m, bool))]
    if by is not None and by in meta:
        col = np.asarray(meta[by])
        groups += [(v.item() if hasattr(v, "item") else v, col == v) for v in np.unique(col)]
    rows = []
    for value, mask in groups:
        k = int(mask.sum())
        rows.append({by or "group": value, "truth": "exact" if dataset.has_exact_truth else "partial",
                     "n_captions": k, "duplicate_share": 1 - len(set(texts[mask])) / k,
                     "positives_mean": float(per_caption[mask].mean()),
                     "positives_median": float(np.median(per_caption[mask])),
                     "moved": int(moved[mask].sum()), "mismatched": int(noisy[mask].sum())})
    return pd.DataFrame(rows)


def _noise_flags(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(moved, mismatched)`` per caption from ``caption_meta`` (all False without noise)."""
    meta, m = dataset.caption_meta, len(dataset.captions)
    noisy = np.asarray(meta.get("noisy", np.zeros(m, bool)), bool)
    return np.asarray(meta.get("moved", noisy), bool), noisy


def noise_census(dataset: Any) -> pd.DataFrame:
    """Noisy correspondence of a split after :func:`vlmkit.data.inject_noise`, one row:
    ``n_captions``; ``moved`` = captions moved to another image (``caption_meta["moved"]``);
    ``mismatched`` = captions not true of their labelled image (``caption_meta["noisy"]``: a
    moved caption can stay true, so mismatched ≤ moved; without a truth they are equal);
    their shares of ``n_captions``; ``truth`` = "exact" / "partial" / "labels" (what decided
    ``mismatched``).  Reads the flags only, no pair scan (cheap on a full training split)."""
    moved, noisy = _noise_flags(dataset)
    m = len(moved)
    truth = "exact" if dataset.has_exact_truth else ("partial" if dataset.has_extended_positives else "labels")
    return pd.DataFrame([{"n_captions": m, "moved": int(moved.sum()), "mismatched": int(noisy.sum()),
                          "moved_share": moved.mean() if m else float("nan"),
                          "mismatched_share": noisy.mean() if m else float("nan"), "truth": truth}])
