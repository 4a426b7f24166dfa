"""CSV / TSV files of (image path, caption) rows: open_clip's ``filepath,caption`` layout."""

from __future__ import annotations

import csv
import os

import numpy as np

from ..utils import VlmkitError
from .base import FileImages, PairDataset
from .formats import IssueLog, caption_problem, image_problem, require_dir, require_file

_SEPS = {".csv": ",", ".tsv": "\t"}


def load_csv(
    path: str | os.PathLike,
    *,
    image_root: str | os.PathLike | None = None,
    sep: str | None = None,
    img_key: str = "filepath",
    caption_key: str = "caption",
    on_error: str = "raise",
    verify_images: bool = False,
    name: str | None = None,
) -> PairDataset:
    """Load a table with a header row, one (image, caption) pair per row.

    ``sep`` defaults to ``","`` for ``.csv`` and a tab for ``.tsv`` files (other
    extensions need it).  Fields may be quoted (``"a dog, running"``); quoting errors
    raise.  Relative image paths are resolved against ``image_root``, by default the
    folder holding the table; absolute paths are used as they are.  Rows with the same
    (normalised) path are several captions of one image: images are numbered in order
    of first appearance, captions grouped per image and kept in row order within it.
    ``image_ids`` are the paths as written (normalised); ``caption_meta["row"]`` is each
    caption's row number.  Other columns are ignored.

    Row numbers are 1-based with the header as row 1 (a quoted field spanning several
    lines still counts as one row).  Errors (always raised): a missing file or image
    root, an empty file, a header without ``img_key``/``caption_key`` (the message lists
    the columns found), text that is not UTF-8, broken quoting.  Per row (``on_error``):
    a row with the wrong number of fields, an empty path or caption, a missing image file,
    and with ``verify_images=True`` an undecodable image; skips are recorded as
    ``SkipRecord(where="<file>:row <n>")``.
    """
    table = require_file(path, "caption table")
    if sep is None:
        sep = _SEPS.get(table.suffix.lower())
        if sep is None:
            raise VlmkitError(f"{table}: cannot guess the separator from the extension {table.suffix!r}; pass sep=',' "
                              "or sep='\\t'")
    root = require_dir(image_root, "image root folder") if image_root is not None else table.parent
    log = IssueLog(on_error, table)

    groups: dict[str, list[tuple[int, str]]] = {}
    try:
        with open(table, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=sep, strict=True)
            row = 0
            try:
                header = next(reader)
            except StopIteration:
                raise VlmkitError(f"{table}: the file is empty; expected a header row with columns {img_key!r} and "
                                  f"{caption_key!r}") from None
            header = [h.strip() for h in header]
            missing = [k for k in (img_key, caption_key) if k not in header]
            if missing:
                raise VlmkitError(
                    f"{table}: row 1 (header) has no column {' or '.join(map(repr, missing))}; columns found: "
                    f"{', '.join(map(repr, header))} (set img_key=/caption_key=, or sep= if the separator is not "
                    f"{sep!r})"
                )
            ik, ck = header.index(img_key), header.index(caption_key)
            for row, fields in enumerate(reader, start=2):
                where = f"{table}:row {row}"
                if not fields or (len(fields) == 1 and not fields[0].strip()):
                    continue  # blank line
                if len(fields) != len(header):
                    log.problem(where, f"has {len(fields)} field(s), the header has {len(header)}")
                    continue
                fp, text = fields[ik].strip(), fields[ck]
                if not fp:
                    log.problem(where, f"empty {img_key!r}")
                    continue
                bad = caption_problem(text)
                if bad:
                    log.problem(where, bad)
                    continue
                groups.setdefault(os.path.normpath(fp), []).append((row, text.strip()))
    except csv.Error as exc:
        raise VlmkitError(f"{table}: malformed CSV at row {row + 1}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise VlmkitError(f"{table}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None

    image_paths: list[str] = []
    captions: list[str] = []
    caption_image: list[int] = []
    rows: list[int] = []
    for fp, caps in groups.items():
        bad = image_problem(root / fp, verify_images)
        if bad:
            also = f" (the image of rows {', '.join(str(r) for r, _ in caps)})" if len(caps) > 1 else ""
            log.problem(f"{table}:row {caps[0][0]}", bad + also)
            continue
        for r, text in caps:
            captions.append(text)
            caption_image.append(len(image_paths))
            rows.append(r)
        image_paths.append(fp)
    if not image_paths:
        raise VlmkitError(f"{table}: no usable (image, caption) row (skipped {len(log.skipped)} row(s))")
    return PairDataset(
        name=name or f"csv/{table.stem}",
        images=FileImages(image_paths, root=root),
        captions=captions,
        caption_image=np.asarray(caption_image, dtype=np.int64),
        image_ids=image_paths,
        caption_meta={"row": np.asarray(rows, dtype=np.int64)},
        skipped=log.finish(),
    )
