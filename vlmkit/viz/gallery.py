"""Galleries of the images themselves for notebooks 03–06: self-contained HTML (thumbnails as
JPEG data URIs ≤ 96 px, every one an ``<img class="vlmkit-thumb">``) that any notebook viewer
shows and that opens offline as a file, and the JupyterLab widgets that re-render it.

- :func:`slerp_path_table` / :func:`slerp_path_html` — 04: what lies near slerp(v, t; λ), one row per λ;
- :func:`query_table` / :func:`query_results_html` — 05: a query and its top-K, each marked
  labelled positive / false negative / negative, with score and σ²;
- :func:`false_negative_table` / :func:`false_negative_gallery_html` — 05/06: the pairs the
  one-to-one labels call negative but the truth calls true, by uncertainty (or score);
- :func:`neighbours_html` / :func:`embedding_examples_html` — 03: an item and its nearest images and captions;
- :func:`slerp_explorer`, :func:`query_picker`, :func:`embedding_explorer` — the widgets (ipywidgets).
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..utils import VlmkitError, as_numpy, atomic_write_text, first_captions
from .images import thumbnail_uri

#: the three kinds of gallery item a query meets, and their colours
MARKS = {"labelled positive": "#2e7d32", "false negative": "#ef6c00", "negative": "#9e9e9e"}
TRUE_COLOUR, FALSE_COLOUR = "#2e7d32", "#9e9e9e"
DIRECTIONS = ("i2t", "t2i")


class Thumbs:
    """Cached ``<img class="vlmkit-thumb">`` tags of one dataset's images (JPEG, ``size`` px, capped at 96)."""

    def __init__(self, ds: Any, size: int = 64):
        self.ds, self.size, self._cache = ds, int(min(max(size, 16), 96)), {}

    def __call__(self, i: int) -> str:
        i = int(i)
        if not 0 <= i < self.ds.num_images:
            raise VlmkitError(f"image index {i} out of range: {self.ds.name} has {self.ds.num_images} images")
        if i not in self._cache:
            uri = thumbnail_uri(self.ds.load_image(i), self.size, fmt="jpeg")
            self._cache[i] = (f"<img class='vlmkit-thumb' src='{uri}' width='{self.size}' alt='image {i}' "
                              f"title='image {i}' style='image-rendering:pixelated;display:block'>")
        return self._cache[i]


def _esc(text: Any, cut: int = 160) -> str:
    s = str(text)
    return html.escape(s if len(s) <= cut else s[: cut - 1] + "…")


def _card(body: str, colour: str, lines: Sequence[str], width: int) -> str:
    info = "".join(f"<div>{line}</div>" for line in lines if line)
    return (f"<div class='vlmkit-item' style='border:3px solid {colour};border-radius:4px;padding:3px;width:{width}px;"
            f"font-size:11px;line-height:1.25;flex:none'>{body}<div "
            f"style='color:#444;margin-top:2px'>{info}</div></div>")


def _caption_body(ds: Any, c: int) -> str:
    return f"<div style='font-size:12px'>“{_esc(ds.captions[int(c)])}”</div>"


def _item(ds: Any, thumbs: Thumbs, modality: str, index: int, colour: str, lines: Sequence[str]) -> str:
    """A gallery item: an image (thumbnail) or a caption (its text), framed in ``colour``."""
    if modality == "image":
        return _card(thumbs(index) + f"<div>image {int(index)}</div>", colour, lines, thumbs.size + 6)
    return _card(_caption_body(ds, index) + f"<div style='color:#777'>caption {int(index)}</div>", colour, lines,
                 2 * thumbs.size + 40)


def _row(label: str, items: Sequence[str]) -> str:
    return (f"<div style='display:flex;gap:6px;align-items:flex-start;margin:4px 0'>"
            f"<div style='width:110px;flex:none;font-size:12px'>{label}</div>{''.join(items)}</div>")


def _legend(marks: dict[str, str]) -> str:
    return ("<div style='font-size:12px'>"
            + " ".join(f"<span style='color:{c}'>■ {html.escape(k)}</span>" for k, c in marks.items()) + "</div>")


def _wrap(title: str, body: str) -> str:
    head = f"<h4 style='margin:6px 0'>{html.escape(title)}</h4>" if title else ""
    return f"<div class='vlmkit-gallery'>{head}{body}</div>"


def _num(v: Any) -> str:
    return "—" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{float(v):.4g}"


