"""``vlmkit export RUN_DIR [--out DIR]``: a run's embeddings in the layout clip-retrieval users
know, readable by numpy, pandas/pyarrow, FAISS or Embedding Atlas without vlmkit.

For every method of the run that registered features (``scores/<m>.pt`` with ``img``/``txt``;
VACSR registers a score matrix only and is listed as skipped), ``DIR/<method>/`` holds::

    img_emb/img_emb_0.npy                 float32 N×d, unit-norm image embeddings (row i = image i)
    text_emb/text_emb_0.npy               float32 M×d, unit-norm caption embeddings (row j = caption j)
    metadata/metadata_0.parquet           one row per image, aligned with img_emb
    text_metadata/text_metadata_0.parquet one row per caption, aligned with text_emb

``metadata``: ``image_index``, ``image_id``, ``image_path`` (null for generated images),
``caption`` (the image's first caption: clip-retrieval's column), ``captions`` (all captions
written for it) and ``caption_indices`` (their rows in ``text_emb``).  ``text_metadata``:
``caption_index``, ``caption``, ``image_index`` (the label: the image the caption was written
for, ``caption_image``), ``image_id`` and ``image_path`` of that image.  An image and a caption
are paired when ``text_metadata.image_index`` names the image (one-to-one labels; the
embedded data's extended truth is not exported).  ``DIR/export.json`` lists the methods, their
shapes and the run's data.  Every file is written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .utils import VlmkitError, atomic_path, atomic_write_json


def _image_paths(ds: Any) -> list[str | None]:
    paths = getattr(ds.images, "paths", None)
    return [str(p) for p in paths] if paths is not None else [None] * ds.num_images


def metadata_tables(ds: Any):
    """(per-image, per-caption) pyarrow tables of ``ds`` as described in the module docstring."""
    import pyarrow as pa

    ci = np.asarray(ds.caption_image, dtype=np.int64)
    paths = _image_paths(ds)
    ids = [str(i) for i in ds.image_ids]
    order = np.argsort(ci, kind="stable")
    starts = np.searchsorted(ci[order], np.arange(ds.num_images + 1))
    per_image = [order[starts[i]:starts[i + 1]] for i in range(ds.num_images)]
    images = pa.table({
        "image_index": pa.array(np.arange(ds.num_images, dtype=np.int64)),
        "image_id": pa.array(ids, pa.string()),
        "image_path": pa.array(paths, pa.string()),
        "caption": pa.array([ds.captions[int(c[0])] if len(c) else None for c in per_image], pa.string()),
        "captions": pa.array([[ds.captions[int(j)] for j in c] for c in per_image], pa.list_(pa.string())),
        "caption_indices": pa.array([c.tolist() for c in per_image], pa.list_(pa.int64())),
    })
    texts = pa.table({
        "caption_index": pa.array(np.arange(ds.num_captions, dtype=np.int64)),
        "caption": pa.array(list(ds.captions), pa.string()),
        "image_index": pa.array(ci),
        "image_id": pa.array([ids[i] for i in ci], pa.string()),
        "image_path": pa.array([paths[i] for i in ci], pa.string()),
    })
    return images, texts


def _save_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array, dtype=np.float32))


def _save_parquet(path: Path, table: Any) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        pq.write_table(table, str(tmp))


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> dict[str, Any]:
    """Write every featured method of ``run_dir`` under ``out`` (default ``RUN_DIR/export``);
    returns the record written to ``out/export.json``."""
    from . import workbook as wb

    run = Path(run_dir)
    if not (run / "methods.json").is_file():
        raise VlmkitError(f"{run}: no methods.json — not a run directory, or notebook 01_data_and_model has not run "
                          "there")
    out = Path(out) if out is not None else run / "export"
    ds = wb.run_dataset(run)
    images, texts = metadata_tables(ds)
    record: dict[str, Any] = {"run_dir": str(run.resolve()), "dataset": ds.name, "images": ds.num_images,
                              "captions": ds.num_captions, "layout": "clip-retrieval (img_emb, text_emb, metadata)",
                              "methods": {}, "skipped": {}}
    for name, info in wb.list_methods(run).items():
        if not info.get("has_features"):
            record["skipped"][name] = "no features registered (a score matrix only)"
            continue
        blob = wb.load_method(run, name)
        img, txt = blob["img"].numpy(), blob["txt"].numpy()
        if img.shape[0] != ds.num_images or txt.shape[0] != ds.num_captions:
            raise VlmkitError(f"{run}/scores/{name}.pt: {img.shape[0]} images × {txt.shape[0]} captions, but the run's "
                              f"data ({ds.name}) has {ds.num_images} × {ds.num_captions}")
        folder = out / name
        _save_npy(folder / "img_emb" / "img_emb_0.npy", img)
        _save_npy(folder / "text_emb" / "text_emb_0.npy", txt)
        _save_parquet(folder / "metadata" / "metadata_0.parquet", images)
        _save_parquet(folder / "text_metadata" / "text_metadata_0.parquet", texts)
        record["methods"][name] = {"dim": int(img.shape[1]), "folder": name}
    if not record["methods"]:
        raise VlmkitError(f"{run}: no method registered features to export (methods: {sorted(wb.list_methods(run))})")
    atomic_write_json(out / "export.json", record)
    return record
