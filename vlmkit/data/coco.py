"""The official COCO captions format: ``captions_*.json`` + a folder of images.

The JSON holds ``images`` (``id``, ``file_name``, …) and ``annotations`` (``id``,
``image_id``, ``caption``).  See https://cocodataset.org/#format-data.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..utils import VlmkitError
from .base import FileImages, PairDataset
from .formats import (IssueLog, caption_problem, id_sort_key, image_problem, read_json, require_dir, require_file,
                      require_keys, require_list)

_HINT = "is it an official COCO captions file such as captions_val2017.json?"


def _check_id(value: object, where: str, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise VlmkitError(f"{where}: {key!r} must be an integer or a string, got {value!r}")


def load_coco_captions(
    annotation_json: str | os.PathLike,
    image_dir: str | os.PathLike,
    *,
    on_error: str = "raise",
    verify_images: bool = False,
    max_images: int | None = None,
    name: str | None = None,
) -> PairDataset:
    """Load an official COCO captions file and its image folder as a :class:`PairDataset`.

    Images are sorted by image id (numeric ids numerically), captions grouped per image in
    that order and, within an image, sorted by annotation id.  ``image_ids`` are the COCO
    ids as strings; ``caption_meta["annotation_id"]`` keeps each caption's annotation id
    (ECCV Caption and CxC refer to captions by it).  Captions are stripped of surrounding
    whitespace.  Images listed without any caption are left out and recorded in
    ``skipped``.  ``max_images`` keeps the first images in id order (after leaving out
    those without captions, before checking files).

    Errors (always raised): a missing file or folder, malformed JSON, a missing
    ``images``/``annotations`` list, a record without ``id``/``file_name`` or
    ``id``/``image_id``/``caption``, a duplicated image or annotation id.
    Per item (``on_error``): an annotation whose image id is not in ``images``, an empty
    or non-string caption, a missing image file, and with ``verify_images=True`` an image
    that does not decode.  Skips are recorded as ``SkipRecord(where="<file>:<image id>")``.
    """
    ann_path = require_file(annotation_json, "COCO annotation file")
    img_dir = require_dir(image_dir, "COCO image folder")
    if max_images is not None and (not isinstance(max_images, int) or max_images < 1):
        raise VlmkitError(f"max_images must be a positive integer or None, got {max_images!r}")
    log = IssueLog(on_error, ann_path)
    data = read_json(ann_path)
    image_recs = require_list(data, "images", ann_path, _HINT)
    ann_recs = require_list(data, "annotations", ann_path, _HINT)

    files: dict[str, str] = {}
    raw_ids: dict[str, object] = {}
    for k, rec in enumerate(image_recs):
        where = f"{ann_path}: images[{k}]"
        require_keys(rec, ("id", "file_name"), where)
        _check_id(rec["id"], where, "id")
        sid = str(rec["id"])
        if sid in files:
            raise VlmkitError(f"{where}: duplicate image id {rec['id']!r}")
        if not isinstance(rec["file_name"], str) or not rec["file_name"].strip():
            raise VlmkitError(f"{where}: 'file_name' must be a non-empty string, got {rec['file_name']!r}")
        files[sid] = rec["file_name"]
        raw_ids[sid] = rec["id"]

    caps: dict[str, list[tuple[object, str]]] = {sid: [] for sid in files}
    seen_ann: set[str] = set()
    for k, rec in enumerate(ann_recs):
        where = f"{ann_path}: annotations[{k}]"
        require_keys(rec, ("image_id", "id", "caption"), where)
        _check_id(rec["id"], where, "id")
        _check_id(rec["image_id"], where, "image_id")
        aid, sid = rec["id"], str(rec["image_id"])
        if str(aid) in seen_ann:
            raise VlmkitError(f"{where}: duplicate annotation id {aid!r}")
        seen_ann.add(str(aid))
        if sid not in files:
            log.problem(f"{ann_path}:{sid}",
                        f"annotation id {aid} (annotations[{k}]) refers to image id {sid}, which is not in the "
                        "'images' list")
            continue
        bad = caption_problem(rec["caption"])
        if bad:
            log.problem(f"{ann_path}:{sid}", f"annotation id {aid}: {bad}")
            continue
        caps[sid].append((aid, rec["caption"].strip()))

    order = sorted(files, key=lambda s: id_sort_key(raw_ids[s]))
    kept: list[str] = []
    for sid in order:
        if not caps[sid]:
            log.note(f"{ann_path}:{sid}", "image has no (usable) caption; left out")
        else:
            kept.append(sid)
    if max_images is not None:
        kept = kept[:max_images]
    final: list[str] = []
    for sid in kept:
        bad = image_problem(img_dir / files[sid], verify_images)
        if bad:
            log.problem(f"{ann_path}:{sid}", bad)
        else:
            final.append(sid)
    if not final:
        raise VlmkitError(f"{ann_path}: no usable image with captions (skipped {len(log.skipped)} item(s); see the "
                          f"first: {log.skipped[:1]})")

    captions: list[str] = []
    caption_image: list[int] = []
    ann_ids: list[object] = []
    for i, sid in enumerate(final):
        for aid, text in sorted(caps[sid], key=lambda t: id_sort_key(t[0])):
            captions.append(text)
            caption_image.append(i)
            ann_ids.append(aid)
    all_int = all(isinstance(a, int) for a in ann_ids)
    return PairDataset(
        name=name or f"coco/{Path(ann_path).stem}",
        images=FileImages([files[s] for s in final], root=img_dir),
        captions=captions,
        caption_image=np.asarray(caption_image, dtype=np.int64),
        image_ids=final,
        caption_meta={"annotation_id": np.asarray(ann_ids, dtype=np.int64 if all_int else object)},
        skipped=log.finish(),
    )