def _check_query(ds: Any, direction: str, query: int) -> int:
    if direction not in DIRECTIONS:
        raise VlmkitError(f"direction={direction!r}: expected 'i2t' (an image query) or 't2i' (a caption query)")
    n = ds.num_images if direction == "i2t" else ds.num_captions
    if not 0 <= int(query) < n:
        kind = "an image" if direction == "i2t" else "a caption"
        raise VlmkitError(f"query={query}: expected {kind} index in [0, {n}) of {ds.name} for {direction}")
    return int(query)


# ---------------------------------------------------------------- 04: the slerp path
def slerp_path_table(ds: Any, img: Any, txt: Any, query: int, lambdas: Sequence[float], k: int = 5) -> pd.DataFrame:
    """:func:`vlmkit.analysis.slerp_neighbours` of v = image ``query`` and t = its first caption
    (images and captions of ``ds`` pooled), plus ``relevant`` (an image: t is true of it; a
    caption: it is true of image ``query``; by ``ds.positives()``, i.e. the dataset's truth) and
    ``label`` (``image i`` or the caption text)."""
    from ..analysis import slerp_neighbours

    q = _check_query(ds, "i2t", query)
    cap = int(first_captions(ds.caption_image, ds.num_images, by_image=True)[q])
    t = slerp_neighbours(as_numpy(img, "img")[q], as_numpy(txt, "txt")[cap], img, txt, lambdas, k)
    img_true, cap_true = ds.positives(None, [cap])[:, 0], ds.positives([q], None)[0]
    t["relevant"] = [bool(img_true[r.index] if r.modality == "image" else cap_true[r.index]) for r in t.itertuples()]
    t["label"] = [f"image {r.index}" if r.modality == "image" else ds.captions[r.index] for r in t.itertuples()]
    t.attrs.update(query=q, caption=cap)
    return t


def slerp_path_html(ds: Any, table: pd.DataFrame, lams: Sequence[float] | None = None, *, max_rows: int = 6,
                    size: int = 64, title: str = "", thumbs: Thumbs | None = None) -> str:
    """HTML: one row per λ of a :func:`slerp_path_table`, its nearest images as thumbnails and
    captions as text, framed green when true for the query pair. ``lams``: the λ to show (each
    snapped to the nearest λ of the table); ``None``: up to ``max_rows`` evenly spaced."""
    if not {"lam", "rank", "modality", "index", "similarity"} <= set(table.columns) or table.empty:
        raise VlmkitError("slerp_path_html: table needs rows lam, rank, modality, index, similarity (slerp_path_table)")
    grid = np.unique(table["lam"].to_numpy())
    if lams is None:
        chosen = grid[np.unique(np.linspace(0, len(grid) - 1, min(max_rows, len(grid))).round().astype(int))]
    else:
        chosen = np.unique([grid[np.abs(grid - float(v)).argmin()] for v in lams])
    thumbs = thumbs or Thumbs(ds, size)
    rel = table["relevant"] if "relevant" in table else pd.Series(False, index=table.index)
    rows = []
    for lam in chosen[::-1]:
        sub = table[np.isclose(table["lam"], lam)].sort_values("rank")
        items = [_item(ds, thumbs, r.modality, r.index, TRUE_COLOUR if rel[r.Index] else FALSE_COLOUR,
                       [f"#{r.rank} · cos {r.similarity:.3f}"]) for r in sub.itertuples()]
        rows.append(_row(f"<b>λ = {lam:.2f}</b><br><span style='color:#777'>"
                         f"{'the image' if lam == 1 else 'the caption' if lam == 0 else ''}</span>", items))
    q, cap = table.attrs.get("query"), table.attrs.get("caption")
    head = ""
    if q is not None:
        head = _row("<b>query pair</b>", [_item(ds, thumbs, "image", q, "#1f77b4", ["v (λ = 1)"]),
                                          _item(ds, thumbs, "text", cap, "#1f77b4", ["t (λ = 0)"])])
    return _wrap(title,
                 head + _legend({"true for the query pair": TRUE_COLOUR, "not true": FALSE_COLOUR}) + "".join(rows))


