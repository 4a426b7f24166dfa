"""Review verdicts → an extended-positives JSON that ``PairDataset.with_extended_positives`` reads.

A verdict is ``"true"``, ``"false"`` or ``"unsure"`` about one (image, caption) pair and means
"the caption is true of this image":

- false-negative candidates marked ``"true"`` become extended positives (ECCV Caption / CxC
  style, direction ``i2t``: ``{image_id: [caption index, ...]}``), so the next evaluation
  credits them;
- mismatch candidates marked ``"false"`` are mismatched labelled pairs; an extended-positives
  file can only *add* positives, so they are kept in ``decisions.json`` (``mismatched``) for
  cleaning the training data, not in the positives file.

``decisions.json`` keeps every verdict (with the dataset's name and fingerprint, so verdicts
are never applied to other data by mistake). Both files are written atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..utils import VlmkitError, atomic_write_json

VERDICTS = ("true", "false", "unsure")
DECISIONS_FORMAT = "vlmkit-audit-decisions/1"


def check_verdict(verdict: str, where: str = "verdict") -> str:
    v = str(verdict).strip().lower()
    if v not in VERDICTS:
        raise VlmkitError(f"{where}: {verdict!r} is not a verdict; expected one of {', '.join(VERDICTS)}")
    return v


def normalise(ds: Any, decisions: Iterable[dict], where: str = "decisions") -> list[dict]:
    """Check and normalise verdict records ``{"task", "image", "caption", "verdict"}`` (image is an
    index or given as ``image_id``); the last verdict on a pair wins."""
    ids = {str(k): i for i, k in enumerate(ds.image_ids)}
    out: dict[tuple[str, int, int], dict] = {}
    for k, d in enumerate(decisions):
        at = f"{where} record {k}"
        task = d.get("task", "false_negative")
        if task not in ("false_negative", "mismatch"):
            raise VlmkitError(f"{at}: task {task!r}: expected 'false_negative' or 'mismatch'")
        if "image" in d and d["image"] is not None:
            i = int(d["image"])
        elif "image_id" in d:
            if str(d["image_id"]) not in ids:
                raise VlmkitError(f"{at}: image id {d['image_id']!r} is not in dataset {ds.name!r}")
            i = ids[str(d["image_id"])]
        else:
            raise VlmkitError(f"{at}: needs 'image' (an index) or 'image_id'")
        j = int(d.get("caption", -1))
        if not 0 <= i < ds.num_images or not 0 <= j < ds.num_captions:
            raise VlmkitError(f"{at}: pair (image {i}, caption {j}) outside {ds.num_images} images × {ds.num_captions} "
                              "captions")
        out[(task, i, j)] = {"task": task, "image": i, "image_id": str(ds.image_ids[i]), "caption": j,
                             "verdict": check_verdict(d.get("verdict", ""), at)}
    return list(out.values())


def extended_positives(ds: Any, decisions: Iterable[dict], include_existing: bool = True) -> dict[str, list[int]]:
    """``{image_id: [caption, ...]}``: false-negative candidates marked true, plus (``include_existing``)
    the dataset's own user-given extended positives beyond its labels, so one file holds them all."""
    pos: dict[int, set[int]] = {}
    if include_existing and ds.truth is not None and not ds.truth.exact and hasattr(ds.truth, "matrix"):
        coo = ds.truth.matrix.tocoo()
        for i, j in zip(coo.row, coo.col):
            if ds.caption_image[j] != i:
                pos.setdefault(int(i), set()).add(int(j))
    for d in normalise(ds, decisions):
        if d["task"] == "false_negative" and d["verdict"] == "true" and ds.caption_image[d["caption"]] != d["image"]:
            pos.setdefault(d["image"], set()).add(d["caption"])
    return {str(ds.image_ids[i]): sorted(js) for i, js in sorted(pos.items())}


def write_decisions(ds: Any, decisions: Iterable[dict], out_dir: str | os.PathLike,
                    include_existing: bool = True) -> dict[str, Path]:
    """Write ``decisions.json`` (every verdict) and ``extended_positives.json`` (for
    ``ds.with_extended_positives(path)``) into ``out_dir``; returns both paths."""
    recs = normalise(ds, decisions)
    out = Path(out_dir)
    mism = [d for d in recs if d["task"] == "mismatch" and d["verdict"] == "false"]
    paths = {"decisions": out / "decisions.json", "extended_positives": out / "extended_positives.json"}
    atomic_write_json(paths["decisions"], {"format": DECISIONS_FORMAT, "dataset": ds.name,
                                           "fingerprint": ds.fingerprint(),
                                           "counts": {v: sum(d["verdict"] == v for d in recs) for v in VERDICTS},
                                           "mismatched": [[d["image_id"], d["caption"]] for d in mism],
                                           "decisions": recs})
    atomic_write_json(paths["extended_positives"], extended_positives(ds, recs, include_existing))
    return paths


def read_decisions(path: str | os.PathLike, ds: Any | None = None) -> list[dict]:
    """The verdicts of a ``decisions.json`` (from :func:`write_decisions` or the review page's
    download); with ``ds``, checked against it (a different fingerprint raises)."""
    p = Path(path)
    try:
        blob = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise VlmkitError(f"cannot read decisions file {p}: {exc}") from exc
    if not isinstance(blob, dict) or not isinstance(blob.get("decisions"), list):
        raise VlmkitError(f"{p}: expected a JSON object with a 'decisions' list (format {DECISIONS_FORMAT})")
    if ds is not None:
        fp = blob.get("fingerprint")
        if fp and fp != ds.fingerprint():
            raise VlmkitError(f"{p}: verdicts were made on dataset {blob.get('dataset')!r} (fingerprint {fp[:12]}…), "
                              f"not on {ds.name!r}: refusing to apply them to other data")
        return normalise(ds, blob["decisions"], str(p))
    return list(blob["decisions"])


def mismatched_captions(decisions: Iterable[dict]) -> np.ndarray:
    """Caption indices whose labelled pair a reviewer marked false (to drop from training data)."""
    return np.array(sorted({int(d["caption"]) for d in decisions
                            if d.get("task") == "mismatch" and d.get("verdict") == "false"}), dtype=np.int64)
