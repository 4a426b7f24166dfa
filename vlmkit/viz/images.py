"""The images themselves: thumbnails of a dataset's images beside their captions, as
self-contained HTML (images inlined as PNG data URIs) that any notebook viewer shows and that
opens offline as a file.

- :func:`image_grid_html` — a grid of images, each with its captions coloured by specificity;
- :func:`false_negative_captions_html` — one image with the captions that are *true* of it
  but labelled negative (written for other images): the false negatives, seen.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any, Sequence

import numpy as np
from PIL import Image

from ..utils import VlmkitError

#: caption colour per specificity (4 = most detailed … 0 = gist; −1 = unknown / real data)
SPEC_COLOURS = {4: "#1b5e20", 3: "#2e7d32", 2: "#558b2f", 1: "#ef6c00", 0: "#c62828", -1: "#37474f"}


def thumbnail_uri(img: Image.Image, size: int = 128, fmt: str = "png") -> str:
    """A data URI of ``img`` scaled to ``size`` px on its longer side (nearest for small images),
    as ``fmt`` = ``"png"`` (lossless) or ``"jpeg"`` (quality 85: about a fifth of the bytes of a
    PNG for anti-aliased or photographic thumbnails; what the galleries use)."""
    if fmt not in ("png", "jpeg"):
        raise VlmkitError(f"thumbnail format fmt={fmt!r}: expected 'png' or 'jpeg'")
    im = img.convert("RGB")
    scale = size / max(im.size)
    resample = Image.NEAREST if scale >= 1 else Image.BILINEAR
    im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), resample)
    buf = io.BytesIO()
    if fmt == "png":
        im.save(buf, format="PNG", optimize=True)
    else:
        im.save(buf, format="JPEG", quality=85, optimize=True)
    return f"data:image/{fmt};base64," + base64.b64encode(buf.getvalue()).decode()


def _check_index(ds: Any, i: int) -> int:
    if not 0 <= int(i) < ds.num_images:
        raise VlmkitError(f"image index {i} out of range: {ds.name} has {ds.num_images} images")
    return int(i)


def _caption_li(text: str, spec: int, note: str = "") -> str:
    colour = SPEC_COLOURS.get(int(spec), SPEC_COLOURS[-1])
    tag = (f"<small style='color:#777'> [{'spec ' + str(spec) if spec >= 0 else ''}{note}]</small>"
           if (spec >= 0 or note) else "")
    return f"<li style='color:{colour}'>{html.escape(text)}{tag}</li>"


def image_grid_html(ds: Any, indices: Sequence[int], *, columns: int = 4, size: int = 128, title: str = "") -> str:
    """HTML: images ``indices`` of ``ds`` in a grid, each with the captions written for it,
    coloured by ``caption_meta["specificity"]`` when present (legend included)."""
    spec = np.asarray(ds.caption_meta.get("specificity", np.full(ds.num_captions, -1)))
    cells = []
    for i in indices:
        i = _check_index(ds, i)
        caps = "".join(_caption_li(ds.captions[c], spec[c]) for c in ds.captions_of(i))
        cells.append(f"<div style='padding:6px;border:1px solid #ddd;border-radius:4px'>"
                     f"<img class='vlmkit-thumb' src='{thumbnail_uri(ds.load_image(i), size)}' width='{size}' "
                     "style='image-rendering:pixelated'>"
                     f"<div style='font-size:11px;color:#555'>image {i} · {html.escape(str(ds.image_ids[i]))}</div>"
                     f"<ol style='font-size:12px;margin:4px 0 0 16px;padding:0'>{caps}</ol></div>")
    legend = " ".join(f"<span style='color:{c}'>■ {'spec ' + str(k) if k >= 0 else 'no specificity'}</span>"
                      for k, c in SPEC_COLOURS.items() if k in set(spec.tolist()))
    head = f"<h3>{html.escape(title)}</h3>" if title else ""
    return (f"<div>{head}<div style='font-size:12px'>{legend}</div>"
            f"<div style='display:grid;grid-template-columns:repeat({columns},1fr);gap:8px'>"
            f"{''.join(cells)}</div></div>")


def false_negative_captions_html(ds: Any, i: int | None = None, *, k: int = 12, size: int = 160,
                                 codes: Any | None = None) -> str:
    """HTML: image ``i`` (``None``: the image with the most false negatives, the first on a tie),
    its own captions, and up to ``k`` captions written for *other* images that are true of it
    (false negatives under one-to-one labels; needs extended truth).  ``codes``: the data's
    :func:`vlmkit.metrics.streaming.pair_code_matrix` when at hand (read in row blocks to find
    that image; without it the truth of every pair is computed, in row blocks)."""
    if not ds.has_extended_positives:
        raise VlmkitError(f"{ds.name}: false negatives need extended truth (exact on the embedded data)")
    if i is None:
        from ..metrics.streaming import block_pair_codes, row_blocks

        if codes is not None and tuple(np.shape(codes)) != (ds.num_images, ds.num_captions):
            raise VlmkitError(f"codes: shape {tuple(np.shape(codes))}, expected {(ds.num_images, ds.num_captions)}")
        per_image = np.zeros(ds.num_images, np.int64)
        for rows in row_blocks(ds.num_images, ds.num_captions):
            c = np.asarray(codes[rows]) if codes is not None else block_pair_codes(ds, rows)
            per_image[rows] = (c == 1).sum(axis=1)
        i = int(np.argmax(per_image))
    i = _check_index(ds, i)
    spec = np.asarray(ds.caption_meta.get("specificity", np.full(ds.num_captions, -1)))
    fn = np.flatnonzero(ds.false_negatives(np.array([i]), None)[0])
    own = "".join(_caption_li(ds.captions[c], spec[c]) for c in ds.captions_of(i))
    shown = "".join(_caption_li(ds.captions[c], spec[c],
                                f", written for image {int(ds.caption_image[c])}") for c in fn[:k])
    more = f"<p style='font-size:12px;color:#777'>… and {len(fn) - k} more</p>" if len(fn) > k else ""
    return (f"<div><b>Image {i}</b><div style='display:flex;gap:16px;align-items:flex-start'>"
            f"<img class='vlmkit-thumb' src='{thumbnail_uri(ds.load_image(i), size)}' width='{size}' "
            "style='image-rendering:pixelated'>"
            f"<div><b>Its own captions (labelled positive)</b><ol style='font-size:12px'>{own}</ol>"
            f"<b>{len(fn)} captions of other images that are true of it — labelled negative (false negatives)</b>"
            f"<ol style='font-size:12px'>{shown or '<li>none</li>'}</ol>{more}</div></div></div>")