# ---------------------------------------------------------------- 05: the query picker
def pair_marks(labelled: Any, true: Any | None) -> list[str]:
    """Per item: ``"labelled positive"`` (the one-to-one label says so), ``"false negative"``
    (labelled negative but true) or ``"negative"``; without ``true`` only labels count."""
    lab = as_numpy(labelled, "labelled").astype(bool).reshape(-1)
    tru = np.zeros_like(lab) if true is None else as_numpy(true, "true").astype(bool).reshape(-1)
    return ["labelled positive" if a else "false negative" if b else "negative" for a, b in zip(lab, tru)]


def query_table(ds: Any, scores: Any, uncertainty: Any | None, direction: str, query: int, k: int = 10) -> pd.DataFrame:
    """:func:`vlmkit.analysis.query_topk` of one query in ``direction`` (``i2t``: rows of the
    images × captions ``scores``; ``t2i``: its columns), with one-to-one labels, the dataset's
    truth (``ds.positives()``), ``mark`` (:func:`pair_marks`) and ``item`` (caption text / ``image i``)."""
    from ..analysis import query_topk

    q = _check_query(ds, direction, query)
    S, U = as_numpy(scores, "scores"), uncertainty
    if S.shape != (ds.num_images, ds.num_captions):
        raise VlmkitError(f"scores: shape {S.shape}, expected {(ds.num_images, ds.num_captions)} (images × captions of "
                          f"{ds.name})")
    U = None if U is None else as_numpy(U, "uncertainty")
    # the query's row (i2t) or column (t2i) only: a memory-mapped N × M matrix is never read whole
    if direction == "t2i":
        one = lambda x: np.array(x[:, q:q + 1].T)  # noqa: E731
        L, T = ds.labels(None, [q]).T, ds.positives(None, [q]).T
    else:
        one = lambda x: np.array(x[q:q + 1])  # noqa: E731
        L, T = ds.labels([q]), ds.positives([q])
    t = query_topk(one(S), 0, k=k, uncertainty=None if U is None else one(U), labels=L, truth=T)
    t["mark"] = pair_marks(t["labelled"], t["true"])
    t["item"] = [f"image {i}" for i in t["index"]] if direction == "t2i" else [ds.captions[i] for i in t["index"]]
    return t


def query_results_html(ds: Any, table: pd.DataFrame, direction: str, query: int, *, size: int = 64, title: str = "",
                       thumbs: Thumbs | None = None) -> str:
    """HTML: the query (an image for ``i2t``, a caption for ``t2i``) and its results from
    :func:`query_table` (or :func:`vlmkit.analysis.query_topk` with ``labelled``/``true``):
    thumbnails or caption text, each framed and named by its mark, with score and σ²."""
    q = _check_query(ds, direction, query)
    if not {"rank", "index", "score"} <= set(table.columns):
        raise VlmkitError("query_results_html: table needs columns rank, index, score (analysis.query_topk)")
    thumbs = thumbs or Thumbs(ds, size)
    marks = (table["mark"] if "mark" in table
             else pair_marks(table.get("labelled", np.zeros(len(table))), table.get("true")))
    unc = table["uncertainty"] if "uncertainty" in table else [None] * len(table)
    res = "t" if direction == "i2t" else "i"
    items = [_item(ds, thumbs, "text" if res == "t" else "image", r.index, MARKS[mk],
                   [f"#{r.rank} · {mk}", f"score {_num(r.score)}", f"σ² {_num(u)}" if u is not None else ""])
             for r, mk, u in zip(table.itertuples(), marks, unc)]
    query_item = (_item(ds, thumbs, "image", q, "#1f77b4", ["query image"]) if direction == "i2t" else
                  _item(ds, thumbs, "text", q, "#1f77b4",
                        [f"query caption (written for image {int(ds.caption_image[q])})"]))
    wrap = "<div style='display:flex;flex-wrap:wrap;gap:6px'>" + "".join(items) + "</div>"
    return _wrap(title, _row("<b>query</b>", [query_item]) + _legend(MARKS) + wrap)


