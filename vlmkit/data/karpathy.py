"""Karpathy split files: ``dataset_coco.json``, ``dataset_flickr30k.json`` (and ``dataset_flickr8k.json``).

Layout (from Karpathy & Fei-Fei, "Deep Visual-Semantic Alignments", 2015)::

    {"dataset": "coco", "images": [
        {"filepath": "val2014", "filename": "COCO_val2014_000000391895.jpg",
         "imgid": 0, "cocoid": 391895, "split": "test",
         "sentences": [{"raw": "A man ...", "tokens": [...], "sentid": 0, "imgid": 0}, ...]},
        ...]}

Flickr30k files have no ``filepath`` / ``cocoid``; the image is ``image_root/filename``.
Splits: ``train``, ``val``, ``test`` and, for COCO only, ``restval`` (the 30,504 val2014
images outside the 5K val/test splits).  The usual COCO training set is ``train+restval``
(113,287 images); the COCO 5K test split is 5,000 images × 25,000 captions (5 per image)
and the COCO 1K protocol averages over its five consecutive blocks of 1,000 images in
file order; Flickr30k test is 1,000 images × 5,000 captions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..utils import VlmkitError
from .base import FileImages, PairDataset
from .formats import (IssueLog, caption_problem, image_problem, read_json, require_dir, require_file, require_keys,
                      require_list)

KARPATHY_SPLITS = ("train", "val", "test", "restval")
_HINT = "is it a Karpathy split file such as dataset_coco.json or dataset_flickr30k.json?"


def _parse_split(split: str | Sequence[str]) -> tuple[str, ...]:
    parts = tuple(split.split("+")) if isinstance(split, str) else tuple(split)
    bad = [s for s in parts if s not in KARPATHY_SPLITS]
    if not parts or bad:
        raise VlmkitError(f"split must be one of {KARPATHY_SPLITS} or several joined by '+' (e.g. 'train+restval'), "
                          f"got {split!r}")
    return parts


def load_karpathy(
    json_path: str | os.PathLike,
    image_root: str | os.PathLike,
    split: str | Sequence[str] = "test",
    *,
    on_error: str = "raise",
    verify_images: bool = False,
    captions_per_image: int | None = 5,
    max_images: int | None = None,
    name: str | None = None,
) -> PairDataset:
    """Load one split (or several, ``"train+restval"``) of a Karpathy split file.

    Images keep the file's order (the order the COCO 1K folds are cut from); captions
    keep the order of ``sentences``.  An image's path is ``image_root/filepath/filename``
    (COCO layout: ``image_root`` holds ``train2014/`` and ``val2014/``) or
    ``image_root/filename`` when there is no ``filepath`` (Flickr30k layout: ``image_root``
    is the ``flickr30k-images`` folder).  ``image_ids`` are the ``cocoid`` when present,
    else the file name without extension (the Flickr id).  The caption is ``raw``
    (stripped), or the ``tokens`` joined by spaces when a sentence has no ``raw``.

    ``captions_per_image=5`` keeps the first five usable captions of each image, the
    standard protocol (a few COCO images have 6–7; the extras are recorded in
    ``skipped``); ``None`` keeps all.  ``caption_meta["sentid"]`` holds each caption's
    ``sentid``; ``image_meta["split"]`` the image's split.

    Errors (always raised): a missing file or folder, malformed JSON, an image record
    without ``filename``/``split``/``sentences``, a sentence without ``raw`` and
    ``tokens``, a duplicated image id, no image in the requested split.  Per item
    (``on_error``): an empty or non-string caption, a missing image file, and with
    ``verify_images=True`` an undecodable image; skips are recorded as
    ``SkipRecord(where="<file>:<image id>")``.
    """
    path = require_file(json_path, "Karpathy split file")
    root = require_dir(image_root, "image root folder")
    splits = _parse_split(split)
    if captions_per_image is not None and (not isinstance(captions_per_image, int) or captions_per_image < 1):
        raise VlmkitError(f"captions_per_image must be a positive integer or None, got {captions_per_image!r}")
    if max_images is not None and (not isinstance(max_images, int) or max_images < 1):
        raise VlmkitError(f"max_images must be a positive integer or None, got {max_images!r}")
    log = IssueLog(on_error, path)
    records = require_list(read_json(path), "images", path, _HINT)

    image_files: list[Path] = []
    image_ids: list[str] = []
    image_split: list[str] = []
    captions: list[str] = []
    caption_image: list[int] = []
    sentids: list[int] = []
    seen: set[str] = set()
    for k, rec in enumerate(records):
        where = f"{path}: images[{k}]"
        require_keys(rec, ("filename", "split", "sentences"), where)
        if not isinstance(rec["filename"], str) or not rec["filename"].strip():
            raise VlmkitError(f"{where}: 'filename' must be a non-empty string, got {rec['filename']!r}")
        iid = str(rec["cocoid"]) if "cocoid" in rec else Path(rec["filename"]).stem
        if iid in seen:
            raise VlmkitError(f"{where}: duplicate image id {iid!r}")
        seen.add(iid)
        if rec["split"] not in KARPATHY_SPLITS:
            raise VlmkitError(f"{where}: unknown split {rec['split']!r}; expected one of {KARPATHY_SPLITS}")
        if rec["split"] not in splits:
            continue
        if max_images is not None and len(image_ids) >= max_images:
            continue  # keep validating the records' structure, but load no more images
        if not isinstance(rec["sentences"], list):
            raise VlmkitError(f"{where}: 'sentences' must be a list, got {type(rec['sentences']).__name__}")
        item = f"{path}:{iid}"
        kept: list[tuple[int, str]] = []
        for j, sent in enumerate(rec["sentences"]):
            swhere = f"{where}.sentences[{j}]"
            if not isinstance(sent, dict):
                raise VlmkitError(f"{swhere}: expected a JSON object, got {type(sent).__name__}")
            if "raw" not in sent and isinstance(sent.get("tokens"), list):
                text = " ".join(str(t) for t in sent["tokens"])
            else:
                require_keys(sent, ("raw",), swhere)
                text = sent["raw"]
            sid = sent.get("sentid", j)
            bad = caption_problem(text)
            if bad:
                log.problem(item, f"sentence {j} (sentid {sid}): {bad}")
                continue
            if captions_per_image is not None and len(kept) >= captions_per_image:
                log.note(item, f"sentence {j} (sentid {sid}) is beyond "
                               f"captions_per_image={captions_per_image}; left out")
                continue
            kept.append((sid, text.strip()))
        if not kept:
            log.note(item, "image has no (usable) caption; left out")
            continue
        rel = Path(rec["filepath"]) / rec["filename"] if rec.get("filepath") else Path(rec["filename"])
        bad = image_problem(root / rel, verify_images)
        if bad:
            log.problem(item, bad)
            continue
        for sid, text in kept:
            captions.append(text)
            caption_image.append(len(image_ids))
            sentids.append(sid)
        image_files.append(rel)
        image_ids.append(iid)
        image_split.append(rec["split"])
    if not image_ids:
        raise VlmkitError(f"{path}: no usable image in split {'+'.join(splits)!r} (skipped {len(log.skipped)} item(s))")
    return PairDataset(
        name=name or f"{Path(path).stem.removeprefix('dataset_')}/{'+'.join(splits)}",
        images=FileImages(image_files, root=root),
        captions=captions,
        caption_image=np.asarray(caption_image, dtype=np.int64),
        image_ids=image_ids,
        caption_meta={"sentid": np.asarray(sentids,
                                           dtype=np.int64 if all(isinstance(s, int) for s in sentids) else object)},
        image_meta={"split": np.asarray(image_split)},
        skipped=log.finish(),
    )
