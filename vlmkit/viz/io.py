"""Saving figures: offline HTML (one shared ``plotly.min.js`` per folder) and PNG when possible;
the display bundle that puts a figure inline in a notebook (:func:`display_bundle`).

PNG export needs kaleido and a Chromium; when either is missing, :func:`save_figure` prints
one note (once per process) and writes HTML only — it never raises for a missing exporter.
"""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from ..utils import atomic_path, atomic_write_text

_PNG_STATE: dict[str, object] = {"ok": None, "note": ""}


def _ensure_plotlyjs(folder: Path) -> None:
    js = folder / "plotly.min.js"
    if not js.exists():
        from plotly.offline import get_plotlyjs

        atomic_write_text(js, get_plotlyjs())


def _find_chromium() -> str | None:
    for cand in (os.environ.get("BROWSER_PATH"), "/usr/bin/chromium", "/usr/bin/chromium-browser",
                 "/usr/bin/google-chrome"):
        if cand and Path(cand).exists():
            return cand
    return None


def png_available() -> bool:
    """Whether PNG export has worked (``None`` before the first try counts as maybe: True)."""
    return _PNG_STATE["ok"] is not False


def save_figure(fig: go.Figure, path_stem: str | os.PathLike, png: bool | None = None,
                width: int | None = None, height: int | None = None) -> dict[str, Path]:
    """Write ``<stem>.html`` (offline: loads ``plotly.min.js`` written beside it) and ``<stem>.png``
    of ``width`` × ``height`` px (default: the figure's own layout size, else 900 × 600).

    ``png=None`` tries PNG unless ``VLMKIT_NO_PNG=1``; a failed export is noted once and skipped.
    Returns the paths written.
    """
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    _ensure_plotlyjs(stem.parent)
    out: dict[str, Path] = {}
    html = stem.with_suffix(".html")
    atomic_write_text(html, fig.to_html(include_plotlyjs="directory", full_html=True))
    out["html"] = html
    if png is None:
        png = os.environ.get("VLMKIT_NO_PNG", "") in ("", "0")
    if png and _PNG_STATE["ok"] is not False:
        chrome = _find_chromium()
        if chrome and not os.environ.get("BROWSER_PATH"):
            os.environ["BROWSER_PATH"] = chrome
        try:
            target = stem.with_suffix(".png")
            with atomic_path(target) as tmp:
                fig.write_image(str(tmp), format="png", width=width or fig.layout.width or 900,
                                height=height or fig.layout.height or 600)
            out["png"] = target
            _PNG_STATE["ok"] = True
        except Exception as exc:  # kaleido/Chromium missing or broken: HTML only
            _PNG_STATE["ok"] = False
            _PNG_STATE["note"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            print(f"note: PNG export unavailable ({_PNG_STATE['note'][:160]}); writing HTML figures only")
    return out


PLOTLY_MIME = "application/vnd.plotly.v1+json"


def inline_png(path: str | os.PathLike, max_width: int = 800) -> bytes:
    """The PNG at ``path`` re-encoded for a notebook output: flattened onto white, scaled down to
    at most ``max_width`` pixels wide (aspect kept) and reduced to a 256-colour palette without
    dithering (plots have few colours; about a third of the bytes), optimised."""
    from PIL import Image

    with Image.open(path) as src:
        rgba = src.convert("RGBA")
    im = Image.new("RGB", rgba.size, (255, 255, 255))
    im.paste(rgba, mask=rgba.getchannel("A"))
    if im.width > max_width:
        im = im.resize((max_width, max(1, round(im.height * max_width / im.width))), Image.LANCZOS)
    im = im.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def plotly_mimedata(fig: go.Figure) -> dict[str, Any]:
    """The figure as the plotly mimetype's JSON (data, layout): what JupyterLab, VS Code and
    nteract render interactively and offline, with no plotly.js in the notebook."""
    import plotly.io as pio

    return json.loads(pio.to_json(fig, validate=False))


def display_bundle(fig: go.Figure, png: str | os.PathLike | None, text: str, *, interactive: bool = True,
                   max_width: int = 800, max_json_bytes: int = 1_000_000) -> dict[str, Any]:
    """A ``display_data`` bundle of one figure (mimetype → data, for ``IPython.display.display(raw=True)``).

    * ``image/png`` (base64): the exported PNG scaled down by :func:`inline_png`, when ``png``
      is given — the static view every notebook viewer shows;
    * the plotly mimetype (:func:`plotly_mimedata`) when ``interactive`` and its JSON is at most
      ``max_json_bytes`` — frontends that know it show the interactive figure instead;
    * ``text/plain``: ``text``, for viewers that render neither.

    No ``text/html`` and no plotly.js: an executed notebook stays small.
    """
    bundle: dict[str, Any] = {"text/plain": text}
    if png is not None:
        bundle["image/png"] = base64.b64encode(inline_png(png, max_width)).decode("ascii")
    if interactive:
        data = plotly_mimedata(fig)
        if len(json.dumps(data)) <= max_json_bytes:
            bundle[PLOTLY_MIME] = data
    return bundle


def bundle_bytes(bundle: dict[str, Any]) -> int:
    """Bytes a bundle adds to a notebook file (its JSON size, roughly)."""
    return sum(len(v) if isinstance(v, str) else len(json.dumps(v)) for v in bundle.values())