# ---------------------------------------------------------------- 05/06: the false-negative gallery
def false_negative_table(ds: Any, scores: Any, uncertainty: Any | None = None, *, n: int = 12, n_contrast: int = 6,
                         codes: Any | None = None) -> pd.DataFrame:
    """The ``n`` false negatives (labelled negative, true by ``ds.positives()``) with the highest
    uncertainty (the highest score when ``uncertainty`` is None), then for contrast the
    ``n_contrast`` true negatives ranked the same way. Rows: ``kind, image, caption, written_for,
    score, uncertainty, total`` (``total``: how many pairs of that kind exist); ties keep pair order.
    The matrices are read in row blocks; ``codes`` (:func:`vlmkit.metrics.streaming.pair_code_matrix`
    of ``ds``) saves asking the data's truth again."""
    if not ds.has_extended_positives:
        raise VlmkitError(f"{ds.name} has only one-to-one labels: false negatives need extended positives (exact truth "
                          "on the embedded data)")
    from ..metrics.streaming import _codes, _matrix, top_pairs

    S = _matrix(scores, "scores")  # read in row blocks: no N × M float64 copy, no full argsort (issue 22)
    if S.shape != (ds.num_images, ds.num_captions):
        raise VlmkitError(f"scores: shape {S.shape}, expected {(ds.num_images, ds.num_captions)} (images × captions of "
                          f"{ds.name})")
    U = None if uncertainty is None else _matrix(uncertainty, "uncertainty")
    if U is not None and U.shape != S.shape:
        raise VlmkitError(f"uncertainty: shape {U.shape} does not match the scores' {S.shape}")
    rows = []
    if codes is not None and np.shape(codes) != S.shape:
        raise VlmkitError(f"codes: shape {np.shape(codes)} does not match the scores' {S.shape}")

    def false_negatives(r: slice) -> np.ndarray:  # true by the data's truth, unlabelled
        return _codes(ds, codes, r) == 1

    def not_true(r: slice) -> np.ndarray:  # unlabelled negatives and labelled pairs that are not true
        return _codes(ds, codes, r) >= 2

    for kind, select, take in (("false negative", false_negatives, n), ("true negative", not_true, n_contrast)):
        top, total = top_pairs(S if U is None else U, select, take)
        for f in top:
            i, c = divmod(int(f), ds.num_captions)
            rows.append({"kind": kind, "image": i, "caption": c, "written_for": int(ds.caption_image[c]),
                         "score": float(S[i, c]),
                         "uncertainty": float(U[i, c]) if U is not None else np.nan, "total": total})
    return pd.DataFrame(rows, columns=["kind", "image", "caption", "written_for", "score", "uncertainty", "total"])


def _pair_card(ds: Any, thumbs: Thumbs, r: Any, colour: str) -> str:
    body = (f"<div style='display:flex;gap:4px'>{thumbs(r.image)}<div>{_caption_body(ds, r.caption)}</div></div>"
            f"<div>image {r.image} · caption {r.caption} (written for image {r.written_for})</div>")
    return _card(body, colour, [f"score {_num(r.score)} · σ² {_num(r.uncertainty)}"], 3 * thumbs.size + 60)


def false_negative_gallery_html(ds: Any, scores: Any, uncertainty: Any | None = None, *, n: int = 12,
                                n_contrast: int = 6, size: int = 64, title: str = "", thumbs: Thumbs | None = None,
                                codes: Any | None = None) -> str:
    """HTML of :func:`false_negative_table`: each pair as image thumbnail + caption + score + σ²,
    the false negatives by σ² (highest first; by score without uncertainty), then a strip of the
    true negatives ranked the same way. On data with only one-to-one labels: a one-line note."""
    if not ds.has_extended_positives:
        return (f"<p class='vlmkit-note'>{html.escape(ds.name)} has only one-to-one labels (no extended positives): "
                f"no false negatives can be shown.</p>")
    t = false_negative_table(ds, scores, uncertainty, n=n, n_contrast=n_contrast, codes=codes)
    thumbs = thumbs or Thumbs(ds, size)
    by = "σ²" if uncertainty is not None else "score"
    from ..metrics.streaming import _matrix, score_range

    key = _matrix(uncertainty if uncertainty is not None else scores, by)
    lo, hi = score_range(key, name=by)
    parts = [f"<div style='font-size:12px;color:#555'>{by} over all {key.size} pairs spans {_num(lo)} – "
             f"{_num(hi)}</div>"]
    for kind, colour, what in (("false negative", MARKS["false negative"], "labelled negative, true"),
                               ("true negative", MARKS["negative"], "for contrast: true negatives")):
        sub = t[t.kind == kind]
        total = int(sub.total.iloc[0]) if len(sub) else 0
        parts.append(f"<div style='font-size:12px;margin-top:6px'><b>{what}</b> — the {len(sub)} with the highest {by} "
                     f"of {total}</div>"
                     "<div style='display:flex;flex-wrap:wrap;gap:6px'>"
                     f"{''.join(_pair_card(ds, thumbs, r, colour) for r in sub.itertuples())}</div>")
    return _wrap(title, "".join(parts))


# ---------------------------------------------------------------- 03: neighbours in the embedding space
def neighbours_html(ds: Any, img: Any, txt: Any, modality: str, index: int, *, k: int = 5, size: int = 64,
                    thumbs: Thumbs | None = None) -> str:
    """HTML: image or caption ``index`` of ``ds`` and its ``k`` nearest images and ``k`` nearest
    captions by cosine of the unit features ``img`` (N, d) / ``txt`` (M, d), itself excluded;
    cross-modal neighbours are framed green when the pair is true (``ds.positives()``)."""
    x, y = as_numpy(img, "img", dtype=np.float64), as_numpy(txt, "txt", dtype=np.float64)
    if modality not in ("image", "text"):
        raise VlmkitError(f"modality={modality!r}: expected 'image' or 'text'")
    n = len(x) if modality == "image" else len(y)
    if not 0 <= int(index) < n:
        raise VlmkitError(f"index={index}: expected a{'n image' if modality == 'image' else ' caption'} index in [0, "
                          f"{n})")
    i = int(index)
    thumbs = thumbs or Thumbs(ds, size)
    z = x[i] if modality == "image" else y[i]
    rows = []
    for mod, gal in (("image", x), ("text", y)):
        sim = gal @ z
        if mod == modality:
            sim[i] = -np.inf
        top = np.argsort(-sim, kind="stable")[:k]
        if mod == modality:
            colours = [FALSE_COLOUR] * len(top)
        else:
            truth = ds.positives([i], top)[0] if modality == "image" else ds.positives(top, [i])[:, 0]
            colours = [TRUE_COLOUR if t else FALSE_COLOUR for t in truth]
        items = [_item(ds, thumbs, mod, j, c, [f"cos {sim[j]:.3f}"]) for j, c in zip(top, colours)]
        rows.append(_row(f"nearest {'images' if mod == 'image' else 'captions'}", items))
    own = _item(ds, thumbs, modality, i, "#1f77b4", ["this point"])
    return _wrap("", _row("<b>point</b>", [own]) + "".join(rows))


def embedding_examples_html(ds: Any, img: Any, txt: Any, images: Sequence[int], captions: Sequence[int] = (), *,
                            k: int = 5, size: int = 64, title: str = "") -> str:
    """HTML: :func:`neighbours_html` of a few images and captions, one after another (the static 03 panel)."""
    thumbs = Thumbs(ds, size)
    panels = [neighbours_html(ds, img, txt, "image", i, k=k, thumbs=thumbs) for i in images]
    panels += [neighbours_html(ds, img, txt, "text", c, k=k, thumbs=thumbs) for c in captions]
    legend = _legend({"true pair (cross-modal)": TRUE_COLOUR, "not true / same modality": FALSE_COLOUR})
    return _wrap(title, legend + "<hr style='margin:4px 0'>".join(panels))


# ---------------------------------------------------------------- saving and widgets
def show_html(fragment: str, run_dir: str | os.PathLike, name: str) -> str:
    """Show ``fragment`` in the notebook (``IPython.display.HTML``: kept in an executed notebook)
    and save it as ``figures/<name>.html`` of the run (UTF-8, opens offline). Returns the path."""
    from IPython.display import HTML, display

    path = os.path.join(os.fspath(run_dir), "figures", f"{name}.html")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write_text(path, f"<html><head><meta charset='utf-8'><title>{html.escape(name)}</title></head>"
                            f"<body>{fragment}</body></html>")
    display(HTML(fragment))
    return path


@dataclass
class Explorer:
    """A widget (``widget``: display it), its HTML ``panel``, its ``controls`` by name, and
    ``select(...)``: what a click or a control change calls (tests call it directly)."""

    widget: Any
    panel: Any
    controls: dict[str, Any] = field(default_factory=dict)
    select: Callable[..., None] = lambda *a: None


def _error_html(exc: Exception) -> str:
    return f"<p style='color:#c62828'>{html.escape(str(exc))}</p>"


def slerp_explorer(ds: Any, img: Any, txt: Any, lambdas: Sequence[float], query: int = 0, k: int = 5,
                   size: int = 80) -> Explorer:
    """04 in JupyterLab: a query ``IntText`` and a λ slider; the panel shows the nearest images
    (thumbnails) and captions of slerp(v, t; λ) at the chosen λ, re-rendered on every change."""
    import ipywidgets as W

    thumbs, state = Thumbs(ds, size), {}
    q_box = W.BoundedIntText(value=int(query), min=0, max=ds.num_images - 1, description="query image")
    lam = W.SelectionSlider(options=[round(float(v), 4) for v in lambdas],
                            value=round(float(lambdas[len(lambdas) // 2]), 4), description="λ")
    panel = W.HTML()

    def select(*_: Any) -> None:
        try:
            if state.get("q") != q_box.value:
                state.update(q=q_box.value, table=slerp_path_table(ds, img, txt, q_box.value, lambdas, k))
            panel.value = slerp_path_html(ds, state["table"], [lam.value], thumbs=thumbs)
        except VlmkitError as exc:
            panel.value = _error_html(exc)

    q_box.observe(select, "value")
    lam.observe(select, "value")
    select()
    return Explorer(W.VBox([W.HBox([q_box, lam]), panel]), panel, {"query": q_box, "lam": lam}, select)


def query_picker(ds: Any, load: Callable[[str], tuple[Any, Any]], methods: Sequence[str], query: int = 0, k: int = 10,
                 size: int = 64) -> Explorer:
    """05 in JupyterLab: method and direction dropdowns and a query ``IntText``; the panel shows
    :func:`query_results_html` of the choice (``load(method)`` → ``(scores, uncertainty or None)``);
    a bad query shows its error in the panel."""
    import ipywidgets as W

    thumbs = Thumbs(ds, size)
    method = W.Dropdown(options=list(methods), description="method")
    direction = W.Dropdown(options=list(DIRECTIONS), description="direction")
    q_box = W.IntText(value=int(query), description="query")
    panel = W.HTML()

    def select(*_: Any) -> None:
        try:
            S, U = load(method.value)
            t = query_table(ds, S, U, direction.value, q_box.value, k)
            panel.value = query_results_html(ds, t, direction.value, q_box.value, thumbs=thumbs,
                                             title=f"{method.value}: top-{k} ({direction.value})")
        except VlmkitError as exc:
            panel.value = _error_html(exc)

    for w in (method, direction, q_box):
        w.observe(select, "value")
    select()
    return Explorer(W.VBox([W.HBox([method, direction, q_box]), panel]), panel,
                    {"method": method, "direction": direction, "query": q_box}, select)


def embedding_explorer(ds: Any, img: Any, txt: Any, keep: Any, caps: Any, *, title: str = "", k: int = 5,
                       size: int = 64) -> Explorer:
    """03 in JupyterLab: the 2-D PCA map of images ``keep`` and captions ``caps`` (a plotly
    ``FigureWidget``) beside an HTML panel; hovering or clicking a point shows its image or
    caption and its nearest neighbours among all of ``ds`` (:func:`neighbours_html`)."""
    import ipywidgets as W
    import plotly.graph_objects as go

    from .embeddings import embedding_figure

    keep, caps = np.asarray(keep), np.asarray(caps)
    x, y = as_numpy(img, "img"), as_numpy(txt, "txt")
    remap = -np.ones(ds.num_images, dtype=int)
    remap[keep] = np.arange(len(keep))
    fig = go.FigureWidget(embedding_figure(x[keep], y[caps], remap[ds.caption_image[caps]], title=title))
    panel = W.HTML("<i>hover or click a point to see its image or caption and its nearest neighbours</i>")
    thumbs = Thumbs(ds, size)

    def select(modality: str, index: int) -> None:
        panel.value = neighbours_html(ds, x, y, modality, index, k=k, thumbs=thumbs)

    def handler(modality: str, ids: np.ndarray) -> Callable:
        def on_point(trace: Any, points: Any, state: Any) -> None:
            if points.point_inds:
                select(modality, int(ids[points.point_inds[0]]))
        return on_point

    for tr in fig.data:
        for prefix, modality, ids in (("images", "image", keep), ("captions", "text", caps)):
            if str(tr.name).startswith(prefix):
                tr.on_click(handler(modality, ids))
                tr.on_hover(handler(modality, ids))
    fig.layout.width, fig.layout.height = 640, 520
    return Explorer(W.HBox([fig, panel]), panel, {"figure": fig}, select)
